// The conformance suite against the edge worker in workerd (miniflare, SQLite-backed Durable
// Objects), with one shard and with four (the suite's own "100 concurrent PUTs, exactly one
// 201, the stored blob is the winner's" thus runs in a hub shard and across shards), plus
// what only the edge promises: fetches spanning every shard answered in request order,
// the billable operations each request and WebSocket event spends (MAILBOX_LOG_OPS; delete
// messages over the subscription and put-backs included), the
// watch-set timeout, and subscriptions that outlive the hub's hibernation. Expiry (bucket
// tables dropped by the alarm, a legacy table kept serving) is in worker-expiry.test.mjs.
//
// Env: HUSH_EDGE_WORKER_DIR (edge-worker/build, from `cargo xtask build-worker`).

import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";

import { startWorker } from "../support/servers.mjs";
import { bytes, del, fetchBatch, get, newSlot, parseFrames, put, sleep, subscribe } from "./helpers.mjs";
import { conformanceSuite } from "./suite.mjs";

const MAX_BODY = 1024;
// Durable Objects have no minimum lifetime: expiry tests wait two seconds, not a minute.
const TTL_SECONDS = 2;

conformanceSuite("edge worker in workerd", {
  maxBody: MAX_BODY,
  start: () => startWorker({ ttl: TTL_SECONDS, maxBody: MAX_BODY }),
  passTtl: () => sleep(TTL_SECONDS * 1000 + 300),
  ttlMs: TTL_SECONDS * 1000,
  upgradeHeader: false,
});

conformanceSuite("edge worker in workerd, 4 shards (watch sets and fetches span shards)", {
  maxBody: MAX_BODY,
  start: () => startWorker({ ttl: TTL_SECONDS, maxBody: MAX_BODY, shards: 4 }),
  passTtl: () => sleep(TTL_SECONDS * 1000 + 300),
  ttlMs: TTL_SECONDS * 1000,
  upgradeHeader: false,
});

/** The shard of an address (hex) among `shards`, as edge-worker/src/sharding.rs computes it. */
function shardOf(addressHex, shards) {
  const prefix = Number.parseInt(addressHex.slice(0, 8), 16);
  return Math.floor((prefix * shards) / 2 ** 32);
}

/** A fresh slot whose address lies in shard `shard` of `shards`. */
function slotInShard(shard, shards) {
  for (;;) {
    const slot = newSlot();
    if (shardOf(slot.addressHex, shards) === shard) return slot;
  }
}

const OPS = /mailbox: ops event=(\w+) do_requests=(\d+) rows_read=(\d+) rows_written=(\d+) alarms_set=(\d+) ws_in=(\d+) ws_out=(\d+)/g;

/** Every ops line printed in `text`, as objects. */
function opsLines(text) {
  return [...text.matchAll(OPS)].map((m) => ({
    event: m[1],
    do: Number(m[2]),
    read: Number(m[3]),
    written: Number(m[4]),
    alarms: Number(m[5]),
    wsIn: Number(m[6]),
    wsOut: Number(m[7]),
  }));
}

/** Waits until the host printed `count` ops lines of `event` after output offset `from`. */
async function awaitOps(host, from, event, count = 1) {
  for (let i = 0; i < 300; i += 1) {
    const lines = opsLines(host.output().slice(from)).filter((l) => l.event === event);
    if (lines.length >= count) return lines;
    await sleep(10);
  }
  throw new Error(`the worker logged no ${event} ops line`);
}

/** Sends one request and returns its response with the ops line the front Worker logged. */
async function measured(host, send) {
  const from = host.output().length;
  const res = await send();
  const body = await bytes(res);
  const [ops] = await awaitOps(host, from, "request");
  const { event, ...counts } = ops;
  return { res, body, ops: counts };
}

/**
 * Waits, if needed, until the wall clock is at least `marginMs` away from the next edge of
 * the expiry buckets (`widthMs`, edge-worker/src/sql/buckets.rs: 1 day with the default 7-day
 * TTL, i.e. UTC midnight), so that the PUTs of a test all fall in a bucket its warm-up
 * created: the first PUT into a new bucket also creates its table (1 row read, 2 written).
 */
