// Edge cost of one active user, from billable operations counted in workerd (issue #11).
// Prints figures; asserts nothing; not part of the test suite.
//
//   cargo xtask build-worker && node tests/bench/edge-cost.mjs
//
// Starts the edge worker in workerd (startWorker, MAILBOX_LOG_OPS on), with 1 and with 4
// shards, and replays one user-day of the client's request pattern at compressed time: the
// requests a day contains, in the order they would happen, as fast as workerd answers them (a
// virtual clock orders them; TTL and real waiting play no part). Every count of Worker
// requests, Durable Object requests, SQL rows read and written and WebSocket messages is
// summed from the worker's own `mailbox: ops` lines; what compressed time cannot show (alarms,
// wake-ups and duration) is modelled and printed apart, marked as such. Expiry (the alarm
// dropping a bucket table) is measured apart with a short TTL, and so are the rows read and
// the time of each request when a shard holds 8 bucket tables (a 7-day TTL's steady state).
//
// The pattern (read from client-core/src/{receive,outbox,schedule,decoys}.rs, www/app.js,
// www/engine/subscriptions.js and docs/CLIENT.md; every assumption here is one of the profile's or
// one of ours, and docs/EDGE-DEPLOY.md repeats them):
// - Profile (EDGE-DEPLOY.md): 5 conversations; the app open (unlocked) 4 h a day, in two
//   sessions of 2 h (08:00 and 19:00), each 30 min visible then 90 min hidden; 100 messages
//   sent and 100 received a day, i.e. 10 each way per conversation per session.
// - Chatting: during a session's visible 30 min each conversation is open in front for its
//   own 6 min slot; in it the two people alternate, one message every 18 s (10 each). Both
//   people of a conversation keep the same schedule (so nothing waits for a closed app).
// - Peers: both sides of each conversation are simulated with the same client logic; the
//   other person is an active user with the same profile, so one active user causes half of
//   what the 5 conversations cost (every figure per user is the conversations' total / 2).
// - A poll (POST /v1/fetch) is one request of exactly 48 addresses (FETCH_BATCH): the next 16
//   of the peer's chain, 16 of its next chain, the restore-signal addresses, decoys; a poll
//   that read something makes one refetch of the addresses the slid window newly covers
//   (48, padded); the first poll of a conversation after unlock is preceded by the probe of
//   our next 48 sending addresses (one fetch).
// - Delete after read is on: each blob read (message or acknowledgement) is deleted once: by
//   one delete message on the conversation's socket for what a push brought (pollPushed), by
//   a DELETE request each for what a poll read.
// - Acknowledgements (receive.rs, outbox.rs): a poll that read a message owes one, due
//   20-40 s later if the conversation was the one open in front of a visible page when it
//   was read (the app's `setReading`; ACK_DELAY_READING_*), 2-8 s later otherwise; an
//   acknowledgement already owed keeps the earlier due time. Any message sent meanwhile
//   carries it (no acknowledgement blob). With the chat pattern above every message but
//   the last of a slot is read in the open conversation and answered 18 s later, so the
//   reply carries its acknowledgement; the slot's last message (read in front too: 9 s
//   before the slot ends) gets a 1 KiB acknowledgement blob (PUT) 20-40 s later, which the
//   other side is pushed, polls, reads and deletes (an acknowledgement owes nothing back).
//   Nothing is read while hidden or in another conversation in this profile (nobody
//   writes then), so the 2-8 s delay never applies here. A blob is confirmed when the
//   other side's next blob carries what it read.
// - Retransmission check (outbox.rs): while a stored blob of ours is unconfirmed and was last
//   seen 5 min ago, a flush fetches our unconfirmed addresses (one padded request) and the
//   peer's restore-signal addresses (a second one), every 5 min while the app is open and at
//   unlock. The last acknowledgement of each chat waits so until the next session's chat; while
//   every unconfirmed blob is acknowledgement-only the interval doubles with each check that
//   finds them still there, up to 1 h (RETRANSMIT_ACK_MAX_MS; the count is in memory, lost
//   at lock).
// - Subscribed mode (www/engine/subscriptions.js, www/engine/sync.js): at unlock one WebSocket per conversation
//   with its 48-address watch set; after each poll the watch set is sent again if it changed
//   (a poll that read something); a push or a non-empty snapshot starts a poll; while live,
//   only a safety poll every 60-90 min (schedule.rs `safety_poll_delay_ms`), visible or
//   hidden. A live socket also sends its watch set again 2-4 min after the last message it
//   received from the mailbox (`watch_refresh_delay_ms`; subscriptions.js `#scheduleRefresh`
//   restarts the timer on every push or snapshot), unchanged or not: one WebSocket message
//   in, answered by a snapshot (one out; a non-empty one starts a poll). Sockets close at
//   lock.
// - Polling mode (no WebSockets): the client's poll delays: 1.5-3.5 s for the open
//   conversation in a visible page, 5-10 s for the others, 20-40 s hidden.
// - Expiry (edge-worker/src/sql/buckets.rs): a shard keeps its messages in one table per
//   expiry bucket, 1 day wide with the 7-day TTL; its alarm drops a bucket's table 1 s after
//   the bucket's end, once a day per shard, whatever it holds. Measured below (TTL 7 s,
//   buckets 1 s): what one alarm reads and writes per bucket dropped; it does not grow with
//   the rows, so per user it is nothing (one drop and one CREATE TABLE a day per shard, for
//   the whole deployment). Rows stay stored TTL + half a bucket on average (storage).
// - A day is simulated twice (DAYS, default 2) and only the last is counted, so the counted
//   day starts as a real one does (acknowledgements left unconfirmed the evening before,
//   objects awake).
//
// Env: HUSH_EDGE_WORKER_DIR (default edge-worker/build), SHARDS (default "1,4"), MODES
// (default "subscribed,polling"), DAYS (default 2), SEED (default 11).

