// The conformance tests of Mailbox API revision 1.1 (docs/MAILBOX-API.md): DELETE after read,
// the subscription WebSocket, and first-write-wins under concurrency. Registered by
// conformanceSuite (suite.mjs) inside its `describe`, so both hosts run them.
//
// No test asserts a duration: waits for a message have a deadline only so that a missing
// push fails instead of hanging, and "not pushed" is proved by order (a push for a later PUT
// arrives first), never by a quiet interval.

import { test } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";

import { bytes, del, fetchBatch, get, newSlot, parseFrames, put, subscribe } from "./helpers.mjs";

/** Asserts an answer with no body and the headers every mailbox response carries. */
async function assertNoContent(res, what) {
  assert.equal(res.status, 204, what);
  assert.equal(res.headers.get("access-control-allow-origin"), "*", `${what}: CORS`);
  assert.equal(res.headers.get("cache-control"), "no-store", `${what}: Cache-Control`);
  assert.equal((await bytes(res)).length, 0, `${what}: no body`);
}

/** PUT that must be stored. */
async function stored(base, slot, body) {
  const res = await put(base, slot, body);
  assert.equal(res.status, 201, "PUT stored");
  await res.arrayBuffer();
}

/** The frames of one message, as [{ address, body }] with the body as hex for deepEqual. */
const view = (message) => message.frames.map((f) => ({ address: f.address, body: f.body.toString("hex") }));
const record = (slot, body) => ({ address: slot.addressHex, body: Buffer.from(body).toString("hex") });

/**
 * Registers the revision 1.1 tests. `base()` is the host's URL once started; `maxBody` its
 * largest message; `upgradeHeader` whether its 426 can carry `Upgrade: websocket`.
 */
