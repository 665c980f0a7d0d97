// Small-screen layout and set-up messages found by an outside trial (issue #12), in real
// headless Chromium against a real mailbox-server:
//   - set-up: an error about the confirmation does not stay once the two passphrases match;
//   - a name of 60 letters without a space wraps inside the invite card at 320 px instead of
//     running off the screen.

import { describe, test, before, after } from "node:test";
import assert from "node:assert/strict";
import { resolve } from "node:path";
import { startNative } from "./support/servers.mjs";
import { launch, NO_BROWSER } from "./support/browser.mjs";
import { createPassphrase } from "./support/app.mjs";

const WWW = process.env.HUSH_WWW_DIR ?? resolve(import.meta.dirname, "../www");

describe("layout and set-up messages", { skip: NO_BROWSER && "browser tests switched off" }, () => {
  let server;
  let browser;
  before(async () => {
    server = await startNative({ www: WWW });
    browser = await launch({ viewport: { width: 320, height: 700 } });
    await browser.page.goto(`${server.url}/`);
  });
  after(async () => {
    await browser?.context.close();
    await server?.stop();
  });

  test("set-up: the mismatch message goes once the two passphrases match", async () => {
    const { page } = browser;
    const pass = page.getByLabel("Passphrase", { exact: true });
    const again = page.getByLabel("Confirm passphrase", { exact: true });
    await pass.fill("first passphrase");
    await again.fill("second passphrase");
    await page.getByRole("button", { name: "Create", exact: true }).click();
    await page.getByText("The two passphrases are different.", { exact: false }).waitFor();
    await pass.fill("a");
    await again.fill("a");
    await page.getByRole("button", { name: "Create", exact: true }).click();
    await page.getByText(/Use at least \d+ characters\./).waitFor();
    assert.equal(await page.getByText("The two passphrases are different.", { exact: false }).count(), 0, "no stale mismatch message");
    assert.equal(await again.getAttribute("aria-invalid"), null, "the confirmation is not marked wrong");
  });

  test("a 60-letter name without spaces wraps inside the invite card at 320 px", async () => {
    const { page } = browser;
    await createPassphrase(page, "layout correct horse");
    await page.getByRole("button", { name: "New conversation" }).click();
    const name = "W".repeat(60);
    await page.getByLabel("Their name").fill(name);
    await page.getByRole("button", { name: "Create invite" }).click();
    await page.getByRole("textbox", { name: "Invite link" }).waitFor();
    const overflow = await page.evaluate(() => {
      const wide = [...document.querySelectorAll(".card, .card *")].filter((el) => {
        const box = el.getBoundingClientRect();
        return box.width > 0 && box.right > window.innerWidth + 1;
      });
      return { page: document.documentElement.scrollWidth - window.innerWidth, wide: wide.map((el) => `${el.tagName}.${el.className}`) };
    });
    assert.deepEqual(overflow, { page: 0, wide: [] }, "nothing runs past the screen's right edge");
    assert.deepEqual(browser.errors, []);
  });
});