async function awayFromBucketEdge(widthMs = 86_400_000, marginMs = 60_000) {
  const left = widthMs - (Date.now() % widthMs);
  if (left < marginMs) await sleep(left + 1000);
}

const spent = (counts) => ({ do: 0, read: 0, written: 0, alarms: 0, wsIn: 0, wsOut: 0, ...counts });

/** The delete message of the slots' write keys (docs/MAILBOX-API.md, revision 1.2). */
const deleteMessage = (slots) => Buffer.concat([Buffer.from([0x44]), ...slots.map((s) => s.key)]);

/** Sends `data` on `sub` and returns the ops line of the hub's `ws_message` event for it. */
async function measuredMessage(host, sub, data) {
  const from = host.output().length;
  sub.send(data);
  const [line] = await awaitOps(host, from, "ws_message");
  const { event: _e, ...counts } = line;
  return counts;
}

test("edge worker (8 shards): a fetch spanning every shard is answered in request order, one request per shard", async () => {
  const SHARDS = 8;
  const host = await startWorker({ maxBody: MAX_BODY, shards: SHARDS, logOps: true });
  try {
    const present = Array.from({ length: SHARDS }, (_, i) => slotInShard(i, SHARDS));
    const missing = Array.from({ length: SHARDS }, (_, i) => slotInShard(i, SHARDS));
    const blobs = new Map(present.map((s) => [s.addressHex, randomBytes(1 + Math.floor(Math.random() * MAX_BODY))]));
    for (const s of present) {
      const res = await put(host.url, s, blobs.get(s.addressHex));
      assert.equal(res.status, 201);
      await res.arrayBuffer();
    }
    // Interleaved shards, a duplicate, misses in between.
    const order = [present[7], missing[0], present[2], present[0], missing[5], present[2], present[5], present[1], present[6], present[3], missing[7], present[4]];
    const r = await measured(host, () => fetchBatch(host.url, order.map((s) => s.address)));
    assert.equal(r.res.status, 200);
    const want = order.filter((s) => blobs.has(s.addressHex)).map((s) => ({ address: s.addressHex, body: blobs.get(s.addressHex) }));
    assert.deepEqual(parseFrames(r.body), want);
    assert.equal(r.ops.do, SHARDS, "one Durable Object request per shard touched");
  } finally {
    await host.stop();
  }
});

