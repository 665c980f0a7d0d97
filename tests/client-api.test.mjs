// The wasm client's JS API alone (no UI), in Chromium against the local mailbox:
// * two people, two isolated Chromium profiles: 100 messages each way, interleaved at random,
//   with random delays and page reloads in between. Every message must arrive exactly once, in
//   order per sender, and every sent message must end up "sent";
// * a mailbox that accepts connections and never answers: a poll in flight does not hold up a
//   send, and every request ends with a timeout after its deadline;
// * reading a conversation's history again and again does not grow the JS heap.

import { test } from "node:test";
import assert from "node:assert/strict";
import { resolve } from "node:path";
import { createServer } from "node:net";
import { startNative } from "./support/servers.mjs";
import { launch, NO_BROWSER } from "./support/browser.mjs";

const WWW = process.env.HUSH_WWW_DIR ?? resolve(import.meta.dirname, "../www");
const PER_SIDE = 100;

/** Deterministic pseudo-random numbers (mulberry32), so a failure can be replayed by seed. */
function prng(seed) {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Loads the client into a same-origin page and opens (or creates) the vault. */
async function openClient(page, origin, passphrase, create) {
  // A bare same-origin page: the mailbox's health answer (its favicon request is answered
  // here so it does not show as a console error).
  await page.route("**/favicon.ico", (route) => route.fulfill({ status: 204 }));
  await page.goto(`${origin}/v1/health`);
  await page.evaluate(
    async ({ passphrase, create }) => {
      const m = await import("/pkg/hush.js");
      await m.default();
      window.hushClient = await m.HushClient.open("hush");
      if (create) await window.hushClient.createVault(passphrase, true);
      else await window.hushClient.unlock(passphrase);
    },
    { passphrase, create },
  );
}

const call = (page, method, ...args) =>
  page.evaluate(({ method, args }) => window.hushClient[method](...args), { method, args });

test("two browsers exchange 100 messages each way through the mailbox, with reloads", { skip: NO_BROWSER, timeout: 600_000 }, async () => {
  const seed = Number(process.env.HUSH_TEST_SEED ?? Date.now() % 1_000_000);
  const random = prng(seed);
  const server = await startNative({ www: WWW });
  const alice = await launch();
  const bob = await launch();
  try {
    await openClient(alice.page, server.url, "alice passphrase", true);
    await openClient(bob.page, server.url, "bob passphrase", true);

    const invite = await call(alice.page, "createInvite", `${server.url}/`, server.url, "Bob");
    const bobConv = await call(bob.page, "join", invite.link, server.url, "Alice");
    await call(bob.page, "flush");
    let joined = false;
    for (let i = 0; i < 20 && !joined; i++) joined = (await call(alice.page, "poll", invite.id)).joined;
    assert.ok(joined, "the inviter sees the join");
    const codeA = await call(alice.page, "safetyCode", invite.id);
    const codeB = await call(bob.page, "safetyCode", bobConv);
    assert.match(codeA, /^\d{4}( \d{4}){4}$/, "20 digits in groups of four (protocol v2)");
    assert.equal(codeA, codeB, "both sides show the same safety code");

    const sides = {
      alice: { ctx: alice, conv: invite.id, pass: "alice passphrase", sent: 0, got: [] },
      bob: { ctx: bob, conv: bobConv, pass: "bob passphrase", sent: 0, got: [] },
    };
    const other = { alice: "bob", bob: "alice" };
    const pollInto = async (name) => {
      const side = sides[name];
      const out = await call(side.ctx.page, "poll", side.conv);
      side.got.push(...out.messages.map((m) => m.text));
    };

    let reloads = 0;
    while (sides.alice.sent < PER_SIDE || sides.bob.sent < PER_SIDE) {
      const candidates = ["alice", "bob"].filter((n) => sides[n].sent < PER_SIDE);
      const name = candidates[Math.floor(random() * candidates.length)];
      const side = sides[name];
      await call(side.ctx.page, "send", side.conv, `${name} #${side.sent}`);
      side.sent += 1;
      // Usually deliver right away; sometimes leave it in the outbox for a later flush.
      if (random() < 0.8) await call(side.ctx.page, "flush");
      if (random() < 0.3) await pollInto(other[name]);
      if (random() < 0.03) {
        const victim = random() < 0.5 ? "alice" : "bob";
        await openClient(sides[victim].ctx.page, server.url, sides[victim].pass, false);
        reloads += 1;
      }
      await new Promise((r) => setTimeout(r, Math.floor(random() * 15)));
    }

    for (const name of ["alice", "bob"]) await call(sides[name].ctx.page, "flush");
    for (let round = 0; round < 200; round++) {
      if (sides.alice.got.length >= PER_SIDE && sides.bob.got.length >= PER_SIDE) break;
      await pollInto("alice");
      await pollInto("bob");
    }

    for (const [name, from] of [["alice", "bob"], ["bob", "alice"]]) {
      const expected = Array.from({ length: PER_SIDE }, (_, i) => `${from} #${i}`);
      assert.deepEqual(sides[name].got, expected, `${name} got every message of ${from} once, in order (seed ${seed})`);
      const history = await call(sides[name].ctx.page, "history", sides[name].conv);
      const received = history.filter((m) => !m.outgoing).map((m) => m.text);
      assert.deepEqual(received, expected, `${name}'s stored history matches (seed ${seed})`);
      const mine = history.filter((m) => m.outgoing);
      assert.equal(mine.length, PER_SIDE);
      // On the mailbox, or already known to be on the other device (acknowledged inside a
      // later blob of theirs).
      assert.ok(
        mine.every((m) => m.status === "sent" || m.status === "delivered"),
        `all of ${name}'s messages are sent: ${JSON.stringify(mine.map((m) => m.status))}`,
      );
    }
    assert.deepEqual(alice.errors, []);
    assert.deepEqual(bob.errors, []);
    console.log(`# seed ${seed}, ${reloads} reloads`);
  } finally {
    await alice.context.close();
    await bob.context.close();
    await server.stop();
  }
});

/** A TCP server on a free loopback port that accepts connections and never answers. */
async function startSilentServer() {
  const sockets = new Set();
  let accepted = 0;
  const server = createServer((socket) => {
    accepted += 1;
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
    socket.on("error", () => {});
  });
  await new Promise((ok) => server.listen(0, "127.0.0.1", ok));
  return {
    url: `http://127.0.0.1:${server.address().port}`,
    accepted: () => accepted,
    async stop() {
      for (const socket of sockets) socket.destroy();
      await new Promise((ok) => server.close(ok));
    },
  };
}

/** A bare same-origin page of the mailbox with the client module loaded. */
async function loadModule(page, origin) {
  await page.route("**/favicon.ico", (route) => route.fulfill({ status: 204 }));
  await page.goto(`${origin}/v1/health`);
  await page.evaluate(async () => {
    const m = await import("/pkg/hush.js");
    await m.default();
    window.hush = m;
  });
}

test("a mailbox that never answers holds up no send, and each request times out", { skip: NO_BROWSER, timeout: 120_000 }, async () => {
  const server = await startNative({ www: WWW });
  const silent = await startSilentServer();
  const { context, page } = await launch();
  try {
    await loadModule(page, server.url);
    const out = await page.evaluate(
      async ({ site, silentUrl }) => {
        const { HushClient, ErrorCode } = window.hush;
        const DEADLINE_MS = 1_500;
        const settle = (promise) =>
          promise.then(
            (value) => ({ ok: true, value }),
            (err) => ({ ok: false, code: err.code, message: err.message }),
          );
        // Gives up on a promise after `ms` (so a request that never ends fails the test
        // instead of hanging it).
        const within = (promise, ms) =>
          Promise.race([promise, new Promise((ok) => setTimeout(() => ok({ hung: true }), ms))]);
        const alice = await HushClient.open("alice", DEADLINE_MS);
        await alice.createVault("alice passphrase", true);
        const bob = await HushClient.open("bob", DEADLINE_MS);
        await bob.createVault("bob passphrase", true);
        // The conversation lives on the silent mailbox (the invite names it).
        const invite = await alice.createInvite(site, silentUrl, "Bob");
        const conv = await bob.join(invite.link, site, "Alice");

        const pollStart = performance.now();
        const poll = settle(bob.poll(conv)).then((r) => ({ ...r, ms: performance.now() - pollStart }));
        await new Promise((ok) => setTimeout(ok, 300)); // the poll's fetch is in flight
        const sendStart = performance.now();
        const sent = await within(settle(bob.send(conv, "typed while a poll hangs")), 5_000);
        const sendMs = performance.now() - sendStart;
        const polled = await within(poll, 10_000);
        const flushStart = performance.now();
        const flushed = await within(settle(bob.flush()), 10_000);
        const flushMs = performance.now() - flushStart;
        const history = await bob.history(conv);
        return { sent, sendMs, polled, flushed, flushMs, history, unreachable: ErrorCode.MailboxUnreachable, deadline: DEADLINE_MS };
      },
      { site: `${server.url}/`, silentUrl: silent.url },
    );
    assert.ok(silent.accepted() > 0, "the requests reached the silent mailbox");
    assert.ok(out.sent.ok, `send succeeds while a poll hangs: ${JSON.stringify(out.sent)}`);
    assert.ok(out.sendMs < 1_000, `send was not held up by the poll (${out.sendMs} ms)`);
    assert.ok(!out.polled.hung, "the hung poll ended");
    assert.equal(out.polled.ok, false);
    assert.equal(out.polled.code, out.unreachable, "a timeout is MailboxUnreachable");
    assert.match(out.polled.message, /did not answer in time/);
    assert.ok(out.polled.ms >= out.deadline - 50 && out.polled.ms < out.deadline + 3_000, `the poll ended at its deadline (${out.polled.ms} ms)`);
    assert.ok(!out.flushed.hung, "the hung flush ended");
    assert.ok(out.flushed.ok);
    assert.deepEqual([out.flushed.value.delivered, out.flushed.value.pending], [0, 2], "the hello and the message wait");
    assert.match(out.flushed.value.lastError, /did not answer in time/);
    assert.ok(out.flushMs < out.deadline + 3_000, `the flush ended at its deadline (${out.flushMs} ms)`);
    assert.deepEqual(
      out.history.map((m) => [m.text, m.status]),
      [["typed while a poll hangs", "sending"]],
      "the message waits in the outbox for the next flush",
    );
  } finally {
    await context.close();
    await silent.stop();
    await server.stop();
  }
});

test("reading a conversation's history again and again does not grow the JS heap", { skip: NO_BROWSER, timeout: 300_000 }, async () => {
  const MESSAGES = 100;
  const READS = 300;
  const server = await startNative({ www: WWW });
  const { context, page } = await launch();
  try {
    await loadModule(page, server.url);
    const conv = await page.evaluate(
      async ({ site, messages }) => {
        const { HushClient } = window.hush;
        const alice = await HushClient.open("alice");
        await alice.createVault("alice passphrase", true);
        window.bob = await HushClient.open("bob");
        await window.bob.createVault("bob passphrase", true);
        const invite = await alice.createInvite(site, site, "Bob");
        const conv = await window.bob.join(invite.link, site, "Alice");
        for (let i = 0; i < messages; i++) await window.bob.send(conv, `message ${i} `.padEnd(120, "."));
        return conv;
      },
      { site: server.url, messages: MESSAGES },
    );
    const readHistory = (reads) =>
      page.evaluate(
        async ({ conv, reads }) => {
          let entries = 0;
          for (let i = 0; i < reads; i++) entries = (await window.bob.history(conv)).length;
          return entries;
        },
        { conv, reads },
      );
    const cdp = await context.newCDPSession(page);
    const heapAfterGc = async () => {
      for (let i = 0; i < 3; i++) await cdp.send("HeapProfiler.collectGarbage");
      return (await cdp.send("Runtime.getHeapUsage")).usedSize;
    };
    assert.equal(await readHistory(20), MESSAGES); // warm up: code, caches, wasm memory
    const before = await heapAfterGc();
    assert.equal(await readHistory(READS), MESSAGES);
    const after = await heapAfterGc();
    const perRead = (after - before) / READS;
    console.log(`# JS heap after GC: ${before} B before, ${after} B after ${READS} reads of ${MESSAGES} messages: ${perRead.toFixed(0)} B per read`);
    // The leak this guards against kept every read's requests and results: ~50 KB per read.
    assert.ok(perRead < 1_000, `JS heap grew ${perRead.toFixed(0)} B per history read`);
  } finally {
    await context.close();
    await server.stop();
  }
});
