// Notifications only for messages out of view (outside trial: on the conversation list, page
// visible, every message raised a system notification besides the list's preview, badge and
// title). In real headless Chromium against a real mailbox-server, the Notification
// constructor spied on and the permission granted: none while the page is visible on the list
// or on that conversation's chat; one while the page is hidden (document.visibilityState
// overridden: headless pages report "visible") and one while another conversation's chat is
// open. With the permission already granted, "Get notified of new messages" takes the offer away.

import { describe, test, before, after } from "node:test";
import assert from "node:assert/strict";
import { resolve } from "node:path";
import { startNative } from "./support/servers.mjs";
import { NO_BROWSER } from "./support/browser.mjs";
import { connect, eventually, freshProfiles, listItem, messages, openChat, send } from "./support/app.mjs";

const WWW = process.env.HUSH_WWW_DIR ?? resolve(import.meta.dirname, "../www");
const PASS = "notify visible correct horse";

/** Records every Notification the page constructs in window.__notes (none is shown) and lets
 * the test set the page's visibility (window.__setHidden). */
function spyAndControlVisibility(context) {
  return context.addInitScript(() => {
    const Real = window.Notification;
    window.__notes = [];
    window.Notification = class {
      static get permission() {
        return Real.permission;
      }
      static requestPermission() {
        return Real.requestPermission();
      }
      constructor(title, options = {}) {
        window.__notes.push({ title, tag: options.tag });
        this.onclick = null;
      }
      close() {}
    };
    let hidden = null;
    Object.defineProperty(Document.prototype, "visibilityState", {
      configurable: true,
      get: () => (hidden === null ? "visible" : hidden ? "hidden" : "visible"),
    });
    Object.defineProperty(Document.prototype, "hidden", { configurable: true, get: () => hidden === true });
    window.__setHidden = (value) => {
      hidden = value;
      document.dispatchEvent(new Event("visibilitychange"));
    };
  });
}

const noteCount = (page) => page.evaluate(() => window.__notes.length);

describe("notifications in and out of view", { skip: NO_BROWSER && "browser tests switched off" }, () => {
  let server;
  const browsers = [];
  before(async () => {
    server = await startNative({ www: WWW });
  });
  after(async () => {
    for (const b of browsers) await b.context.close();
    await server?.stop();
  });

  test("none for what is on screen; one when hidden or in another chat; the offer goes once taken", async () => {
    const [alice, bob] = await freshProfiles(`${server.url}/`, PASS, 2, browsers);
    await spyAndControlVisibility(bob.context);
    await bob.context.grantPermissions(["notifications"], { origin: server.url });
    await bob.page.reload();
    await bob.page.getByLabel("Passphrase", { exact: true }).fill(PASS);
    await bob.page.getByRole("button", { name: "Unlock", exact: true }).click();
    await bob.page.getByRole("button", { name: "Lock", exact: true }).waitFor();
    await connect(alice.page, bob.page, "Bob", "Alice");
    await connect(alice.page, bob.page, "Bob two", "Alice two");

    // The permission was granted before: taking the offer turns Hush's notifications on and
    // takes the offer away.
    const offer = bob.page.getByRole("button", { name: "Get notified of new messages" });
    await offer.click();
    await eventually(async () => (await offer.count()) === 0, { what: "the offer gone once taken" });

    // On the list, page visible: the list shows it (preview, badge); no notification.
    for (let i = 0; i < 6 && (await bob.page.evaluate(() => document.body.dataset.screen)) !== "home"; i++) await bob.page.goBack();
    await bob.page.getByRole("heading", { name: "Pick a conversation" }).waitFor();
    await openChat(alice.page, "Bob");
    await send(alice.page, "seen on the list");
    await eventually(async () => /seen on the list/.test(await listItem(bob.page, "Alice").textContent()), {
      what: "the message in Bob's list",
    });
    await eventually(async () => (await bob.page.title()) === "(1) Hush", { what: "the unread count in the title" });
    assert.equal(await noteCount(bob.page), 0, "no notification for a message shown on the visible list");

    // Hidden: notified.
    await bob.page.evaluate(() => window.__setHidden(true));
    await send(alice.page, "while hidden");
    await eventually(async () => (await noteCount(bob.page)) === 1, { what: "a notification while hidden" });
    await bob.page.evaluate(() => window.__setHidden(false));

    // That conversation's chat open, visible: no notification.
    await openChat(bob.page, "Alice");
    await send(alice.page, "seen in the chat");
    await eventually(async () => (await messages(bob.page)).some((m) => m.text === "seen in the chat"), { what: "the message in Bob's chat" });
    assert.equal(await noteCount(bob.page), 1, "no notification for a message in the chat open in front");

    // Another conversation's chat open: notified.
    await openChat(bob.page, "Alice two");
    await send(alice.page, "while in another chat");
    await eventually(async () => (await noteCount(bob.page)) === 2, { what: "a notification while another chat is open" });
  });
});
