// The web app's sync engine (www/engine/, issue #12) touches no DOM: its modules name no DOM
// global, and it runs in Node (which has none) over a stand-in client, reporting what happens
// through its events. No browser; needs www/pkg/ (built by `cargo xtask build-web`) for the
// client's module, whose wasm is never started here.

import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync, readdirSync } from "node:fs";
import { join, resolve } from "node:path";

const ENGINE = resolve(import.meta.dirname, "../www/engine");

/**
 * A stand-in for the wasm client: `conversations` listed, nothing to flush, `poll` as given.
 * @param {object[]} conversations
 * @param {() => Promise<object>} poll
 */
function standInClient(conversations, poll) {
  return {
    isUnlocked: true,
    setDeleteAfterRead() {},
    setReading() {},
    lock() {
      this.isUnlocked = false;
    },
    listConversations: async () => conversations,
    watchSet: async () => null,
    nextFlushAt: async () => null,
    flush: async () => ({ delivered: 0, pending: 0, lastError: null, lastErrorCode: null, conflicts: 0, acksSent: 0, retransmitted: 0, ended: 0, flushAt: null, pollNow: [] }),
    poll,
  };
}

test("the engine's modules name no DOM global", () => {
  for (const file of readdirSync(ENGINE).filter((f) => f.endsWith(".js"))) {
    // Code only: comments may speak of the DOM.
    const code = readFileSync(join(ENGINE, file), "utf8")
      .replace(/\/\*[\s\S]*?\*\//g, "")
      .replace(/\/\/.*$/gm, "");
    const found = code.match(/\b(document|window|HTML\w*Element|localStorage|sessionStorage|requestAnimationFrame)\b/g);
    assert.equal(found, null, `${file} names ${found}`);
  }
});

test("in Node, without a DOM, a poll's outcome and a mailbox outage come out as events", async () => {
  assert.equal(typeof document, "undefined");
  const { HushClient, ErrorCode } = await import("../www/pkg/hush.js");
  const { SyncEngine } = await import("../www/engine/sync.js");
  // The client's pacing is wasm: no second poll or flush during the test.
  HushClient.pollDelayMs = () => 3_600_000;
  HushClient.safetyPollDelayMs = () => 3_600_000;
  const conversation = { id: "c1", name: "Bob", mailbox: "https://mailbox.example", joined: true, unread: 0, connecting: false };
  const message = { seq: 1, outgoing: false, text: "hi", time: 0, status: "received" };
  let outage = false;
  const client = standInClient([conversation], async () => {
    if (outage) throw Object.assign(new Error("unreachable"), { code: ErrorCode.MailboxUnreachable });
    return { messages: [message], joined: false, rejected: 0, delivered: [], notice: false, flushAt: null, deleteMessages: [], deletesOwed: 0 };
  });
  const previews = { refreshed: 0, refresh: async () => void previews.refreshed++, clear() {} };
  const engine = new SyncEngine({ visible: () => true, online: () => true, previews });
  engine.client = client;
  const events = [];
  for (const type of ["conversations", "net-status", "messages", "arrivals", "joined", "conflicts"]) {
    engine.on(type, (detail) => events.push({ type, detail }));
  }
  const settle = () => new Promise((ok) => setTimeout(ok, 50));
  try {
    await engine.start(false);
    await settle(); // The first poll (at once) and flush.
    assert.deepEqual(engine.conversations.map((c) => c.id), ["c1"]);
    assert.ok(previews.refreshed > 0, "the previews are read with the list");
    assert.deepEqual(events.filter((e) => e.type === "arrivals").map((e) => e.detail), [{ id: "c1", messages: [message] }]);
    assert.ok(events.some((e) => e.type === "messages" && e.detail.id === "c1"), "the chat of c1 is told to read its history");

    events.length = 0;
    outage = true;
    engine.pollNow("c1"); // As a push would.
    await settle();
    assert.ok(engine.unreachable.has(conversation.mailbox), "the mailbox is marked unreachable");
    assert.ok(events.some((e) => e.type === "net-status"), "a net-status event");
    assert.equal(engine.mailboxProblem(engine.byId("c1")), "unreachable");

    events.length = 0;
    outage = false;
    engine.pollNow("c1"); // As a push would.
    await settle();
    assert.equal(engine.unreachable.size, 0, "back once it answers");
    assert.ok(events.some((e) => e.type === "net-status"));
  } finally {
    engine.lock();
  }
  assert.equal(client.isUnlocked, false);
  assert.deepEqual(engine.conversations, [], "nothing kept after the lock");
  assert.equal(engine.pollTimers.size, 0, "no poll left scheduled");
});

test("a poll's pollAt brings the next poll forward (a message set aside is due), also with a slow pace", async () => {
  const { HushClient } = await import("../www/pkg/hush.js");
  const { SyncEngine } = await import("../www/engine/sync.js");
  // The pace alone would poll again in an hour (as a live subscription's safety poll does).
  HushClient.pollDelayMs = () => 3_600_000;
  HushClient.safetyPollDelayMs = () => 3_600_000;
  const conversation = { id: "c1", name: "Bob", mailbox: "https://mailbox.example", joined: true, unread: 0, connecting: false };
  const polls = [];
  const client = standInClient([conversation], async () => {
    polls.push(Date.now());
    // The first poll sets a message aside, due 3 s later; the second shows it.
    const pollAt = polls.length === 1 ? Date.now() + 3_000 : null;
    return { messages: [], joined: false, rejected: 0, delivered: [], notice: false, flushAt: null, deleteMessages: [], deletesOwed: 0, pollAt };
  });
  const previews = { refresh: async () => {}, clear() {} };
  let front = true;
  const engine = new SyncEngine({ visible: () => front, online: () => true, previews });
  engine.client = client;
  try {
    await engine.start(false);
    await new Promise((ok) => setTimeout(ok, 500));
    // The page goes to the background: the poll is scheduled again at the slow pace, and
    // still by then.
    front = false;
    engine.visibilityChanged();
    for (let waited = 0; polls.length < 2 && waited < 10_000; waited += 100) await new Promise((ok) => setTimeout(ok, 100));
    assert.equal(polls.length, 2, "polled again when the message set aside was due");
    assert.ok(polls[1] - polls[0] >= 2_900, `not before it is due (${polls[1] - polls[0]} ms)`);
    await new Promise((ok) => setTimeout(ok, 1_500));
    assert.equal(polls.length, 2, "then back to the pace");
  } finally {
    engine.lock();
  }
});

test("a push during a poll brings a full poll after it, also when a pushed poll started while the poll before read the list", async () => {
  const { HushClient } = await import("../www/pkg/hush.js");
  const { SyncEngine } = await import("../www/engine/sync.js");
  // No poll by the pace during the test: only pushes (pollNow) poll.
  HushClient.pollDelayMs = () => 3_600_000;
  HushClient.safetyPollDelayMs = () => 3_600_000;
  const conversation = { id: "c1", name: "Bob", mailbox: "https://mailbox.example", joined: true, unread: 0, connecting: false };
  const outcome = (messages) => ({ messages, joined: false, rejected: 0, delivered: [], notice: false, flushAt: null, deleteMessages: [], deletesOwed: 0, pollAt: null });
  const message = { seq: 1, outgoing: false, text: "b1", time: 0, status: "received" };
  /** A promise with its resolve, for steps the test releases one at a time. */
  const gate = () => {
    let open = () => {};
    const shut = new Promise((ok) => (open = ok));
    return { shut, open };
  };
  let listing = null;
  const pushed = [];
  const polls = [];
  const client = standInClient([conversation], async () => {
    polls.push("full");
    return outcome([]);
  });
  client.listConversations = async () => {
    await listing?.shut;
    return [conversation];
  };
  /** @type {Map<number, ReturnType<typeof gate>>} each pushed poll waits for its gate */
  const pushGates = new Map();
  client.pollPushed = async (_id, bytes) => {
    pushed.push(bytes[0]);
    await pushGates.get(bytes[0])?.shut;
    // The first push reads a message: its poll reads the list again afterwards.
    return outcome(bytes[0] === 1 ? [message] : []);
  };
  const previews = { refresh: async () => {}, clear() {} };
  const engine = new SyncEngine({ visible: () => true, online: () => true, previews });
  engine.client = client;
  const settle = () => new Promise((ok) => setTimeout(ok, 50));
  try {
    await engine.start(false);
    await settle(); // The first poll (at once) and flush.
    polls.length = 0;

    // Push 1 is read and shows a message; its poll then reads the list again, slowly.
    listing = gate();
    engine.pollNow("c1", new Uint8Array([1]));
    await settle();
    // Meanwhile push 2 (the snapshot of the watch set that poll sent) starts a poll of its own…
    pushGates.set(2, gate());
    engine.pollNow("c1", new Uint8Array([2]));
    await settle();
    // …and push 3 arrives during it: not read, a full poll is owed once it ends.
    engine.pollNow("c1", new Uint8Array([3]));
    assert.deepEqual(pushed, [1, 2], "push 3 waits for the poll running");
    // The first poll's end comes first, while push 2's poll still runs; then push 2's ends.
    listing.open();
    await settle();
    pushGates.get(2).open();
    await settle();
    // (The first poll's end used to take that request and drop it, as a poll ran: push 3's
    // blob then waited for the next snapshot, 2-4 min; app-composer's four messages, over 60 s.)
    assert.deepEqual(polls, ["full"], "a full poll read what push 3 brought");
  } finally {
    engine.lock();
  }
});
