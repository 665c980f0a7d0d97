// Everyday failures as people meet them (issue 16, items 1-4), in real headless Chromium
// against a real mailbox-server. The site and the mailbox share one origin under different
// paths (site at /app/, mailbox at /mb/, tests/support/paths.mjs), the setup that used to
// break every invite:
//   - an invite made there carries the mailbox's URL and the joiner talks to it; the joiner is
//     shown "Connecting…" (no safety code, no "Connected") until its hello is stored;
//   - a mailbox address that answers 404 is reported as a wrong address (in Settings, to the
//     inviter and to the joiner), never as "can't reach";
//   - opening one's own invite (pasted, or as a link in the same tab, altered or not) says so
//     at once, with Accept off, and joins nothing; the real person joins it afterwards;
//   - opening an invite already joined says "You already joined this invite" and leads to
//     that conversation; with the conversation deleted, it says so;
//   - with this browser's storage for the site full, incoming messages are not lost in
//     silence: a banner says new messages can't be saved, and once space is freed they
//     arrive, in order, and the banner goes.

import { describe, test, before, after } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { startNative } from "./support/servers.mjs";
import { startPathSite } from "./support/paths.mjs";
import { launch, screenshot, NO_BROWSER } from "./support/browser.mjs";
import { back, createPassphrase, newConversation, safetyCode, listItem, openChat, send, messages, eventually, onMailbox } from "./support/app.mjs";

const WWW = process.env.HUSH_WWW_DIR ?? resolve(import.meta.dirname, "../www");
const PASS = { alice: "alice correct horse", bob: "bob battery staple" };
/** The storage quota of Bob's browser for the site. */
const QUOTA = 16 * 1024 * 1024;

/**
 * Fills the page's storage quota with data of another IndexedDB database of the same origin
 * ("filler"), until not even 16 bytes more fit; returns the bytes written.
 */
function fillStorage(page) {
  return page.evaluate(async () => {
    const db = await new Promise((ok, fail) => {
      const req = indexedDB.open("filler", 1);
      req.onupgradeneeded = () => req.result.createObjectStore("blobs");
      req.onsuccess = () => ok(req.result);
      req.onerror = () => fail(req.error);
    });
    const put = (size, key) =>
      new Promise((ok) => {
        const tx = db.transaction("blobs", "readwrite");
        // Random bytes: nothing for the storage engine to compress.
        const bytes = new Uint8Array(size);
        for (let at = 0; at < size; at += 65536) crypto.getRandomValues(bytes.subarray(at, at + 65536));
        tx.objectStore("blobs").put(bytes, key);
        tx.oncomplete = () => ok(true);
        tx.onabort = () => ok(false);
      });
    let written = 0;
    let key = 0;
    for (let size = 1 << 20; size >= 16; ) {
      if (await put(size, key++)) written += size;
      else size >>= 1;
    }
    db.close();
    return written;
  });
}

/** Deletes the filler database: the space is free again. */
function freeStorage(page) {
  return page.evaluate(
    () =>
      new Promise((ok, fail) => {
        const req = indexedDB.deleteDatabase("filler");
        req.onsuccess = () => ok();
        req.onerror = () => fail(req.error);
      }),
  );
}

/** Sets the mailbox in Settings; returns what Settings said about it. */
async function setMailbox(page, url) {
  await page.getByRole("button", { name: "Settings" }).click();
  await page.getByLabel("Mailbox URL").fill(url);
  await page.getByRole("button", { name: "Save", exact: true }).click();
  const result = page.getByRole("status").filter({ hasText: /^Saved\. (?!Checking)|^Saved, but/ });
  await result.waitFor({ timeout: 30_000 });
  return (await result.textContent()).trim();
}

/** Join screen, `text` pasted as the link (not accepted). */
async function paste(page, name, text) {
  await page.getByRole("button", { name: "Join", exact: true }).click();
  await page.getByLabel("Their name").fill(name);
  await page.getByLabel("Invite link").fill(text);
}

