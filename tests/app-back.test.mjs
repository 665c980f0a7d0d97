// Back (the browser's, or a phone's) over a dialog or a menu (outside trial: Back with Rename,
// a message's ⋯ menu or the delete confirmation open closed it *and* left the chat), and
// Back from Settings opened in a chat at desktop size (it showed "Pick a conversation"), in
// real headless Chromium against a real mailbox-server.

import { describe, test, before, after } from "node:test";
import assert from "node:assert/strict";
import { resolve } from "node:path";
import { startNative } from "./support/servers.mjs";
import { NO_BROWSER } from "./support/browser.mjs";
import { connect, freshProfiles, send } from "./support/app.mjs";

const WWW = process.env.HUSH_WWW_DIR ?? resolve(import.meta.dirname, "../www");
const PASS = "back correct horse";

describe("Back over dialogs, menus and Settings", { skip: NO_BROWSER && "browser tests switched off" }, () => {
  let server;
  const browsers = [];
  before(async () => {
    server = await startNative({ www: WWW });
  });
  after(async () => {
    for (const b of browsers) await b.context.close();
    await server?.stop();
  });

  test("Back closes only the dialog or menu; from Settings it returns to the chat", async () => {
    const [alice, bob] = await freshProfiles(`${server.url}/`, PASS, 2, browsers);
    await connect(alice.page, bob.page, "Bob", "Alice");
    const page = alice.page;
    await send(page, "hello Bob");
    const inChat = async (what) => {
      await page.waitForTimeout(400); // Back's landing, and whatever it shows.
      assert.equal(await page.evaluate(() => document.body.dataset.screen), "chat", `still in the chat after Back ${what}`);
      assert.equal(await page.locator(".chat-title").innerText(), "Bob");
    };
    const dialogOpen = () => page.evaluate(() => /** @type {HTMLDialogElement} */ (document.getElementById("dialog")).open);

    await page.getByRole("button", { name: "Rename", exact: true }).click();
    assert.equal(await dialogOpen(), true);
    await page.goBack();
    await inChat("over Rename");
    assert.equal(await dialogOpen(), false, "Back closed the Rename dialog");

    const item = page.getByRole("list", { name: "Conversation history" }).getByRole("listitem").filter({ hasText: "hello Bob" });
    await item.hover();
    await item.getByRole("button", { name: "Message actions" }).click();
    await page.getByRole("menu", { name: "Message actions" }).waitFor();
    await page.goBack();
    await inChat("over the message menu");
    assert.equal(await page.getByRole("menu").count(), 0, "Back closed the menu");

    await item.hover();
    await item.getByRole("button", { name: "Message actions" }).click();
    await page.getByRole("menuitem", { name: "Delete on this device" }).click();
    assert.equal(await dialogOpen(), true);
    await page.goBack();
    await inChat("over the delete confirmation");
    assert.equal(await dialogOpen(), false, "Back closed the confirmation");
    assert.equal(await item.count(), 1, "nothing deleted");

    // The history still works after: Back from the chat goes to the list.
    await page.getByRole("button", { name: "Settings", exact: true }).click();
    await page.getByRole("heading", { name: "Settings" }).waitFor();
    await page.goBack();
    await inChat("from Settings opened in the chat (desktop)");
    await page.goBack();
    await page.getByRole("heading", { name: "Pick a conversation" }).waitFor();
  });
});
