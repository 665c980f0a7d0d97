// The conformance tests of Mailbox API revision 1.3 (docs/MAILBOX-API.md, "Putting a deleted
// message back"): `PUT` with `Mailbox-Put-Back: ?1` stores again, at a spent address, the very
// bytes a DELETE removed there, live until that message's own expiry; everything else is
// answered exactly as a plain `PUT`. Registered by conformanceSuite (suite.mjs) inside its
// `describe`, so both hosts (and the edge with one shard and with four) run them.
//
// As in suite-v1-1.mjs, "not pushed" is proved by order, never by a quiet interval.

import { test } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";

import { bytes, del, fetchBatch, get, newSlot, parseFrames, put, sleep, subscribe } from "./helpers.mjs";

/** The header value that asks for a put-back. */
const PUT_BACK = "?1";

/** PUT that must be stored. */
async function stored(base, slot, body) {
  const res = await put(base, slot, body);
  assert.equal(res.status, 201, "PUT stored");
  await res.arrayBuffer();
}

/** DELETE that must be done. */
async function deleted(base, slot) {
  const res = await del(base, slot);
  assert.equal(res.status, 204, "DELETE");
  await res.arrayBuffer();
}

/**
 * A put-back (or, with `putBack`, a PUT with that header value; with `putBack: null`, a plain
 * PUT without the header): "status body".
 */
async function answer(base, slot, body, { putBack = PUT_BACK, key } = {}) {
  const options = { ...(putBack === null ? {} : { putBack }), ...(key === undefined ? {} : { key }) };
  const res = await put(base, slot, body, options);
  return `${res.status} ${await res.text()}`;
}

/** GET: "status" and, for a 200, the body as hex. */
async function read(base, slot) {
  const res = await get(base, slot);
  const body = await bytes(res);
  return res.status === 200 ? `200 ${body.toString("hex")}` : String(res.status);
}

const hex = (body) => Buffer.from(body).toString("hex");
const view = (message) => message.frames.map((f) => ({ address: f.address, body: f.body.toString("hex") }));
const record = (slot, body) => ({ address: slot.addressHex, body: hex(body) });

/**
 * Registers the revision 1.3 tests. `base()` is the host's URL once started; `maxBody` its
 * largest message; `ttlMs`, if given, the host's message lifetime (for the expiry test).
 */
