// Drafts (outside trial: a typed, unsent message was gone after a lock, a reload or a visit to
// another conversation), in real headless Chromium against a real mailbox-server: the
// composer's text is sealed in the vault and put back when the chat opens again, after Lock
// typed right before it, after a reload, after another conversation; a sent message clears
// it; nothing of it is in localStorage, sessionStorage or the page after a lock.

import { describe, test, before, after } from "node:test";
import assert from "node:assert/strict";
import { resolve } from "node:path";
import { startNative } from "./support/servers.mjs";
import { NO_BROWSER } from "./support/browser.mjs";
import { connect, freshProfiles, listItem, newConversation, openChat, send, unlock } from "./support/app.mjs";

const WWW = process.env.HUSH_WWW_DIR ?? resolve(import.meta.dirname, "../www");
const PASS = "drafts correct horse";

describe("drafts", { skip: NO_BROWSER && "browser tests switched off" }, () => {
  let server;
  const browsers = [];
  before(async () => {
    server = await startNative({ www: WWW });
  });
  after(async () => {
    for (const b of browsers) await b.context.close();
    await server?.stop();
  });

  test("kept sealed across a lock, a reload and another conversation; a send clears it", async () => {
    const [alice, bob] = await freshProfiles(`${server.url}/`, PASS, 2, browsers);
    await connect(alice.page, bob.page, "Bob", "Alice");
    const page = alice.page;
    const box = page.getByRole("textbox", { name: "Message" });
    // The draft is read back as the chat opens: its value once it settled (or after 3 s).
    const composerValue = async (expected) => {
      await page
        .waitForFunction((want) => document.querySelector("#composer")?.value === want, expected, { timeout: 3_000 })
        .catch(() => {});
      return box.inputValue();
    };
    const inPageStorage = () =>
      page.evaluate(() => JSON.stringify({ ...localStorage }) + JSON.stringify({ ...sessionStorage }));

    // Typed, then Lock at once (no time for the typing's own save).
    await box.pressSequentially("half a thought");
    await page.getByRole("button", { name: "Lock", exact: true }).click();
    await page.getByLabel("Passphrase", { exact: true }).waitFor();
    assert.doesNotMatch(await page.content(), /half a thought/, "nothing of the draft in the page once locked");
    assert.doesNotMatch(await inPageStorage(), /half a thought/, "nor in web storage");
    await unlock(page, PASS);
    await box.waitFor();
    assert.equal(await composerValue("half a thought"), "half a thought", "back after Lock + unlock");

    // Another conversation and back.
    await box.fill("second thought");
    await newConversation(page, "Carol");
    await openChat(page, "Bob");
    assert.equal(await composerValue("second thought"), "second thought", "back after visiting another conversation");
    await listItem(page, "Carol").getByRole("button").click();
    await page.getByRole("textbox", { name: "Invite link" }).waitFor();
    await openChat(page, "Bob");
    assert.equal(await composerValue("second thought"), "second thought");

    // A reload: the typing's own save (after a pause) keeps it.
    await box.pressSequentially(", edited");
    await page.waitForTimeout(1_200);
    await page.reload();
    await unlock(page, PASS);
    await openChat(page, "Bob");
    assert.equal(await composerValue("second thought, edited"), "second thought, edited", "back after a reload");
    assert.doesNotMatch(await inPageStorage(), /second thought/, "never in web storage");

    // Sent: the draft is gone.
    await send(page, "second thought, sent");
    await page.getByRole("button", { name: "Lock", exact: true }).click();
    await unlock(page, PASS);
    await box.waitFor();
    await page.waitForTimeout(300);
    assert.equal(await box.inputValue(), "", "a sent message leaves no draft");
  });

  test("a draft longer than a message is kept across a lock and a reload", async () => {
    const [alice, bob] = await freshProfiles(`${server.url}/`, PASS, 2, browsers);
    await connect(alice.page, bob.page, "Bob", "Alice");
    const page = alice.page;
    const box = page.getByRole("textbox", { name: "Message" });
    const composerValue = async (expected) => {
      await page
        .waitForFunction((want) => document.querySelector("#composer")?.value === want, expected, { timeout: 3_000 })
        .catch(() => {});
      return box.inputValue();
    };
    // 60,000 bytes: past a message's limit (56,640), within a draft's (four messages).
    const long = "a long thought ".repeat(4_000);
    assert.equal(long.length, 60_000);
    await box.fill(long);
    await page.getByRole("button", { name: "Lock", exact: true }).click();
    await unlock(page, PASS);
    await box.waitFor();
    assert.equal((await composerValue(long)).length, long.length, "the whole text back after Lock + unlock");
    await page.reload();
    await unlock(page, PASS);
    await openChat(page, "Bob");
    assert.equal((await composerValue(long)).length, long.length, "and after a reload");
    assert.deepEqual(alice.errors.filter((e) => /draft/i.test(e)), [], "no failed draft save");
    // Too long to send as one message: Send says so, and the text stays.
    assert.equal(await page.getByRole("button", { name: "Send", exact: true }).isDisabled(), true, "Send is off past a message's limit");
  });
});
