// More small things an outside tester found, in real headless Chromium against a real
// mailbox-server:
//   - a pasted or typed invite link that is one's own, or already joined, is said at once
//     (Accept off), as an opened one is; another link turns Accept on again;
//   - closing the tab and opening Hush again reopens the chat open last (only the
//     conversation's local id is kept in localStorage: no name);
//   - a message of only invisible characters (zero-width spaces, joiners, BOM, …) is blank:
//     Send off, Enter does nothing; emoji with joiners and direction marks in text still go;
//   - a very long last message does not put its whole text into the list's accessible name.

import { describe, test, before, after } from "node:test";
import assert from "node:assert/strict";
import { resolve } from "node:path";
import { startNative } from "./support/servers.mjs";
import { NO_BROWSER } from "./support/browser.mjs";
import { connect, eventually, freshProfiles, listItem, messages, newConversation, onMailbox, send, unlock } from "./support/app.mjs";

const WWW = process.env.HUSH_WWW_DIR ?? resolve(import.meta.dirname, "../www");
const PASS = "polish two correct horse";

/** The text under the invite link field ("" while there is none). */
async function linkError(page) {
  const field = page.getByLabel("Invite link");
  const id = await field.getAttribute("aria-describedby");
  return (await page.locator(`[id="${id.split(" ").pop()}"]`).textContent()).trim();
}

/** The accessible name Chromium computes for the element `selector` finds. */
async function accessibleName(page, selector) {
  const cdp = await page.context().newCDPSession(page);
  try {
    const { root } = await cdp.send("DOM.getDocument", { depth: 0 });
    const { nodeId } = await cdp.send("DOM.querySelector", { nodeId: root.nodeId, selector });
    assert.ok(nodeId, `found ${selector}`);
    const { nodes } = await cdp.send("Accessibility.getPartialAXTree", { nodeId, fetchRelatives: false });
    return String(nodes[0]?.name?.value ?? "");
  } finally {
    await cdp.detach();
  }
}

/** Goes to the Join screen from the list and pastes `text` into the link field, then Tab. */
async function pasteLink(page, text) {
  await page.getByRole("button", { name: "Join", exact: true }).click();
  const field = page.getByLabel("Invite link");
  await field.fill(text);
  await field.press("Tab");
}

