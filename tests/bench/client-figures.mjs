// Figures of the browser client in Debian's headless Chromium, printed (not asserted):
//   * vault creation and unlock time with the shipped Argon2id parameters (median of 7
//     unlocks), as the user waits for it, and the longest task on the page's thread meanwhile,
//     with the key derived on the page's thread (the old way) and in a Web Worker (the app's);
//   * bytes the site transfers on a first load (every response body, from a fresh profile);
//   * gzip sizes of the wasm modules.
// Run by `cargo xtask bench` after `cargo xtask build-web` and a mailbox-server build.

import { gzipSync } from "node:zlib";
import { readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { startNative } from "../support/servers.mjs";
import { launch } from "../support/browser.mjs";

const WWW = process.env.HUSH_WWW_DIR ?? resolve(import.meta.dirname, "../../www");
/** Unlocks timed each way. */
const RUNS = 7;
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

const server = await startNative({ www: WWW });
const { context, page } = await launch({ fastKdf: false });
try {
  // Bytes on the wire: encoded (gzip) bodies plus headers, as the browser received them.
  let transferred = 0;
  let decoded = 0;
  const seen = [];
  page.on("requestfinished", async (request) => {
    const sizes = await request.sizes();
    const response = await request.response();
    const body = response ? (await response.body().catch(() => Buffer.alloc(0))).length : 0;
    transferred += sizes.responseBodySize + sizes.responseHeadersSize;
    decoded += body;
    seen.push(`${new URL(request.url()).pathname} ${sizes.responseBodySize} on the wire (${body} decoded)`);
  });
  await page.goto(`${server.url}/`);
  await page.waitForLoadState("networkidle");
  console.log(`first load: ${transferred} bytes transferred (headers included), ${decoded} bytes decoded, in ${seen.length} responses`);
  for (const line of seen) console.log(`  ${line}`);

  // Unlock both ways on one vault, alternating: Argon2id on the page's thread
  // (client.unlock, as the app did before issue #12) and in a Web Worker (www/unlock.js, as
  // the app does now), each timed and watched by a PerformanceObserver for long tasks (> 50 ms)
  // on the page's thread; the longest one that started during the unlock is reported.
  const figures = await page.evaluate(async (runs) => {
    const m = await import("/pkg/hush.js");
    await m.default();
    const { unlockInWorker, createVaultInWorker } = await import("/unlock.js");
    const pass = "correct horse battery staple";
    const longTasks = [];
    new PerformanceObserver((list) => longTasks.push(...list.getEntries())).observe({ type: "longtask" });
    const settle = () => new Promise((ok) => requestAnimationFrame(() => setTimeout(ok, 100)));
    const measure = async (run) => {
      await settle();
      const start = performance.now();
      await run();
      const ms = performance.now() - start;
      await settle(); // Long-task entries arrive after the task.
      const during = longTasks.filter((t) => t.startTime >= start - 1 && t.startTime <= start + ms);
      return { ms, longest: Math.max(0, ...during.map((t) => t.duration)) };
    };
    const mainClient = await m.HushClient.open("bench-create-main");
    const workerClient = await m.HushClient.open("bench-create-worker");
    const create = {
      main: await measure(() => mainClient.createVault(pass)),
      worker: await measure(() => createVaultInWorker(workerClient, pass)),
    };
    const unlock = { main: [], worker: [] };
    for (let i = 0; i < runs; i++) {
      mainClient.lock();
      unlock.main.push(await measure(() => mainClient.unlock(pass)));
      mainClient.lock();
      unlock.worker.push(await measure(() => unlockInWorker(mainClient, pass)));
    }
    return { create, unlock };
  }, RUNS);
  const ms = (x) => `${x.toFixed(0)} ms`;
  for (const way of ["main", "worker"]) {
    const label = way === "main" ? "on the page's thread" : "in a Web Worker";
    const c = figures.create[way];
    const u = figures.unlock[way];
    console.log(`vault creation ${label}: ${ms(c.ms)}, longest main-thread task ${ms(c.longest)}`);
    console.log(
      `unlock ${label} (Argon2id m=128 MiB t=8 p=1): median ${ms(median(u.map((r) => r.ms)))} of [${u.map((r) => r.ms.toFixed(0)).join(", ")}]; ` +
        `longest main-thread task: median ${ms(median(u.map((r) => r.longest)))}, max ${ms(Math.max(...u.map((r) => r.longest)))}`,
    );
  }

  // The same through the app's own screens (www/app.js): from the click on Create or Unlock
  // until the Lock button shows, with the long tasks on the page's thread meanwhile.
  await page.evaluate(() => {
    window.__longTasks = [];
    new PerformanceObserver((list) => window.__longTasks.push(...list.getEntries().map((t) => [t.startTime, t.duration]))).observe({ type: "longtask" });
  });
  const inApp = async (button) => {
    await page.getByLabel("Passphrase", { exact: true }).fill("correct horse battery staple");
    const start = await page.evaluate(() => performance.now());
    await page.getByRole("button", { name: button, exact: true }).click();
    await page.getByRole("button", { name: "Lock", exact: true }).waitFor({ timeout: 60_000 });
    const end = await page.evaluate(() => new Promise((ok) => requestAnimationFrame(() => setTimeout(() => ok(performance.now()), 100))));
    const longest = await page.evaluate(([a, b]) => Math.max(0, ...window.__longTasks.filter(([t]) => t >= a && t <= b).map(([, d]) => d)), [start, end]);
    return { ms: end - 100 - start, longest };
  };
  const appCreate = await inApp("Create");
  const appUnlocks = [];
  for (let i = 0; i < RUNS; i++) {
    await page.getByRole("button", { name: "Lock", exact: true }).click();
    appUnlocks.push(await inApp("Unlock"));
  }
  console.log(`in the app: set-up ${ms(appCreate.ms)} (longest main-thread task ${ms(appCreate.longest)}); unlock median ${ms(median(appUnlocks.map((r) => r.ms)))} (as the driver sees the Lock button), longest main-thread task max ${ms(Math.max(...appUnlocks.map((r) => r.longest)))}`);

  for (const name of ["hush_bg.wasm", "scan_bg.wasm", "hush.js"]) {
    const bytes = readFileSync(join(WWW, "pkg", name));
    console.log(`${name}: ${bytes.length} bytes raw, ${gzipSync(bytes, { level: 9 }).length} bytes gzip`);
  }
} finally {
  await context.close();
  await server.stop();
}
