// What only the native `mailbox-server` promises about subscriptions (`GET /v1/subscribe`,
// docs/MAILBOX-API.md): the subscription cap (1013), a reader that stops reading is closed
// (1013 reader too slow) without the server's memory growing, SIGTERM closes with 1001, the
// watch-set deadline (1008), the keep-alive ping and the drop of a client that does not
// answer it, and upgraded connections leaving the HTTP connection cap. The shared semantics
// are in suite-v1-1.mjs, run against both hosts.
//
// Env: HUSH_MAILBOX_SERVER_BIN (path of the built binary).

import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { randomBytes } from "node:crypto";

import WebSocket from "ws";

import { startNative } from "../support/servers.mjs";
import { newSlot, put, sleep, subscribe, used } from "./helpers.mjs";

/** Resident memory of a process in KiB (Linux). */
function rssKiB(pid) {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  return Number(/VmRSS:\s+(\d+) kB/.exec(status)?.[1] ?? NaN);
}

/** A raw `ws` socket on /v1/subscribe (options as `ws` takes them), once open. */
async function openRaw(base, options = {}) {
  const ws = new WebSocket(`${base.replace(/^http/, "ws")}/v1/subscribe`, options);
  const closed = new Promise((ok) => ws.on("close", (code, reason) => ok({ code, reason: reason.toString() })));
  ws.on("error", () => {}); // a failed socket also closes; `closed` reports it
  await new Promise((ok, fail) => {
    ws.once("open", ok);
    ws.once("error", fail);
  });
  return { ws, closed };
}

/** PUT that must be stored. */
async function stored(base, slot, body) {
  const res = await put(base, slot, body);
  assert.equal(res.status, 201, "PUT stored");
  await res.arrayBuffer();
}

/** The server's output holds no address or key the tests used (nor a 16-hex prefix). */
function assertNoSecretsLogged(output) {
  for (const hex of [...used.addresses, ...used.keys]) {
    assert.ok(!output.includes(hex.slice(0, 16)), "no address or key in the log");
  }
}

