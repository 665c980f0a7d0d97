// The conformance tests of Mailbox API revision 1.2 (docs/MAILBOX-API.md, `GET /v1/subscribe`):
// delete messages over the subscription WebSocket. Registered by conformanceSuite (suite.mjs)
// inside its `describe`, so both hosts (and the edge with one shard and with four) run them.
//
// A delete message is answered with nothing. Tests prove it was carried out, and that nothing
// was sent for it, by order: client messages are handled one at a time in the order sent, so
// a watch set sent after it is answered by a snapshot that already sees the delete, and that
// snapshot must be the very next message.

import { test } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";

import { bytes, fetchBatch, get, newSlot, parseFrames, put, subscribe } from "./helpers.mjs";

/** First byte of a delete message ('D'), and most keys in one. */
const DELETE_TAG = 0x44;
const MAX_DELETE_KEYS = 64;

/** The delete message of the slots' write keys. */
const deleteMessage = (slots) => Buffer.concat([Buffer.from([DELETE_TAG]), ...slots.map((s) => s.key)]);

/** PUT that must be stored. */
async function stored(base, slot, body) {
  const res = await put(base, slot, body);
  assert.equal(res.status, 201, "PUT stored");
  await res.arrayBuffer();
}

/** The status of a request, its body drained. */
async function status(response) {
  const res = await response;
  await res.arrayBuffer();
  return res.status;
}

const view = (message) => message.frames.map((f) => ({ address: f.address, body: f.body.toString("hex") }));
const record = (slot, body) => ({ address: slot.addressHex, body: Buffer.from(body).toString("hex") });

/** Registers the revision 1.2 tests. `base()` is the host's URL once started. */
export function revision12Tests({ base, maxBody }) {
  test("a delete message deletes as DELETE with its key does: nothing is sent back, the address is spent (GET and PUT of the read bytes 410, other bytes 409), the watch set still works", async () => {
    const [read, marker] = [newSlot(), newSlot()];
    const body = randomBytes(maxBody);
    const sub = await subscribe(base());
    try {
      sub.watch([read, marker]);
      assert.deepEqual(view(await sub.next()), [], "empty snapshot");
      await stored(base(), read, body);
      assert.deepEqual(view(await sub.next()), [record(read, body)], "pushed");
      sub.send(deleteMessage([read]));
      // The next message is the snapshot of this watch set: nothing came for the delete, and
      // the delete was done before the snapshot was read (a spent record of length 0).
      sub.watch([read, marker]);
      assert.deepEqual(view(await sub.next()), [record(read, [])], "the next message is the snapshot; the address is spent");
      assert.equal(await status(get(base(), read)), 410, "GET after the delete: spent");
      const res = await put(base(), read, body);
      assert.equal(res.status, 410, "PUT of the read bytes with the key: spent");
      assert.equal(await res.text(), "address spent");
      assert.equal(await status(put(base(), read, randomBytes(16))), 409, "other bytes: taken");
      assert.equal(await status(get(base(), read)), 410, "nothing stored by the refused PUTs");
      // The subscription goes on: a later PUT to a watched address is pushed, and it is the
      // next message (nothing was sent for the delete or the refused PUT).
      await stored(base(), marker, "after the delete");
      assert.deepEqual(view(await sub.next()), [record(marker, "after the delete")], "the watch set still works");
      assert.equal(sub.pending(), 0);
    } finally {
      await sub.close();
    }
  });

  test("a delete message before any watch set is allowed; deleting an empty address spends nothing; 64 keys in one message", async () => {
    const empty = newSlot();
    const full = Array.from({ length: MAX_DELETE_KEYS - 1 }, newSlot);
    for (const slot of full) await stored(base(), slot, randomBytes(1 + (slot.key[0] % maxBody)));
    const sub = await subscribe(base());
    try {
      const keys = [full[0], empty, ...full.slice(1)];
      assert.equal(deleteMessage(keys).length, 1 + 32 * MAX_DELETE_KEYS);
      sub.send(deleteMessage(keys));
      sub.watch([empty, full[0], full[62]]);
      assert.deepEqual(
        view(await sub.next()),
        [record(full[0], []), record(full[62], [])],
        "the first message is the snapshot: both deleted (spent), the empty address not spent",
      );
      const res = await fetchBatch(base(), keys.map((s) => s.address));
      assert.deepEqual(
        parseFrames(await bytes(res)).map((f) => [f.address, f.body.length]),
        full.map((s) => [s.addressHex, 0]),
        "all 63 stored messages deleted, in one message",
      );
      await stored(base(), empty, "first");
      assert.deepEqual(view(await sub.next()), [record(empty, "first")], "a later PUT there is stored (201) and pushed");
    } finally {
      await sub.close();
    }
  });

  test("a delete message with a key sent twice, or of an address spent already, changes nothing more and closes nothing", async () => {
    const [slot, other] = [newSlot(), newSlot()];
    await stored(base(), slot, "read");
    await stored(base(), other, "not read");
    const sub = await subscribe(base());
    try {
      sub.send(deleteMessage([slot, slot]));
      sub.send(deleteMessage([slot]));
      sub.watch([slot, other]);
      assert.deepEqual(view(await sub.next()), [record(slot, []), record(other, "not read")]);
      assert.equal(await status(put(base(), slot, "read")), 410);
      assert.equal(await status(put(base(), slot, "again")), 409);
    } finally {
      await sub.close();
    }
  });

  test("a message of 1 + 32·k bytes that is no delete message closes 1008 'bad delete' and deletes nothing; other lengths stay 'bad watch set'", async () => {
    const slot = newSlot();
    await stored(base(), slot, "keep me");
    const badTag = Buffer.concat([Buffer.from("d"), slot.key]);
    const cases = [
      ["tag 'd' (0x64)", badTag, 1008, "bad delete"],
      ["33 bytes of 0x01", Buffer.alloc(33, 1), 1008, "bad delete"],
      ["the tag alone (k = 0)", Buffer.from([DELETE_TAG]), 1008, "bad delete"],
      ["65 keys (2,081 bytes)", Buffer.concat([Buffer.from([DELETE_TAG]), ...Array.from({ length: 65 }, () => slot.key)]), 1008, "bad delete"],
      ["the tag and 30 bytes (31 bytes)", Buffer.concat([Buffer.from([DELETE_TAG]), slot.key.subarray(0, 30)]), 1008, "bad watch set"],
      ["the tag, a key and 1 byte (34 bytes)", Buffer.concat([Buffer.from([DELETE_TAG]), slot.key, Buffer.alloc(1)]), 1008, "bad watch set"],
    ];
    for (const [what, data, code, reason] of cases) {
      const sub = await subscribe(base());
      sub.watch([slot]);
      assert.deepEqual(view(await sub.next()), [record(slot, "keep me")], `${what}: snapshot`);
      sub.send(data);
      assert.deepEqual(await sub.closed, { code, reason }, what);
    }
    const res = await get(base(), slot);
    assert.equal(res.status, 200, "nothing was deleted");
    assert.equal(await res.text(), "keep me");
  });
}
