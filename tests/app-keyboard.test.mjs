// The chat by keyboard (outside trial: every message's ⋯ button was a tab stop of its own,
// 35 Shift+Tabs from the composer to the header in a 35-message chat; and after "Delete
// message" the focus fell to the page's body), in real headless Chromium against a real
// mailbox-server: the history is one tab stop, arrow keys move between messages, Enter opens
// a message's menu, and after deleting a message the focus is on the next one.

import { describe, test, before, after } from "node:test";
import assert from "node:assert/strict";
import { resolve } from "node:path";
import { startNative } from "./support/servers.mjs";
import { NO_BROWSER } from "./support/browser.mjs";
import { connect, eventually, freshProfiles, messages, send } from "./support/app.mjs";

const WWW = process.env.HUSH_WWW_DIR ?? resolve(import.meta.dirname, "../www");
const PASS = "keyboard correct horse";

describe("the chat by keyboard", { skip: NO_BROWSER && "browser tests switched off" }, () => {
  let server;
  const profiles = [];
  before(async () => {
    server = await startNative({ www: WWW });
  });
  after(async () => {
    for (const b of profiles) await b.context.close();
    await server?.stop();
  });

  test("the history is one tab stop; arrows move; deleting leaves the focus on a message", async () => {
    const [{ page }, { page: bob }] = await freshProfiles(`${server.url}/`, PASS, 2, profiles);
    await connect(page, bob, "Bob", "Alice");
    for (let i = 0; i < 35; i++) await send(bob, `number ${i}`);
    await eventually(async () => (await messages(page)).length === 35, { what: "35 messages at Alice" });
    const focused = () =>
      page.evaluate(() => {
        const el = document.activeElement;
        return { tag: el?.tagName ?? "", text: el?.textContent ?? "", label: el?.getAttribute("aria-label") ?? "", inHead: Boolean(el?.closest(".chat-head")) };
      });

    await page.getByRole("textbox", { name: "Message" }).focus();
    let presses = 0;
    while (!(await focused()).inHead && presses < 50) {
      await page.keyboard.press("Shift+Tab");
      presses += 1;
    }
    assert.ok(presses <= 3, `from the composer to the header in ${presses} Shift+Tabs`);

    // Into the history: one stop, on the newest message; Up moves to the one before.
    await page.getByRole("textbox", { name: "Message" }).focus();
    await page.keyboard.press("Shift+Tab");
    assert.match((await focused()).text, /number 34/, "the history's stop is the newest message");
    await page.keyboard.press("ArrowUp");
    await page.keyboard.press("ArrowUp");
    assert.match((await focused()).text, /number 32/, "Up moves to the message before");
    await page.keyboard.press("ArrowDown");
    assert.match((await focused()).text, /number 33/, "Down to the one after");

    // Enter opens its menu; delete it: the focus lands on the next message, not the body.
    await page.keyboard.press("Enter");
    await page.getByRole("menu", { name: "Message actions" }).waitFor();
    await page.getByRole("menuitem", { name: "Delete on this device" }).click();
    await page.getByRole("button", { name: "Delete message" }).click();
    await eventually(async () => !(await messages(page)).some((m) => m.text === "number 33"), { what: "deleted" });
    await page.waitForTimeout(200);
    const after = await focused();
    assert.notEqual(after.tag, "BODY", "the focus is not left on the page's body");
    assert.match(after.text, /number 34/, "it is on the next message");
  });
});