describe("edge worker: billable operations per request (MAILBOX_LOG_OPS)", () => {
  let host;
  before(async () => {
    await awayFromBucketEdge();
    host = await startWorker({ maxBody: MAX_BODY, logOps: true });
    // Wake the shard once, so that the counts below exclude its table list (read once per
    // instance) and the creation of the current bucket's table.
    const res = await put(host.url, newSlot(), "warm-up");
    await res.arrayBuffer();
  });
  after(async () => {
    await host?.stop();
  });

  test("GET, PUT, fetch, DELETE: one Durable Object request each; rows read only for what is found, whatever the number of bucket tables", async (t) => {
    const slot = newSlot();
    const table = [];
    const check = async (what, send, status, want) => {
      const r = await measured(host, send);
      assert.equal(r.res.status, status, what);
      assert.deepEqual(r.ops, spent(want), what);
      table.push(`${what}: ${JSON.stringify(r.ops)}`);
      return r;
    };
    await check("GET miss", () => get(host.url, slot), 404, { do: 1 });
    await check("PUT 201", () => put(host.url, slot, "here"), 201, { do: 1, read: 1, written: 1 });
    // A refused PUT reads the row it found in the look-up of every live bucket (which tells a
    // live message, 409, from a spent address: 410 for the deleted bytes, 409 for others).
    await check("PUT 409", () => put(host.url, slot, "again"), 409, { do: 1, read: 1 });
    await check("GET hit", () => get(host.url, slot), 200, { do: 1, read: 1 });
    const poll = [slot, ...Array.from({ length: 47 }, newSlot)].map((s) => s.address);
    const r = await check("fetch of 48, 1 found", () => fetchBatch(host.url, poll), 200, { do: 1, read: 1 });
    assert.equal(parseFrames(r.body).length, 1);
    await check("fetch of 256, none found", () => fetchBatch(host.url, Array.from({ length: 256 }, () => newSlot().address)), 200, { do: 1 });
    // The look-up finds the row's bucket (1 read), the update empties it (1 read, 1 written).
    await check("DELETE", () => del(host.url, slot), 204, { do: 1, read: 2, written: 1 });
    // A PUT at the spent address reads the digest the DELETE recorded with the row it finds
    // anyway: the same bytes are 410, other bytes 409, for the cost of a refused PUT.
    await check("PUT 410 (spent, the deleted bytes)", () => put(host.url, slot, "here"), 410, { do: 1, read: 1 });
    await check("PUT 409 (spent, other bytes)", () => put(host.url, slot, "again"), 409, { do: 1, read: 1 });
    await check("DELETE again (spent: the emptied row is read)", () => del(host.url, slot), 204, { do: 1, read: 1 });
    await check("DELETE of nothing", () => del(host.url, newSlot()), 204, { do: 1 });
    // A put-back (revision 1.3) is a PUT's look-up (1 read), then for the deleted bytes the
    // update of that row in place (1 read, 1 written), as a DELETE; otherwise a PUT's cost.
    await check("PUT back 201 (spent, the deleted bytes)", () => put(host.url, slot, "here", { putBack: "?1" }), 201, { do: 1, read: 2, written: 1 });
    await check("PUT back 409 (live)", () => put(host.url, slot, "here", { putBack: "?1" }), 409, { do: 1, read: 1 });
    await check("GET hit after the put-back", () => get(host.url, slot), 200, { do: 1, read: 1 });
    await check("DELETE after the put-back", () => del(host.url, slot), 204, { do: 1, read: 2, written: 1 });
    await check("PUT back 409 (spent, other bytes)", () => put(host.url, slot, "again", { putBack: "?1" }), 409, { do: 1, read: 1 });
    await check("PUT back 201 (free: a first write)", () => put(host.url, newSlot(), "new", { putBack: "?1" }), 201, { do: 1, read: 1, written: 1 });
    await check("PUT back 400 (bad header)", () => put(host.url, slot, "here", { putBack: "1" }), 400, {});
    await check("PUT 400 (bad key)", () => put(host.url, slot, "x", { key: "00" }), 400, {});
    await check("health", () => fetch(`${host.url}/v1/health`), 200, {});
    t.diagnostic(table.join("; "));
  });

  test("a subscription: opening is one request, a watch set one incoming message that reads the rows found, a push costs the PUT nothing more", async (t) => {
    const [a, b] = [newSlot(), newSlot()];
    let res = await put(host.url, a, "before");
    await res.arrayBuffer();
    let from = host.output().length;
    const sub = await subscribe(host.url);
    try {
      const [open] = await awaitOps(host, from, "request");
      assert.equal(open.do, 1, "opening: one Durable Object request");
      from = host.output().length;
      sub.watch([a, b, ...Array.from({ length: 46 }, newSlot)]);
      const snapshot = await sub.next();
      assert.equal(snapshot.frames.length, 1);
      const [watch] = await awaitOps(host, from, "ws_message");
      const { event: _w, ...watchOps } = watch;
      assert.deepEqual(watchOps, spent({ wsIn: 1, wsOut: 1, read: 1 }), "watch set of 48, 1 found");
      const r = await measured(host, () => put(host.url, b, "pushed"));
      assert.equal(r.res.status, 201);
      assert.deepEqual(r.ops, spent({ do: 1, read: 1, written: 1, wsOut: 1 }), "PUT with one watcher");
      const push = await sub.next();
      assert.deepEqual(push.frames.map((f) => f.body.toString()), ["pushed"]);
      t.diagnostic(`open ${JSON.stringify(open)}; watch set ${JSON.stringify(watchOps)}; PUT+push ${JSON.stringify(r.ops)}`);
    } finally {
      await sub.close();
    }
  });
  test("a delete message over the subscription: one incoming message with a DELETE's rows, no Durable Object request, nothing sent", async (t) => {
    const [slot, never] = [newSlot(), newSlot()];
    const res = await put(host.url, slot, "read");
    await res.arrayBuffer();
    const sub = await subscribe(host.url);
    try {
      // The same rows as `DELETE` in the test above ({ do: 1, read: 2, written: 1 }), without
      // its Worker and Durable Object requests: the hub is the only shard.
      const one = await measuredMessage(host, sub, deleteMessage([slot]));
      assert.deepEqual(one, spent({ wsIn: 1, read: 2, written: 1 }), "delete message of one stored blob");
      const again = await measuredMessage(host, sub, deleteMessage([slot, never]));
      assert.deepEqual(again, spent({ wsIn: 1, read: 1 }), "a spent address and an empty one");
      assert.equal(await get(host.url, slot).then((r) => r.status), 410, "deleted: spent");
      assert.equal(sub.pending(), 0, "nothing sent back");
      t.diagnostic(`delete message of 1: ${JSON.stringify(one)}; of a spent and an empty address: ${JSON.stringify(again)}`);
    } finally {
      await sub.close();
    }
  });
});

