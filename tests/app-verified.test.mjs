// "Mark as verified" after comparing the safety code (issue #12), in real headless Chromium
// against a real mailbox-server: the mark is offered on the safety-code screen, shows there
// (with its date) and in the chat's title, survives locking and unlocking (it is in the
// vault), and can be removed.

import { describe, test, before, after } from "node:test";
import assert from "node:assert/strict";
import { resolve } from "node:path";
import { startNative } from "./support/servers.mjs";
import { launch, NO_BROWSER } from "./support/browser.mjs";
import { connect, createPassphrase, openChat, unlock } from "./support/app.mjs";

const WWW = process.env.HUSH_WWW_DIR ?? resolve(import.meta.dirname, "../www");
const PASS = "verified correct horse";

describe("the safety code marked as verified", { skip: NO_BROWSER && "browser tests switched off" }, () => {
  let server;
  const browsers = [];
  before(async () => {
    server = await startNative({ www: WWW });
  });
  after(async () => {
    for (const b of browsers) await b.context.close();
    await server?.stop();
  });

  test("marked on the safety screen, shown in the chat, kept across a lock, removable", async () => {
    const open = async () => {
      const b = await launch();
      browsers.push(b);
      await b.page.goto(`${server.url}/`);
      await createPassphrase(b.page, PASS);
      return b;
    };
    const alice = await open();
    const bob = await open();
    await connect(alice.page, bob.page, "Bob", "Alice");
    const page = alice.page;
    assert.equal(await page.locator(".chat-title .verified-mark").count(), 0, "not verified before the user says so");

    await page.getByRole("button", { name: "Safety code", exact: true }).first().click();
    await page.getByText("Not marked as verified yet.").waitFor();
    await page.getByRole("button", { name: "The codes match: mark as verified" }).click();
    await page.getByText(/You marked this code as verified on /).waitFor();
    await page.getByRole("button", { name: "Back to chat" }).click();
    await page.getByRole("textbox", { name: "Message" }).waitFor();
    assert.match(await page.locator(".chat-title").innerText(), /✓/);
    assert.equal(await page.locator(".chat-title .verified-mark").count(), 1);

    // Kept in the vault: lock, unlock, open the chat again.
    await page.getByRole("button", { name: "Lock", exact: true }).click();
    await unlock(page, PASS);
    await openChat(page, "Bob");
    assert.equal(await page.locator(".chat-title .verified-mark").count(), 1, "the mark survives a lock");

    // Removed again; the other person's side never changed.
    await page.getByRole("button", { name: "Safety code", exact: true }).first().click();
    await page.getByRole("button", { name: "Remove the mark" }).click();
    await page.getByText("Not marked as verified yet.").waitFor();
    await page.getByRole("button", { name: "Back to chat" }).click();
    await page.getByRole("textbox", { name: "Message" }).waitFor();
    assert.equal(await page.locator(".chat-title .verified-mark").count(), 0);
    assert.equal(await bob.page.locator(".chat-title .verified-mark").count(), 0, "local only");
    assert.deepEqual(alice.errors, []);
    assert.deepEqual(bob.errors, []);
  });
});
