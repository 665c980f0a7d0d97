// Small things an outside tester found, in real headless Chromium against a real
// mailbox-server: Send is off (and Enter does nothing) for a blank composer; the Back button's
// accessible name is "Back" (its arrow is hidden from assistive technology); opening one's
// own invite link says at once that it is one's own, before Accept.

import { describe, test, before, after } from "node:test";
import assert from "node:assert/strict";
import { resolve } from "node:path";
import { startNative } from "./support/servers.mjs";
import { NO_BROWSER } from "./support/browser.mjs";
import { connect, freshProfiles, messages, newConversation } from "./support/app.mjs";

const WWW = process.env.HUSH_WWW_DIR ?? resolve(import.meta.dirname, "../www");
const PASS = "polish correct horse";

describe("polish", { skip: NO_BROWSER && "browser tests switched off" }, () => {
  let server;
  const browsers = [];
  before(async () => {
    server = await startNative({ www: WWW });
  });
  after(async () => {
    for (const b of browsers) await b.context.close();
    await server?.stop();
  });

  test("a blank composer cannot be sent; Back is named Back; one's own invite is told at once", async () => {
    const [alice, bob] = await freshProfiles(`${server.url}/`, PASS, 2, browsers);
    await connect(alice.page, bob.page, "Bob", "Alice");
    const page = alice.page;
    const box = page.getByRole("textbox", { name: "Message" });
    const sendButton = page.getByRole("button", { name: "Send", exact: true });

    assert.equal(await sendButton.isDisabled(), true, "Send is off with nothing typed");
    await box.fill("  \n\t ");
    assert.equal(await sendButton.isDisabled(), true, "and with only white space");
    await box.press("Enter");
    assert.equal(await box.inputValue(), "  \n\t ", "Enter leaves a blank text where it is");
    await box.fill("words");
    assert.equal(await sendButton.isDisabled(), false, "on with a text");
    await box.fill(" ");
    assert.equal(await sendButton.isDisabled(), true, "off again once blank");
    assert.deepEqual(await messages(page), [], "nothing was sent");

    // The Back button's accessible name is exactly "Back".
    const back = page.locator("button.back");
    assert.equal(await back.count(), 1);
    // (The chat's Back shows at phone widths only.)
    await page.setViewportSize({ width: 390, height: 844 });
    await page.locator("button.back").waitFor();
    assert.equal(await page.getByRole("button", { name: "Back", exact: true }).count(), 1, "named Back, without the arrow");
    await page.setViewportSize({ width: 1280, height: 800 });

    // One's own invite, opened in the profile that made it: said before anything is accepted.
    const link = await newConversation(page, "Carol");
    await page.goto(link);
    await page.getByRole("heading", { name: "This is your own invite" }).waitFor();
    assert.match(await page.getByRole("main").textContent(), /This is your own invite: it was made on this device/);
    assert.equal(await page.getByRole("button", { name: "Accept invite" }).isDisabled(), true, "nothing to accept");
  });
});
