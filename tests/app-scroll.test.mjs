// New messages below the view (outside trial: nothing said a message had arrived while the
// history was scrolled up; and making the window phone-sized left the chat above its newest
// message), in real headless Chromium against a real mailbox-server: an accessible
// "New messages ↓" button appears, jumps to the newest and goes; a resize keeps the newest
// message in view if it was.

import { describe, test, before, after } from "node:test";
import assert from "node:assert/strict";
import { resolve } from "node:path";
import { startNative } from "./support/servers.mjs";
import { NO_BROWSER } from "./support/browser.mjs";
import { connect, eventually, freshProfiles, messages, send } from "./support/app.mjs";

const WWW = process.env.HUSH_WWW_DIR ?? resolve(import.meta.dirname, "../www");
const PASS = "scroll correct horse";

describe("new messages below the view", { skip: NO_BROWSER && "browser tests switched off" }, () => {
  let server;
  const profiles = [];
  before(async () => {
    server = await startNative({ www: WWW });
  });
  after(async () => {
    for (const b of profiles) await b.context.close();
    await server?.stop();
  });

  test("a 'New messages' button when scrolled up; a resize keeps the newest in view", async () => {
    const [{ page }, { page: bob }] = await freshProfiles(`${server.url}/`, PASS, 2, profiles);
    await connect(page, bob, "Bob", "Alice");
    for (let i = 0; i < 30; i++) await send(bob, `line ${i} ${"words that wrap more at phone size ".repeat(12)}`);
    await eventually(async () => (await messages(page)).length === 30, { what: "30 messages at Alice" });
    const scroller = page.locator(".chat .scroller");
    const gap = () => scroller.evaluate((s) => s.scrollHeight - s.scrollTop - s.clientHeight);
    const jump = page.getByRole("button", { name: /^New messages/ });

    await scroller.evaluate((s) => (s.scrollTop = 0));
    await send(bob, "while you were up there");
    await eventually(async () => (await messages(page)).some((m) => m.text === "while you were up there"), { what: "the new one" });
    await jump.waitFor({ timeout: 3_000 }).catch(() => {});
    assert.equal(await jump.isVisible(), true, "a 'New messages' button shows");
    assert.ok((await gap()) > 200, "the view stayed where it was");
    await jump.click();
    await eventually(async () => (await gap()) < 2, { what: "at the newest", timeout: 3_000 });
    assert.equal(await jump.isVisible(), false, "gone once at the newest");

    // At the newest, then desktop to phone size (the long messages wrap to many more lines):
    // still at the newest (before: thousands of pixels above it).
    await page.setViewportSize({ width: 390, height: 844 });
    await page.waitForTimeout(500);
    assert.ok((await gap()) < 2, `the newest message stays in view after the resize (${await gap()} px below)`);
  });
});