test("native subscribe: at --max-subscriptions one more is closed 1013; a closed one makes room", async () => {
  const server = await startNative({ extraArgs: ["--max-subscriptions", "2"] });
  try {
    assert.match(server.output(), /subscriptions 2 \(/, "the limits line reports the cap");
    const [one, two] = [await subscribe(server.url), await subscribe(server.url)];
    for (const sub of [one, two]) {
      sub.watch([newSlot()]);
      await sub.next();
    }
    const third = await subscribe(server.url);
    assert.deepEqual(await third.closed, { code: 1013, reason: "too many subscriptions" });
    await one.close();
    // The slot is freed once the server has closed its side too.
    let again;
    for (let i = 0; i < 50; i++) {
      const sub = await subscribe(server.url);
      sub.watch([newSlot()]);
      const first = await Promise.race([sub.next().then(() => "open"), sub.closed.then(() => "closed")]);
      if (first === "open") {
        again = sub;
        break;
      }
      await sleep(100);
    }
    assert.ok(again, "a new subscription fits once one closed");
    await again.close();
    await two.close();
  } finally {
    await server.stop();
  }
  assertNoSecretsLogged(server.output());
});

test("native subscribe: upgraded connections leave the HTTP connection cap", async () => {
  const server = await startNative({ extraArgs: ["--max-connections", "2"] });
  const subs = [];
  try {
    for (let i = 0; i < 6; i++) {
      const sub = await subscribe(server.url);
      sub.watch([newSlot()]);
      await sub.next();
      subs.push(sub);
    }
    const res = await fetch(`${server.url}/v1/health`);
    assert.equal(res.status, 200);
    await res.text();
    // None of the subscriptions was closed to make room for HTTP.
    const slot = newSlot();
    subs[0].watch([slot]);
    await subs[0].next();
    await stored(server.url, slot, "still here");
    assert.equal((await subs[0].next()).frames[0].body.toString(), "still here");
  } finally {
    for (const sub of subs) await sub.close();
    await server.stop();
  }
});

test("native subscribe: a reader that stops reading is closed 1013 and costs bounded memory", async (t) => {
  const MAX_BODY = 64 << 10;
  const TTL = 1;
  const server = await startNative({ maxBody: MAX_BODY, ttl: TTL });
  try {
    const slots = Array.from({ length: 256 }, newSlot);
    const sub = await subscribe(server.url);
    sub.watch(slots);
    assert.equal((await sub.next()).raw.length, 0);
    sub.ws.pause(); // stops reading: what the server sends piles up in the kernel, then in its queue
    const before = rssKiB(server.child.pid);
    const body = randomBytes(MAX_BODY);
    let pushed = 0;
    let peak = before;
    // 4 rounds of 256 PUTs, each after the last one's messages expired (a DELETE would leave
    // the addresses spent until then): 64 MiB pushed.
    for (let round = 0; round < 4; round++) {
      if (round > 0) await sleep(TTL * 1000 + 100);
      for (let i = 0; i < slots.length; i += 16) {
        await Promise.all(slots.slice(i, i + 16).map((slot) => stored(server.url, slot, body)));
        pushed += 16 * MAX_BODY;
        peak = Math.max(peak, rssKiB(server.child.pid));
      }
    }
    const grown = (peak - before) / 1024;
    t.diagnostic(`${pushed >> 20} MiB pushed to a reader that stopped reading; server RSS ${before >> 10} -> peak ${peak >> 10} MiB`);
    assert.ok(grown < 24, `resident memory grew ${grown.toFixed(1)} MiB while 64 MiB were pushed`);
    // Reading again: what was in flight, then the close.
    sub.ws.resume();
    assert.deepEqual(await sub.closed, { code: 1013, reason: "reader too slow" });
    assert.ok(sub.pending() < 256 * 4, "far from everything pushed was queued for it");
  } finally {
    await server.stop();
  }
});

test("native subscribe: a client that floods pings and reads nothing costs bounded memory", async (t) => {
  const server = await startNative();
  try {
    const sub = await subscribe(server.url);
    sub.watch([newSlot()]);
    assert.equal((await sub.next()).raw.length, 0);
    sub.ws._socket.pause(); // reads nothing more: every pong the server owes stays unsent
    const before = rssKiB(server.child.pid);
    const payload = randomBytes(125);
    let sent = 0;
    let peak = before;
    while (sent < 40 << 20) {
      if (sub.ws.bufferedAmount < 1 << 20) {
        for (let i = 0; i < 1000; i++) sub.ws.ping(payload);
        sent += 1000 * 131;
      }
      await sleep(2);
      peak = Math.max(peak, rssKiB(server.child.pid));
    }
    const grown = (peak - before) / 1024;
    t.diagnostic(`${sent >> 20} MiB of pings to a server whose pongs are not read; RSS ${before >> 10} -> peak ${peak >> 10} MiB`);
    // Before the write buffer was capped it grew about a byte per byte of pings.
    assert.ok(grown < 8, `resident memory grew ${grown.toFixed(1)} MiB`);
    sub.ws.terminate();
  } finally {
    await server.stop();
  }
});

test("native subscribe: a text message that is not UTF-8 is closed 1003 binary only", async () => {
  const server = await startNative();
  try {
    const sub = await subscribe(server.url);
    // A text frame (FIN, opcode 1, masked) carrying 0xff 0xfe, written raw.
    const mask = randomBytes(4);
    const payload = Buffer.from([0xff, 0xfe]).map((b, i) => b ^ mask[i % 4]);
    sub.ws._socket.write(Buffer.concat([Buffer.from([0x81, 0x80 | 2]), mask, payload]));
    assert.deepEqual(await sub.closed, { code: 1003, reason: "binary only" });
  } finally {
    await server.stop();
  }
});

test("native subscribe: SIGTERM closes subscriptions with 1001 going away, and the server exits 0", async () => {
  const server = await startNative();
  const sub = await subscribe(server.url);
  sub.watch([newSlot()]);
  await sub.next();
  const idle = await subscribe(server.url); // no watch set yet: closed the same way
  await server.stop();
  assert.deepEqual(await sub.closed, { code: 1001, reason: "going away" });
  assert.deepEqual(await idle.closed, { code: 1001, reason: "going away" });
  assert.equal(server.child.exitCode, 0, server.output());
  assert.match(server.output(), /subscriptions: open=0 .*going_away=2/);
});

test("native subscribe: no watch set within the deadline is 1008 no watch set (default 10 s)", async () => {
  const server = await startNative({ extraArgs: ["--watch-set-timeout-secs", "0.5"] });
  try {
    assert.match(server.output(), /watch set 500ms/);
    const late = await openRaw(server.url);
    assert.deepEqual(await late.closed, { code: 1008, reason: "no watch set" });
    // A watch set in time keeps the subscription open past the deadline.
    const sub = await subscribe(server.url);
    sub.watch([newSlot()]);
    await sub.next();
    await sleep(1000);
    const slot = newSlot();
    sub.watch([slot]);
    assert.equal((await sub.next()).raw.length, 0, "still open");
    await sub.close();
  } finally {
    await server.stop();
  }
  const plain = await startNative();
  try {
    assert.match(plain.output(), /watch set 10s, ping 30s, send budget 524288 bytes/);
  } finally {
    await plain.stop();
  }
});

test("native subscribe: a quiet connection is pinged; one that answers stays, one that does not is dropped", async () => {
  const server = await startNative({ extraArgs: ["--ping-interval-secs", "0.4"] });
  try {
    const answering = await openRaw(server.url);
    const silent = await openRaw(server.url, { autoPong: false });
    let pings = 0;
    answering.ws.on("ping", () => (pings += 1));
    let silentPings = 0;
    silent.ws.on("ping", () => (silentPings += 1));
    let answeringClosed = false;
    answering.closed.then(() => (answeringClosed = true));
    const watchSet = Buffer.concat([newSlot().address]);
    answering.ws.send(watchSet);
    silent.ws.send(watchSet);
    // Pinged after 0.4 s of quiet, dropped 0.4 s after the unanswered ping.
    const dropped = await silent.closed;
    assert.equal(dropped.code, 1006, "dropped without a close frame");
    assert.ok(silentPings >= 1, "the silent client was pinged first");
    await sleep(1500);
    assert.ok(pings >= 2, `pinged while quiet (${pings} pings)`);
    assert.equal(answeringClosed, false, "a client that answers pings stays");
    answering.ws.close(1000);
    await answering.closed;
  } finally {
    await server.stop();
  }
  assert.match(server.output(), /unresponsive=1/);
});
