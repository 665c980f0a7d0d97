// The chat open before a reload is open again after unlocking (outside trial: only an in-page
// lock reopened it; a reload or a browser restart showed the list), in real headless
// Chromium against a real mailbox-server. Its history entry (a conversation's local id,
// nothing secret) says which.

import { describe, test, before, after } from "node:test";
import assert from "node:assert/strict";
import { resolve } from "node:path";
import { startNative } from "./support/servers.mjs";
import { launch, NO_BROWSER } from "./support/browser.mjs";
import { connect, createPassphrase, newConversation, openChat, unlock } from "./support/app.mjs";

const WWW = process.env.HUSH_WWW_DIR ?? resolve(import.meta.dirname, "../www");
const PASS = "reopen correct horse";

describe("the last chat after a reload", { skip: NO_BROWSER && "browser tests switched off" }, () => {
  let server;
  const profiles = [];
  before(async () => {
    server = await startNative({ www: WWW });
  });
  after(async () => {
    for (const b of profiles) await b.context.close();
    await server?.stop();
  });

  test("reopened after unlocking; the list when none was open", async () => {
    for (const _ of [1, 2]) {
      const b = await launch();
      profiles.push(b);
      await b.page.goto(`${server.url}/`);
      await createPassphrase(b.page, PASS);
    }
    const page = profiles[0].page;
    await connect(page, profiles[1].page, "Bob", "Alice");
    await newConversation(page, "Carol"); // Another conversation, listed first.
    await openChat(page, "Bob");

    await page.reload();
    await unlock(page, PASS);
    await page.getByRole("textbox", { name: "Message" }).waitFor({ timeout: 5_000 }).catch(() => {});
    assert.equal(await page.evaluate(() => document.body.dataset.screen), "chat", "the chat is open again");
    assert.equal(await page.locator(".chat-title").innerText(), "Bob");
    // Back goes to the list, as from any chat.
    await page.goBack();
    await page.getByRole("heading", { name: "Pick a conversation" }).waitFor();

    // From the list: the list again.
    await page.reload();
    await unlock(page, PASS);
    await page.waitForTimeout(500);
    assert.equal(await page.evaluate(() => document.body.dataset.screen), "home");
  });
});
