// Unlock and set-up derive the vault key in a Web Worker (www/unlock.js, www/unlock-worker.js),
// in real headless Chromium against mailbox-server --www:
//   * set-up and unlock each start one module worker (unlock-worker.js), and the page's own
//     timers keep running while it derives (a timer callback runs between the request posted
//     to the worker and its answer: no timing threshold);
//   * the key's buffer transferred from the worker is all zero once the client has it;
//   * a wrong passphrase is still refused with the same message, and changes nothing;
//   * short of memory: Chromium started with V8's --wasm-max-mem-pages limit (100 MiB for
//     any WebAssembly memory, below Argon2id's 128 MiB), so the worker's memory really cannot
//     grow; set-up and unlock then show the plain "not enough free memory" message, the worker
//     answered ErrorCode.OutOfMemory (not a trap), and the page stays usable.
// Figures (unlock time, longest main-thread task) are printed by tests/bench/client-figures.mjs,
// not asserted here.

import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { chromium } from "playwright-core";
import { startNative } from "./support/servers.mjs";
import { CHROMIUM_FLAGS, screenshot, NO_BROWSER } from "./support/browser.mjs";
import { createPassphrase, unlock } from "./support/app.mjs";

const WWW = process.env.HUSH_WWW_DIR ?? resolve(import.meta.dirname, "../www");
const PASS = "unlock worker passphrase";
const WRONG_PASSPHRASE = "That passphrase does not unlock Hush on this device. Check it and try again.";
const NOT_ENOUGH_MEMORY =
  "This device does not have enough free memory to unlock Hush (it needs about 130 MB). Close other tabs or apps and try again.";
/** WebAssembly pages of 64 KiB: 100 MiB, room for the page's client but not for Argon2id. */
const MEMORY_LIMIT_PAGES = 1600;
/** ErrorCode.OutOfMemory (wasm-client/src/api.rs). */
const OUT_OF_MEMORY = 22;

/**
 * Wraps `Worker` in every page of `context` to record, per worker: its URL and type, how many
 * page timer callbacks ran after the request was posted and before the answer arrived, the
 * answer's error (if any) and the key buffer it carried (to check it was wiped).
 */
async function probeWorkers(context) {
  await context.addInitScript(() => {
    const workers = (window.__workers = []);
    window.__workerKeys = [];
    const Real = window.Worker;
    window.Worker = class extends Real {
      constructor(url, options) {
        super(url, options);
        const entry = { url: String(url), type: options?.type ?? "classic", ticks: 0, answered: false, error: null };
        workers.push(entry);
        this.addEventListener("message", ({ data }) => {
          entry.answered = true;
          if (data?.key) window.__workerKeys.push(data.key);
          entry.error = data?.error ?? null;
        });
        const tick = () =>
          setTimeout(() => {
            if (entry.answered) return;
            entry.ticks += 1;
            tick();
          }, 5);
        const post = this.postMessage.bind(this);
        this.postMessage = (message, transfer) => {
          post(message, transfer);
          tick();
        };
      }
    };
  });
}

const workersOf = (page) => page.evaluate(() => window.__workers);
const keysWiped = (page) =>
  page.evaluate(() => window.__workerKeys.map((k) => k.length === 32 && k.every((b) => b === 0)));

async function launchAt(userDataDir, extraArgs = []) {
  const context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: process.env.HUSH_CHROMIUM ?? "/usr/bin/chromium",
    headless: true,
    args: [...CHROMIUM_FLAGS, ...extraArgs],
    viewport: { width: 1280, height: 800 },
  });
  const errors = [];
  context.on("page", (page) => page.on("pageerror", (err) => errors.push(err.message)));
  await probeWorkers(context);
  const page = context.pages()[0] ?? (await context.newPage());
  page.on("pageerror", (err) => errors.push(err.message));
  return { context, page, errors };
}