/** Join screen, `text` pasted as the link, accepted. */
async function pasteAndAccept(page, name, text) {
  await paste(page, name, text);
  await page.getByRole("button", { name: "Accept invite" }).click();
}

/** The error shown under the invite link field (waits until there is one). */
async function linkError(page) {
  const field = page.getByLabel("Invite link");
  const id = await field.getAttribute("aria-describedby");
  const slot = page.locator(`[id="${id.split(" ").pop()}"]`);
  return eventually(async () => (await slot.textContent()).trim(), { what: "a message under the invite link" });
}

/** Every text the page shows, for "never says X" checks. */
const pageText = (page) => page.locator("body").innerText();

/** Names of the conversations in the list. */
async function listNames(page) {
  return page.getByRole("navigation", { name: "Conversations" }).locator(".conv-name").allTextContents();
}

describe("everyday failures, with the site and the mailbox under paths of one origin", { skip: NO_BROWSER }, () => {
  let tmp;
  let server;
  let site;
  let app;
  let mailbox;
  let alice;
  let bob;

  /** Alice invites, Bob joins; both see the same safety code and go to the chat. */
  async function connect(nameAtAlice, nameAtBob) {
    const link = await newConversation(alice.page, nameAtAlice);
    await pasteAndAccept(bob.page, nameAtBob, link);
    const bobCode = await safetyCode(bob.page);
    assert.equal(await safetyCode(alice.page), bobCode, "both show the same safety code");
    await alice.page.getByRole("button", { name: "Start chatting" }).click();
    await bob.page.getByRole("button", { name: "Start chatting" }).click();
    await bob.page.getByRole("textbox", { name: "Message" }).waitFor();
    return link;
  }

  before(async () => {
    tmp = mkdtempSync(join(tmpdir(), "hush-everyday-"));
    server = await startNative({ www: WWW, dataDir: join(tmp, "mailbox") });
    site = await startPathSite(server);
    app = `${site.url}/app/`;
    mailbox = `${site.url}/mb`;
    alice = await launch();
    bob = await launch();
    // Bob's browser gives the site a small quota (16 MiB), as a nearly full disk does; the
    // storage test fills it. Chromium reads the quota when the site first opens its storage.
    bob.cdp = await bob.context.newCDPSession(bob.page);
    await bob.cdp.send("Storage.overrideQuotaForOrigin", { origin: site.url, quotaSize: QUOTA });
    await alice.page.goto(app);
    await createPassphrase(alice.page, PASS.alice);
    await bob.page.goto(app);
    await createPassphrase(bob.page, PASS.bob);
    const said = await setMailbox(alice.page, mailbox);
    assert.match(said, /answered/, said);
    await back(alice.page);
  });

  after(async () => {
    for (const p of [alice, bob]) await p?.context.close().catch(() => {});
    await site?.stop().catch(() => {});
    await server?.stop().catch(() => {});
    if (tmp) rmSync(tmp, { recursive: true, force: true });
  });

  test("an invite carries a mailbox under a path of the site's origin; the joiner is 'connecting' until its hello is stored", async () => {
    const link = await newConversation(alice.page, "Bob");
    assert.ok(link.startsWith(app), `the link points to the site: ${link}`);
    assert.ok(link.split("#")[1].length > 98, "the invite carries the mailbox URL (its origin is the site's, its path is not)");

    // The mailbox stores nothing for now: the joiner's hello cannot land.
    site.state.holdPuts = true;
    const before = site.state.requests.length;
    await pasteAndAccept(bob.page, "Alice", link);
    await bob.page.getByRole("heading", { name: /Connecting/ }).waitFor({ timeout: 30_000 });
    await eventually(() => site.state.requests.slice(before).some((r) => r.startsWith("PUT /mb/v1/m/")), {
      what: "the joiner's hello PUT to the mailbox under /mb",
    });
    // Several attempts later, still not connected.
    await eventually(() => site.state.requests.slice(before).filter((r) => r.startsWith("PUT ")).length >= 2, {
      what: "a retried hello",
    });
    await screenshot(bob.page, "everyday-connecting");
    const shown = await pageText(bob.page);
    assert.doesNotMatch(shown, /Connected/, "the joiner is not told 'Connected' before the hello is stored");
    assert.equal(await bob.page.getByLabel("Safety code").count(), 0, "no safety code as if connected");
    assert.match(await listItem(bob.page, "Alice").textContent(), /Connecting/, "the list says connecting");
    assert.ok(
      site.state.requests.slice(before).every((r) => r.includes(" /mb/")),
      "every request of the joiner goes to the mailbox under /mb",
    );
    assert.match(await listItem(alice.page, "Bob").textContent(), /Waiting for them to join/);

    site.state.holdPuts = false;
    await bob.page.getByRole("heading", { name: "Connected with Alice" }).waitFor({ timeout: 30_000 });
    const bobCode = await safetyCode(bob.page);
    const aliceCode = await safetyCode(alice.page);
    assert.equal(aliceCode, bobCode, "both show the same safety code");
    await alice.page.getByRole("button", { name: "Start chatting" }).click();
    await bob.page.getByRole("button", { name: "Start chatting" }).click();
    await send(bob.page, "hello from under /mb");
    await openChat(alice.page, "Bob");
    await eventually(async () => (await messages(alice.page)).some((m) => m.text === "hello from under /mb"), {
      what: "Bob's message at Alice",
    });
  });

  test("a mailbox address that answers 404 is called wrong, in Settings, to the inviter and to the joiner", async () => {
    const wrong = `${site.url}/nothing`;
    const said = await setMailbox(alice.page, wrong);
    assert.match(said, /not (a|the address of a) Hush mailbox|no Hush mailbox/i, said);
    await screenshot(alice.page, "everyday-settings-wrong-mailbox");
    await back(alice.page);

    const link = await newConversation(alice.page, "Wrong");
    assert.ok(link.includes("#"), link);
    const inviter = alice.page.getByRole("status").filter({ hasText: /wrong mailbox address/i, visible: true });
    await inviter.first().waitFor({ timeout: 30_000 });
    assert.doesNotMatch(await pageText(alice.page), /Can't reach/i, "not 'can't reach'");
    assert.match(await listItem(alice.page, "Wrong").textContent(), /wrong mailbox address/i);
    await screenshot(alice.page, "everyday-inviter-wrong-mailbox");

    await pasteAndAccept(bob.page, "Wrong", link);
    await bob.page.getByRole("heading", { name: /Connecting/ }).waitFor({ timeout: 30_000 });
    await bob.page.getByText(/wrong mailbox address/i).filter({ visible: true }).first().waitFor({ timeout: 30_000 });
    const shown = await pageText(bob.page);
    assert.doesNotMatch(shown, /Connected|Can't reach/i, shown);
    assert.equal(await bob.page.getByLabel("Safety code").count(), 0);
    await screenshot(bob.page, "everyday-joiner-wrong-mailbox");
    // In the chat too, the joiner is told the address is wrong, not that it can't be reached.
    await openChat(bob.page, "Wrong");
    await bob.page.getByText(/wrong mailbox address/i).filter({ visible: true }).first().waitFor({ timeout: 30_000 });
    assert.doesNotMatch(await pageText(bob.page), /Can't reach/i);

    // Back to the right mailbox; the broken conversations are deleted.
    for (const [page, name] of [
      [alice.page, "Wrong"],
      [bob.page, "Wrong"],
    ]) {
      await listItem(page, name).getByRole("button").click();
      await page.getByRole("button", { name: /^Delete/ }).first().click();
      await page.getByRole("button", { name: /^Erase/ }).click();
      await eventually(async () => !(await listNames(page)).includes(name), { what: `${name} deleted` });
    }
    assert.match(await setMailbox(alice.page, mailbox), /answered/);
    await back(alice.page);
    await eventually(async () => !/wrong mailbox address/i.test(await pageText(alice.page)), {
      what: "the wrong-address notice gone",
    });
  });

  test("a mailbox address too long for an invite is refused in Settings, and one saved before is named at New conversation", async () => {
    const long = `${site.url}/${"a".repeat(300)}`;
    await alice.page.getByRole("button", { name: "Settings" }).click();
    const url = alice.page.getByLabel("Mailbox URL");
    await url.fill(long);
    await alice.page.getByRole("button", { name: "Save", exact: true }).click();
    const error = await eventually(async () => {
      const id = (await url.getAttribute("aria-describedby")) ?? "";
      const texts = await Promise.all(id.split(" ").filter(Boolean).map((i) => alice.page.locator(`[id="${i}"]`).textContent()));
      return texts.find((t) => /bytes long/.test(t ?? "")) ?? null;
    }, { what: "the length refusal under the field" });
    assert.match(error, /at most 200\. Use a shorter address\. Nothing was saved\./, error);
    assert.notEqual(await alice.page.evaluate(() => localStorage.getItem("hush.mailbox")), long, "not saved");
    // One saved by an older version: New conversation names the setting, not a bad link.
    await alice.page.evaluate((v) => localStorage.setItem("hush.mailbox", v), long);
    await back(alice.page);
    await alice.page.getByRole("button", { name: "New conversation" }).click();
    await alice.page.getByLabel("Their name").fill("Too long");
    await alice.page.getByRole("button", { name: "Create invite" }).click();
    await alice.page.getByText(/mailbox address in Settings is \d+ bytes long, too long for an invite/).waitFor({ timeout: 10_000 });
    assert.doesNotMatch(await pageText(alice.page), /whole link was copied/);
    await alice.page.evaluate(() => localStorage.removeItem("hush.mailbox"));
    assert.match(await setMailbox(alice.page, mailbox), /answered/);
    await back(alice.page);
  });

  test("opening one's own invite says so and joins nothing; the other person joins it afterwards", async () => {
    const link = await newConversation(alice.page, "Carol");
    const alterations = [(l) => l, (l) => `${l}.`, (l) => `<${l.replace("#", "%23")}>`];
    for (const alter of alterations) {
      // Said once pasted, before any Accept, which is off.
      await paste(alice.page, "Me", alter(link));
      const said = await linkError(alice.page);
      assert.match(said, /This is your own invite/, said);
      assert.equal(await alice.page.getByRole("button", { name: "Accept invite" }).isDisabled(), true);
      await back(alice.page);
    }
    // The link opened in the same tab (only the fragment changes): said at once, before any
    // Accept, which is off.
    await alice.page.goto(link);
    await alice.page.getByRole("heading", { name: "This is your own invite" }).waitFor();
    assert.equal(await alice.page.getByRole("button", { name: "Accept invite" }).isDisabled(), true);
    await screenshot(alice.page, "everyday-own-invite");
    const names = await listNames(alice.page);
    assert.ok(!names.includes("Me"), `no conversation with oneself: ${names}`);
    assert.match(await listItem(alice.page, "Carol").textContent(), /Waiting for them to join/);

    // The real person joins: nobody is told the invite was taken.
    await pasteAndAccept(bob.page, "Alice 2", link);
    const bobCode = await safetyCode(bob.page);
    // Alice is on another screen (her own invite): the join comes as a cue that leads to the
    // safety code. (Opening "Carol" from the list races her poll: once joined, it opens the chat.)
    await alice.page.getByRole("button", { name: "Compare safety code" }).click({ timeout: 30_000 });
    assert.equal(await safetyCode(alice.page), bobCode);
    assert.doesNotMatch(await pageText(bob.page), /already used|before you/i);
    await bob.page.getByRole("button", { name: "Start chatting" }).click();
    await alice.page.getByRole("button", { name: "Start chatting" }).click();
  });

  test("opening an invite already joined says so and leads to that conversation", async () => {
    const joined = { link: await connect("Bob 4", "Alice 4") };
    await send(bob.page, "the first conversation");
    const before = await listNames(bob.page);
    for (const text of [joined.link, `${joined.link}.`, joined.link.replace("#", "%23")]) {
      await paste(bob.page, "Alice again", text);
      const said = await linkError(bob.page);
      assert.match(said, /You already joined this invite/, said);
      assert.equal(await bob.page.getByRole("button", { name: "Accept invite" }).isDisabled(), true);
      assert.doesNotMatch(said, /before you|someone/i);
      await back(bob.page);
    }
    // Opened as a link, then followed to the conversation.
    await bob.page.goto(joined.link);
    assert.match(await linkError(bob.page), /You already joined this invite/);
    assert.equal(await bob.page.getByRole("button", { name: "Accept invite" }).isDisabled(), true, "said at once, Accept off");
    await screenshot(bob.page, "everyday-already-joined");
    await bob.page.getByRole("button", { name: "Open the conversation with Alice 4" }).click();
    await bob.page.getByRole("heading", { name: "Alice 4", exact: true }).waitFor();
    await eventually(async () => (await messages(bob.page)).some((m) => m.text === "the first conversation"), {
      what: "the existing conversation's history",
    });
    assert.deepEqual(await listNames(bob.page), before, "no second conversation");
  });

  test("storage full: incoming messages are not lost in silence, and arrive in order once space is freed", async () => {
    await connect("Bob 5", "Alice 5");
    const written = await fillStorage(bob.page);
    assert.ok(written > QUOTA / 2, `the filler took the space: ${written} bytes`);
    const texts = ["full one", "full two", "full three"];
    try {
      for (const text of texts) {
        await send(alice.page, text);
        await eventually(async () => onMailbox((await messages(alice.page)).find((m) => m.text === text)?.status), {
          what: `"${text}" sent`,
        });
      }
      // The chat's banner (the top bar's line says it too, then for screen readers only).
      const banner = bob.page.locator(".banner").filter({ hasText: /New messages can't be saved: this browser's storage for Hush is full/, visible: true });
      await banner.first().waitFor({ timeout: 30_000 });
      await screenshot(bob.page, "everyday-storage-full");
      // Polls go on failing while the storage is full: nothing is shown that was not stored.
      await new Promise((r) => setTimeout(r, 5_000));
      const shown = (await messages(bob.page)).map((m) => m.text);
      assert.ok(!shown.some((t) => texts.includes(t)), `nothing shown that was not stored: ${shown}`);
      assert.equal(await banner.count(), 1, "the banner stays while the storage is full");
    } finally {
      await freeStorage(bob.page);
    }
    await eventually(
      async () => {
        const got = (await messages(bob.page)).map((m) => m.text).filter((t) => t.startsWith("full "));
        return got.length === 3 && got;
      },
      { what: "the three messages at Bob" },
    ).then((got) => assert.deepEqual(got, ["full one", "full two", "full three"], "in order"));
    await eventually(async () => !/New messages can't be saved/.test(await pageText(bob.page)), { what: "the banner gone" });
  });

  test("a relative hush-mailbox meta tag names a mailbox under the page's own origin", async () => {
    const carol = await launch();
    try {
      // The host wrote the mailbox relative to its own origin: <meta ... content="/mb">.
      await carol.page.route(app, async (route) => {
        const page = await route.fetch();
        const body = (await page.text()).replace("<head>", '<head><meta name="hush-mailbox" content="/mb">');
        await route.fulfill({ status: 200, contentType: "text/html; charset=utf-8", body });
      });
      await carol.page.goto(app);
      const chosen = await carol.page.evaluate(async (url) => (await import(url)).defaultMailboxUrl(), `${app}settings.js`);
      assert.equal(chosen, mailbox, "resolved against the page's address");
    } finally {
      await carol.context.close().catch(() => {});
    }
  });

  test("no console errors", () => {
    const ignored = (line) => /Failed to load resource: the server responded with a status of (404|503)/.test(line);
    assert.deepEqual([...alice.errors, ...bob.errors].filter((l) => !ignored(l)), [], "no console errors");
  });
});
