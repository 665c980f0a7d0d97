// Page-object helpers for the Hush web app: every step goes through roles and accessible
// names, the way a screen reader user (or any scripted client) would drive it.

import assert from "node:assert/strict";

const LONG = 30_000;

/** First run: create the passphrase. Waits until the conversation list is there. */
export async function createPassphrase(page, passphrase) {
  await page.getByLabel("Passphrase", { exact: true }).fill(passphrase);
  await page.getByLabel("Confirm passphrase", { exact: true }).fill(passphrase);
  await page.getByRole("button", { name: "Create", exact: true }).click();
  await page.getByRole("button", { name: "Lock", exact: true }).waitFor({ timeout: LONG });
}

/** Later runs: unlock. */
export async function unlock(page, passphrase) {
  await page.getByLabel("Passphrase", { exact: true }).fill(passphrase);
  await page.getByRole("button", { name: "Unlock", exact: true }).click();
  await page.getByRole("button", { name: "Lock", exact: true }).waitFor({ timeout: LONG });
}

/** New conversation → invite screen; returns the link in the "Invite link" field. */
export async function newConversation(page, name) {
  await page.getByRole("button", { name: "New conversation" }).click();
  await page.getByLabel("Their name").fill(name);
  await page.getByRole("button", { name: "Create invite" }).click();
  const field = page.getByRole("textbox", { name: "Invite link" });
  await field.waitFor();
  const link = await field.inputValue();
  assert.match(link, /#./, "the invite sits in the URL fragment");
  return link;
}

/** The safety code shown on the current screen (waits for it). */
export async function safetyCode(page) {
  const code = page.getByLabel("Safety code");
  await code.waitFor({ timeout: LONG });
  const text = (await code.textContent()).trim();
  assert.match(text, /^\d{4}( \d{4}){4}$/, "a safety code of 20 digits in groups of four");
  return text;
}

/**
 * `inviter` invites, `joiner` (unlocked, on the same site) joins with the link pasted on its Join
 * screen; both check the safety code and go to the chat. Returns the link.
 */
export async function connect(inviter, joiner, nameAtInviter, nameAtJoiner) {
  const link = await newConversation(inviter, nameAtInviter);
  await joiner.getByRole("button", { name: "Join", exact: true }).click();
  await joiner.getByLabel("Their name").fill(nameAtJoiner);
  await joiner.getByLabel("Invite link").fill(link);
  await joiner.getByRole("button", { name: "Accept invite" }).click();
  const code = await safetyCode(joiner);
  assert.equal(await safetyCode(inviter), code, "both show the same safety code");
  await inviter.getByRole("button", { name: "Start chatting" }).click();
  await joiner.getByRole("button", { name: "Start chatting" }).click();
  await joiner.getByRole("textbox", { name: "Message" }).waitFor();
  await inviter.getByRole("textbox", { name: "Message" }).waitFor();
  return link;
}

/** The conversation list item for `name`. */
export function listItem(page, name) {
  return page
    .getByRole("navigation", { name: "Conversations" })
    .getByRole("listitem")
    .filter({ has: page.getByText(name, { exact: true }) });
}

/** Opens the chat with `name` from the list. */
export async function openChat(page, name) {
  await listItem(page, name).getByRole("button").click();
  await page.getByRole("textbox", { name: "Message" }).waitFor();
}

/**
 * The app's Back button, then waits until the screen it leads to is shown. Back goes back in
 * the browser's history, and the screen changes when that lands (a later task): a step taken
 * before it (a link opened, another screen) would race it.
 */
export async function back(page) {
  const from = await page.evaluate(() => document.body.dataset.screen);
  await page.getByRole("button", { name: "Back" }).click();
  await page.waitForFunction((name) => document.body.dataset.screen !== name, from, { timeout: LONG });
}

/** Types and sends one message; returns Date.now() just before the click. */
export async function send(page, text) {
  const box = page.getByRole("textbox", { name: "Message" });
  await box.fill(text);
  const at = Date.now();
  await page.getByRole("button", { name: "Send", exact: true }).click();
  return at;
}

/**
 * The chat's messages, oldest first, as { text, own, status, meta }: each list item of the
 * "Conversation history" list holds two paragraphs, the text and "time · delivery state".
 * Status of one's own: "sending" (on this device), "sent" (on the mailbox), "delivered" (on
 * the other person's device), "failed" (not delivered yet, retrying), "waiting" (on the
 * mailbox, not confirmed while the conversation waits for the other device to put back what
 * is missing here), "undelivered" (not delivered, with the reason after a colon).
 */
export async function messages(page) {
  const items = page.getByRole("list", { name: "Conversation history" }).getByRole("listitem");
  const rows = await items.evaluateAll((lis) =>
    lis.map((li) => ({ all: li.textContent, paras: [...li.querySelectorAll("p")].map((p) => p.textContent) })),
  );
  return rows
    .filter((r) => r.paras.length === 2)
    .map(({ all, paras: [text, meta] }) => {
      const own = all.startsWith("You: ");
      const status = !own
        ? "received"
        : meta.includes("Sending")
          ? "sending"
          : meta.includes("retrying")
            ? "failed"
            : meta.includes("Not confirmed yet: waiting for")
              ? "waiting"
              : meta.includes("Not delivered")
              ? "undelivered"
              : meta.endsWith("Delivered")
                ? "delivered"
                : meta.endsWith("Sent")
                  ? "sent"
                  : "?";
      return { text, own, status, meta };
    });
}

/** An own message's status once the mailbox has it: on the mailbox, or already on their device. */
export const onMailbox = (status) => status === "sent" || status === "delivered";

/**
 * Polls `check()` until it returns a truthy value (returned) or `timeout` ms pass. On a
 * timeout the error carries `explain()`'s answer, when given: what the pages showed instead.
 */
export async function eventually(check, { timeout = LONG, interval = 100, what = "condition", explain } = {}) {
  const deadline = Date.now() + timeout;
  let last;
  for (;;) {
    last = await check();
    if (last) return last;
    if (Date.now() > deadline) {
      const shown = explain ? `; instead: ${JSON.stringify(await explain().catch((e) => String(e)))}` : "";
      throw new Error(`timed out after ${timeout} ms waiting for ${what}${shown}`);
    }
    await new Promise((r) => setTimeout(r, interval));
  }
}

/**
 * Lists every control in the accessibility tree that has no accessible name (buttons, text
 * boxes, links, images, checkboxes, list boxes). Empty means every control is labelled.
 */
export async function unlabelledControls(page) {
  const tree = await page.locator("body").ariaSnapshot();
  return tree
    .split("\n")
    .filter((line) => /^\s*- (button|textbox|link|img|checkbox|combobox|listbox|slider|switch)(\s*\[[^\]]*\])?:?\s*$/.test(line));
}

/** Starts recording, in the page, when each message text first shows in the chat. */
export async function recordArrivals(page) {
  await page.evaluate(() => {
    window.__arrivals = {};
    const scan = () => {
      const list = document.querySelector('[aria-label="Conversation history"]');
      if (!list) return;
      for (const li of list.children) {
        const text = li.querySelector("p")?.textContent;
        if (text && !(text in window.__arrivals)) window.__arrivals[text] = Date.now();
      }
    };
    scan();
    new MutationObserver(scan).observe(document.body, { childList: true, subtree: true });
  });
}

/** What recordArrivals saw: { text: ms since the epoch }. */
export function arrivals(page) {
  return page.evaluate(() => window.__arrivals);
}

/**
 * `count` fresh profiles (`launch()`), each on `url` with `passphrase` created; each is
 * also pushed to `into`, for the caller to close.
 */
export async function freshProfiles(url, passphrase, count, into) {
  const { launch } = await import("./browser.mjs");
  const out = [];
  for (let i = 0; i < count; i++) {
    const b = await launch();
    into.push(b);
    out.push(b);
    await b.page.goto(url);
    await createPassphrase(b.page, passphrase);
  }
  return out;
}