test("edge worker (4 shards): a PUT outside the hub's shard is one more request (the notify); cross-shard watch sets read each shard once", async (t) => {
  const SHARDS = 4;
  await awayFromBucketEdge();
  const host = await startWorker({ maxBody: MAX_BODY, shards: SHARDS, logOps: true });
  const sub = await subscribe(host.url);
  try {
    const inHub = slotInShard(0, SHARDS);
    const elsewhere = [1, 2, 3].map((i) => slotInShard(i, SHARDS));
    for (const i of [0, 1, 2, 3]) {
      // Wake every shard once, so that the counts below exclude their table lists and the
      // creation of the current bucket's table.
      const res = await put(host.url, slotInShard(i, SHARDS), "warm-up");
      await res.arrayBuffer();
    }
    let from = host.output().length;
    sub.watch([inHub, ...elsewhere]);
    assert.equal((await sub.next()).frames.length, 0);
    const [watch] = await awaitOps(host, from, "ws_message");
    assert.equal(watch.do, SHARDS - 1, "the hub reads its own shard locally, the 3 others by one request each");
    let r = await measured(host, () => put(host.url, inHub, "hub shard"));
    assert.deepEqual(r.ops, spent({ do: 1, read: 1, written: 1, wsOut: 1, alarms: r.ops.alarms }));
    r = await measured(host, () => put(host.url, elsewhere[1], "other shard"));
    assert.equal(r.ops.do, 2, "store in shard 2, then notify the hub");
    assert.equal(r.ops.wsOut, 1);
    const pushed = [await sub.next(), await sub.next()].map((m) => m.frames[0].body.toString());
    assert.deepEqual(pushed, ["hub shard", "other shard"]);
    // A delete message: the hub's own address locally, the other by one request to its shard,
    // each with a DELETE's rows (2 read, 1 written).
    const deleted = await measuredMessage(host, sub, deleteMessage([inHub, elsewhere[1]]));
    assert.deepEqual(deleted, spent({ do: 1, wsIn: 1, read: 4, written: 2 }));
    sub.watch([inHub, elsewhere[1]]);
    assert.deepEqual(
      (await sub.next()).frames.map((f) => [f.address, f.body.length]),
      [[inHub.addressHex, 0], [elsewhere[1].addressHex, 0]],
      "both deleted (spent)",
    );
    // Put back, each pushed as a PUT is: in the hub's shard by the hub itself, outside it
    // by one more request (the notify). The row keeps its bucket: no alarm is set.
    const back = await measured(host, () => put(host.url, inHub, "hub shard", { putBack: "?1" }));
    assert.equal(back.res.status, 201);
    assert.deepEqual(back.ops, spent({ do: 1, read: 2, written: 1, wsOut: 1 }), "put-back in the hub's shard");
    const backElsewhere = await measured(host, () => put(host.url, elsewhere[1], "other shard", { putBack: "?1" }));
    assert.equal(backElsewhere.res.status, 201);
    assert.deepEqual(backElsewhere.ops, spent({ do: 2, read: 2, written: 1, wsOut: 1 }), "put-back outside the hub's shard: store, then notify");
    const pushedBack = [await sub.next(), await sub.next()].map((m) => m.frames.map((f) => [f.address, f.body.toString()]));
    assert.deepEqual(pushedBack, [[[inHub.addressHex, "hub shard"]], [[elsewhere[1].addressHex, "other shard"]]]);
    t.diagnostic(`4 shards: watch set over 4 shards ${JSON.stringify(watch)}; PUT outside the hub ${JSON.stringify(r.ops)}; delete message of 2, one outside the hub ${JSON.stringify(deleted)}; put-back in the hub ${JSON.stringify(back.ops)}, outside it ${JSON.stringify(backElsewhere.ops)}`);
  } finally {
    await sub.close();
    await host.stop();
  }
});

