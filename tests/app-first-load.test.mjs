// The site's first load fetches only what the locked screens need (issue: lazy screens), in
// real headless Chromium against mailbox-server --www: the screens of the unlocked app (the
// list, a chat, invites, joining, safety codes, settings, notifications) and the modules only
// they use are not fetched before the passphrase is entered; set-up and unlock fetch them
// (while the key is derived), and the app works as before. What the first load fetched is
// printed (tests/bench/first-load.mjs prints it with timings); nothing timed is asserted.

import { test } from "node:test";
import assert from "node:assert/strict";
import { resolve } from "node:path";
import { startNative } from "./support/servers.mjs";
import { launch, NO_BROWSER } from "./support/browser.mjs";
import { createPassphrase, unlock, newConversation } from "./support/app.mjs";

const WWW = process.env.HUSH_WWW_DIR ?? resolve(import.meta.dirname, "../www");
const PASS = "first load correct horse";
/** Modules only the unlocked app uses. */
const UNLOCKED_ONLY = [
  "screens/chat.js",
  "screens/list.js",
  "screens/invite.js",
  "screens/join.js",
  "screens/safety.js",
  "screens/connecting.js",
  "screens/notices.js",
  "screens/notice-content.js",
  "screens/dialogs.js",
  "screens/new.js",
  "screens/settings.js",
  "notify.js",
  "composer.js",
  "days.js",
  "message-menu.js",
  "chat-search.js",
  "scanner.js",
  "previews.js",
];

test("the first load fetches only what the locked screens need; set-up and unlock fetch the rest", { skip: NO_BROWSER, timeout: 120_000 }, async () => {
  const server = await startNative({ www: WWW });
  const { context, page, errors } = await launch();
  try {
    const fetched = [];
    page.on("requestfinished", async (request) => {
      const sizes = await request.sizes();
      fetched.push({ path: new URL(request.url()).pathname.slice(1), wire: sizes.responseBodySize + sizes.responseHeadersSize });
    });
    await page.goto(`${server.url}/`);
    await page.getByLabel("Passphrase", { exact: true }).waitFor();
    await page.waitForLoadState("networkidle");
    const first = fetched.splice(0);
    console.log(`# first load: ${first.length} requests, ${first.reduce((n, r) => n + r.wire, 0)} B on the wire (headers included)`);
    const firstPaths = new Set(first.map((r) => r.path));
    assert.deepEqual(UNLOCKED_ONLY.filter((path) => firstPaths.has(path)), [], "modules of the unlocked app fetched before unlocking");

    await createPassphrase(page, PASS);
    await page.getByText("No conversations yet.").waitFor();
    const bySetup = new Set(fetched.splice(0).map((r) => r.path));
    assert.deepEqual(UNLOCKED_ONLY.filter((path) => !bySetup.has(path)), [], "the set-up fetched the unlocked app's modules");
    // The unlocked app works: an invite, Settings, Lock and unlock again.
    await newConversation(page, "Bob");
    await page.getByRole("button", { name: "Settings" }).click();
    await page.getByLabel("Mailbox URL").waitFor();
    await page.reload();
    await unlock(page, PASS);
    await page.getByRole("heading", { name: "Pick a conversation" }).waitFor();
    assert.deepEqual(errors, []);
  } finally {
    await context.close();
    await server.stop();
  }
});
