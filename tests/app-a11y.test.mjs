// Accessibility of every screen of the web app, measured by axe-core (the version pinned in
// package.json), in real headless Chromium against a real mailbox-server. Each screen is
// audited in light and dark mode, at 1280×800 and at 390×844 (a phone), and must have:
//   - no axe violation of any impact (each is printed with its rule, impact, target and
//     summary, so a failure says what to fix; a moderate one, such as the phone's list without
//     a main landmark, fails too);
//   - exactly one h1 (the screen's own name; a dialog keeps the h1 of the screen behind it).
//
// Three profiles: Alice invites, Bob joins (his Chromium has a fake camera, so the join
// screen's camera view can be shown), Carol takes an invite Bob then finds already used.
// Screens not audited, and why: a chat's notices (interference, a restored device, an ended
// conversation) need a tampered mailbox or a restored profile (tests/app-delivery.test.mjs
// drives those); an expired invite needs a clock two days on; "Storage is unavailable" needs
// IndexedDB refused.

import { describe, test, before, after, beforeEach } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { startNative } from "./support/servers.mjs";
import { launch, NO_BROWSER } from "./support/browser.mjs";
import { createPassphrase, newConversation, safetyCode, listItem, send, messages, eventually } from "./support/app.mjs";

const WWW = process.env.HUSH_WWW_DIR ?? resolve(import.meta.dirname, "../www");
const AXE_SOURCE = readFileSync(resolve(import.meta.dirname, "../node_modules/axe-core/axe.min.js"), "utf8");
const PASS = { alice: "alice correct horse", bob: "bob battery staple", carol: "carol purple lantern" };
const VIEWPORTS = [
  { width: 1280, height: 800 },
  { width: 390, height: 844 },
];
const SCHEMES = ["light", "dark"];

/** Every violation found, for the summary at the end: { screen, mode, id, impact, targets }. */
const found = [];
/** Screens audited, in order. */
const audited = [];

/** What the audits of the running test found wrong: violations, not one h1. */
let problems = [];

/**
 * Runs axe over `page` as it is, in each colour scheme and viewport; prints every violation
 * and notes it for clean(), and a screen without exactly one h1. (Noted,
 * not thrown: one bad screen does not hide the next ones' results.)
 */
async function audit(page, screen) {
  audited.push(screen);
  for (const viewport of VIEWPORTS) {
    for (const colorScheme of SCHEMES) {
      const mode = `${viewport.width}×${viewport.height} ${colorScheme}`;
      await page.setViewportSize(viewport);
      await page.emulateMedia({ colorScheme });
      // Two frames: the new layout and colours are painted.
      await page.evaluate(() => new Promise((ok) => requestAnimationFrame(() => requestAnimationFrame(ok))));
      // Through the DevTools protocol, not a <script> tag (the app's CSP allows none inline).
      if (!(await page.evaluate(() => typeof window.axe?.run === "function"))) await page.evaluate(`${AXE_SOURCE}\n;0`);
      const result = await page.evaluate(async () => {
        const out = await window.axe.run(document, { resultTypes: ["violations"] });
        const shown = (el) => el.getClientRects().length > 0;
        return {
          version: window.axe.version,
          violations: out.violations.map((v) => ({
            id: v.id,
            impact: v.impact,
            help: v.help,
            nodes: v.nodes.map((n) => ({ target: n.target.join(" "), summary: n.failureSummary ?? "" })),
          })),
          // Headings of level 1: h1, or another heading given aria-level 1.
          h1: [...document.querySelectorAll('h1:not([aria-level]), :is(h2, h3, h4, h5, h6, [role="heading"])[aria-level="1"]')]
            .filter(shown)
            .map((el) => el.textContent.trim()),
        };
      });
      assert.equal(result.version, "4.14.1", "the pinned axe-core runs");
      for (const v of result.violations) {
        found.push({ screen, mode, id: v.id, impact: v.impact, targets: v.nodes.length });
        console.log(`# [${screen} | ${mode}] ${v.impact} ${v.id}: ${v.help}`);
        for (const n of v.nodes) console.log(`#     ${n.target}: ${n.summary.replace(/\s*\n\s*/g, " ")}`);
        problems.push(`${screen} | ${mode}: ${v.impact} ${v.id} at ${v.nodes.map((n) => n.target).join(", ")}`);
      }
      if (result.h1.length !== 1) {
        console.log(`# [${screen} | ${mode}] h1 headings: ${JSON.stringify(result.h1)}`);
        problems.push(`${screen} | ${mode}: ${result.h1.length} h1 headings shown (${JSON.stringify(result.h1)}), not 1`);
      }
    }
  }
  await page.setViewportSize(VIEWPORTS[0]);
  await page.emulateMedia({ colorScheme: "light" });
}