import { createHash, createHmac } from "node:crypto";
import WebSocket from "ws";

import { startWorker } from "../support/servers.mjs";

const SHARD_COUNTS = (process.env.SHARDS ?? "1,4").split(",").map(Number);
const MODES = (process.env.MODES ?? "subscribed,polling").split(",");
const DAYS = Number(process.env.DAYS ?? 2);
const SEED = Number(process.env.SEED ?? 11);

const S = 1000;
const MIN = 60 * S;
const H = 60 * MIN;
const DAY = 24 * H;
const CONVERSATIONS = 5;
const SESSIONS = [8 * H, 19 * H]; // unlock times
const SESSION_LENGTH = 2 * H;
const VISIBLE = 30 * MIN; // first part of each session
const SLOT = VISIBLE / CONVERSATIONS; // each conversation open in front for 6 min
const MESSAGES_PER_SLOT = 20; // alternating, 10 each way
const MESSAGE_GAP = 18 * S;
const WINDOW = 16; // the reader's window on the peer's chain
const FETCH_BATCH = 48;
const ACK_DELAY = [2 * S, 8 * S]; // ACK_DELAY_MIN_MS, ACK_DELAY_MAX_MS
const ACK_DELAY_READING = [20 * S, 40 * S]; // ACK_DELAY_READING_MIN_MS, _MAX_MS: the chat in front
const SAFETY_POLL = [60 * MIN, 90 * MIN]; // safety_poll_delay_ms, while a subscription is live
const WATCH_REFRESH = [2 * MIN, 4 * MIN]; // watch_refresh_delay_ms
const RETRANSMIT_AFTER = 5 * MIN;
const RETRANSMIT_ACK_MAX = 60 * MIN;
const PUSH_LATENCY = 250; // push to poll start (virtual ms)
const BLOB_LEN = 1024;
const TTL_DAYS = 7; // MAILBOX_TTL_SECONDS default
const BUCKET_DAYS = Math.min(TTL_DAYS / 7, 1); // buckets.rs bucket_width_ms: TTL / 7, at most 1 day
const HIBERNATE_AFTER = 10 * S; // documented idle time before a hibernatable object hibernates
const GB_PER_OBJECT = 0.128; // 128 MB, as Cloudflare's pricing examples count it

// Cloudflare's list prices (docs/EDGE-DEPLOY.md "Prices"; developers.cloudflare.com
// /durable-objects/platform/pricing and /workers/platform/pricing).
const PAID = { workerReq: 0.3e-6, doReq: 0.15e-6, rowRead: 0.001e-6, rowWritten: 1e-6, gbs: 12.5e-6, gbMonth: 0.2 };
const FREE_DAY = { workerReq: 100_000, doReq: 100_000, rowsRead: 5_000_000, rowsWritten: 100_000, gbs: 13_000 };

// ---------------------------------------------------------------------------------------------
// Deterministic randomness and addresses

function rng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
let random = rng(SEED);
const uniform = ([lo, hi]) => lo + random() * (hi - lo);

const label = (...parts) => createHmac("sha256", `edge-cost/${SEED}`).update(parts.join("/")).digest();
/** Write key and address of position `pos` of side `who`'s chain in conversation `conv`. */
function slot(conv, who, pos) {
  const key = label("key", conv, who, pos);
  const address = createHash("sha256").update("hush/v1/address").update(key).digest();
  return { key, address, hex: address.toString("hex") };
}
/** A pseudorandom address standing for a next-chain, restore-signal or decoy address. */
const other = (...parts) => label("other", ...parts);
const pad = (real, ...parts) => {
  const batch = [...real];
  for (let j = batch.length; j < FETCH_BATCH; j += 1) batch.push(other("decoy", ...parts, j));
  return batch;
};
const shardOf = (address, shards) => Math.floor((address.readUInt32BE(0) * shards) / 2 ** 32);

// ---------------------------------------------------------------------------------------------
// One run: a mode and a shard count

