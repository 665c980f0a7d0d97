// Debian's headless Chromium, driven by playwright-core (no browser download).

import { chromium } from "playwright-core";
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";

export const ARTIFACTS = process.env.HUSH_ARTIFACTS_DIR ?? resolve(import.meta.dirname, "../artifacts");

/** Flags every run uses: headless, no sandbox (root), nothing that phones home. */
export const CHROMIUM_FLAGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];

/**
 * A persistent Chromium context with a fresh user-data dir (so IndexedDB survives reloads
 * within it). Collects console errors (a failed request's with its path) and page errors into
 * `errors`. With `fastKdf` (the default) the vaults the app creates there take the cheapest
 * Argon2id parameters (`www/unlock.js`, loopback origins only): about 2 s of CPU less per
 * set-up and per unlock, hundreds of times a run. Benches that time unlocking pass `false`.
 */
export async function launch({ extraArgs = [], viewport = { width: 1280, height: 800 }, fastKdf = true } = {}) {
  const userDataDir = mkdtempSync(join(tmpdir(), "hush-chromium-"));
  const context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: process.env.HUSH_CHROMIUM ?? "/usr/bin/chromium",
    headless: true,
    args: [...CHROMIUM_FLAGS, ...extraArgs],
    viewport,
  });
  if (fastKdf) await context.addInitScript(() => Object.defineProperty(globalThis, "hushTestFastKdf", { value: true }));
  // The profile goes with the context: each one holds 5 to 15 MB, and a full run launches
  // a few hundred.
  const close = context.close.bind(context);
  context.close = async (...args) => {
    try {
      await close(...args);
    } finally {
      rmSync(userDataDir, { recursive: true, force: true, maxRetries: 5 });
    }
  };
  const errors = [];
  const watch = (page) => {
    page.on("console", (msg) => {
      if (msg.type() !== "error") return;
      // Which request failed (its path only): "Failed to load resource" names none.
      let where = "";
      try {
        const url = msg.location()?.url;
        if (url && /^Failed to load resource/.test(msg.text())) where = ` [${new URL(url).pathname}]`;
      } catch {
        // No location: the text alone.
      }
      errors.push(`console: ${msg.text()}${where}`);
    });
    page.on("pageerror", (err) => errors.push(`pageerror: ${err.message}`));
  };
  context.pages().forEach(watch);
  context.on("page", watch);
  const page = context.pages()[0] ?? (await context.newPage());
  return { context, page, errors, userDataDir };
}

/** Saves a screenshot under tests/artifacts/NAME.png and returns its path. */
export async function screenshot(page, name) {
  mkdirSync(ARTIFACTS, { recursive: true });
  const path = join(ARTIFACTS, `${name}.png`);
  await page.screenshot({ path, fullPage: true });
  return path;
}

/** Whether browser tests are switched off (`cargo xtask test --no-browser`). */
export const NO_BROWSER = process.env.HUSH_NO_BROWSER === "1";