test("edge worker: a subscription without a watch set is closed 1008 'no watch set' after 10 s", { timeout: 30_000 }, async () => {
  const host = await startWorker({});
  try {
    const opened = Date.now();
    const sub = await subscribe(host.url);
    // The close frame is what the hub sends at 10 s. `ws` reports "close" only when the TCP
    // connection ends, which workerd delays until it evicts the object when the close comes
    // from an alarm (about 10 s more); `ws` answers the close frame at once (CLOSING).
    let frameAt = null;
    const poll = setInterval(() => {
      if (frameAt === null && sub.ws.readyState !== 1) frameAt = Date.now();
    }, 20);
    const { code, reason } = await sub.closed;
    clearInterval(poll);
    const after = ((frameAt ?? Date.now()) - opened) / 1000;
    assert.deepEqual([code, reason], [1008, "no watch set"]);
    assert.ok(after >= 9.5 && after < 13, `close frame after ${after.toFixed(1)} s`);
  } finally {
    await host.stop();
  }
});

test("edge worker: a subscription outlives the hub's hibernation (workerd evicts the idle object; the watch set comes back from the socket's attachment)", { timeout: 120_000 }, async (t) => {
  const host = await startWorker({ logOps: true });
  try {
    const [a, b] = [newSlot(), newSlot()];
    const sub = await subscribe(host.url);
    sub.watch([a, b]);
    assert.equal((await sub.next()).frames.length, 0);
    const from = host.output().length;
    // workerd evicts an object idle for a while (its watch-set alarm fires at 10 s, then
    // nothing); nothing can force it, so the test waits.
    await sleep(45_000);
    const res = await put(host.url, b, "after hibernation");
    assert.equal(res.status, 201);
    await res.arrayBuffer();
    const push = await sub.next();
    assert.deepEqual(push.frames.map((f) => [f.address, f.body.toString()]), [[b.addressHex, "after hibernation"]]);
    const woke = host.output().slice(from).match(/mailbox: hub woke sockets=(\d+)/);
    assert.ok(woke, "the hub was evicted and woke with its socket");
    assert.equal(woke[1], "1");
    t.diagnostic("hub woke from hibernation with 1 socket and pushed to its watch set");
    await sub.close();
  } finally {
    await host.stop();
  }
});

test("edge worker: a shard refuses an internal put, put-back or notify with no message (400), since an empty body in storage reads as a spent address", async () => {
  // The front Worker never sends one (the API refuses an empty body first); the shard does
  // not rely on it. Sent here straight to the shard object through miniflare.
  const host = await startWorker({ ttl: 60 });
  try {
    const namespace = await host.miniflare.getDurableObjectNamespace("MAILBOX_SHARD");
    const shard = namespace.get(namespace.idFromName("shard-0-of-1"));
    const slot = newSlot();
    for (const op of ["put", "put-back", "notify"]) {
      const res = await shard.fetch(`https://shard/${op}`, { method: "POST", body: slot.address });
      await res.arrayBuffer();
      assert.equal(res.status, 400, op);
    }
    // Nothing was stored: the address is free, not spent.
    assert.equal((await put(host.url, slot, "first")).status, 201);
  } finally {
    await host.stop();
  }
});
