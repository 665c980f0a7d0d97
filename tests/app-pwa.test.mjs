// Hush as a web app people keep (issue 12), in real headless Chromium against a real
// mailbox-server serving a copy of the site:
//   - the manifest is served as application/manifest+json, Chromium parses it without
//     errors, and its icons load at their stated sizes;
//   - the service worker installs and controls the page; offline, and with the mailbox
//     stopped, a reload shows the app, unlock works and a conversation's history is readable;
//     a message written offline shows as not yet sent and reaches the other person once back;
//     the worker never answers a mailbox request (`/v1/…`) and caches nothing but the shell;
//   - a new version (a shell file changed, the shell list regenerated) is announced and not
//     applied, across reloads, until the person clicks Reload; then the old cache is gone, and
//     another open tab is told, not reloaded;
//   - Back moves within Hush: chat → list, safety code → chat, another conversation's screen
//     is never on the way back, on a desktop and on a phone-sized window, and Back never shows
//     the unlock screen of an unlocked session; after joining from an invite link (opened in a
//     fresh tab, or pasted into an open tab: on the list, in a chat, locked) every Back moves;
//   - the vault's creation asks for persistent storage, and Settings shows whether the
//     browser granted it, with what "not granted" means and a way to ask again.

import { describe, test, before, after } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { appendFileSync, cpSync, mkdtempSync, readdirSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { startNative } from "./support/servers.mjs";
import { launch, screenshot, NO_BROWSER } from "./support/browser.mjs";
import { createPassphrase, unlock, connect, listItem, openChat, send, messages, eventually, newConversation, onMailbox } from "./support/app.mjs";
import { writeShellVersion } from "../xtask/shell-version.mjs";

const WWW = process.env.HUSH_WWW_DIR ?? resolve(import.meta.dirname, "../www");
const PASS = { alice: "alice keeps hush", bob: "bob keeps hush" };
const PHONE = { width: 390, height: 844 };

/** Chromium's own lines for requests that failed while offline or with the mailbox down. */
const networkFailure = (line) =>
  /(Failed to load resource|WebSocket connection to '[^']*' failed: Error in connection establishment): net::ERR_(CONNECTION_REFUSED|CONNECTION_RESET|EMPTY_RESPONSE|INTERNET_DISCONNECTED)/.test(
    line,
  );

/** gzip -9 copies beside every file under `dir`, as `cargo xtask build-web` writes them. */
function gzipTree(dir) {
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) gzipTree(path);
    else if (!name.endsWith(".gz")) execFileSync("gzip", ["-9", "-k", "-f", "-n", path]);
  }
}

/**
 * A copy of the site (pkg/ dereferenced) with its shell list and gzip copies written fresh,
 * so the test serves exactly the files it checks, and may change them.
 */
function siteCopy() {
  const dir = mkdtempSync(join(tmpdir(), "hush-pwa-site-"));
  cpSync(WWW, dir, { recursive: true, dereference: true, filter: (src) => !src.endsWith(".gz") });
  writeShellVersion(dir);
  gzipTree(dir);
  return dir;
}

/** Waits until a service worker controls `page`; returns its cache names. */
async function controlled(page) {
  await eventually(() => page.evaluate(() => Boolean(navigator.serviceWorker.controller)), { what: "a service worker to control the page" });
  return page.evaluate(() => caches.keys());
}

/** The URLs each Cache Storage cache of the page's origin holds. */
function cachedUrls(page) {
  return page.evaluate(async () => {
    const out = {};
    for (const name of await caches.keys()) out[name] = (await (await caches.open(name)).keys()).map((r) => r.url);
    return out;
  });
}

/** Records every finished request of `context` (pages and workers): { url, fromSw, bytes, worker }. */
function recordRequests(context) {
  const seen = [];
  context.on("requestfinished", async (request) => {
    // A worker's request may outlive the worker (stopped when idle): its details are gone.
    const response = await request.response().catch(() => null);
    const sizes = await request.sizes().catch(() => ({ responseBodySize: 0, responseHeadersSize: 0 }));
    seen.push({
      url: request.url(),
      fromSw: response ? response.fromServiceWorker() : false,
      bytes: Math.max(0, sizes.responseBodySize) + Math.max(0, sizes.responseHeadersSize),
      worker: Boolean(request.serviceWorker()),
    });
  });
  return seen;
}