async function run(mode, shards) {
  random = rng(SEED);
  const host = await startWorker({ shards, logOps: true });
  const subscribed = mode === "subscribed";
  const queue = []; // [t, seq, fn]
  let seq = 0;
  let now = 0;
  const at = (t, fn) => {
    queue.push([t, seq++, fn]);
  };
  // Client-side tallies (what the clients did, counted by us) and object touches for duration.
  let counting = false;
  const did = {};
  const tally = (what, n = 1) => {
    if (counting) did[what] = (did[what] ?? 0) + n;
  };
  const touches = new Map(); // object index -> [virtual times]
  const touch = (objects) => {
    if (!counting) return;
    for (const o of new Set(objects)) {
      if (!touches.has(o)) touches.set(o, []);
      touches.get(o).push(now);
    }
  };
  let httpRequests = 0;

  async function http(path, init, objects) {
    httpRequests += 1;
    touch(objects);
    const res = await fetch(`${host.url}${path}`, init);
    return { status: res.status, body: Buffer.from(await res.arrayBuffer()) };
  }
  const fetchObjects = (batch) => batch.map((a) => shardOf(a, shards));
  async function fetchBatch(batch, what) {
    tally(`fetch: ${what}`);
    const res = await http("/v1/fetch", { method: "POST", body: Buffer.concat(batch) }, fetchObjects(batch));
    const frames = [];
    for (let i = 0; i < res.body.length; ) {
      const hex = res.body.subarray(i, i + 32).toString("hex");
      const len = res.body.readUInt32BE(i + 32);
      frames.push({ hex, len });
      i += 36 + len;
    }
    return frames;
  }
  const putObjects = (address) => (shardOf(address, shards) === 0 ? [0] : [shardOf(address, shards), 0]);

  // Sides: sides[conv][who]; who 0 = the user, 1 = the other person (same logic, same schedule).
  const app = { open: false, visible: false, openConv: -1 };
  const sides = [];
  for (let conv = 0; conv < CONVERSATIONS; conv += 1) {
    const pair = [0, 1].map((who) => ({
      conv,
      who,
      sent: 0, // blobs deposited
      blobs: [], // own blobs not yet confirmed: { pos, kind, ackUpTo, confirmed, checkedMs }
      chain: [], // every own blob, by position (what the peer reads)
      read: 0, // peer blobs read
      ackDue: null,
      probed: false,
      pollGen: 0,
      checkGen: 0,
      quiet: null, // { pos, count }: quiet checks of acknowledgement-only blobs (outbox.rs)
      socket: null,
      inbox: [],
      waiters: [],
      sentWatch: null,
      live: false,
      refreshGen: 0,
    }));
    pair[0].peer = pair[1];
    pair[1].peer = pair[0];
    sides.push(pair);
  }
  const allSides = () => sides.flat();

  // --- the client's logic, per side ---

  const pollSet = (side) => {
    const real = [];
    for (let p = side.read; p < side.read + WINDOW; p += 1) real.push(slot(side.conv, 1 - side.who, p).address);
    for (let j = 0; j < WINDOW; j += 1) real.push(other("next-chain", side.conv, side.who, side.read, j));
    real.push(other("restore", side.conv, side.who, 0), other("restore", side.conv, side.who, 1));
    return pad(real, "poll", side.conv, side.who, side.read);
  };

  function nextMessage(side, deadline = 3000) {
    if (side.inbox.length) return Promise.resolve(side.inbox.shift());
    return new Promise((ok) => {
      const waiter = { ok };
      const timer = setTimeout(() => {
        side.waiters.splice(side.waiters.indexOf(waiter), 1);
        ok(null);
      }, deadline);
      waiter.ok = (m) => {
        clearTimeout(timer);
        ok(m);
      };
      side.waiters.push(waiter);
    });
  }

  async function sendWatch(side) {
    if (!side.socket) return;
    const set = Buffer.concat(pollSet(side));
    if (side.sentWatch && side.sentWatch.equals(set)) return;
    tally("ws: watch set sent");
    touch([0, ...pollSet(side).map((a) => shardOf(a, shards))]);
    side.socket.send(set);
    side.sentWatch = set;
    const snapshot = await nextMessage(side, 5000);
    if (snapshot === null) throw new Error("no snapshot");
    side.live = true;
    scheduleRefresh(side);
    if (snapshot.length > 0) readPushed(side, snapshot);
  }

  // subscriptions.js #scheduleRefresh: every message from the mailbox (re)arms the refresh.
  function scheduleRefresh(side) {
    side.refreshGen += 1;
    const gen = side.refreshGen;
    const socket = side.socket;
    at(now + uniform(WATCH_REFRESH), () => (side.refreshGen === gen && side.socket === socket && socket && app.open ? refreshWatch(side) : null));
  }
  async function refreshWatch(side) {
    const set = pollSet(side);
    tally("ws: watch set refreshed (2-4 min)");
    touch([0, ...set.map((a) => shardOf(a, shards))]);
    side.socket.send(Buffer.concat(set));
    side.sentWatch = Buffer.concat(set);
    const snapshot = await nextMessage(side, 5000);
    if (snapshot === null) throw new Error("no snapshot");
    tally(snapshot.length > 0 ? "ws: refresh snapshot, non-empty" : "ws: refresh snapshot, empty");
    scheduleRefresh(side);
    if (snapshot.length > 0) readPushed(side, snapshot);
  }

  async function openSocket(side) {
    tally("ws: subscription opened");
    touch([0]);
    httpRequests += 1;
    const ws = new WebSocket(`${host.url.replace(/^http/, "ws")}/v1/subscribe`);
    ws.on("message", (data) => {
      const m = Buffer.from(data);
      const w = side.waiters.shift();
      if (w) w.ok(m);
      else side.inbox.push(m);
    });
    await new Promise((ok, fail) => {
      ws.once("open", ok);
      ws.once("error", fail);
    });
    side.socket = ws;
    side.sentWatch = null;
    await sendWatch(side);
  }

  function schedulePoll(side, delay) {
    side.pollGen += 1;
    const gen = side.pollGen;
    const open = app.openConv === side.conv;
    const wait =
      delay ??
      (side.live
        ? uniform(SAFETY_POLL)
        : app.visible
          ? uniform(open ? [1.5 * S, 3.5 * S] : [5 * S, 10 * S])
          : uniform([20 * S, 40 * S]));
    at(now + wait, () => (side.pollGen === gen && app.open ? poll(side) : null));
  }
  const pollNow = (side) => schedulePoll(side, PUSH_LATENCY);
  /** Parses a subscription message (fetch response framing). */
  function framesOf(message) {
    const frames = [];
    for (let i = 0; i < message.length; ) {
      const len = message.readUInt32BE(i + 32);
      frames.push({ hex: message.subarray(i, i + 32).toString("hex"), len });
      i += 36 + len;
    }
    return frames;
  }
  /**
   * A subscription message read as it is (HushClient.pollPushed, receive.rs poll_pushed):
   * blobs next in the peer's order are read with no request, also one that starts the peer's
   * next chain (it read something of ours since its last blob: a Double Ratchet step), since
   * its header's PN says the chain it ends was read to its end (receive.rs `still_awaited`);
   * anything else is read by a full poll. What reading moves the window to comes with the
   * next watch set's snapshot: no refetch.
   */
  function readPushed(side, message) {
    at(now + PUSH_LATENCY, () => (app.open ? pollPushed(side, framesOf(message)) : null));
  }
  async function pollPushed(side, frames) {
    const found = new Set(frames.filter((f) => f.len > 0).map((f) => f.hex));
    const next = side.peer.chain[side.read];
    if (!side.probed || !next || !found.has(slot(side.conv, 1 - side.who, side.read).hex)) return poll(side);
    tally("poll from a push (pollPushed)");
    const readNow = [];
    while (found.has(slot(side.conv, 1 - side.who, side.read).hex)) {
      readNow.push(side.peer.chain[side.read]);
      side.read += 1;
    }
    await afterReading(side, readNow, true);
  }

  async function poll(side) {
    tally("poll");
    if (!side.probed) {
      side.probed = true;
      const own = [];
      for (let p = side.sent; p < side.sent + FETCH_BATCH; p += 1) own.push(slot(side.conv, side.who, p).address);
      await fetchBatch(own, "probe of our next sending addresses (once per unlock)");
    }
    let frames = await fetchBatch(pollSet(side), side.live ? "poll (push or safety)" : "poll");
    const readNow = [];
    for (let round = 0; round < 9; round += 1) {
      const found = new Set(frames.filter((f) => f.len > 0).map((f) => f.hex));
      const before = side.read;
      while (found.has(slot(side.conv, 1 - side.who, side.read).hex)) {
        readNow.push(side.peer.chain[side.read]);
        side.read += 1;
      }
      if (side.read === before || round === 8) break;
      // The window slid (and a data blob starts the peer's next chain): one refetch.
      const fresh = [];
      for (let p = before + WINDOW; p < side.read + WINDOW; p += 1) fresh.push(slot(side.conv, 1 - side.who, p).address);
      for (let j = 0; j < WINDOW; j += 1) fresh.push(other("next-chain", side.conv, side.who, side.read, j));
      frames = await fetchBatch(pad(fresh.slice(0, FETCH_BATCH), "refetch", side.conv, side.who, side.read), "refetch after reading");
    }
    await afterReading(side, readNow);
  }

  /** What a poll or a read push does with the blobs it read: acknowledge, delete, watch. */
  /**
   * @param {boolean} pushed read from the subscription (pollPushed): its deletes go over the
   * socket as one delete message (client-core subscription.rs), else one DELETE each.
   */
  async function afterReading(side, readNow, pushed = false) {
    const reading = app.visible && app.openConv === side.conv; // the app's setReading
    for (const blob of readNow) {
      for (const own of side.blobs) if (own.pos < blob.ackUpTo) own.confirmed = true;
      if (blob.kind !== "data") continue;
      // receive.rs: owe an acknowledgement, kept at the earlier time if one is owed.
      const proposed = now + uniform(reading ? ACK_DELAY_READING : ACK_DELAY);
      if (side.ackDue === null || proposed < side.ackDue) {
        side.ackDue = proposed;
        tally(reading ? "acknowledgement owed, chat in front (20-40 s)" : "acknowledgement owed, elsewhere (2-8 s)");
        at(proposed, () => (side.ackDue === proposed && app.open ? flushAck(side) : null));
      }
    }
    const slots = readNow.map((blob) => slot(side.conv, 1 - side.who, blob.pos));
    if (pushed && side.socket && slots.length > 0) {
      tally("ws: delete message (after reading a push)");
      touch([0, ...slots.map((s) => shardOf(s.address, shards))]);
      side.socket.send(Buffer.concat([Buffer.from([0x44]), ...slots.map((s) => s.key)]));
    } else {
      for (const s of slots) {
        tally("DELETE (after read)");
        await http(`/v1/m/${s.hex}`, { method: "DELETE", headers: { "Mailbox-Write-Key": s.key.toString("hex") } }, [shardOf(s.address, shards)]);
      }
    }
    if (subscribed) await sendWatch(side);
    schedulePoll(side);
  }

  async function deposit(side, kind) {
    const s = slot(side.conv, side.who, side.sent);
    // A blob sent after reading the peer starts our next chain (the Double Ratchet's step).
    const blob = { pos: side.sent, kind, ackUpTo: side.read, confirmed: false, checkedMs: now };
    side.sent += 1;
    side.blobs.push(blob);
    side.chain[blob.pos] = blob;
    tally(kind === "data" ? "PUT message" : "PUT acknowledgement blob");
    const res = await http(`/v1/m/${s.hex}`, { method: "PUT", headers: { "Mailbox-Write-Key": s.key.toString("hex") }, body: Buffer.alloc(BLOB_LEN, blob.pos & 0xff) }, putObjects(s.address));
    if (res.status !== 201) throw new Error(`PUT ${res.status}`);
    if (counting) tally("rows inserted (PUT 201)");
    scheduleCheck(side);
    const reader = side.peer;
    if (reader.live && reader.socket) {
      const push = await nextMessage(reader);
      if (push === null) throw new Error("no push");
      tally("ws: push received");
      scheduleRefresh(reader);
      readPushed(reader, push);
    }
  }

  async function sendMessage(side) {
    if (side.ackDue !== null) tally("acknowledgement carried by a message");
    side.ackDue = null; // the message carries the acknowledgement
    await deposit(side, "data");
  }
  async function flushAck(side) {
    side.ackDue = null;
    await deposit(side, "ack");
  }

  const unconfirmed = (side) => side.blobs.filter((b) => !b.confirmed);
  // outbox.rs check_interval: 5 min, or doubled per quiet check while all are acks only.
  const newestAck = (pending) => (pending.every((b) => b.kind === "ack") ? Math.max(...pending.map((b) => b.pos)) : null);
  function checkInterval(side, pending) {
    const newest = newestAck(pending);
    if (newest === null) return RETRANSMIT_AFTER;
    const quiet = side.quiet && side.quiet.pos === newest ? side.quiet.count : 0;
    return Math.min(RETRANSMIT_AFTER * 2 ** quiet, RETRANSMIT_ACK_MAX);
  }
  function scheduleCheck(side) {
    side.blobs = side.blobs.filter((b) => !b.confirmed);
    const pending = unconfirmed(side);
    if (!pending.length) return;
    side.checkGen += 1;
    const gen = side.checkGen;
    const due = Math.max(now, Math.min(...pending.map((b) => b.checkedMs)) + checkInterval(side, pending));
    at(due, () => (side.checkGen === gen && app.open ? check(side) : null));
  }
  async function check(side) {
    const pending = unconfirmed(side);
    const interval = checkInterval(side, pending);
    if (!pending.length || !pending.some((b) => now >= b.checkedMs + interval)) return scheduleCheck(side);
    const due = pending.slice(0, FETCH_BATCH);
    const addresses = due.map((b) => slot(side.conv, side.who, b.pos).address);
    const found = new Set((await fetchBatch(pad(addresses, "check", side.conv, side.who, now), "retransmission check: our unconfirmed blobs")).map((f) => f.hex));
    await fetchBatch(pad([other("restore", side.conv, 1 - side.who, 0), other("restore", side.conv, 1 - side.who, 1)], "check-restore", side.conv, side.who, now), "retransmission check: the peer's restore signals");
    for (const b of due) {
      if (!found.has(slot(side.conv, side.who, b.pos).hex)) throw new Error("a blob went missing");
      b.checkedMs = now;
    }
    const newest = newestAck(due);
    side.quiet = newest === null ? null : { pos: newest, count: (side.quiet?.pos === newest ? side.quiet.count : 0) + 1 };
    scheduleCheck(side);
  }

  // --- the day ---

  function planDay(day) {
    for (const start of SESSIONS.map((s) => day * DAY + s)) {
      at(start, async () => {
        app.open = true;
        app.visible = true;
        app.openConv = 0;
        for (const side of allSides()) {
          side.probed = false;
          if (subscribed) await openSocket(side);
        }
        for (const side of allSides()) schedulePoll(side, 0);
        // flushSoon(0): owed acknowledgements and due retransmission checks.
        for (const side of allSides()) {
          if (side.ackDue !== null) await flushAck(side);
          scheduleCheck(side);
        }
      });
      for (let conv = 0; conv < CONVERSATIONS; conv += 1) {
        const slotStart = start + conv * SLOT;
        at(slotStart, () => {
          app.openConv = conv;
        });
        for (let k = 0; k < MESSAGES_PER_SLOT; k += 1) {
          at(slotStart + MESSAGE_GAP / 2 + k * MESSAGE_GAP, () => sendMessage(sides[conv][k % 2]));
        }
      }
      at(start + VISIBLE, () => {
        app.visible = false;
        app.openConv = -1;
      });
      at(start + SESSION_LENGTH, async () => {
        app.open = false;
        for (const side of allSides()) {
          side.pollGen += 1;
          side.checkGen += 1;
          side.quiet = null; // Client::lock clears the count
          if (side.socket) {
            tally("ws: subscription closed");
            touch([0]);
            const ws = side.socket;
            side.socket = null;
            side.live = false;
            side.refreshGen += 1;
            const closed = new Promise((ok) => ws.once("close", ok));
            ws.close(1000);
            await closed;
          }
        }
      });
    }
  }

  const opsLines = () =>
    [...host.output().matchAll(/mailbox: ops event=(\w+) do_requests=(\d+) rows_read=(\d+) rows_written=(\d+) alarms_set=(\d+) ws_in=(\d+) ws_out=(\d+)/g)].map((m) => ({
      event: m[1],
      do: Number(m[2]),
      read: Number(m[3]),
      written: Number(m[4]),
      alarmsSet: Number(m[5]),
      wsIn: Number(m[6]),
      wsOut: Number(m[7]),
    }));
  const settle = async (want) => {
    for (let i = 0; i < 500 && opsLines().filter((l) => l.event === "request").length < want; i += 1) await new Promise((ok) => setTimeout(ok, 10));
    await new Promise((ok) => setTimeout(ok, 200));
  };

  const started = Date.now();
  for (let day = 0; day < DAYS; day += 1) planDay(day);
  let from = 0;
  let countedFrom = (DAYS - 1) * DAY;
  while (queue.length) {
    queue.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
    const [t, , fn] = queue.shift();
    if (!counting && t >= countedFrom) {
      await settle(httpRequests);
      from = opsLines().length;
      counting = true;
    }
    now = t;
    await fn();
  }
  await settle(httpRequests);
  const lines = opsLines().slice(from);
  const seconds = (Date.now() - started) / 1000;
  await host.stop();

  // Sum what the worker logged in the counted day.
  const sum = { workerReq: 0, doReq: 0, wsIn: 0, wsOut: 0, read: 0, written: 0, alarmsSet: 0, alarmLines: 0 };
  for (const l of lines) {
    if (l.event === "request") sum.workerReq += 1;
    if (l.event === "alarm") {
      sum.alarmLines += 1;
      continue; // alarms fire on workerd's real clock: modelled below instead
    }
    sum.doReq += l.do;
    sum.wsIn += l.wsIn;
    sum.wsOut += l.wsOut;
    sum.read += l.read;
    sum.written += l.written;
    sum.alarmsSet += l.alarmsSet;
  }
  // Wake-ups and active time (virtual clock): an object wakes when an event follows 10 s
  // without one; each event keeps it billable for at most 10 s (an upper bound).
  let wakeups = 0;
  let activeMs = 0;
  for (const times of touches.values()) {
    times.sort((a, b) => a - b);
    let until = -Infinity;
    for (const t of times) {
      if (t > until) {
        wakeups += 1;
        activeMs += HIBERNATE_AFTER;
      } else activeMs += t + HIBERNATE_AFTER - until;
      until = t + HIBERNATE_AFTER;
    }
  }
  return { mode, shards, sum, did, wakeups, activeMs, seconds, requests: httpRequests };
}

