// Shared helpers for the mailbox conformance suite: keys, addresses, requests, framing.

import { createHash, randomBytes } from "node:crypto";

/** Domain-separation label of the protocol: address = SHA-256(label ‖ write key). */
export const ADDRESS_LABEL = "hush/v1/address";

/** Every secret and address a test used, so the log check can look for each of them. */
export const used = { keys: new Set(), addresses: new Set() };

/** A fresh write key and its address, as bytes and lowercase hex. */
export function newSlot() {
  const key = randomBytes(32);
  const address = createHash("sha256").update(ADDRESS_LABEL).update(key).digest();
  const slot = { key, address, keyHex: key.toString("hex"), addressHex: address.toString("hex") };
  used.keys.add(slot.keyHex);
  used.addresses.add(slot.addressHex);
  return slot;
}

/**
 * `PUT /v1/m/{address}` with the slot's write key (or `key`, or none when key is null), and
 * `Mailbox-Put-Back: {putBack}` when putBack is given (revision 1.3).
 */
export async function put(base, slot, body, { key = slot.keyHex, path, putBack } = {}) {
  const headers = key === null ? {} : { "Mailbox-Write-Key": key };
  if (putBack !== undefined) headers["Mailbox-Put-Back"] = putBack;
  return fetch(`${base}${path ?? `/v1/m/${slot.addressHex}`}`, { method: "PUT", headers, body });
}

/** `GET /v1/m/{address}`. */
export async function get(base, slot) {
  return fetch(`${base}/v1/m/${slot.addressHex}`);
}

/** `POST /v1/fetch` with the concatenated addresses (Buffers). */
export async function fetchBatch(base, addresses) {
  return fetch(`${base}/v1/fetch`, { method: "POST", body: Buffer.concat(addresses) });
}

/** Parses a fetch response body into [{ address: hex, body: Buffer }], strictly. */
export function parseFrames(buf) {
  const frames = [];
  let at = 0;
  while (at < buf.length) {
    if (buf.length - at < 36) throw new Error(`truncated frame header at ${at}`);
    const address = buf.subarray(at, at + 32).toString("hex");
    const len = buf.readUInt32BE(at + 32);
    if (buf.length - at - 36 < len) throw new Error(`truncated frame body at ${at}`);
    frames.push({ address, body: Buffer.from(buf.subarray(at + 36, at + 36 + len)) });
    at += 36 + len;
  }
  return frames;
}

/** The response body as a Buffer. */
export async function bytes(res) {
  return Buffer.from(await res.arrayBuffer());
}

export const sleep = (ms) => new Promise((ok) => setTimeout(ok, ms));

/** `DELETE /v1/m/{address}` with the slot's write key (or `key`, or none when key is null). */
export async function del(base, slot, { key = slot.keyHex, path } = {}) {
  const headers = key === null ? {} : { "Mailbox-Write-Key": key };
  return fetch(`${base}${path ?? `/v1/m/${slot.addressHex}`}`, { method: "DELETE", headers });
}

/**
 * Opens `GET /v1/subscribe` (a WebSocket, through the `ws` package: Node 20 has no stable
 * global WebSocket). Resolves to:
 * - watch(slots): sends the slots' addresses as one watch set;
 * - send(data): sends raw data (a Buffer is binary, a string is text);
 * - next(): the next message from the mailbox as { frames, raw, binary }, rejecting if none
 *   comes within `deadlineMs` (a hang guard, not a speed check) or the socket closes first;
 * - closed: resolves to { code, reason } once the socket closes.
 */
export async function subscribe(base, { deadlineMs = 15_000 } = {}) {
  const { default: WebSocket } = await import("ws");
  const ws = new WebSocket(`${base.replace(/^http/, "ws")}/v1/subscribe`);
  const queue = [];
  const waiters = [];
  let closedWith = null;
  const closed = new Promise((ok) => {
    ws.on("close", (code, reason) => {
      closedWith = { code, reason: reason.toString() };
      for (const w of waiters.splice(0)) w.fail(new Error(`subscription closed: ${code} ${closedWith.reason}`));
      ok(closedWith);
    });
  });
  ws.on("message", (data, binary) => {
    const raw = Buffer.from(data);
    const message = { raw, binary, frames: binary ? parseFrames(raw) : null };
    const waiter = waiters.shift();
    if (waiter) waiter.ok(message);
    else queue.push(message);
  });
  await new Promise((ok, fail) => {
    ws.once("open", ok);
    ws.once("error", fail);
  });
  ws.on("error", () => {}); // a failed socket also closes; `closed` reports it
  return {
    ws,
    closed,
    watch: (slots) => ws.send(Buffer.concat(slots.map((s) => s.address))),
    send: (data) => ws.send(data),
    next() {
      if (queue.length > 0) return Promise.resolve(queue.shift());
      if (closedWith) return Promise.reject(new Error(`subscription closed: ${closedWith.code}`));
      return new Promise((ok, fail) => {
        const waiter = { ok, fail };
        const timer = setTimeout(() => {
          waiters.splice(waiters.indexOf(waiter), 1);
          fail(new Error(`no message from the subscription within ${deadlineMs} ms`));
        }, deadlineMs);
        waiter.ok = (m) => {
          clearTimeout(timer);
          ok(m);
        };
        waiter.fail = (e) => {
          clearTimeout(timer);
          fail(e);
        };
        waiters.push(waiter);
      });
    },
    /** Messages received and not yet taken by next(). */
    pending: () => queue.length,
    close() {
      if (!closedWith) ws.close(1000);
      return closed;
    },
  };
}