const screenOf = (page) => page.evaluate(() => document.body.dataset.screen);
const isUnlocked = (page) => page.getByRole("button", { name: "Lock", exact: true }).isVisible();

test("the manifest is served as a web app manifest, parses without errors, and its icons load", { skip: NO_BROWSER, timeout: 120_000 }, async () => {
  const dir = siteCopy();
  const server = await startNative({ www: dir });
  const person = await launch();
  try {
    const response = await fetch(`${server.url}/manifest.webmanifest`);
    assert.equal(response.status, 200);
    assert.equal(response.headers.get("content-type"), "application/manifest+json");
    const manifest = await response.json();
    assert.equal(manifest.name, "Hush");
    assert.equal(manifest.short_name, "Hush");
    assert.equal(manifest.display, "standalone");
    assert.equal(manifest.start_url, "./");
    assert.equal(manifest.scope, "./");
    // The colours of style.css, light and dark.
    assert.equal(manifest.background_color, "#f5f6f4");
    assert.equal(manifest.color_scheme_dark.background_color, "#141816");
    for (const path of ["sw.js", "pkg/shell-version.js"]) {
      const js = await fetch(`${server.url}/${path}`);
      assert.equal(js.status, 200, path);
      assert.match(js.headers.get("content-type"), /^(text|application)\/javascript/, `${path} is served as JavaScript`);
    }

    const { page, context } = person;
    await page.goto(server.url);
    await page.getByLabel("Passphrase", { exact: true }).waitFor();
    const cdp = await context.newCDPSession(page);
    const parsed = await cdp.send("Page.getAppManifest");
    assert.equal(parsed.url, `${server.url}/manifest.webmanifest`, "index.html links the manifest");
    assert.deepEqual(parsed.errors, [], "Chromium finds no error in the manifest");
    const sizes = await page.evaluate(async (icons) => {
      const out = [];
      for (const icon of icons) {
        const img = new Image();
        img.src = icon.src;
        await img.decode();
        out.push({ src: icon.src, sizes: icon.sizes, width: img.naturalWidth, height: img.naturalHeight });
      }
      return out;
    }, manifest.icons);
    assert.ok(sizes.some((i) => i.sizes === "192x192") && sizes.some((i) => i.sizes === "512x512"), "192 and 512 icons");
    assert.ok(manifest.icons.some((i) => i.purpose === "maskable"), "a maskable icon");
    for (const icon of sizes) {
      if (icon.sizes === "any") continue;
      assert.equal(`${icon.width}x${icon.height}`, icon.sizes, `${icon.src} has its stated size`);
    }
    assert.deepEqual(person.errors, [], "no console errors");
  } finally {
    await person.context.close();
    await server.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});

describe("offline, outages and Back", { skip: NO_BROWSER, timeout: 600_000 }, () => {
  let dir;
  let server;
  let alice;
  let bob;
  let aliceRequests;
  const report = {};

  before(async () => {
    dir = siteCopy();
    server = await startNative({ www: dir });
    alice = await launch();
    bob = await launch({ viewport: PHONE });
    aliceRequests = recordRequests(alice.context);
    await alice.page.goto(server.url);
    await createPassphrase(alice.page, PASS.alice);
    await bob.page.goto(server.url);
    await createPassphrase(bob.page, PASS.bob);
    await connect(alice.page, bob.page, "Bob", "Alice");
    await send(alice.page, "hello from alice");
    await send(bob.page, "hello from bob");
    for (const page of [alice.page, bob.page]) {
      await eventually(
        async () => {
          const list = await messages(page);
          return list.length === 2 && list.every((m) => onMailbox(m.status) || m.status === "received");
        },
        { what: "both messages on both sides" },
      );
    }
  });

  after(async () => {
    for (const p of [alice, bob]) await p?.context.close();
    await server?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
    console.log(`app-pwa figures: ${JSON.stringify(report)}`);
  });

  test("the service worker installs, controls the page, and keeps only the shell", async () => {
    const names = await controlled(alice.page);
    assert.equal(names.length, 1, "one cache");
    assert.match(names[0], /^hush-shell-[0-9a-f]{20}$/, "named after the shell's version");
    const first = aliceRequests.filter((r) => !r.worker && r.url.startsWith(server.url) && !r.url.includes("/v1/"));
    const install = aliceRequests.filter((r) => r.worker);
    report.firstLoad = { requests: first.length, bytes: first.reduce((n, r) => n + r.bytes, 0) };
    report.workerInstall = { requests: install.length, bytes: install.reduce((n, r) => n + r.bytes, 0) };
    const cached = Object.values(await cachedUrls(alice.page)).flat();
    assert.ok(cached.includes(`${server.url}/`) && cached.includes(`${server.url}/pkg/hush_bg.wasm`), "the page and the wasm are cached");
    assert.ok(cached.includes(`${server.url}/pkg/scan_bg.wasm`), "the lazily loaded QR decoder is cached with the same version");
    assert.deepEqual(cached.filter((url) => url.includes("/v1/") || url.includes("#") || url.includes("?")), [], "no mailbox request, fragment or query in the cache");
  });

  test("offline, a reload shows the app, unlock works, history is readable, and a message written offline is sent once back", async () => {
    const { page, context } = alice;
    const errorsBefore = alice.errors.length;
    const requestsBefore = aliceRequests.length;
    await context.setOffline(true);
    await page.reload();
    await unlock(page, PASS.alice);
    const reload = aliceRequests.slice(requestsBefore).filter((r) => !r.worker && r.url.startsWith(server.url) && !r.url.includes("/v1/"));
    report.offlineReload = { requests: reload.length, fromServiceWorker: reload.filter((r) => r.fromSw).length };
    assert.ok(reload.length > 0 && reload.every((r) => r.fromSw), "every shell file came from the service worker");
    await openChat(page, "Bob");
    const history = await messages(page);
    assert.deepEqual(history.map((m) => m.text), ["hello from alice", "hello from bob"], "the history, read offline");
    await send(page, "written offline");
    await eventually(async () => (await messages(page)).some((m) => m.text === "written offline" && m.status === "sending"), {
      what: "the offline message to show as not yet sent",
    });
    await page.waitForTimeout(1_500);
    assert.equal((await messages(page)).find((m) => m.text === "written offline").status, "sending", "still not sent while offline");
    await screenshot(page, "app-pwa-offline");
    await context.setOffline(false);
    await eventually(async () => (await messages(bob.page)).some((m) => m.text === "written offline"), { timeout: 60_000, what: "Bob to get it" });
    await eventually(async () => onMailbox((await messages(page)).find((m) => m.text === "written offline").status), { what: "sent" });
    const during = alice.errors.splice(errorsBefore);
    assert.deepEqual(during.filter((e) => !networkFailure(e)), [], "no errors but Chromium's failed requests while offline");
  });

  test("with the mailbox stopped, a reload shows the app and its history; mailbox requests never go through the worker", async () => {
    const { page } = alice;
    const errorsBefore = alice.errors.length;
    const requestsBefore = aliceRequests.length;
    await server.stop({ keepData: true });
    try {
      await page.reload();
      await unlock(page, PASS.alice);
      await openChat(page, "Bob");
      const expected = ["hello from alice", "hello from bob", "written offline"];
      // The history is read from the device as the chat opens: wait for it, then compare.
      await eventually(async () => (await messages(page)).length >= expected.length, { what: "the history shown" }).catch(() => {});
      assert.deepEqual((await messages(page)).map((m) => m.text), expected);
      await page.getByRole("status").filter({ hasText: "Can't reach the mailbox" }).first().waitFor({ timeout: 30_000 });
    } finally {
      server = await startNative({ www: dir, port: server.port, dataDir: server.dataDir });
    }
    await send(bob.page, "after the outage");
    await eventually(async () => (await messages(page)).some((m) => m.text === "after the outage"), { timeout: 60_000, what: "Alice to get Bob's" });
    const api = aliceRequests.slice(requestsBefore).filter((r) => r.url.includes("/v1/"));
    assert.ok(api.length > 0, "the app talked to the mailbox");
    assert.deepEqual(api.filter((r) => r.fromSw || r.worker), [], "no mailbox request answered or made by the service worker");
    const shell = aliceRequests.slice(requestsBefore).filter((r) => !r.worker && !r.url.includes("/v1/"));
    report.reloadWithMailboxDown = { requests: shell.length, fromServiceWorker: shell.filter((r) => r.fromSw).length, networkBytes: shell.filter((r) => !r.fromSw).reduce((n, r) => n + r.bytes, 0) };
    const during = alice.errors.splice(errorsBefore);
    assert.deepEqual(during.filter((e) => !networkFailure(e)), [], "no errors but Chromium's failed requests during the outage");
  });

  test("Back moves within Hush on a desktop: chat → list, safety code → chat, never another conversation's screen, never the unlock screen", async () => {
    const { page } = alice;
    // A second conversation, waiting for Carol.
    await newConversation(page, "Carol");
    await page.goBack();
    assert.equal(await screenOf(page), "home", "Back from the invite: the list");
    await openChat(page, "Bob");
    await page.getByRole("button", { name: "Safety code" }).click();
    await page.getByLabel("Safety code").waitFor();
    await page.goBack();
    await page.getByRole("textbox", { name: "Message" }).waitFor();
    assert.equal(await screenOf(page), "chat", "Back from the safety code: the chat");
    await listItem(page, "Carol").getByRole("button").click();
    await page.getByRole("textbox", { name: "Invite link" }).waitFor();
    await page.goBack();
    assert.equal(await screenOf(page), "home", "Back from Carol's invite: the list, not Bob's chat");
    assert.ok(await isUnlocked(page), "still unlocked");
    // Forward, then Back again, through the app's own history.
    await page.goForward();
    assert.equal(await screenOf(page), "invite");
    await page.goBack();
    assert.equal(await screenOf(page), "home");
    // The "Hush, home" link shows the list without reloading (a reload would lock Hush).
    await openChat(page, "Bob");
    await page.getByRole("link", { name: "Hush, home" }).click();
    await eventually(async () => (await screenOf(page)) === "home", { what: "the list after the home link" });
    assert.ok(await isUnlocked(page), "the home link did not lock Hush");
    // Back from the list leaves Hush or stays on the list; it never shows the unlock screen.
    await page.goBack().catch(() => {});
    if (page.url().startsWith(server.url)) {
      assert.ok(await isUnlocked(page), "Back from the list did not lock Hush");
      assert.notEqual(await screenOf(page), "unlock");
    } else {
      await page.goForward();
      await page.getByLabel("Passphrase", { exact: true }).waitFor();
      await unlock(page, PASS.alice);
    }
  });

  test("after a lock and unlock, Back never shows the unlock screen or an earlier session's chat", async () => {
    const { page } = alice;
    await openChat(page, "Bob");
    await page.getByRole("button", { name: "Lock", exact: true }).click();
    await page.getByLabel("Passphrase", { exact: true }).waitFor();
    await unlock(page, PASS.alice);
    // The chat open when Hush locked comes back (app-features.test.mjs), above the list.
    // (The Lock button shows before the screen is drawn.)
    await eventually(async () => (await screenOf(page)) === "chat", { what: "the chat again after unlocking" });
    await page.goBack();
    assert.equal(await screenOf(page), "home", "Back from the chat reopened at unlock: the list");
    assert.ok(await isUnlocked(page), "still unlocked");
    await openChat(page, "Bob");
    await page.goBack();
    assert.equal(await screenOf(page), "home", "Back from the chat: the list");
    assert.ok(await isUnlocked(page), "still unlocked");
    // A reload in a chat, then unlock: Back goes to no earlier entry of Hush's.
    await openChat(page, "Bob");
    await page.reload();
    await unlock(page, PASS.alice);
    await openChat(page, "Bob");
    await page.goBack();
    assert.equal(await screenOf(page), "home");
    assert.ok(await isUnlocked(page));
    await page.goBack().catch(() => {});
    if (page.url().startsWith(server.url)) {
      assert.ok(await isUnlocked(page), "Back did not reach the unlock screen");
      assert.equal(await screenOf(page), "home");
    }
  });

  test("Back moves within Hush on a phone: chat → list, and the app's Back button does the same", async () => {
    const { page } = bob;
    await page.getByRole("button", { name: "Back" }).first().click();
    await listItem(page, "Alice").waitFor();
    await openChat(page, "Alice");
    assert.equal(await page.evaluate(() => document.body.dataset.pane), "detail");
    await page.goBack();
    await listItem(page, "Alice").waitFor();
    assert.equal(await screenOf(page), "home");
    assert.ok(await page.getByRole("navigation", { name: "Conversations" }).isVisible(), "the list is what the phone shows");
    await openChat(page, "Alice");
    await page.getByRole("button", { name: "Back" }).click();
    await listItem(page, "Alice").waitFor();
    assert.equal(await screenOf(page), "home");
    // The app's Back went back in history: Forward returns to the chat.
    await page.goForward();
    await page.getByRole("textbox", { name: "Message" }).waitFor();
    assert.equal(await screenOf(page), "chat");
    await page.goBack();
    assert.ok(await isUnlocked(page));
    await screenshot(page, "app-pwa-phone-back");
  });

  test("no console errors", () => {
    assert.deepEqual(alice.errors, [], "alice: no console errors");
    assert.deepEqual(bob.errors.filter((e) => !networkFailure(e)), [], "bob: no console errors");
  });
});

test("after joining from an invite link, every Back moves: opened in a fresh tab, pasted into an open tab on the list, in a chat, or locked", { skip: NO_BROWSER, timeout: 240_000 }, async () => {
  const server = await startNative({ www: WWW });
  const alice = await launch();
  const bob = await launch();
  try {
    // Alice's invites, made through the client's API on a bare page of her profile.
    await alice.page.goto(`${server.url}/v1/health`);
    const links = await alice.page.evaluate(async (site) => {
      const hush = await import("/pkg/hush.js");
      await hush.default();
      const client = await hush.HushClient.open("hush");
      await client.createVault("alice invites", true);
      const out = [];
      for (let i = 0; i < 4; i++) out.push((await client.createInvite(`${site}/`, site, `Bob ${i}`)).link);
      return out;
    }, server.url);
    const page = bob.page;
    await page.goto(`${server.url}/`);
    await createPassphrase(page, PASS.bob);
    /** Where the page is: Hush's screen, the unlock screen, or another page (Hush left). */
    const where = async () => (page.url().startsWith(server.url) ? `${await screenOf(page)}${(await isUnlocked(page)) ? "" : " (locked)"}` : page.url());
    /** Joins the invite offered, goes to the chat, then presses Back until Hush is left. */
    const joinThenBack = async (how, name) => {
      await page.getByLabel("Their name").fill(name);
      await page.getByRole("button", { name: "Accept invite" }).click();
      await page.getByRole("button", { name: "Start chatting" }).click({ timeout: 60_000 });
      await page.getByRole("textbox", { name: "Message" }).waitFor();
      const seen = [await where()];
      while (page.url().startsWith(server.url) && seen.length < 6) {
        await page.goBack().catch(() => {});
        await page.evaluate(() => new Promise((ok) => setTimeout(ok, 300))).catch(() => {});
        seen.push(await where());
      }
      for (let i = 1; i < seen.length; i++) assert.notEqual(seen[i], seen[i - 1], `${how}: Back ${i} moved (${seen.join(" → ")})`);
      assert.deepEqual(seen.slice(0, 2), ["chat", "home"], `${how}: Back from the chat shows the list (${seen.join(" → ")})`);
      assert.ok(!seen.some((w) => w.includes("locked")), `${how}: never the unlock screen (${seen.join(" → ")})`);
      // Back into Hush for the next case (a new page load: unlock).
      await page.goto(`${server.url}/`);
      await unlock(page, PASS.bob);
      await eventually(async () => (await screenOf(page)) === "home", { what: "the list after unlocking" });
    };

    await page.goto("about:blank");
    await page.goto(links[0]);
    await unlock(page, PASS.bob);
    await joinThenBack("opened in a fresh tab", "Alice 0");

    await page.goto(links[1]); // The list in front: the address bar's fragment changes.
    await joinThenBack("pasted into a tab on the list", "Alice 1");

    await openChat(page, "Alice 0");
    await page.goto(links[2]);
    await joinThenBack("pasted into a tab with a chat open", "Alice 2");

    await page.getByRole("button", { name: "Lock", exact: true }).click();
    await page.getByLabel("Passphrase", { exact: true }).waitFor();
    await page.goto(links[3]);
    await page.getByText("You opened an invite link.", { exact: false }).waitFor();
    await unlock(page, PASS.bob);
    await joinThenBack("pasted into a locked tab", "Alice 3");
    assert.deepEqual(bob.errors.filter((e) => !networkFailure(e)), []);
  } finally {
    await alice.context.close();
    await bob.context.close();
    await server.stop();
  }
});

test("a new version is announced and applied only when the person clicks Reload", { skip: NO_BROWSER, timeout: 180_000 }, async () => {
  const dir = siteCopy();
  const server = await startNative({ www: dir });
  const person = await launch();
  const { page } = person;
  const styleText = () => page.evaluate(async () => (await fetch("style.css")).text());
  try {
    await page.goto(server.url);
    await createPassphrase(page, PASS.alice);
    const [oldCache] = await controlled(page);
    assert.ok(!(await styleText()).includes("new version marker"));

    // A new version on the server: one shell file changed, the shell list written again.
    appendFileSync(join(dir, "style.css"), "\n/* new version marker */\n");
    rmSync(join(dir, "style.css.gz"));
    rmSync(join(dir, "pkg/shell-version.js.gz"));
    const shell = writeShellVersion(dir);
    assert.notEqual(`hush-shell-${shell.version}`, oldCache, "the version follows the files");

    await page.reload();
    await unlock(page, PASS.alice);
    const banner = page.getByRole("status").filter({ hasText: "A new version of Hush is ready." });
    await banner.waitFor({ timeout: 30_000 });
    await screenshot(page, "app-pwa-update");
    // Announced, not applied: the page still runs the old files, also after another reload.
    assert.ok(!(await styleText()).includes("new version marker"), "the old style until the click");
    await page.reload();
    await banner.waitFor({ timeout: 30_000 });
    assert.ok(!(await styleText()).includes("new version marker"), "a reload does not apply it");
    assert.ok(await page.evaluate(async () => Boolean((await navigator.serviceWorker.getRegistration()).waiting)), "the new worker waits");
    // A second tab, unlocked, with the same announcement.
    const other = await person.context.newPage();
    await other.goto(server.url);
    await unlock(other, PASS.alice);
    await other.getByRole("status").filter({ hasText: "A new version of Hush is ready." }).waitFor({ timeout: 30_000 });
    await other.evaluate(() => (window.stillThisPage = true));

    // (The page shows the unlock screen before the click too: wait for the new page's load.)
    let loads = 0;
    page.on("load", () => (loads += 1));
    await Promise.all([page.waitForEvent("load"), banner.getByRole("button", { name: "Reload" }).click()]);
    await page.getByLabel("Passphrase", { exact: true }).waitFor();
    await page.waitForTimeout(1_500);
    assert.equal(loads, 1, "the click reloads the page once");
    await eventually(async () => (await styleText()).includes("new version marker"), { what: "the new version in use" });
    assert.deepEqual(await page.evaluate(() => caches.keys()), [`hush-shell-${shell.version}`], "the old cache is deleted");
    assert.equal(await page.locator("#update-banner").count(), 0, "no banner after the update");
    // The other tab is not reloaded under the person: it says the update happened elsewhere.
    await other.getByRole("status").filter({ hasText: "Hush was updated in another tab." }).waitFor({ timeout: 30_000 });
    assert.equal(await other.evaluate(() => window.stillThisPage), true, "the other tab was not reloaded");
    assert.ok(await isUnlocked(other), "and is still unlocked");
    await unlock(page, PASS.alice);
    assert.deepEqual(person.errors, [], "no console errors");
  } finally {
    await person.context.close();
    await server.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});

test("creating the vault asks for persistent storage, and Settings shows whether it was granted", { skip: NO_BROWSER, timeout: 180_000 }, async () => {
  const dir = siteCopy();
  const server = await startNative({ www: dir });
  const people = [];
  /** Counts the app's calls of navigator.storage.persist (the real one still answers). */
  const countPersistCalls = (page) =>
    page.addInitScript(() => {
      const persist = navigator.storage.persist.bind(navigator.storage);
      window.persistCalls = 0;
      navigator.storage.persist = () => {
        window.persistCalls += 1;
        return persist();
      };
    });
  /** Makes the browser grant persistent storage to the site (as it does for sites people use a lot). */
  const allowPersistence = async ({ context, page }) => {
    const cdp = await context.newCDPSession(page);
    await cdp.send("Browser.grantPermissions", { origin: server.url, permissions: ["durableStorage"] });
  };
  try {
    const granted = await launch();
    people.push(granted);
    await allowPersistence(granted);
    await countPersistCalls(granted.page);
    await granted.page.goto(server.url);
    await createPassphrase(granted.page, PASS.alice);
    assert.equal(await granted.page.evaluate(() => window.persistCalls), 1, "asked once, at the vault's creation");
    assert.equal(await granted.page.evaluate(() => navigator.storage.persisted()), true, "granted by the browser");
    await granted.page.getByRole("button", { name: "Settings" }).click();
    await granted.page.getByText("Persistent storage: granted.").waitFor();
    assert.equal(await granted.page.getByRole("button", { name: "Ask to keep storage" }).count(), 0);

    const refused = await launch();
    people.push(refused);
    await countPersistCalls(refused.page);
    await refused.page.goto(server.url);
    await createPassphrase(refused.page, PASS.bob);
    assert.equal(await refused.page.evaluate(() => window.persistCalls), 1, "asked once, at the vault's creation");
    assert.equal(await refused.page.evaluate(() => navigator.storage.persisted()), false, "headless Chromium does not grant it by itself");
    await refused.page.getByRole("button", { name: "Settings" }).click();
    await refused.page.getByText("Persistent storage: not granted.").waitFor();
    await refused.page.getByText("may delete Hush's keys and history when the device runs short of space").waitFor();
    await screenshot(refused.page, "app-pwa-settings-storage");
    // Asking from Settings: the first no is not called "again"; the second is.
    const askButton = refused.page.getByRole("button", { name: "Ask to keep storage" });
    await askButton.click();
    await refused.page.getByText("The browser said no. Browsers often grant it").waitFor();
    await askButton.click();
    await refused.page.getByText("The browser said no again.").waitFor();
    // Asking again once the browser would grant it.
    await allowPersistence(refused);
    await askButton.click();
    await refused.page.getByText("Persistent storage: granted.").waitFor();
    assert.equal(await refused.page.evaluate(() => window.persistCalls), 4);
    for (const p of people) assert.deepEqual(p.errors, [], "no console errors");
  } finally {
    for (const p of people) await p.context.close();
    await server.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});

describe("notifications through the service worker", { skip: NO_BROWSER, timeout: 300_000 }, () => {
  let server;
  let alice;
  let bob;
  before(async () => {
    server = await startNative({ www: WWW });
    alice = await launch();
    bob = await launch();
    await bob.context.grantPermissions(["notifications"], { origin: server.url });
    for (const [p, pass] of [[alice, PASS.alice], [bob, PASS.bob]]) {
      await p.page.goto(`${server.url}/`);
      await createPassphrase(p.page, pass);
    }
    await connect(alice.page, bob.page, "Bob", "Alice");
  });
  after(async () => {
    for (const p of [alice, bob]) await p?.context.close().catch(() => {});
    await server?.stop().catch(() => {});
  });

  test("where the Notification constructor is refused (Chrome on Android), the service worker shows it; a click opens the chat", async () => {
    const page = bob.page;
    await page.evaluate(() => navigator.serviceWorker.ready);
    // Bob said yes to notifications with text; then, as on Android, `new Notification`
    // throws, and what the service worker is asked to show is recorded.
    await page.evaluate(() => {
      localStorage.setItem("hush.notify", "on");
      localStorage.setItem("hush.notifyText", "on");
      window.Notification = class extends window.Notification {
        constructor() {
          throw new TypeError("Failed to construct 'Notification': Illegal constructor. Use ServiceWorkerRegistration.showNotification() instead.");
        }
      };
      window.__swNotes = [];
      const show = ServiceWorkerRegistration.prototype.showNotification;
      ServiceWorkerRegistration.prototype.showNotification = function (title, options) {
        window.__swNotes.push({ title, body: options?.body, tag: options?.tag, data: options?.data });
        return show.call(this, title, options).catch(() => {});
      };
    });
    await page.getByRole("button", { name: "Settings" }).click();
    await send(alice.page, "through the service worker");
    const [note] = await eventually(async () => {
      const n = await page.evaluate(() => window.__swNotes);
      return n.length ? n : null;
    }, { what: "a notification through the service worker" });
    assert.deepEqual({ title: note.title, body: note.body }, { title: "Alice", body: "through the service worker" });
    assert.equal(note.data.conversation, note.tag, "it names the conversation to open");
    // What sw.js posts to the page on a click (notificationclick cannot be clicked headless).
    await page.evaluate((id) => navigator.serviceWorker.dispatchEvent(new MessageEvent("message", { data: { kind: "open-conversation", id } })), note.tag);
    await page.getByRole("textbox", { name: "Message" }).waitFor();
    assert.equal(await page.locator(".chat-title").innerText(), "Alice");
    assert.deepEqual(bob.errors, []);
  });
});
