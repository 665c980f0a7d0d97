// Changes that stay on this device (issue #12), in real headless Chromium against a real
// mailbox-server:
//   - "Mark as verified" after comparing the safety code: offered on the safety-code screen,
//     shown there (with its date) and in the chat's title, kept across a lock (it is in the
//     vault), removable, and never seen by the other person;
//   - "Delete on this device" from a message's menu: gone from this device's chat, list
//     preview and vault (also after a lock), still with the other person.

import { describe, test, before, after } from "node:test";
import assert from "node:assert/strict";
import { resolve } from "node:path";
import { startNative } from "./support/servers.mjs";
import { launch, NO_BROWSER } from "./support/browser.mjs";
import { connect, createPassphrase, eventually, listItem, messages, openChat, send, unlock } from "./support/app.mjs";

const WWW = process.env.HUSH_WWW_DIR ?? resolve(import.meta.dirname, "../www");
const PASS = "verified correct horse";

describe("changes that stay on this device", { skip: NO_BROWSER && "browser tests switched off" }, () => {
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

  test("a message deleted on this device: gone here, also after a lock; the other person keeps it", async () => {
    const [alice, bob] = browsers;
    const page = alice.page;
    await send(page, "keep this one");
    await send(page, "delete this one");
    await eventually(async () => (await messages(bob.page)).some((m) => m.text === "delete this one"), { what: "both at Bob" });
    await eventually(async () => (await messages(page)).at(-1)?.status === "delivered", { what: "delivered", timeout: 90_000 });
    const item = page.getByRole("list", { name: "Conversation history" }).getByRole("listitem").filter({ hasText: "delete this one" });
    await item.hover();
    await item.getByRole("button", { name: "Message actions" }).click();
    await page.getByRole("menuitem", { name: "Delete on this device" }).click();
    await page.getByRole("dialog").getByText("disappears from this device only").waitFor();
    await page.getByRole("button", { name: "Delete message" }).click();
    await eventually(async () => !(await messages(page)).some((m) => m.text === "delete this one"), { what: "gone from the chat" });
    assert.ok((await messages(page)).some((m) => m.text === "keep this one"), "the other message stays");
    await eventually(async () => /keep this one/.test(await listItem(page, "Bob").innerText()), { what: "the list's preview" });

    await page.getByRole("button", { name: "Lock", exact: true }).click();
    await unlock(page, PASS);
    await openChat(page, "Bob");
    await eventually(async () => (await messages(page)).some((m) => m.text === "keep this one"), { what: "the chat after unlocking" });
    assert.ok(!(await messages(page)).some((m) => m.text === "delete this one"), "deleted in the vault, not only on screen");
    assert.ok((await messages(bob.page)).some((m) => m.text === "delete this one"), "Bob keeps his copy");
    assert.deepEqual(alice.errors, []);
    assert.deepEqual(bob.errors, []);
  });
});
