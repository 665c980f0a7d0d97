// A photographed invite, joined before the real joiner: the app tells the late joiner that
// the invite was already used (instead of showing a safety code that would only differ), and
// the inviter's safety code matches the early joiner's, not the late one's.

import { test } from "node:test";
import assert from "node:assert/strict";
import { resolve } from "node:path";
import { startNative } from "./support/servers.mjs";
import { launch, screenshot, NO_BROWSER } from "./support/browser.mjs";
import { createPassphrase, newConversation, safetyCode, listItem } from "./support/app.mjs";

const WWW = process.env.HUSH_WWW_DIR ?? resolve(import.meta.dirname, "../www");

async function joinByLink(page, link, name, passphrase) {
  await page.goto(link);
  await createPassphrase(page, passphrase);
  await page.getByLabel("Their name").fill(name);
  await page.getByRole("button", { name: "Accept invite" }).click();
}

test("a raced invite: the late joiner is told, and the inviter's code matches the early joiner's", { skip: NO_BROWSER, timeout: 180_000 }, async () => {
  const server = await startNative({ www: WWW });
  const people = await Promise.all([launch(), launch(), launch()]);
  const [alice, eve, bob] = people;
  try {
    await alice.page.goto(`${server.url}/`);
    await createPassphrase(alice.page, "alice passphrase");
    const link = await newConversation(alice.page, "Bob");

    // Eve copied the invite and joins first; the inviter connects to her.
    await joinByLink(eve.page, link, "Alice", "eve passphrase");
    const eveCode = await safetyCode(eve.page);
    const aliceCode = await safetyCode(alice.page);
    assert.equal(aliceCode, eveCode);

    // Bob joins with the same link: his hello finds Eve's at its address.
    await joinByLink(bob.page, link, "Alice", "bob passphrase");
    await bob.page.getByRole("heading", { name: "This invite was already used" }).waitFor({ timeout: 30_000 });
    await bob.page.getByRole("alert").filter({ hasText: "you are not connected to Alice" }).waitFor();
    await listItem(bob.page, "Alice").getByText("Invite already used by someone else").waitFor();
    await screenshot(bob.page, "app-race-invite-taken");

    // Chromium logs the refused hello deposit (409) itself; nothing else may show.
    assert.deepEqual(bob.errors.filter((e) => !e.includes("status of 409")), []);
    for (const person of [alice, eve]) assert.deepEqual(person.errors, []);
  } finally {
    for (const person of people) await person.context.close();
    await server.stop();
  }
});
