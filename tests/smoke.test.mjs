// Smoke proofs that each real part runs: the native server answers and serves the site, the
// edge worker answers inside workerd, and the wasm client runs in Chromium and keeps a value in
// IndexedDB across a page reload.

import { test } from "node:test";
import assert from "node:assert/strict";
import { resolve } from "node:path";
import { startNative, startWorker } from "./support/servers.mjs";
import { launch, screenshot, NO_BROWSER } from "./support/browser.mjs";

const WWW = process.env.HUSH_WWW_DIR ?? resolve(import.meta.dirname, "../www");

test("native mailbox answers health and serves the site", async () => {
  const server = await startNative({ www: WWW });
  try {
    const health = await fetch(`${server.url}/v1/health`);
    assert.equal(health.status, 200);
    const index = await fetch(`${server.url}/`);
    assert.equal(index.status, 200);
    assert.match(await index.text(), /<title>Hush<\/title>/);
    const wasm = await fetch(`${server.url}/pkg/hush_bg.wasm`);
    assert.equal(wasm.status, 200);
    assert.equal(wasm.headers.get("content-type"), "application/wasm");
  } finally {
    await server.stop();
  }
});

test("native mailbox serves the app for a link whose # became %23", async () => {
  const server = await startNative({ www: WWW });
  try {
    for (const path of ["/%23AQAB-_x", "/%2523AQAB", "/%23aqab"]) {
      const page = await fetch(`${server.url}${path}`);
      assert.equal(page.status, 200, path);
      assert.match(await page.text(), /<title>Hush<\/title>/, path);
      assert.equal(page.headers.get("cache-control"), "no-store", path);
      assert.ok(page.headers.get("content-security-policy"), path);
    }
    assert.equal((await fetch(`${server.url}/x%23AQ`)).status, 404);
  } finally {
    await server.stop();
  }
});

test("edge worker answers health inside workerd", async () => {
  const worker = await startWorker();
  try {
    const health = await fetch(`${worker.url}/v1/health`);
    assert.equal(health.status, 200);
    assert.equal(health.headers.get("cache-control"), "no-store");
  } finally {
    await worker.stop();
  }
});

test("wasm client loads in Chromium and keeps an IndexedDB record across a reload", { skip: NO_BROWSER }, async () => {
  const server = await startNative({ www: WWW });
  const { context, page, errors } = await launch();
  try {
    await page.goto(`${server.url}/`);
    await page.waitForSelector("body[data-state=ready]", { timeout: 15_000 });
    await screenshot(page, "smoke-served-page");

    const written = crypto.randomUUID();
    await page.evaluate(async (value) => {
      const m = await import("/pkg/hush.js");
      await m.default();
      const store = await m.RecordStore.open("hush-smoke");
      await store.put("smoke", new TextEncoder().encode(value));
      store.close();
    }, written);

    await page.reload();
    await page.waitForSelector("body[data-state=ready]");
    const read = await page.evaluate(async () => {
      const m = await import("/pkg/hush.js");
      await m.default();
      const store = await m.RecordStore.open("hush-smoke");
      const bytes = await store.get("smoke");
      store.close();
      return bytes ? new TextDecoder().decode(bytes) : null;
    });
    assert.equal(read, written);
    assert.deepEqual(errors, [], "no console errors");
  } finally {
    await context.close();
    await server.stop();
  }
});
