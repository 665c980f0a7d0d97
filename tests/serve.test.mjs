// `cargo xtask serve` — the README's first command — builds everything and serves a page that
// loads the wasm client in Chromium.

import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { freePort } from "./support/servers.mjs";
import { launch, screenshot, NO_BROWSER } from "./support/browser.mjs";

const ROOT = resolve(import.meta.dirname, "..");

test("cargo xtask serve serves the app, and it loads in Chromium", { skip: NO_BROWSER, timeout: 900_000 }, async () => {
  const port = await freePort();
  const data = mkdtempSync(join(tmpdir(), "hush-serve-"));
  let out = "";
  // Own process group, so stopping it also stops the mailbox-server it starts.
  const child = spawn("cargo", ["xtask", "serve", "--listen", `127.0.0.1:${port}`, "--data", data], {
    cwd: ROOT,
    detached: true,
    stdio: ["ignore", "pipe", "pipe"],
  });
  const exited = new Promise((ok) => child.once("exit", ok));
  try {
    await new Promise((ok, fail) => {
      const onData = (chunk) => {
        out += chunk;
        if (out.includes("listening on http://")) ok();
      };
      child.stdout.on("data", onData);
      child.stderr.on("data", onData);
      child.once("exit", (code) => fail(new Error(`cargo xtask serve exited (${code}):\n${out}`)));
    });
    assert.match(out, new RegExp(`open http://127\\.0\\.0\\.1:${port}/`), "serve prints the URL");

    const { context, page, errors } = await launch();
    try {
      await page.goto(`http://127.0.0.1:${port}/`);
      await page.waitForSelector("body[data-state=ready]", { timeout: 15_000 });
      assert.match(await page.textContent("#status"), /Client ready/);
      await screenshot(page, "serve-home");
      assert.deepEqual(errors, []);
    } finally {
      await context.close();
    }
  } finally {
    try {
      process.kill(-child.pid, "SIGTERM");
    } catch {}
    await exited;
    // cargo is gone, but the mailbox-server it started (same process group) may still be
    // closing its files: retry for up to 10 s, and stop the group for good half way.
    for (let attempt = 0; ; attempt += 1) {
      try {
        rmSync(data, { recursive: true, force: true });
        break;
      } catch (err) {
        if (attempt === 20) throw err;
        if (attempt === 10) {
          try {
            process.kill(-child.pid, "SIGKILL");
          } catch {}
        }
        await new Promise((done) => setTimeout(done, 500));
      }
    }
  }
});