/** Fails the running test if its audits found any violation or not one h1. */
function clean() {
  const seen = problems;
  problems = [];
  assert.deepEqual(seen, [], "violations, or not one h1");
}

describe("accessibility of every screen (axe-core, light and dark, desktop and phone)", { skip: NO_BROWSER }, () => {
  let server;
  let alice;
  let bob;
  let carol;
  let link;
  let secondLink;

  before(async () => {
    server = await startNative({ www: WWW });
    alice = await launch();
    // Chromium's fake camera (a moving test pattern) and an automatic "allow".
    bob = await launch({ extraArgs: ["--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream"] });
    carol = await launch();
  });

  // A test that broke off leaves nothing for the next one's clean().
  beforeEach(() => {
    problems = [];
  });

  after(async () => {
    for (const p of [alice, bob, carol]) await p?.context.close().catch(() => {});
    await server?.stop().catch(() => {});
    const byRule = new Map();
    for (const f of found) {
      const key = `${f.impact} ${f.id}`;
      const seen = byRule.get(key) ?? { audits: 0, screens: new Set() };
      seen.audits += 1;
      seen.screens.add(f.screen);
      byRule.set(key, seen);
    }
    console.log(`# audited ${audited.length} screens × ${VIEWPORTS.length * SCHEMES.length} modes: ${audited.join("; ")}`);
    for (const [key, seen] of byRule) console.log(`# ${key}: in ${seen.audits} audits, on ${seen.screens.size} screens (${[...seen.screens].join("; ")})`);
    if (!byRule.size) console.log("# no violations of any impact");
  });

  test("loading, and the message shown when the client cannot start", async () => {
    // Hold the wasm module back: the page stays on "Loading…".
    let release;
    const held = new Promise((ok) => (release = ok));
    await bob.page.route("**/pkg/hush_bg.wasm", async (route) => {
      await held;
      await route.abort();
    });
    try {
      await bob.page.goto(`${server.url}/`);
      await bob.page.getByText("Loading…").waitFor();
      await audit(bob.page, "loading");
      release();
      // The wasm module refused: "Hush can't start here".
      await bob.page.getByRole("heading", { name: "Hush can't start here" }).waitFor();
      await audit(bob.page, "message: Hush can't start here");
    } finally {
      release();
      await bob.page.unrouteAll();
    }
    clean();
  });

  test("setup: choosing a passphrase, and a passphrase too short", async () => {
    await alice.page.goto(`${server.url}/`);
    await alice.page.getByLabel("Passphrase", { exact: true }).waitFor();
    await audit(alice.page, "setup");
    await alice.page.getByLabel("Passphrase", { exact: true }).fill("short");
    await alice.page.getByRole("button", { name: "Create", exact: true }).click();
    await alice.page.getByText("Use at least 8 characters.").waitFor();
    await audit(alice.page, "setup with an error");
    await createPassphrase(alice.page, PASS.alice);
    clean();
  });

  test("conversation list, empty", async () => {
    await alice.page.getByText("No conversations yet.").waitFor();
    await audit(alice.page, "home, no conversations");
    clean();
  });

  test("new conversation, with an error, and the invite with its QR code", async () => {
    await alice.page.getByRole("button", { name: "New conversation" }).click();
    await alice.page.getByLabel("Their name").waitFor();
    await audit(alice.page, "new conversation");
    await alice.page.getByRole("button", { name: "Create invite" }).click();
    await alice.page.getByText("Give this conversation a name.").waitFor();
    await audit(alice.page, "new conversation with an error");
    await alice.page.getByRole("button", { name: "Back" }).click();
    link = await newConversation(alice.page, "Bob");
    await alice.page.getByRole("img", { name: "QR code of the invite link" }).waitFor();
    await audit(alice.page, "invite (QR code and link)");
    clean();
  });

  test("join: empty, with the camera open, and with an invite that can't be used", async () => {
    await bob.page.goto(`${server.url}/`);
    await createPassphrase(bob.page, PASS.bob);
    await bob.page.getByRole("button", { name: "Join", exact: true }).click();
    await bob.page.getByLabel("Invite link").waitFor();
    await audit(bob.page, "join");
    await bob.page.getByRole("button", { name: "Scan QR code" }).click();
    await bob.page.getByText("Point the camera at the QR code on their screen.").waitFor({ timeout: 30_000 });
    await audit(bob.page, "join with the camera open");
    await bob.page.getByRole("button", { name: "Stop camera" }).click();
    await bob.page.getByLabel("Their name").fill("Alice");
    await bob.page.getByLabel("Invite link").fill("https://example.org/#not-an-invite");
    await bob.page.getByRole("button", { name: "Accept invite" }).click();
    await bob.page.getByText(/This invite link can't be used|not a valid Hush invite/).waitFor();
    await audit(bob.page, "join with an error");
    clean();
  });

  test("unlock, with a wrong passphrase, then the invite opened by its link", async () => {
    // The link opened in Bob's browser: a fresh load (not a change of fragment in the open
    // tab), so Hush asks for the passphrase first.
    await bob.page.goto("about:blank");
    await bob.page.goto(link);
    await bob.page.getByRole("button", { name: "Unlock", exact: true }).waitFor();
    await audit(bob.page, "unlock (invite link waiting)");
    await bob.page.getByLabel("Passphrase", { exact: true }).fill("not the passphrase");
    await bob.page.getByRole("button", { name: "Unlock", exact: true }).click();
    await bob.page.getByText("That passphrase does not unlock Hush on this device.", { exact: false }).waitFor({ timeout: 30_000 });
    await audit(bob.page, "unlock with an error");
    await bob.page.getByLabel("Passphrase", { exact: true }).fill(PASS.bob);
    await bob.page.getByRole("button", { name: "Unlock", exact: true }).click();
    await bob.page.getByRole("heading", { name: "You've been invited" }).waitFor({ timeout: 30_000 });
    await audit(bob.page, "join, invited by a link");
    clean();
  });

  test("connecting (the answer not on the mailbox yet), then connected with the safety code", async () => {
    // Bob's deposits are refused until released: his answer to the invite stays on his device.
    await bob.page.route("**/v1/m/**", (route) => (route.request().method() === "PUT" ? route.abort("connectionrefused") : route.fallback()));
    await bob.page.getByLabel("Their name").fill("Alice");
    await bob.page.getByRole("button", { name: "Accept invite" }).click();
    await bob.page.getByRole("heading", { name: /Connecting to Alice/ }).waitFor({ timeout: 30_000 });
    await audit(bob.page, "connecting");
    await bob.page.unrouteAll();
    await bob.page.getByRole("heading", { name: "Connected with Alice" }).waitFor({ timeout: 60_000 });
    const code = await safetyCode(bob.page);
    await audit(bob.page, "connected: safety code to compare");
    assert.equal(await safetyCode(alice.page), code);
    await alice.page.getByRole("button", { name: "Start chatting" }).click();
    await bob.page.getByRole("button", { name: "Start chatting" }).click();
    clean();
  });

  test("chat: empty, then messages both ways with their status, then offline with one waiting", async () => {
    await alice.page.getByText("No messages yet. Say hello to Bob.").waitFor();
    await audit(alice.page, "chat, no messages");
    await send(alice.page, "Hello Bob, this is Alice.");
    await send(bob.page, "Hi Alice! Bob here.");
    await send(alice.page, "Shall we meet on Thursday?");
    await eventually(
      async () => {
        const got = await messages(alice.page);
        return got.length === 3 && got.some((m) => !m.own) && got.filter((m) => m.own).every((m) => m.status === "delivered");
      },
      { timeout: 60_000, what: "Alice's messages delivered and Bob's shown" },
    );
    await audit(alice.page, "chat with messages both ways (delivered)");
    await eventually(async () => (await messages(bob.page)).length === 3, { timeout: 60_000, what: "Bob sees all three" });
    await audit(bob.page, "chat with messages both ways (Bob's side)");
    await alice.context.setOffline(true);
    await send(alice.page, "Sent while offline.");
    await alice.page.getByText(/Offline\. Your messages wait/).waitFor();
    await eventually(async () => (await messages(alice.page)).at(-1).status === "sending", { what: "a message waiting" });
    await audit(alice.page, "chat offline, a message sending");
    await alice.context.setOffline(false);
    // Past the length limit: the counter says by how much, the box is invalid, Send is off.
    const box = alice.page.getByRole("textbox", { name: "Message" });
    const limit = await alice.page.evaluate(async () => (await import("/composer.js")).MAX_MESSAGE_BYTES);
    await box.fill("x".repeat(limit + 1));
    await alice.page.getByText(/^Too long by 1 byte/).waitFor();
    await audit(alice.page, "chat with a message too long");
    await box.fill("x".repeat(limit - 100));
    await alice.page.getByText("100 bytes left").waitFor();
    await audit(alice.page, "chat with a message near the limit");
    await box.fill("");
    clean();
  });

  test("safety code from the chat, the rename dialog and the erase confirmation", async () => {
    await alice.page.getByRole("button", { name: "Safety code" }).click();
    await alice.page.getByRole("heading", { name: "Safety code with Bob" }).waitFor();
    await audit(alice.page, "safety code");
    await alice.page.getByRole("button", { name: "Back to chat" }).click();
    await alice.page.getByRole("button", { name: "Rename" }).click();
    await alice.page.getByRole("dialog").waitFor();
    await audit(alice.page, "rename dialog");
    await alice.page.getByRole("dialog").getByLabel("Name").fill("");
    await alice.page.getByRole("button", { name: "Save name" }).click();
    await alice.page.getByText("A name cannot be empty.").waitFor();
    await audit(alice.page, "rename dialog with an error");
    await alice.page.getByRole("button", { name: "Cancel" }).click();
    await alice.page.getByRole("button", { name: "Delete", exact: true }).click();
    await alice.page.getByRole("button", { name: "Erase conversation" }).waitFor();
    await audit(alice.page, "erase conversation confirmation");
    await alice.page.getByRole("button", { name: "Cancel" }).click();
    clean();
  });

  test("conversation list with conversations", async () => {
    // On a wide screen the chat has no Back button (the list is beside it), and Settings'
    // Back returns to the chat: the browser's Back from there.
    await alice.page.getByRole("button", { name: "Settings" }).click();
    await alice.page.getByRole("button", { name: "Back" }).click();
    await alice.page.getByRole("textbox", { name: "Message" }).waitFor();
    await alice.page.goBack();
    await alice.page.getByRole("heading", { name: "Pick a conversation" }).waitFor();
    await audit(alice.page, "home with conversations");
    clean();
  });

  test("settings, and settings with an address refused", async () => {
    await alice.page.getByRole("button", { name: "Settings" }).click();
    await alice.page.getByLabel("Mailbox URL").waitFor();
    await audit(alice.page, "settings");
    await alice.page.getByLabel("Mailbox URL").fill("not an address");
    await alice.page.getByRole("button", { name: "Save", exact: true }).click();
    await alice.page.getByText(/Enter a full address/).waitFor();
    await audit(alice.page, "settings with an error");
    await alice.page.getByRole("button", { name: "Use the default mailbox" }).click();
    await alice.page.getByText(/Using the default mailbox/).waitFor();
    await audit(alice.page, "settings with a result");
    clean();
  });

  test("an invite someone else used first", async () => {
    secondLink = await newConversation(alice.page, "Bob or Carol");
    await carol.page.goto(`${server.url}/`);
    await createPassphrase(carol.page, PASS.carol);
    await carol.page.getByRole("button", { name: "Join", exact: true }).click();
    await carol.page.getByLabel("Their name").fill("Alice");
    await carol.page.getByLabel("Invite link").fill(secondLink);
    await carol.page.getByRole("button", { name: "Accept invite" }).click();
    await carol.page.getByRole("heading", { name: "Connected with Alice" }).waitFor({ timeout: 60_000 });
    await bob.page.getByRole("button", { name: "Join", exact: true }).click();
    await bob.page.getByLabel("Their name").fill("Alice again");
    await bob.page.getByLabel("Invite link").fill(secondLink);
    await bob.page.getByRole("button", { name: "Accept invite" }).click();
    await bob.page.getByRole("heading", { name: "This invite was already used" }).waitFor({ timeout: 60_000 });
    await audit(bob.page, "invite already used");
    await listItem(bob.page, "Alice again").waitFor();
    await audit(bob.page, "list with an invite already used");
    clean();
  });

  test("lock: back to the passphrase", async () => {
    await alice.page.getByRole("button", { name: "Lock", exact: true }).click();
    await alice.page.getByRole("button", { name: "Unlock", exact: true }).waitFor();
    await audit(alice.page, "unlock");
    clean();
  });

  test("no console errors", () => {
    // Refused requests are this test's doing (the held wasm module, Bob's refused deposits,
    // Alice offline).
    const ours = (line) => /net::ERR_(FAILED|CONNECTION_REFUSED|INTERNET_DISCONNECTED)|Failed to load resource|Failed to fetch|hush_bg\.wasm/.test(line);
    for (const [name, p] of [["alice", alice], ["bob", bob], ["carol", carol]]) {
      assert.deepEqual(p.errors.filter((line) => !ours(line)), [], `${name}: no console errors`);
    }
  });
});