describe("polish, second round", { skip: NO_BROWSER && "browser tests switched off" }, () => {
  let server;
  const browsers = [];
  let alice;
  let bob;
  let joinedLink;
  before(async () => {
    server = await startNative({ www: WWW });
    [alice, bob] = await freshProfiles(`${server.url}/`, PASS, 2, browsers);
    joinedLink = await connect(alice.page, bob.page, "Bob", "Alice");
  });
  after(async () => {
    for (const b of browsers) await b.context.close();
    await server?.stop();
  });

  test("a pasted invite of one's own, or already joined, is said at once and Accept is off", async () => {
    const page = alice.page;
    const own = await newConversation(page, "Carol");
    await page.getByRole("button", { name: "Back" }).click();
    await pasteLink(page, own);
    const accept = page.getByRole("button", { name: "Accept invite" });
    const said = await eventually(async () => /This is your own invite/.test(await linkError(page)) && linkError(page), {
      what: "the own-invite message under the pasted link",
    });
    assert.match(said, /it was made on this device/);
    assert.equal(await accept.isDisabled(), true, "nothing to accept");
    // Another link: the message goes and Accept is on again.
    await page.getByLabel("Invite link").fill(`${server.url}/#not-an-invite`);
    assert.equal(await accept.isDisabled(), false, "another link can be accepted");
    assert.equal(await linkError(page), "", "what was said about the other link is gone");
    // Typed back (without Tab): said again once the typing pauses.
    await page.getByLabel("Invite link").fill(own);
    await eventually(async () => /This is your own invite/.test(await linkError(page)), { what: "the message again" });
    assert.equal(await accept.isDisabled(), true);
    await page.getByRole("button", { name: "Back" }).click();

    // Bob pastes the invite he already joined.
    await pasteLink(bob.page, joinedLink);
    await eventually(async () => /You already joined this invite/.test(await linkError(bob.page)), { what: "the already-joined message" });
    assert.equal(await bob.page.getByRole("button", { name: "Accept invite" }).isDisabled(), true);
    await bob.page.getByRole("button", { name: "Open the conversation with Alice" }).click();
    await bob.page.getByRole("textbox", { name: "Message" }).waitFor();
  });

  test("a text of invisible characters only is blank; emoji with joiners and marked text are not", async () => {
    const page = bob.page;
    const box = page.getByRole("textbox", { name: "Message" });
    const sendButton = page.getByRole("button", { name: "Send", exact: true });
    const before = (await messages(page)).length;
    const invisible = ["\u200b", "\u200b\u200b\u200b", "\u2060", "\ufeff", "\u200c\u200d", " \u200b\u00a0\u3000\u2060\n", "\u200e\u200f", "\u00ad", "\u3164"];
    for (const text of invisible) {
      await box.fill(text);
      assert.equal(await sendButton.isDisabled(), true, `Send off for ${JSON.stringify(text)}`);
      await box.press("End");
      await box.press("Enter");
      assert.equal(await box.inputValue(), text, `Enter leaves ${JSON.stringify(text)} where it is`);
    }
    const real = ["👩\u200d👩\u200d👧", "\u200fשלום עולם", "a\u200bb"];
    for (const text of real) {
      await box.fill(text);
      assert.equal(await sendButton.isDisabled(), false, `Send on for ${JSON.stringify(text)}`);
    }
    await send(page, real[0]);
    const shown = await eventually(async () => {
      const all = await messages(page);
      return all.length > before && all;
    }, { what: "the emoji message" });
    assert.deepEqual(
      shown.slice(before).map((m) => m.text),
      [real[0]],
      "only the emoji went, none of the invisible texts",
    );
  });

  test("closing the tab and opening Hush again reopens the last chat", async () => {
    const { context } = alice;
    await alice.page.getByRole("navigation", { name: "Conversations" }).waitFor();
    await listItem(alice.page, "Bob").getByRole("button").click();
    await alice.page.getByRole("textbox", { name: "Message" }).waitFor();
    const kept = await alice.page.evaluate(() => Object.entries(localStorage).map(([k, v]) => `${k}=${v}`).join("\n"));
    assert.doesNotMatch(kept, /Bob|Carol|Alice/, "no name in localStorage");
    // A new tab of the same browser, the old one closed: no history entry or sessionStorage.
    const page = await context.newPage();
    await alice.page.close();
    alice.page = page;
    await page.goto(`${server.url}/`);
    await unlock(page, PASS);
    await page.getByRole("heading", { name: "Bob", exact: true }).waitFor();
    await page.getByRole("textbox", { name: "Message" }).waitFor();
    assert.equal(await page.getByText("Pick a conversation").isVisible(), false);
  });

  test("a long last message keeps the list's accessible name short, its preview as before", async () => {
    const page = alice.page;
    await page.getByRole("textbox", { name: "Message" }).waitFor();
    const long = "long words ".repeat(5_140); // 56,540 characters, within the limit (56,640).
    await send(page, long);
    await eventually(async () => (await messages(page)).some((m) => m.own && m.text === long && onMailbox(m.status)), {
      what: "the long message on the mailbox",
    });
    const button = listItem(page, "Bob").getByRole("button");
    await eventually(async () => /You: long words/.test(await button.textContent()), { what: "the list's preview" });
    const name = await accessibleName(page, `button.conv[data-id="${await button.getAttribute("data-id")}"]`);
    assert.ok(name.length < 400, `the list item's accessible name is short: ${name.length} characters`);
    assert.match(name, /^Bob\b/);
    assert.match(name, /You: long words long words/);
    // Still one line cut by CSS with an ellipsis.
    const box = await button.locator(".conv-preview-text").evaluate((el) => ({
      cut: el.scrollWidth > el.clientWidth,
      overflow: getComputedStyle(el).textOverflow,
    }));
    assert.equal(box.cut, true, "the preview is cut by CSS");
    assert.equal(box.overflow, "ellipsis");
  });

  test("offline is said by one live region, and the chat's banner still shows it", async () => {
    const page = alice.page;
    await page.getByRole("textbox", { name: "Message" }).waitFor();
    /** The live regions (role status/alert/log, or aria-live other than off) whose text matches. */
    const liveSaying = (pattern) =>
      page.evaluate((source) => {
        const re = new RegExp(source, "i");
        const live = document.querySelectorAll('[role="status"], [role="alert"], [role="log"], [aria-live]:not([aria-live="off"])');
        return [...live].filter((el) => re.test(el.textContent ?? "")).map((el) => ({ id: el.id, cls: el.className, exposed: el.checkVisibility({ visibilityProperty: true }) }));
      }, pattern.source);
    await alice.context.setOffline(true);
    try {
      const banner = page.locator(".banner").filter({ hasText: /^Offline/, visible: true });
      await banner.waitFor({ timeout: 30_000 });
      const regions = await liveSaying(/Offline/);
      assert.equal(regions.length, 1, `one live region says it: ${JSON.stringify(regions)}`);
      assert.equal(regions[0].exposed, true, "and it is exposed to assistive technology");
      // On the list (phone width: the list is the whole screen), the top bar's line shows it.
      await page.setViewportSize({ width: 390, height: 844 });
      await page.getByRole("button", { name: "Back", exact: true }).click();
      await page.getByRole("navigation", { name: "Conversations" }).waitFor();
      const line = page.locator("#netstatus").filter({ hasText: /^Offline/, visible: true });
      await line.waitFor();
      assert.equal((await liveSaying(/Offline/)).length, 1);
    } finally {
      await alice.context.setOffline(false);
      await page.setViewportSize({ width: 1280, height: 800 });
    }
  });
});
