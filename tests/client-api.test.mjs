// Two people, two isolated Chromium profiles, talking through the local mailbox with the wasm
// client's JS API alone (no UI): 100 messages each way, interleaved at random, with random
// delays and page reloads in between. Every message must arrive exactly once, in order per
// sender, and every sent message must end up "sent".

import { test } from "node:test";
import assert from "node:assert/strict";
import { resolve } from "node:path";
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
    assert.match(codeA, /^\d{4} \d{4} \d{4}$/);
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
      assert.ok(mine.every((m) => m.status === "sent"), `all of ${name}'s messages are sent`);
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
