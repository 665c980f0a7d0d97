// The site's first load and the first screen after unlocking, printed (not asserted), in
// Debian's headless Chromium against mailbox-server --www, each run in a fresh profile:
//   * what the page fetches until the network is idle (requests, bytes on the wire with
//     headers, bytes decoded), and when the passphrase field is there (ms after navigation);
//   * set-up: from the click on Create to the conversation list; then, after a reload, from
//     the click on Unlock to the list (both include deriving the key, ~1 s);
//   * the modules fetched after the page's first load, by the unlock (lazy ones).
// Usage: node tests/bench/first-load.mjs [RUNS] (after `cargo xtask build-web`).

import { resolve } from "node:path";
import { startNative } from "../support/servers.mjs";
import { launch } from "../support/browser.mjs";

const WWW = process.env.HUSH_WWW_DIR ?? resolve(import.meta.dirname, "../../www");
const RUNS = Number(process.argv[2] ?? 3);
const PASS = "first load correct horse";
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

const server = await startNative({ www: WWW });
const rows = [];
try {
  for (let run = 0; run < RUNS; run++) {
    // The shipped Argon2id parameters: Create and Unlock are timed, derivation included.
    const { context, page } = await launch({ fastKdf: false });
    try {
      const seen = [];
      page.on("requestfinished", async (request) => {
        const sizes = await request.sizes();
        const response = await request.response();
        const body = response ? (await response.body().catch(() => Buffer.alloc(0))).length : 0;
        seen.push({ path: new URL(request.url()).pathname, wire: sizes.responseBodySize + sizes.responseHeadersSize, body });
      });
      await page.goto(`${server.url}/`);
      await page.getByLabel("Passphrase", { exact: true }).waitFor();
      const usable = await page.evaluate(() => Math.round(performance.now()));
      await page.waitForLoadState("networkidle");
      const first = seen.splice(0);
      const timeToList = async (button) => {
        const start = Date.now();
        await page.getByRole("button", { name: button, exact: true }).click();
        await page.waitForFunction(() => document.body.dataset.screen === "home");
        return Date.now() - start;
      };
      await page.getByLabel("Passphrase", { exact: true }).fill(PASS);
      await page.getByLabel("Confirm passphrase", { exact: true }).fill(PASS);
      const created = await timeToList("Create");
      const lazy = seen.splice(0).filter((r) => r.path.endsWith(".js"));
      await page.reload();
      await page.getByLabel("Passphrase", { exact: true }).fill(PASS);
      const unlocked = await timeToList("Unlock");
      rows.push({
        requests: first.length,
        wire: first.reduce((n, r) => n + r.wire, 0),
        decoded: first.reduce((n, r) => n + r.body, 0),
        usable,
        created,
        unlocked,
        lazy: lazy.length,
        lazyWire: lazy.reduce((n, r) => n + r.wire, 0),
      });
      if (run === 0) {
        console.log("first load, run 1:");
        for (const r of first) console.log(`  ${r.path} ${r.wire} B on the wire (${r.body} decoded)`);
        console.log(`fetched by the set-up (modules): ${lazy.map((r) => r.path).join(" ") || "none"}`);
      }
    } finally {
      await context.close();
    }
  }
} finally {
  await server.stop();
}
for (const [i, r] of rows.entries()) {
  console.log(
    `run ${i + 1}: first load ${r.requests} requests, ${r.wire} B on the wire, ${r.decoded} B decoded; passphrase field at ${r.usable} ms; ` +
      `Create → list ${r.created} ms (${r.lazy} modules, ${r.lazyWire} B fetched then); reload, Unlock → list ${r.unlocked} ms`,
  );
}
const m = (k) => median(rows.map((r) => r[k]));
console.log(`median of ${rows.length}: ${m("requests")} requests, ${m("wire")} B on the wire, ${m("decoded")} B decoded; field at ${m("usable")} ms; Create → list ${m("created")} ms; Unlock → list ${m("unlocked")} ms`);