// ---------------------------------------------------------------------------------------------
// Expiry, measured (compressed time cannot wait a day): TTL 7 s, so buckets are 1 s wide and a
// shard holds up to 8 live bucket tables, as with the 7-day TTL's 1-day buckets.

const opsOf = (text, event) =>
  [...text.matchAll(/mailbox: ops event=(\w+) do_requests=(\d+) rows_read=(\d+) rows_written=(\d+)/g)]
    .filter((m) => m[1] === event)
    .map((m) => ({ read: Number(m[3]), written: Number(m[4]) }));

async function measureExpiry() {
  const host = await startWorker({ ttl: 7, logOps: true });
  // Requests are sent one at a time; the n-th ops line of event "request" is the n-th
  // request's (a line may be printed after its response arrives).
  let sent = 0;
  const request = async (send, status) => {
    sent += 1;
    const res = await send();
    await res.arrayBuffer();
    if (status !== undefined && res.status !== status) throw new Error(`status ${res.status}, expected ${status}`);
    for (let i = 0; i < 300; i += 1) {
      const lines = opsOf(host.output(), "request");
      if (lines.length >= sent) return lines[sent - 1];
      await new Promise((ok) => setTimeout(ok, 5));
    }
    throw new Error("no ops line");
  };
  const putAt = (s) => fetch(`${host.url}/v1/m/${s.hex}`, { method: "PUT", headers: { "Mailbox-Write-Key": s.key.toString("hex") }, body: Buffer.alloc(BLOB_LEN) });
  const put = (s) => request(() => putAt(s), 201);
  // Rows read and wall time of each request kind, with the bucket tables the shard has now.
  const probe = async (tag) => {
    const hit = slot("probe", tag, 0);
    const spentSlot = slot("probe", tag, 1);
    const row = {};
    row["PUT 201"] = await request(() => putAt(hit), 201);
    row["PUT 409"] = await request(() => putAt(hit), 409);
    row["GET hit"] = await request(() => fetch(`${host.url}/v1/m/${hit.hex}`), 200);
    row["GET miss"] = await request(() => fetch(`${host.url}/v1/m/${other("miss", tag).toString("hex")}`), 404);
    const batch = pad([hit.address], "probe", tag);
    const fetch48 = () => fetch(`${host.url}/v1/fetch`, { method: "POST", body: Buffer.concat(batch) });
    row["fetch 48, 1 found"] = await request(fetch48, 200);
    await put(spentSlot);
    const delAt = (s) => fetch(`${host.url}/v1/m/${s.hex}`, { method: "DELETE", headers: { "Mailbox-Write-Key": s.key.toString("hex") } });
    row["DELETE"] = await request(() => delAt(spentSlot), 204);
    row["DELETE again (spent)"] = await request(() => delAt(spentSlot), 204);
    row["PUT 410"] = await request(() => putAt(spentSlot), 410);
    // Wall time of 200 fetches of 48 (1 found): a look-up is one statement per address
    // probing every live table.
    const started = performance.now();
    for (let i = 0; i < 200; i += 1) await (await fetch48()).arrayBuffer();
    sent += 200;
    row.fetchMs = (performance.now() - started) / 200;
    return row;
  };
  try {
    // One bucket table.
    await put(slot("expiry", 0, 0));
    const one = await probe("one bucket");
    // 8 live bucket tables: one PUT every 0.9 s for 7 s (expiries 7 to 14 s ahead).
    for (let i = 1; i <= 8; i += 1) {
      await put(slot("expiry", 0, i));
      await new Promise((ok) => setTimeout(ok, 900));
    }
    const eight = await probe("eight buckets");
    // Then 40 rows more in one bucket, and every alarm until all rows stored here are gone:
    // the last expires 7 s after its PUT, its bucket ends at most 1 s later, its drop 1 s after.
    for (let i = 100; i < 140; i += 1) await put(slot("expiry", 0, i));
    await new Promise((ok) => setTimeout(ok, 10_000));
    const out = host.output();
    const dropped = [...out.matchAll(/mailbox: expiry buckets_dropped=(\d+)/g)].reduce((n, m) => n + Number(m[1]), 0);
    const alarmOps = opsOf(out, "alarm");
    return {
      one,
      eight,
      rowsExpired: 1 + 2 + 8 + 2 + 40,
      alarms: alarmOps.length,
      dropped,
      read: alarmOps.reduce((n, a) => n + a.read, 0),
      written: alarmOps.reduce((n, a) => n + a.written, 0),
    };
  } finally {
    await host.stop();
  }
}

