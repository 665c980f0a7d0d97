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

/** `PUT /v1/m/{address}` with the slot's write key (or `key`, or none when key is null). */
export async function put(base, slot, body, { key = slot.keyHex, path } = {}) {
  const headers = key === null ? {} : { "Mailbox-Write-Key": key };
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