export function revision11Tests({ base, maxBody, upgradeHeader }) {
  test("DELETE with the write key is 204 with no body; the message is gone and its address spent", async () => {
    const slot = newSlot();
    const body = randomBytes(maxBody);
    await stored(base(), slot, body);
    await assertNoContent(await del(base(), slot), "DELETE");
    let res = await get(base(), slot);
    assert.equal(res.status, 410, "GET after DELETE: spent");
    assert.equal(await res.text(), "address spent");
    res = await fetchBatch(base(), [slot.address]);
    assert.deepEqual(
      parseFrames(await bytes(res)),
      [{ address: slot.addressHex, body: Buffer.alloc(0) }],
      "fetch shows the address spent: a record of length 0",
    );
    await assertNoContent(await del(base(), slot), "DELETE again: the same answer");
    const never = newSlot();
    await assertNoContent(await del(base(), never), "DELETE of an address never written: the same answer");
    // Spent until the deleted message would have expired: a PUT with the key of the very
    // bytes that were read is 410, of other bytes 409 (someone else's blob stood there:
    // first write wins, read or not); neither stores anything; without the key it is 403.
    res = await put(base(), slot, body);
    assert.equal(res.status, 410, "the bytes that were read: spent");
    assert.equal(await res.text(), "address spent");
    res = await put(base(), slot, randomBytes(16));
    assert.equal(res.status, 409, "other bytes: taken");
    assert.equal(await res.text(), "address already written");
    res = await put(base(), slot, "x", { key: newSlot().keyHex });
    assert.equal(res.status, 403);
    await res.arrayBuffer();
    res = await get(base(), slot);
    assert.equal(res.status, 410, "nothing stored by the refused PUTs");
    await res.arrayBuffer();
    // Deleting where nothing was stored spends nothing.
    await stored(base(), never, "first");
  });

  test("DELETE without the right key is refused, and the same way whether or not a message is there", async () => {
    const full = newSlot();
    const empty = newSlot();
    await stored(base(), full, "keep me");
    const answers = async (slot) => {
      const out = [];
      for (const opts of [{ key: null }, { key: "abc" }, { key: slot.keyHex.toUpperCase() }, { key: newSlot().keyHex }]) {
        const res = await del(base(), slot, opts);
        out.push(`${res.status} ${await res.text()}`);
      }
      return out;
    };
    const fullAnswers = await answers(full);
    assert.deepEqual(fullAnswers, [
      "400 missing write key",
      "400 bad write key",
      "400 bad write key",
      "403 write key does not match address",
    ]);
    assert.deepEqual(await answers(empty), fullAnswers, "no occupancy answer without the key");
    const res = await del(base(), full, { path: "/v1/m/not-hex" });
    assert.equal(res.status, 400);
    assert.equal(await res.text(), "bad address");
    const still = await get(base(), full);
    assert.equal(still.status, 200, "nothing was deleted");
    assert.equal(await still.text(), "keep me");
  });

  test("100 concurrent PUTs to one address give exactly one 201, and a subscriber gets the winner's bytes once", async () => {
    const slot = newSlot();
    const sub = await subscribe(base());
    try {
      sub.watch([slot]);
      assert.deepEqual(view(await sub.next()), [], "empty snapshot");
      const blobs = Array.from({ length: 100 }, () => randomBytes(64));
      const statuses = await Promise.all(
        blobs.map(async (blob) => {
          const res = await put(base(), slot, blob);
          await res.arrayBuffer();
          return res.status;
        }),
      );
      const created = statuses.flatMap((s, i) => (s === 201 ? [i] : []));
      assert.equal(created.length, 1, `201s: ${created.length}`);
      assert.equal(statuses.filter((s) => s === 409).length, 99);
      const winner = blobs[created[0]];
      const res = await get(base(), slot);
      assert.deepEqual(await bytes(res), winner, "the stored blob is the one that got 201");
      assert.deepEqual(view(await sub.next()), [record(slot, winner)], "pushed: the winner");
      // Nothing else was pushed for the 99 refused writes: the next message is the next PUT.
      const marker = newSlot();
      sub.watch([slot, marker]);
      assert.deepEqual(view(await sub.next()), [record(slot, winner)], "the new snapshot");
      await stored(base(), marker, "marker");
      assert.deepEqual(view(await sub.next()), [record(marker, "marker")]);
    } finally {
      await sub.close();
    }
  });

  test("GET /v1/subscribe without a WebSocket upgrade is 426; other methods 405", async () => {
    let res = await fetch(`${base()}/v1/subscribe`);
    assert.equal(res.status, 426);
    assert.equal(res.headers.get("upgrade"), upgradeHeader ? "websocket" : null);
    assert.equal(res.headers.get("access-control-allow-origin"), "*");
    assert.equal(await res.text(), "upgrade required");
    res = await fetch(`${base()}/v1/subscribe`, { method: "POST", body: randomBytes(32) });
    assert.equal(res.status, 405);
    assert.equal(res.headers.get("allow"), "GET, OPTIONS");
    await res.arrayBuffer();
  });

  test("a watch set is answered with a snapshot in watch order, then each PUT at a watched address is pushed once", async () => {
    const [a, b, c, unwatched] = [newSlot(), newSlot(), newSlot(), newSlot()];
    const aBody = randomBytes(maxBody);
    await stored(base(), a, aBody);
    const sub = await subscribe(base());
    try {
      sub.watch([b, a, c]);
      const snapshot = await sub.next();
      assert.equal(snapshot.binary, true, "binary messages only");
      assert.deepEqual(view(snapshot), [record(a, aBody)], "the snapshot holds what is stored");

      await stored(base(), unwatched, "not for this subscriber");
      const bBody = randomBytes(maxBody);
      await stored(base(), b, bBody);
      assert.deepEqual(view(await sub.next()), [record(b, bBody)], "one record per push, and no push for the unwatched address");

      const res = await put(base(), b, "a conflicting write");
      assert.equal(res.status, 409);
      await res.arrayBuffer();
      await stored(base(), c, Buffer.from([0, 1, 2]));
      assert.deepEqual(view(await sub.next()), [record(c, [0, 1, 2])], "a refused write (409) is not pushed");
    } finally {
      await sub.close();
    }
  });

  test("nothing stored is an empty binary message; 256 addresses is the largest watch set", async () => {
    const sub = await subscribe(base());
    try {
      const slots = Array.from({ length: 256 }, newSlot);
      sub.watch(slots);
      const snapshot = await sub.next();
      assert.deepEqual([snapshot.binary, snapshot.raw.length], [true, 0]);
      await stored(base(), slots[255], "last");
      assert.deepEqual(view(await sub.next()), [record(slots[255], "last")]);
    } finally {
      await sub.close();
    }
  });

  test("a new watch set replaces the old one: its snapshot comes first, the old addresses are no longer pushed", async () => {
    const [old, both, fresh] = [newSlot(), newSlot(), newSlot()];
    const sub = await subscribe(base());
    try {
      sub.watch([old, both]);
      assert.deepEqual(view(await sub.next()), []);
      await stored(base(), both, "both");
      assert.deepEqual(view(await sub.next()), [record(both, "both")]);
      sub.watch([fresh, both]);
      assert.deepEqual(view(await sub.next()), [record(both, "both")], "the snapshot of the new set");
      await stored(base(), old, "old");
      await stored(base(), fresh, "fresh");
      assert.deepEqual(view(await sub.next()), [record(fresh, "fresh")], "the replaced address is not pushed");
    } finally {
      await sub.close();
    }
  });

  test("two subscriptions watching one address both get its push; a deleted message is only a spent record in a later snapshot", async () => {
    const slot = newSlot();
    const [one, two] = [await subscribe(base()), await subscribe(base())];
    try {
      for (const sub of [one, two]) {
        sub.watch([slot]);
        assert.deepEqual(view(await sub.next()), []);
      }
      await stored(base(), slot, "for both");
      for (const sub of [one, two]) assert.deepEqual(view(await sub.next()), [record(slot, "for both")]);
      await assertNoContent(await del(base(), slot), "DELETE");
      one.watch([slot]);
      assert.deepEqual(view(await one.next()), [record(slot, [])], "deleted: spent, a record of length 0");
    } finally {
      await one.close();
      await two.close();
    }
  });

  test("a malformed watch set, a text message or an oversized message closes with the documented code", async () => {
    const cases = [
      // 33 bytes (1 + 32) is a delete message's length since revision 1.2 (suite-v1-2.mjs).
      ["34 bytes", Buffer.alloc(34, 1), 1008, "bad watch set"],
      ["empty", Buffer.alloc(0), 1008, "bad watch set"],
      ["text", "hello", 1003, "binary only"],
      ["257 addresses (8,224 bytes)", randomBytes(257 * 32), 1009, "message too big"],
    ];
    for (const [what, data, code, reason] of cases) {
      const sub = await subscribe(base());
      sub.send(data);
      const closed = await sub.closed;
      assert.deepEqual(closed, { code, reason }, what);
    }
    // A good subscription is unaffected by the bad ones.
    const sub = await subscribe(base());
    try {
      const slot = newSlot();
      sub.watch([slot]);
      assert.deepEqual(view(await sub.next()), []);
    } finally {
      await sub.close();
    }
  });

  test("fetch framing of pushes is strict: a maximum-size body arrives byte for byte", async () => {
    const slot = newSlot();
    const body = randomBytes(maxBody);
    const sub = await subscribe(base());
    try {
      sub.watch([slot]);
      await sub.next();
      await stored(base(), slot, body);
      const push = await sub.next();
      const len = Buffer.alloc(4);
      len.writeUInt32BE(maxBody);
      assert.deepEqual(push.raw, Buffer.concat([slot.address, len, body]));
      assert.deepEqual(parseFrames(push.raw).length, 1);
    } finally {
      await sub.close();
    }
  });
}
