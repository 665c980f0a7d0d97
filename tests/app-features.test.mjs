// Everyday messenger features (issue 12), in real headless Chromium against a real
// mailbox-server: confirming a new passphrase, the last message in the conversation list, day
// separators across pages of history and past midnight, each message's menu (Copy, Reply with
// quote, quotes shown as quote blocks without markup), search over a conversation's whole
// history, auto-lock after the chosen idle time, and the open chat back after unlocking.
// Alice's page runs on Playwright's clock (page.clock): time flows as usual, and the test sets
// it back (messages of earlier days) or jumps it forward (idle time), without touching the app.

import { describe, test, before, after } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { startNative } from "./support/servers.mjs";
import { launch, screenshot, NO_BROWSER } from "./support/browser.mjs";
import { createPassphrase, unlock, connect, listItem, openChat, send, messages, eventually, unlabelledControls } from "./support/app.mjs";

const WWW = process.env.HUSH_WWW_DIR ?? resolve(import.meta.dirname, "../www");
const PASS = { alice: "alice correct horse", bob: "bob battery staple" };
const DAY = 86_400_000;

/** The chat's list items in order: { day } for a separator, { text } for a message. */
function chatItems(page) {
  return page.getByRole("list", { name: "Conversation history" }).evaluate((ol) =>
    [...ol.children].map((li) => (li.classList.contains("day") ? { day: li.textContent } : { text: li.querySelector(".text")?.textContent ?? null })),
  );
}

/** Types and sends each of `texts` in the open chat (Enter), without waiting for delivery. */
async function sendAll(page, texts) {
  const box = page.getByRole("textbox", { name: "Message" });
  for (const text of texts) {
    await box.fill(text);
    await box.press("Enter");
  }
  await eventually(async () => {
    const shown = new Set((await messages(page)).map((m) => m.text));
    return texts.every((t) => shown.has(t));
  }, { what: "the messages sent shown" });
}

/** Local noon `days` days before today, in ms. */
function noonDaysAgo(days) {
  const d = new Date();
  d.setHours(12, 0, 0, 0);
  return d.getTime() - days * DAY;
}

