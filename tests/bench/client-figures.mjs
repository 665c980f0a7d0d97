// Figures of the browser client in Debian's headless Chromium, printed (not asserted):
//   * unlock time with the shipped Argon2id parameters (median of 5 unlocks, after one
//     vault creation), as the user waits for it;
//   * bytes the site transfers on a first load (every response body, from a fresh profile);
//   * gzip sizes of the wasm modules.
// Run by `cargo xtask bench` after `cargo xtask build-web` and a mailbox-server build.

import { gzipSync } from "node:zlib";
import { readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { startNative } from "../support/servers.mjs";
import { launch } from "../support/browser.mjs";

const WWW = process.env.HUSH_WWW_DIR ?? resolve(import.meta.dirname, "../../www");
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

const server = await startNative({ www: WWW });
const { context, page } = await launch();
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

  const times = await page.evaluate(async () => {
    const m = await import("/pkg/hush.js");
    await m.default();
    const client = await m.HushClient.open("bench-unlock");
    let t = performance.now();
    await client.createVault("correct horse battery staple");
    const create = performance.now() - t;
    const unlocks = [];
    for (let i = 0; i < 5; i++) {
      client.lock();
      t = performance.now();
      await client.unlock("correct horse battery staple");
      unlocks.push(performance.now() - t);
    }
    return { create, unlocks };
  });
  console.log(`vault creation: ${times.create.toFixed(0)} ms`);
  console.log(`unlock (Argon2id m=128 MiB t=8 p=1): median ${median(times.unlocks).toFixed(0)} ms of [${times.unlocks.map((x) => x.toFixed(0)).join(", ")}]`);

  for (const name of ["hush_bg.wasm", "scan_bg.wasm", "hush.js"]) {
    const bytes = readFileSync(join(WWW, "pkg", name));
    console.log(`${name}: ${bytes.length} bytes raw, ${gzipSync(bytes, { level: 9 }).length} bytes gzip`);
  }
} finally {
  await context.close();
  await server.stop();
}