/** Asserts the page still answers: a frame is drawn and the passphrase field takes input. */
async function assertUsable(page, button) {
  assert.equal(await page.evaluate(() => new Promise((ok) => requestAnimationFrame(() => ok(true)))), true);
  assert.equal(await page.getByRole("button", { name: button, exact: true }).isEnabled(), true);
  const field = page.getByLabel("Passphrase", { exact: true });
  await field.fill("typed after the failure");
  assert.equal(await field.inputValue(), "typed after the failure");
}

/**
 * In the profile `dir`, under the memory limit: submits the passphrase with `button`
 * ("Create" or "Unlock"), and checks the plain message, the worker's OutOfMemory answer, a
 * usable page that stayed locked, and no page errors.
 */
async function submitShortOfMemory(server, dir, button, shot) {
  const { context, page, errors } = await launchAt(dir, [`--js-flags=--wasm-max-mem-pages=${MEMORY_LIMIT_PAGES}`]);
  try {
    await page.goto(`${server.url}/`);
    await page.getByLabel("Passphrase", { exact: true }).fill(PASS);
    // Set-up asks for the passphrase twice.
    const confirm = page.getByLabel("Confirm passphrase", { exact: true });
    if (await confirm.count()) await confirm.fill(PASS);
    await page.getByRole("button", { name: button, exact: true }).click();
    await page.getByText(NOT_ENOUGH_MEMORY).waitFor({ timeout: 30_000 });
    const workers = await workersOf(page);
    assert.equal(workers.length, 1);
    assert.equal(workers[0].error?.code, OUT_OF_MEMORY, `the worker reported: ${JSON.stringify(workers[0].error)}`);
    await screenshot(page, shot);
    await assertUsable(page, button);
    assert.equal(await page.getByRole("button", { name: "Lock", exact: true }).count(), 0, "still locked");
    assert.deepEqual(errors, []);
  } finally {
    await context.close();
  }
}

test("set-up and unlock derive the key in a worker; a wrong passphrase is refused", { skip: NO_BROWSER }, async () => {
  const server = await startNative({ www: WWW });
  const dir = mkdtempSync(join(tmpdir(), "hush-chromium-"));
  const { context, page, errors } = await launchAt(dir);
  try {
    await page.goto(`${server.url}/`);
    await createPassphrase(page, PASS);
    let workers = await workersOf(page);
    assert.equal(workers.length, 1, "set-up starts one worker");
    assert.match(workers[0].url, /\/unlock-worker\.js$/);
    assert.equal(workers[0].type, "module");
    assert.equal(workers[0].error, null);
    assert.ok(workers[0].ticks >= 1, "the page ran a timer callback while the worker derived");
    assert.deepEqual(await keysWiped(page), [true], "the key's buffer is zero once handed over");

    await page.getByRole("button", { name: "Lock", exact: true }).click();
    await page.getByLabel("Passphrase", { exact: true }).fill("not the passphrase");
    await page.getByRole("button", { name: "Unlock", exact: true }).click();
    await page.getByText(WRONG_PASSPHRASE).waitFor();
    workers = await workersOf(page);
    assert.equal(workers.length, 2, "the wrong passphrase went through a worker too");
    assert.ok(workers[1].ticks >= 1);
    assert.equal(await page.getByRole("button", { name: "Lock", exact: true }).count(), 0, "still locked");

    await unlock(page, PASS);
    workers = await workersOf(page);
    assert.equal(workers.length, 3);
    assert.ok(workers[2].ticks >= 1, "the page ran a timer callback while the worker derived");
    assert.deepEqual(await keysWiped(page), [true, true, true]);
    assert.deepEqual(errors, []);
  } finally {
    await context.close();
    rmSync(dir, { recursive: true, force: true });
    await server.stop();
  }
});