describe("everyday messenger features", { skip: NO_BROWSER }, () => {
  let tmp;
  let server;
  let alice;
  let bob;

  before(async () => {
    tmp = mkdtempSync(join(tmpdir(), "hush-features-"));
    server = await startNative({ www: WWW, dataDir: join(tmp, "mailbox") });
    alice = await launch();
    bob = await launch();
    await alice.page.clock.install();
    await alice.context.grantPermissions(["clipboard-read", "clipboard-write"], { origin: server.url });
    await alice.page.goto(`${server.url}/`);
    await bob.page.goto(`${server.url}/`);
  });

  after(async () => {
    if (alice) await screenshot(alice.page, "features-alice").catch(() => {});
    await alice?.context.close();
    await bob?.context.close();
    await server?.stop();
    if (tmp) rmSync(tmp, { recursive: true, force: true });
  });

  describe("confirm a new passphrase", () => {
    test("two different passphrases are refused with a clear message; the same one twice creates the vault", async () => {
      const page = alice.page;
      await page.getByLabel("Passphrase", { exact: true }).fill(PASS.alice);
      await page.getByLabel("Confirm passphrase", { exact: true }).fill(`${PASS.alice}!`);
      await assert.doesNotReject(page.getByText(/There is no reset\. If you forget this passphrase, the conversations on this device cannot be recovered/).waitFor());
      await page.getByRole("button", { name: "Create", exact: true }).click();
      const error = page.getByText("The two passphrases are different. Type the same passphrase in both fields.");
      await error.waitFor();
      assert.equal(await page.getByLabel("Confirm passphrase", { exact: true }).getAttribute("aria-invalid"), "true");
      assert.equal(await page.evaluate(() => document.activeElement.getAttribute("autocomplete")), "new-password", "focus on a passphrase field");
      assert.equal(await page.evaluate(() => document.activeElement.labels[0]?.textContent), "Confirm passphrase");
      assert.equal(await page.getByRole("button", { name: "Lock", exact: true }).isVisible(), false, "nothing was created");
      await page.getByLabel("Confirm passphrase", { exact: true }).fill(PASS.alice);
      await page.getByRole("button", { name: "Create", exact: true }).click();
      await page.getByRole("button", { name: "Lock", exact: true }).waitFor({ timeout: 30_000 });
      await createPassphrase(bob.page, PASS.bob);
      await connect(alice.page, bob.page, "Bob", "Alice");
    });
  });

  describe("preview of the last message", () => {
    test("the list shows the last message on one line (own ones after \"You: \"), with its time, and follows new ones", async () => {
      const long = `Hello Bob, ${"a long line of words ".repeat(20)}end`;
      await send(alice.page, long);
      const aliceSide = listItem(alice.page, "Bob").locator(".conv-preview-text");
      // At most 200 characters of the message in the page (its accessible name stays short), cut with "…".
      const preview = (text) => text.startsWith("Hello Bob, a long line") && text.endsWith("…") && text.length <= 210;
      await eventually(async () => preview((await aliceSide.textContent()).replace(/^You: /, "")) && (await aliceSide.textContent()).startsWith("You: "), { what: "Alice's preview" });
      const style = await aliceSide.evaluate((el) => {
        const css = getComputedStyle(el);
        return { overflow: css.textOverflow, wrap: css.whiteSpace, cut: el.scrollWidth > el.clientWidth, lines: Math.round(el.getBoundingClientRect().height / parseFloat(css.lineHeight || "16")) };
      });
      assert.equal(style.overflow, "ellipsis");
      assert.equal(style.wrap, "nowrap");
      assert.ok(style.cut, "the whole text is there, cut by CSS");
      const when = await listItem(alice.page, "Bob").locator(".conv-preview time").textContent();
      assert.match(when, /\d{1,2}.\d{2}/, "today: the time of the message");
      const bobSide = listItem(bob.page, "Alice").locator(".conv-preview-text");
      await eventually(async () => preview(await bobSide.textContent()), { what: "Bob's preview, without You:" });
      await send(bob.page, "Thanks, got it");
      await eventually(async () => (await aliceSide.textContent()) === "Thanks, got it", { what: "Alice's preview of Bob's reply" });
      await eventually(async () => (await bobSide.textContent()) === "You: Thanks, got it", { what: "Bob's preview of his reply" });
    });
  });

  describe("message menu", () => {
    test("Copy puts the text on the clipboard and says Copied; the menu works from the keyboard", async () => {
      const page = alice.page;
      await send(bob.page, "first line\nsecond line");
      const bubble = page.locator("li.msg").filter({ hasText: "second line" });
      await bubble.waitFor({ timeout: 30_000 });
      const button = bubble.getByRole("button", { name: "Message actions" });
      await button.focus();
      assert.equal(await button.evaluate((b) => getComputedStyle(b).opacity), "1", "shown on focus");
      await page.keyboard.press("Enter");
      const menu = page.getByRole("menu", { name: "Message actions" });
      await menu.waitFor();
      assert.deepEqual(await menu.getByRole("menuitem").allTextContents(), ["Copy", "Reply with quote", "Delete on this device"]);
      assert.equal(await page.evaluate(() => document.activeElement.textContent), "Copy", "focus on the first item");
      await page.keyboard.press("Enter");
      await page.getByRole("status").filter({ hasText: /^Copied$/ }).waitFor();
      assert.equal(await page.evaluate(() => navigator.clipboard.readText()), "first line\nsecond line");
      assert.equal(await menu.count(), 0, "the menu closed");
      // Escape closes it and gives the focus back to its message (the history's tab stop).
      await button.focus();
      await page.keyboard.press("Enter");
      await menu.waitFor();
      await page.keyboard.press("Escape");
      assert.equal(await menu.count(), 0);
      assert.equal(await page.evaluate(() => document.activeElement.classList.contains("msg") && document.activeElement.textContent.includes("second line")), true);
    });

    test("Reply with quote puts \"> \" lines in the composer; the reply shows the quote as a quote block", async () => {
      const page = alice.page;
      const bubble = page.locator("li.msg").filter({ hasText: "second line" });
      await bubble.click({ button: "right" }); // The context menu: the same items.
      await page.getByRole("menu", { name: "Message actions" }).waitFor();
      assert.deepEqual(await unlabelledControls(page), [], "every control of the chat and the menu has a name");
      await screenshot(page, "features-menu");
      await page.getByRole("menuitem", { name: "Reply with quote" }).click();
      const box = page.getByRole("textbox", { name: "Message" });
      assert.equal(await box.inputValue(), "> first line\n> second line\n");
      assert.equal(await box.evaluate((el) => el === document.activeElement), true, "the composer has the focus");
      await page.keyboard.type("Yes, both");
      await page.getByRole("button", { name: "Send", exact: true }).click();
      const reply = bob.page.locator("li.msg").filter({ hasText: "Yes, both" });
      await reply.waitFor({ timeout: 30_000 });
      assert.equal(await reply.getByRole("blockquote").textContent(), "first line\nsecond line");
      assert.equal(await reply.locator(".text").evaluate((p) => p.lastChild.textContent), "Yes, both");
      const preview = listItem(bob.page, "Alice").locator(".conv-preview-text");
      await eventually(async () => (await preview.textContent()) === "Yes, both", { what: "the list previews the reply, not its quote" });
      // A long message is quoted to its first 200 characters.
      const long = "x".repeat(500);
      await send(bob.page, long);
      const longBubble = page.locator("li.msg").filter({ hasText: long });
      await longBubble.waitFor({ timeout: 30_000 });
      await longBubble.getByRole("button", { name: "Message actions" }).click();
      await page.getByRole("menuitem", { name: "Reply with quote" }).click();
      assert.equal(await box.inputValue(), `> ${"x".repeat(199)}…\n`);
      await box.fill("");
    });

    test("markup in a message or its quote is shown as text, never made into elements", async () => {
      const evil = '> <img src=x onerror="window.__hacked=1"><b>quoted</b>\n<i>reply</i><script>window.__hacked=2</script>';
      await send(bob.page, evil);
      const bubble = alice.page.locator("li.msg").filter({ hasText: "<i>reply</i>" });
      await bubble.waitFor({ timeout: 30_000 });
      assert.equal(await bubble.locator("img, b, i, script").count(), 0);
      assert.equal(await bubble.getByRole("blockquote").textContent(), '<img src=x onerror="window.__hacked=1"><b>quoted</b>');
      assert.equal(await alice.page.evaluate(() => window.__hacked ?? null), null);
    });
  });

  describe("day separators", () => {
    test("one separator per day, at its first message, across pages of history and past midnight", async () => {
      const page = alice.page;
      await connect(alice.page, bob.page, "Bob days", "Alice days");
      const A = Array.from({ length: 40 }, (_, i) => `A${i + 1}`);
      const Y = Array.from({ length: 40 }, (_, i) => `Y${i + 1}`);
      const T = Array.from({ length: 30 }, (_, i) => `T${i + 1}`);
      await page.clock.setSystemTime(noonDaysAgo(10));
      await sendAll(page, A);
      await page.clock.setSystemTime(noonDaysAgo(3));
      await sendAll(page, ["W1"]);
      await page.clock.setSystemTime(noonDaysAgo(1));
      await sendAll(page, Y);
      const midnight = new Date().setHours(0, 0, 0, 0);
      await page.clock.setSystemTime(midnight - 20_000);
      await sendAll(page, ["before midnight"]);
      let items = await chatItems(page);
      assert.deepEqual(items.filter((i) => i.day).map((i) => i.day).slice(-1), ["Today"], "before midnight, yesterday is today");
      await page.clock.setSystemTime(midnight + 20_000);
      await sendAll(page, ["after midnight"]);
      items = await chatItems(page);
      const at = (text) => items.findIndex((i) => i.text === text);
      assert.deepEqual(items[at("Y1") - 1], { day: "Yesterday" }, "relabelled live after midnight");
      assert.deepEqual(items[at("after midnight") - 1], { day: "Today" });
      assert.equal(items.filter((i) => i.day === "Today").length, 1);
      await page.clock.setSystemTime(Date.now());
      await sendAll(page, T);

      // Opened again: the newest page (60 entries) starts inside yesterday.
      await openChat(page, "Bob");
      await openChat(page, "Bob days");
      const earlier = page.getByRole("button", { name: "Show earlier messages" });
      await earlier.waitFor();
      await eventually(async () => (await chatItems(page)).some((i) => i.text === "T30"), { what: "the newest page" });
      items = await chatItems(page);
      assert.deepEqual(items[0], { day: "Yesterday" });
      assert.equal(items[1].text, "Y13", "the newest page starts inside yesterday");
      assert.deepEqual(items.filter((i) => i.day).map((i) => i.day), ["Yesterday", "Today"]);

      // Clicked where it stands: Playwright's click first scrolls the button into view, the
      // list then loads the page before by itself (it does on scroll) and hides the button,
      // and the click waited 30 s for a button that was gone (seen with two suites at once).
      await earlier.dispatchEvent("click");
      await eventually(async () => (await chatItems(page)).some((i) => i.text === "A1"), { what: "the page before" });
      items = await chatItems(page);
      const tenDaysAgo = await page.evaluate((ms) => new Intl.DateTimeFormat(undefined, { day: "numeric", month: "long", year: "numeric" }).format(ms), noonDaysAgo(10));
      const weekday = await page.evaluate((ms) => new Intl.DateTimeFormat(undefined, { weekday: "long" }).format(ms), noonDaysAgo(3));
      assert.deepEqual(items.filter((i) => i.day).map((i) => i.day), [tenDaysAgo, weekday, "Yesterday", "Today"], "no separator duplicated or missing");
      const before = (text) => items[items.findIndex((i) => i.text === text) - 1];
      assert.deepEqual(before("A1"), { day: tenDaysAgo });
      assert.deepEqual(before("W1"), { day: weekday });
      assert.deepEqual(before("Y1"), { day: "Yesterday" });
      assert.deepEqual(before("after midnight"), { day: "Today" });
      assert.equal(items.filter((i) => i.text).length, 113);
    });
  });

  describe("search in a conversation", () => {
    test("finds matches over the whole history, case-insensitively, steps through them and closes with Escape", async () => {
      const page = alice.page;
      await openChat(page, "Bob");
      await openChat(page, "Bob days");
      await page.getByRole("button", { name: "Show earlier messages" }).waitFor();
      await page.keyboard.press("Control+f");
      const input = page.getByRole("searchbox", { name: "Search this conversation" });
      assert.equal(await input.evaluate((el) => el === document.activeElement), true, "Ctrl+F opens and focuses the search");
      await input.fill("a1");
      assert.deepEqual(await unlabelledControls(page), [], "every control of the search has a name");
      const count = page.locator(".search-count");
      await eventually(async () => (await count.textContent()) === "11 of 11 matches", { what: "the count" });
      const current = page.locator("li.msg.search-current");
      await eventually(async () => (await current.locator(".text").textContent()) === "A19", { what: "the newest match shown" });
      assert.deepEqual(await current.locator("mark").allTextContents(), ["A1"]);
      for (let i = 0; i < 10; i++) await input.press("Enter");
      await eventually(async () => (await count.textContent()) === "1 of 11 matches", { what: "the oldest match" });
      await eventually(async () => (await current.locator(".text").textContent()) === "A1", { what: "A1 shown" });
      assert.equal(await current.isVisible(), true);
      assert.ok(await current.evaluate((li) => {
        const r = li.getBoundingClientRect();
        const s = li.closest(".scroller").getBoundingClientRect();
        return r.top >= s.top && r.bottom <= s.bottom;
      }), "scrolled into view");
      assert.equal(await page.getByRole("button", { name: "Older match" }).isDisabled(), true);
      await page.getByRole("button", { name: "Newer match" }).click();
      await eventually(async () => (await current.locator(".text").textContent()) === "A10", { what: "the next match" });
      await input.fill("MIDNIGHT");
      await eventually(async () => (await count.textContent()) === "2 of 2 matches", { what: "two matches" });
      await input.fill("nothing like this");
      await eventually(async () => (await count.textContent()) === "No matches", { what: "no match" });
      await input.fill("a1");
      await eventually(async () => (await page.locator("mark").count()) === 1, { what: "a mark" });
      await input.press("Escape");
      assert.equal(await input.isVisible(), false);
      assert.equal(await page.locator("mark, .search-current").count(), 0, "highlights gone");
      assert.equal(await page.evaluate(() => document.activeElement.textContent), "Search");
      assert.equal(await page.locator("li.msg .text").filter({ hasText: /^A1$/ }).count(), 1, "the text is whole again");
    });
  });

  describe("auto-lock", () => {
    test("the choice is in Settings, default 15 minutes, kept in localStorage", async () => {
      const page = alice.page;
      await page.getByRole("button", { name: "Settings" }).click();
      const select = page.getByLabel("Lock automatically");
      assert.equal(await select.inputValue(), "15");
      assert.deepEqual(await select.locator("option").allTextContents(), ["Never", "After 5 minutes", "After 15 minutes", "After 1 hour"]);
      await select.selectOption({ label: "After 5 minutes" });
      assert.equal(await page.evaluate(() => localStorage.getItem("hush.autoLock")), "5");
    });

    test("after the idle time Hush locks and no message text stays in the page; activity postpones it", async () => {
      const page = alice.page;
      await openChat(page, "Bob");
      await page.clock.fastForward("04:00");
      await page.keyboard.press("Shift"); // Activity.
      await page.clock.fastForward("04:00");
      assert.equal(await page.getByRole("button", { name: "Lock", exact: true }).isVisible(), true, "activity postponed it");
      await page.clock.fastForward("01:30");
      await page.getByLabel("Passphrase", { exact: true }).waitFor();
      const html = await page.evaluate(() => document.documentElement.outerHTML);
      for (const text of ["Thanks, got it", "second line", "Yes, both", "Hello Bob"]) assert.ok(!html.includes(text), `"${text}" is not in the page`);
      assert.ok(!html.includes("Bob days"), "nor a conversation's name");
      assert.match(await page.locator("#announcer").textContent(), /locked itself after 5 minutes without activity/);
    });
  });

  describe("reopen the last conversation after unlocking", () => {
    test("after auto-lock, and after Lock, unlocking opens the chat that was open", async () => {
      const page = alice.page;
      await unlock(page, PASS.alice);
      await eventually(async () => (await page.locator(".chat-title").count()) === 1, { what: "a chat" });
      assert.equal(await page.locator(".chat-title").textContent(), "Bob");
      await openChat(page, "Bob");
      await openChat(page, "Bob days");
      await page.getByRole("button", { name: "Lock", exact: true }).click();
      await unlock(page, PASS.alice);
      await eventually(async () => (await page.locator(".chat-title").count()) === 1, { what: "a chat" });
      assert.equal(await page.locator(".chat-title").textContent(), "Bob days");
      assert.deepEqual(await page.evaluate(() => Object.keys(localStorage).filter((k) => !/^hush\.(autoLock|mailbox|notify|notifyText|deleteAfterRead|notifyOffered|lastChat)$/.test(k))), []);
      // From another screen (no chat open), unlocking shows the list.
      await page.getByRole("button", { name: "Settings" }).click();
      await page.getByRole("button", { name: "Lock", exact: true }).click();
      await unlock(page, PASS.alice);
      assert.equal(await page.locator(".chat-title").count(), 0);
    });
  });

  test("no console errors", () => {
    // Alice's clock went back days and jumped forward minutes: her client may re-deposit a blob
    // it believes lost, and the mailbox answers 409 over its own bytes, or 410 where Bob has
    // read and deleted it meanwhile (delete after read is on by default; Chromium logs both).
    assert.deepEqual(alice.errors.filter((e) => !/status of (409|410 \(Gone\))/.test(e)), []);
    assert.deepEqual(bob.errors, []);
  });
});
