// The conformance suite against the native `mailbox-server`, plus what only it promises:
// atomic first-write-wins under concurrency, durability of every 201 across kill -9, the
// quota, graceful SIGTERM, and the static site's headers.
//
// Env: HUSH_MAILBOX_SERVER_BIN (path of the built binary), HUSH_WWW_DIR (optional).

import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { randomBytes } from "node:crypto";

import { startNative } from "../support/servers.mjs";
import { bytes, get, newSlot, put, sleep } from "./helpers.mjs";
import { conformanceSuite } from "./suite.mjs";

const MAX_BODY = 1024;
const TTL_SECONDS = 2;

conformanceSuite("native mailbox-server", {
  maxBody: MAX_BODY,
  start: () => startNative({ ttl: TTL_SECONDS, maxBody: MAX_BODY }),
  passTtl: () => sleep(TTL_SECONDS * 1000 + 300),
  ttlMs: TTL_SECONDS * 1000,
});

test("native: 100 concurrent PUTs to one address give exactly one 201", async () => {
  const server = await startNative({ maxBody: MAX_BODY });
  try {
    const slot = newSlot();
    const blobs = Array.from({ length: 100 }, () => randomBytes(64));
    const statuses = await Promise.all(
      blobs.map(async (blob) => {
        const res = await put(server.url, slot, blob);
        await res.arrayBuffer();
        return res.status;
      }),
    );
    const created = statuses.flatMap((s, i) => (s === 201 ? [i] : []));
    assert.equal(created.length, 1, `201s: ${created.length}`);
    assert.equal(statuses.filter((s) => s === 409).length, 99);
    const res = await get(server.url, slot);
    assert.deepEqual(await bytes(res), blobs[created[0]], "the stored blob is the one that got 201");
  } finally {
    await server.stop();
  }
});

test("native: kill -9 during a write load loses no PUT that got 201", async (t) => {
  const dataDir = mkdtempSync(join(tmpdir(), "hush-crash-"));
  try {
    const server = await startNative({ dataDir, maxBody: MAX_BODY });
    const acked = [];
    let failures = 0;
    let stop = false;
    const writer = async () => {
      while (!stop) {
        const slot = newSlot();
        const blob = randomBytes(1 + Math.floor(Math.random() * MAX_BODY));
        try {
          const res = await put(server.url, slot, blob);
          await res.arrayBuffer();
          if (res.status === 201) acked.push([slot, blob]);
        } catch {
          failures += 1; // the connection died with the server: not acknowledged
        }
      }
    };
    const load = async (ms) => {
      stop = false;
      const writers = Array.from({ length: 16 }, writer);
      await sleep(ms);
      return writers;
    };
    // Phase 1, then a pause long enough for the server to checkpoint into redb; phase 2 is
    // cut by kill -9, so its writes live only in the write-ahead log.
    let writers = await load(1000);
    stop = true;
    await Promise.all(writers);
    const checkpointed = acked.length;
    await sleep(2500);
    writers = await load(1500);
    await server.kill9();
    stop = true;
    await Promise.all(writers);
    assert.ok(acked.length > 50 + checkpointed, `enough acknowledged writes before the kill (${acked.length})`);

    const again = await startNative({ dataDir, maxBody: MAX_BODY });
    try {
      const lost = [];
      for (const [slot, blob] of acked) {
        const res = await get(again.url, slot);
        const body = await bytes(res);
        if (res.status !== 200 || !body.equals(blob)) lost.push(slot.addressHex.slice(0, 8));
      }
      assert.deepEqual(lost, [], `every 201 survives (${acked.length} checked, ${failures} in flight)`);
      // First write still wins after recovery, for messages from the store and from the log.
      for (const [slot] of [acked[0], acked[acked.length - 1]]) {
        const res = await put(again.url, slot, randomBytes(16));
        await res.arrayBuffer();
        assert.equal(res.status, 409, "a recovered message keeps its address");
      }
      const recovered = again.output().match(/recovered (\d+) messages from the write-ahead log/);
      assert.ok(recovered && Number(recovered[1]) > 0, "the restart replayed the write-ahead log");
      assert.ok(Number(recovered[1]) < acked.length, "the writes before the pause came from redb");
      t.diagnostic(
        `${acked.length} acknowledged PUTs re-read after kill -9 (${checkpointed} checkpointed, ${recovered[1]} from the log); ${failures} in flight`,
      );
    } finally {
      await again.stop();
    }
  } finally {
    rmSync(dataDir, { recursive: true, force: true });
  }
});

test("native: the store quota answers 507 and nothing more is stored", async () => {
  const server = await startNative({ maxBody: 64, quota: 100 });
  try {
    const first = newSlot();
    let res = await put(server.url, first, randomBytes(64));
    assert.equal(res.status, 201);
    await res.arrayBuffer();
    const second = newSlot();
    res = await put(server.url, second, randomBytes(64));
    assert.equal(res.status, 507);
    assert.equal(res.headers.get("access-control-allow-origin"), "*");
    await res.arrayBuffer();
    res = await get(server.url, second);
    assert.equal(res.status, 404);
    await res.arrayBuffer();
    res = await put(server.url, newSlot(), randomBytes(36));
    assert.equal(res.status, 201, "a write that still fits is accepted");
    await res.arrayBuffer();
  } finally {
    await server.stop();
  }
});

test("native: SIGTERM shuts down gracefully with exit code 0", async () => {
  const server = await startNative();
  const res = await put(server.url, newSlot(), "bye");
  assert.equal(res.status, 201);
  await res.arrayBuffer();
  await server.stop();
  assert.equal(server.child.exitCode, 0, server.output());
  assert.match(server.output(), /^mailbox-server listening on http:\/\/127\.0\.0\.1:\d+$/m);
});

test("native: --www serves the site with a strict CSP; the API keeps its own headers", async () => {
  const www = mkdtempSync(join(tmpdir(), "hush-www-"));
  writeFileSync(join(www, "index.html"), "<!doctype html><title>t</title>");
  const server = await startNative({ www });
  try {
    const page = await fetch(`${server.url}/`);
    assert.equal(page.status, 200);
    await page.text();
    const csp = page.headers.get("content-security-policy") ?? "";
    for (const directive of [
      "default-src 'self'",
      "script-src 'self' 'wasm-unsafe-eval'",
      "connect-src *",
      "object-src 'none'",
      "base-uri 'none'",
      "frame-ancestors 'none'",
    ]) {
      assert.ok(csp.includes(directive), `CSP has ${directive}: ${csp}`);
    }
    assert.equal(page.headers.get("server"), null);
    const api = await fetch(`${server.url}/v1/health`);
    assert.equal(api.status, 200);
    assert.equal(api.headers.get("cache-control"), "no-store");
    await api.text();
    const missing = await fetch(`${server.url}/v1/m/${"0".repeat(64)}`);
    assert.equal(missing.status, 404);
    await missing.text();
    // A path no file can have (a segment over NAME_MAX, 255 bytes): not found, not a 500.
    for (const path of [`/${"a".repeat(256)}`, `/x/${"a".repeat(300)}/y`]) {
      const long = await fetch(`${server.url}${path}`);
      assert.equal(long.status, 404, path.length);
      await long.text();
    }
  } finally {
    await server.stop();
    rmSync(www, { recursive: true, force: true });
  }
});