export function revision13Tests({ base, maxBody, ttlMs }) {
  test("put-back of the very bytes a DELETE removed is 201 stored: GET 200 and fetch return them; DELETE spends the address again, and a put-back works again", async () => {
    const slot = newSlot();
    const body = randomBytes(maxBody);
    await stored(base(), slot, body);
    await deleted(base(), slot);
    assert.equal(await read(base(), slot), "410", "deleted: spent");

    const res = await put(base(), slot, body, { putBack: PUT_BACK });
    assert.equal(res.status, 201, "put back");
    assert.equal(res.headers.get("access-control-allow-origin"), "*", "put back: CORS");
    assert.equal(res.headers.get("cache-control"), "no-store", "put back: Cache-Control");
    assert.equal(await res.text(), "stored");
    assert.equal(await read(base(), slot), `200 ${hex(body)}`, "GET after the put-back");
    const frames = parseFrames(await bytes(await fetchBatch(base(), [slot.address])));
    assert.deepEqual(frames, [{ address: slot.addressHex, body }], "fetch after the put-back");

    // Live again: first write wins, with or without the header.
    assert.equal(await answer(base(), slot, body), "409 address already written", "a second put-back");
    assert.equal(await answer(base(), slot, body, { putBack: null }), "409 address already written", "a plain PUT");

    await deleted(base(), slot);
    assert.equal(await read(base(), slot), "410", "deleted again: spent");
    assert.equal(await answer(base(), slot, body, { putBack: null }), "410 address spent", "a plain PUT of the bytes: spent");
    assert.equal(await answer(base(), slot, body), "201 stored", "put back again");
    assert.equal(await read(base(), slot), `200 ${hex(body)}`);
  });

  test("at a spent address, put-back of other bytes is 409 and with the wrong key 403; a header other than ?1 or ?0 is 400; ?0 is a plain PUT (410); none of them stores anything", async () => {
    const slot = newSlot();
    const body = randomBytes(64);
    await stored(base(), slot, body);
    await deleted(base(), slot);
    assert.equal(await answer(base(), slot, randomBytes(64)), "409 address already written", "other bytes");
    assert.equal(await answer(base(), slot, Buffer.concat([body, Buffer.from([0])])), "409 address already written", "the bytes and one more");
    assert.equal(await answer(base(), slot, body, { key: newSlot().keyHex }), "403 write key does not match address", "wrong key");
    for (const bad of ["?2", "1", "true", "?1;a=b", "?T"]) {
      assert.equal(await answer(base(), slot, body, { putBack: bad }), "400 bad put-back header", `header ${JSON.stringify(bad)}`);
    }
    assert.equal(await answer(base(), slot, body, { putBack: "?0" }), "410 address spent", "?0: a plain PUT");
    assert.equal(await read(base(), slot), "410", "nothing stored by the refused put-backs");
    const frames = parseFrames(await bytes(await fetchBatch(base(), [slot.address])));
    assert.deepEqual(frames, [{ address: slot.addressHex, body: Buffer.alloc(0) }], "still spent: a record of length 0");
    // And the very bytes still come back afterwards.
    assert.equal(await answer(base(), slot, body), "201 stored");
  });

  test("put-back at a live address is 409 and changes nothing; at a free address it is a first write (201), and first write wins after it", async () => {
    const live = newSlot();
    await stored(base(), live, "live");
    assert.equal(await answer(base(), live, "live"), "409 address already written", "the same bytes");
    assert.equal(await answer(base(), live, "other"), "409 address already written", "other bytes");
    assert.equal(await read(base(), live), `200 ${hex("live")}`);

    const free = newSlot();
    assert.equal(await answer(base(), free, "first"), "201 stored", "never written");
    assert.equal(await read(base(), free), `200 ${hex("first")}`);
    assert.equal(await answer(base(), free, "second", { putBack: null }), "409 address already written");
    assert.equal(await answer(base(), free, "first"), "409 address already written");
  });

  test("a subscriber watching the address gets the put-back blob as a push, once; a refused put-back is not pushed", async () => {
    const [slot, marker] = [newSlot(), newSlot()];
    const body = randomBytes(maxBody);
    const sub = await subscribe(base());
    try {
      sub.watch([slot, marker]);
      assert.deepEqual(view(await sub.next()), [], "empty snapshot");
      await stored(base(), slot, body);
      assert.deepEqual(view(await sub.next()), [record(slot, body)], "the first PUT pushed");
      await deleted(base(), slot);
      assert.equal(await answer(base(), slot, randomBytes(16)), "409 address already written");
      assert.equal(await answer(base(), slot, body), "201 stored");
      assert.deepEqual(view(await sub.next()), [record(slot, body)], "the put-back pushed (nothing for the refused one)");
      assert.equal(await answer(base(), slot, body), "409 address already written");
      await stored(base(), marker, "marker");
      assert.deepEqual(view(await sub.next()), [record(marker, "marker")], "nothing pushed for the refused second put-back");
      sub.watch([slot]);
      assert.deepEqual(view(await sub.next()), [record(slot, body)], "a new snapshot holds the put-back blob");
    } finally {
      await sub.close();
    }
  });

  test("CORS preflight allows the Mailbox-Put-Back header", async () => {
    const res = await fetch(`${base()}/v1/m/${newSlot().addressHex}`, {
      method: "OPTIONS",
      headers: {
        Origin: "https://somewhere.example",
        "Access-Control-Request-Method": "PUT",
        "Access-Control-Request-Headers": "mailbox-write-key, mailbox-put-back",
      },
    });
    assert.ok(res.status === 204 || res.status === 200, `preflight: ${res.status}`);
    const allowed = (res.headers.get("access-control-allow-headers") ?? "").toLowerCase().split(",").map((h) => h.trim());
    assert.ok(allowed.includes("mailbox-put-back"), `allowed headers: ${allowed.join(", ")}`);
    assert.ok(allowed.includes("mailbox-write-key"), `allowed headers: ${allowed.join(", ")}`);
    await res.arrayBuffer();
  });

  test("a put-back lives until the deleted message's own expiry, never a fresh TTL", { skip: ttlMs === undefined && "the host's TTL is not given" }, async () => {
    const slot = newSlot();
    await stored(base(), slot, "short-lived");
    // The message expires at most ttlMs after this point.
    const storedBy = Date.now();
    await sleep(ttlMs / 2);
    await deleted(base(), slot);
    assert.equal(await answer(base(), slot, "short-lived"), "201 stored", "put back at half the TTL");
    assert.equal(await read(base(), slot), `200 ${hex("short-lived")}`);
    // Past the message's own expiry, and well before a fresh TTL from the put-back would end.
    await sleep(storedBy + ttlMs + 300 - Date.now());
    assert.equal(await read(base(), slot), "404", "expired with the deleted message");
    assert.equal(parseFrames(await bytes(await fetchBatch(base(), [slot.address]))).length, 0, "fetch: gone");
    assert.equal(await answer(base(), slot, "short-lived"), "201 stored", "the address is free: a first write");
  });
}