// ---------------------------------------------------------------------------------------------
// Pricing and printing

const fmt = (n, d = 0) => n.toLocaleString("en-US", { minimumFractionDigits: d, maximumFractionDigits: d });

function perUser(result) {
  const { sum, did } = result;
  const half = (n) => n / 2;
  const inserted = half(did["rows inserted (PUT 201)"] ?? 0);
  // Steady state: a row stays TTL_DAYS (spent rows too) and then until its bucket is dropped,
  // at the bucket's end: half a bucket more on average. The drop itself costs a few rows read
  // and none written per shard and day, whatever the number of rows or users (measured).
  const stored = inserted * (TTL_DAYS + BUCKET_DAYS / 2);
  // Watch-set timeout alarm: one per unlock (sockets opened together share it); expiry alarms
  // about one a day per shard for the whole deployment (nothing per user).
  const alarms = result.mode === "subscribed" ? SESSIONS.length : 0;
  const u = {
    workerReq: half(sum.workerReq),
    doReqHttp: half(sum.doReq),
    doReqWs: half(sum.wsIn) / 20,
    alarms,
    wsIn: half(sum.wsIn),
    wsOut: half(sum.wsOut),
    rowsReadReq: half(sum.read),
    rowsWrittenReq: half(sum.written),
    alarmsSet: half(sum.alarmsSet),
    wakeups: half(result.wakeups),
    gbs: (half(result.activeMs) / 1000) * GB_PER_OBJECT,
    stored,
  };
  u.doReq = u.doReqHttp + u.doReqWs + u.alarms;
  u.rowsRead = u.rowsReadReq;
  u.rowsWritten = u.rowsWrittenReq;
  const month = 30;
  // Duration is the deployment's, not a user's: however many users, an object bills at most
  // 24 h × 128 MB a day. Per user alone it is at most the wake-up bound above.
  u.gbsCapDay = result.shards * 86_400 * GB_PER_OBJECT;
  u.gbsBeyondMonth = Math.max(0, u.gbsCapDay * month - 400_000) * PAID.gbs; // worst case, whole deployment
  u.paid = {
    workerReq: u.workerReq * month * PAID.workerReq,
    doReq: u.doReq * month * PAID.doReq,
    rowsRead: u.rowsRead * month * PAID.rowRead,
    rowsWritten: u.rowsWritten * month * PAID.rowWritten,
    // Deleted rows keep an empty body until expiry: ~100 bytes a row, read or not.
    storage: ((u.stored * 100) / 1e9) * PAID.gbMonth,
  };
  u.paidTotal = Object.values(u.paid).reduce((a, b) => a + b, 0);
  u.free = {
    "Worker requests": FREE_DAY.workerReq / u.workerReq,
    "DO requests": FREE_DAY.doReq / u.doReq,
    "rows read": FREE_DAY.rowsRead / u.rowsRead,
    "rows written": FREE_DAY.rowsWritten / u.rowsWritten,
    // Within the limit whatever the number of users when every object awake all day fits.
    "duration (estimate)": u.gbsCapDay <= FREE_DAY.gbs ? Infinity : FREE_DAY.gbs / u.gbs,
  };
  return u;
}