test("short of memory, set-up and unlock say so plainly and the page stays usable", { skip: NO_BROWSER }, async () => {
  const server = await startNative({ www: WWW });
  const fresh = mkdtempSync(join(tmpdir(), "hush-chromium-"));
  const withVault = mkdtempSync(join(tmpdir(), "hush-chromium-"));
  try {
    // Set-up on a device short of memory.
    await submitShortOfMemory(server, fresh, "Create", "unlock-worker-memory-setup");
    // A vault made on a device with memory, then unlocked with the limit in place.
    const browser = await launchAt(withVault);
    try {
      await browser.page.goto(`${server.url}/`);
      await createPassphrase(browser.page, PASS);
    } finally {
      await browser.context.close();
    }
    await submitShortOfMemory(server, withVault, "Unlock", "unlock-worker-memory-unlock");
  } finally {
    rmSync(fresh, { recursive: true, force: true });
    rmSync(withVault, { recursive: true, force: true });
    await server.stop();
  }
});

test("the split JS API: derive + unlockWithKey opens what createVault made; keys are wiped; wrong keys refused", { skip: NO_BROWSER }, async () => {
  const server = await startNative({ www: WWW });
  const dir = mkdtempSync(join(tmpdir(), "hush-chromium-"));
  const { context, page, errors } = await launchAt(dir);
  try {
    await page.goto(`${server.url}/favicon.svg`);
    const result = await page.evaluate(async () => {
      const m = await import("/pkg/hush.js");
      await m.default();
      const code = (p) => p.then(() => "resolved", (e) => e.code);
      // A vault made the one-step way (fast parameters), passphrase typed precomposed.
      const a = await m.HushClient.open("split-a");
      await a.createVault("caf\u00e9 cr\u00e8me", true);
      a.lock();
      const input = await a.vaultKdfInput();
      // The same passphrase typed decomposed derives the same key (NFC in deriveVaultKey).
      const key = m.deriveVaultKey(input, "cafe\u0301 cre\u0300me");
      const keyLength = key.length;
      const unlocked = await code(a.unlockWithKey(key));
      const wipedAfterUnlock = key.every((b) => b === 0);
      a.lock();
      const wrong = m.deriveVaultKey(input, "another passphrase");
      const wrongCode = await code(a.unlockWithKey(wrong));
      const wipedAfterRefusal = wrong.every((b) => b === 0);
      const short = new Uint8Array(31).fill(7);
      const shortCode = await code(a.unlockWithKey(short));
      const stillLocked = !a.isUnlocked;
      const emptyCode = (() => {
        try {
          m.deriveVaultKey(input, "");
          return "returned";
        } catch (e) {
          return e.code;
        }
      })();
      // The split set-up, then the one-step unlock opens it.
      const b = await m.HushClient.open("split-b");
      const fresh = b.newVaultKdfInput(true);
      const bKey = m.deriveVaultKey(fresh, "split set-up");
      const created = await code(b.createVaultWithKey(fresh, bKey));
      const storedInput = Array.from(await b.vaultKdfInput());
      b.lock();
      const oneStep = await code(b.unlock("split set-up"));
      const again = await code(b.createVaultWithKey(fresh, m.deriveVaultKey(fresh, "split set-up")));
      return {
        keyLength,
        unlocked,
        wipedAfterUnlock,
        wrongCode,
        wipedAfterRefusal,
        shortCode,
        shortWiped: short.every((x) => x === 0),
        stillLocked,
        emptyCode,
        inputLength: input.length,
        created,
        sameInput: JSON.stringify(storedInput) === JSON.stringify(Array.from(fresh)),
        oneStep,
        again,
        codes: { wrong: m.ErrorCode.WrongPassphrase, empty: m.ErrorCode.EmptyPassphrase, exists: m.ErrorCode.VaultExists, internal: m.ErrorCode.Internal },
      };
    });
    assert.deepEqual(result, {
      keyLength: 32,
      unlocked: "resolved",
      wipedAfterUnlock: true,
      wrongCode: result.codes.wrong,
      wipedAfterRefusal: true,
      shortCode: result.codes.internal,
      shortWiped: true,
      stillLocked: true,
      emptyCode: result.codes.empty,
      inputLength: 29,
      created: "resolved",
      sameInput: true,
      oneStep: "resolved",
      again: result.codes.exists,
      codes: result.codes,
    });
    assert.deepEqual(errors, []);
  } finally {
    await context.close();
    rmSync(dir, { recursive: true, force: true });
    await server.stop();
  }
});
