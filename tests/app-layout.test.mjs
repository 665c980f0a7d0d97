// Small-screen layout and set-up messages found by an outside trial (issue #12), in real
// headless Chromium against a real mailbox-server:
//   - set-up: an error about the confirmation does not stay once the two passphrases match;
//   - a name of 60 letters without a space wraps inside the invite card at 320 px instead of
//     running off the screen;
//   - a name field's 60-character limit is said, never cut: a counter near it, "the limit is
//     reached" at it, and what is typed or pasted past it kept, marked and refused.

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
    await browser.context.grantPermissions(["clipboard-read", "clipboard-write"], { origin: server.url });
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

  test("a name field's limit is said, never cut: a counter near it, 'the limit is reached', and what goes past it kept and refused", async () => {
    const { page } = browser;
    await page.getByRole("button", { name: "Back" }).click();
    await page.getByRole("button", { name: "New conversation" }).click();
    const name = page.getByLabel("Their name");
    const counter = page.locator(".field-count");
    await name.fill("N".repeat(40));
    assert.equal(await counter.isVisible(), false, "no counter far from the limit");
    await name.fill("N".repeat(50));
    assert.equal((await counter.textContent()).trim(), "10 characters left");
    await name.fill("N".repeat(60));
    await page.getByText("60 of 60 characters: the limit is reached.").waitFor();
    await page.getByText("The limit of 60 characters is reached.").waitFor({ state: "attached" }); // said once to screen readers
    // Typed past it: kept, and said.
    await name.press("End");
    await name.press("x");
    assert.equal(await name.inputValue(), `${"N".repeat(60)}x`, "the 61st character typed is kept");
    assert.equal((await counter.textContent()).trim(), "Too long by 1 character: 60 characters at most. Shorten it; nothing was cut.");
    assert.equal(await name.getAttribute("aria-invalid"), "true");
    // Pasted past it: kept whole, and refused with a word.
    await page.evaluate(() => navigator.clipboard.writeText("A pasted name that is a good deal longer than sixty characters allow"));
    await name.fill("");
    await name.press("Control+V");
    assert.equal(await name.inputValue(), "A pasted name that is a good deal longer than sixty characters allow", "the paste is kept whole");
    assert.match((await counter.textContent()).trim(), /^Too long by 8 characters/);
    await page.getByRole("button", { name: "Create invite" }).click();
    await page.getByText("This is too long: shorten it to fit").waitFor();
    assert.equal(await page.getByRole("heading", { name: "New conversation" }).count(), 1, "no invite made");
    // Shortened: it fits again, and the invite is made under the name as typed.
    await name.fill("A pasted name that is a good deal longer than sixty charact");
    await page.getByText("It fits again.").waitFor({ state: "attached" });
    assert.equal(await name.getAttribute("aria-invalid"), null);
    await page.getByRole("button", { name: "Create invite" }).click();
    await page.getByRole("textbox", { name: "Invite link" }).waitFor();
    assert.deepEqual(browser.errors, []);
  });
});