const expiry = await measureExpiry();
console.log(
  `expiry (measured, TTL 7 s, buckets 1 s): ${expiry.alarms} alarms dropped ${expiry.dropped} bucket tables holding ${expiry.rowsExpired} rows -> rows read ${expiry.read}, rows written ${expiry.written}`,
);
console.log("rows read and written per request, 1 bucket table vs 8 (the 7-day TTL's steady state), and wall time of a fetch of 48 in workerd:");
console.log("| request | 1 bucket: read / written | 8 buckets: read / written |");
console.log("|---|---|---|");
for (const k of Object.keys(expiry.one).filter((k) => k !== "fetchMs")) {
  console.log(`| ${k} | ${expiry.one[k].read} / ${expiry.one[k].written} | ${expiry.eight[k].read} / ${expiry.eight[k].written} |`);
}
console.log(`| fetch of 48, wall time (mean of 200) | ${expiry.one.fetchMs.toFixed(2)} ms | ${expiry.eight.fetchMs.toFixed(2)} ms |`);
const results = [];
for (const mode of MODES) {
  for (const shards of SHARD_COUNTS) {
    const r = await run(mode, shards);
    const u = perUser(r);
    results.push({ r, u });
    console.log(`\n== ${mode}, ${shards} shard${shards > 1 ? "s" : ""} (${r.requests} requests and socket events over ${DAYS} simulated days in ${r.seconds.toFixed(0)} s; last day counted) ==`);
    console.log("what the clients did in the counted day (both sides of the 5 conversations):");
    for (const [k, v] of Object.entries(r.did).sort()) console.log(`  ${k}: ${fmt(v)}`);
    console.log(`logged alarm lines (workerd's real clock, not counted): ${r.sum.alarmLines}`);
    console.log("per active user per day (half of the conversations' total):");
    const rows = [
      ["Worker requests", fmt(u.workerReq)],
      ["DO requests", `${fmt(u.doReq)} (requests ${fmt(u.doReqHttp)} + WebSocket messages in ${fmt(u.wsIn)}/20 = ${fmt(u.doReqWs, 1)} + alarms ${u.alarms} modelled)`],
      ["WebSocket messages", `${fmt(u.wsIn)} in, ${fmt(u.wsOut)} out (out: free)`],
      ["rows read", `${fmt(u.rowsRead)} (requests; expiry: none per user, ${fmt(u.stored)} rows stored on average)`],
      ["rows written", `${fmt(u.rowsWritten)} (requests; expiry: none per user)`],
      ["alarms set", fmt(u.alarmsSet, 1)],
      ["DO wake-ups (estimate)", `${fmt(u.wakeups, 1)}; ≤ ${fmt(u.gbs, 1)} GB-s for this user alone at ≤ 10 s per wake-up, 128 MB; the deployment bills ≤ ${fmt(u.gbsCapDay)} GB-s a day (${r.shards} object${r.shards > 1 ? "s" : ""} awake all day) whatever the number of users`],
    ];
    for (const [k, v] of rows) console.log(`  ${k}: ${v}`);
    console.log(`paid plan, per user per month beyond the inclusions: $${u.paidTotal.toFixed(4)} (${Object.entries(u.paid).map(([k, v]) => `${k} $${v.toFixed(4)}`).join(", ")}); duration: at most $${u.gbsBeyondMonth.toFixed(2)} a month for the whole deployment`);
    const [binding, users] = Object.entries(u.free).sort((a, b) => a[1] - b[1])[0];
    console.log(`free plan: ${fmt(Math.floor(users))} users (binding: ${binding}; ${Object.entries(u.free).map(([k, v]) => `${k} ${fmt(Math.floor(v))}`).join(", ")})`);
  }
}
console.log("\nsummary (per active user):");
console.log("| mode | shards | Worker req/day | DO req/day | rows read/day | rows written/day | GB-s/day alone (≤, estimate) | paid $/user/month beyond inclusions | + duration, whole deployment (≤) | free-plan users (binding) |");
console.log("|---|---|---|---|---|---|---|---|---|---|");
for (const { r, u } of results) {
  const [binding, users] = Object.entries(u.free).sort((a, b) => a[1] - b[1])[0];
  console.log(`| ${r.mode} | ${r.shards} | ${fmt(u.workerReq)} | ${fmt(u.doReq)} | ${fmt(u.rowsRead)} | ${fmt(u.rowsWritten)} | ${fmt(u.gbs, 1)} | $${u.paidTotal.toFixed(4)} | $${u.gbsBeyondMonth.toFixed(2)}/month | ${fmt(Math.floor(users))} (${binding}) |`);
}
