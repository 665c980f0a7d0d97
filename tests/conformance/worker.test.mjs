// The conformance suite against the edge worker in workerd (miniflare, local KV), plus what
// only it promises: misses kept off KV, bulk reads for fetch, KV reads counted per request.
//
// Env: HUSH_EDGE_WORKER_DIR (edge-worker/build, from `cargo xtask build-worker`).

import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";

import { startWorker } from "../support/servers.mjs";
import { bytes, fetchBatch, get, newSlot, parseFrames, put, sleep } from "./helpers.mjs";
import { conformanceSuite } from "./suite.mjs";

const MAX_BODY = 1024;
const TTL_SECONDS = 60; // Workers KV's minimum

conformanceSuite("edge worker in workerd", {
  maxBody: MAX_BODY,
  start: () => startWorker({ ttl: TTL_SECONDS, maxBody: MAX_BODY, fakeTime: true }),
  // KV's clock is fake: move it past the TTL instead of waiting a minute.
  passTtl: (host) => host.advanceKvTime((TTL_SECONDS + 1) * 1000),
});

/** The `kv_keys_read` / `kv_read_calls` counts the worker logged for the next request. */
async function kvReads(host, send) {
  const before = host.output().length;
  const res = await send();
  const body = await bytes(res);
  const pattern = /mailbox: kv_keys_read=(\d+) kv_read_calls=(\d+)/;
  for (let i = 0; i < 100; i += 1) {
    const match = host.output().slice(before).match(pattern);
    if (match) return { res, body, keys: Number(match[1]), calls: Number(match[2]) };
    await sleep(10);
  }
  throw new Error("the worker logged no KV read count");
}

describe("edge worker: KV reads", () => {
  let host;
  before(async () => {
    host = await startWorker({
      ttl: TTL_SECONDS,
      maxBody: MAX_BODY,
      vars: { MAILBOX_LOG_KV_READS: "true", MAILBOX_MISS_CACHE_SECONDS: "30" },
    });
  });
  after(async () => {
    await host?.stop();
  });

  test("a GET miss reads KV once, then is answered from the miss cache until a PUT clears it", async () => {
    const slot = newSlot();
    let r = await kvReads(host, () => get(host.url, slot));
    assert.deepEqual([r.res.status, r.keys], [404, 1]);
    r = await kvReads(host, () => get(host.url, slot));
    assert.deepEqual([r.res.status, r.keys], [404, 0], "second miss costs no KV read");
    r = await kvReads(host, () => put(host.url, slot, "now here"));
    assert.deepEqual([r.res.status, r.keys], [201, 1], "PUT reads once to keep first-write-wins");
    r = await kvReads(host, () => get(host.url, slot));
    assert.deepEqual([r.res.status, r.keys], [200, 1], "the PUT cleared the cached miss");
    assert.equal(r.body.toString(), "now here");
  });

  test("a fetch of 16 addresses is one bulk KV call; cached misses are not read again", async (t) => {
    const slots = Array.from({ length: 16 }, newSlot);
    const present = slots.slice(0, 4);
    for (const s of present) {
      const res = await put(host.url, s, randomBytes(32));
      assert.equal(res.status, 201);
      await res.arrayBuffer();
    }
    const batch = slots.map((s) => s.address);
    let r = await kvReads(host, () => fetchBatch(host.url, batch));
    assert.equal(r.res.status, 200);
    assert.equal(parseFrames(r.body).length, 4);
    assert.deepEqual([r.keys, r.calls], [16, 1], "first poll: 16 keys in one bulk read");

    r = await kvReads(host, () => fetchBatch(host.url, batch));
    assert.deepEqual([r.keys, r.calls], [4, 1], "second poll: only the 4 hits are read");
    assert.equal(parseFrames(r.body).length, 4);

    const late = slots[10];
    const res = await put(host.url, late, "late");
    assert.equal(res.status, 201);
    await res.arrayBuffer();
    r = await kvReads(host, () => fetchBatch(host.url, batch));
    assert.deepEqual([r.keys, r.calls], [5, 1], "the new message is read again at once");
    const frames = parseFrames(r.body);
    assert.deepEqual(
      frames.map((f) => f.address),
      [...present, late].map((s) => s.addressHex),
    );
    t.diagnostic(`KV keys read per 16-address fetch: first poll 16, repeat poll 4 (12 misses cached)`);
  });

  test("a fetch of 256 addresses takes three bulk reads (KV allows 100 keys per read)", async () => {
    const batch = Array.from({ length: 256 }, () => newSlot().address);
    const r = await kvReads(host, () => fetchBatch(host.url, batch));
    assert.equal(r.res.status, 200);
    assert.deepEqual([r.keys, r.calls], [256, 3]);
  });
});

test("edge worker: a TTL below KV's 60 s minimum is raised to 60 s, not rejected", async () => {
  const host = await startWorker({ ttl: 5, fakeTime: true });
  try {
    const slot = newSlot();
    let res = await put(host.url, slot, "x");
    assert.equal(res.status, 201);
    await res.arrayBuffer();
    await host.advanceKvTime(30_000);
    res = await get(host.url, slot);
    assert.equal(res.status, 200, "still there after 30 s");
    await res.arrayBuffer();
    await host.advanceKvTime(31_000);
    res = await get(host.url, slot);
    assert.equal(res.status, 404, "gone after 61 s");
    await res.arrayBuffer();
  } finally {
    await host.stop();
  }
});
