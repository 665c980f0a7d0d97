// What the notices of a conversation say (www/screens/notice-content.js), from summaries as
// the client lists them: no browser, no DOM. A restore and the interference it looks like
// must tell one story (a fresh outside trial read "someone is interfering" beside "this
// device was restored" for one and the same event).

import { test } from "node:test";
import assert from "node:assert/strict";
import { NOTICE_ACTIONS, freshNotices, noticesKey, noticesOf } from "../www/screens/notice-content.js";

/** A joined conversation with Bob and nothing to say, changed by `over`. */
const summary = (over = {}) => ({
  id: "c1",
  name: "Bob",
  mailbox: "http://127.0.0.1:8787",
  joined: true,
  safetyCode: "1234 5678",
  inviteLink: null,
  unread: 0,
  lastActivity: 0,
  expiresAt: null,
  inviteTaken: false,
  verifiedAt: null,
  connecting: false,
  ended: null,
  interference: null,
  rollback: null,
  unreadable: null,
  ...over,
});

const interference = { since: 1, undelivered: 2, rejected: 0 };

test("a conversation with nothing to say has no notice", () => {
  assert.deepEqual(noticesOf(summary()), []);
});

test("interference alone says someone interferes and points to the safety code", () => {
  const [n, ...rest] = noticesOf(summary({ interference }));
  assert.equal(rest.length, 0);
  assert.equal(n.kind, "interference");
  assert.equal(n.title, "Someone is interfering with this conversation");
  assert.match(n.text, /^2 of your messages could not be delivered/);
  assert.match(n.text, /Compare your safety code with Bob's/);
  assert.doesNotMatch(n.text, /older copy/);
  assert.deepEqual(n.actions.map((a) => a.does ?? `dismiss ${a.dismiss}`), ["showSafety", "dismiss interference"]);
});

test("interference beside a restore names the restore as a likely cause, and where it is said, but keeps its title and advice", () => {
  const cases = [
    [{ rollback: { detected: 1, lostBlobs: 1 } }, "below", ["interference", "rollback"]],
    [{ unreadable: { since: 1, signalAt: Date.now() + 300_000 } }, "below", ["interference", "unreadable"]],
    [{ ended: "peerRestored" }, "above", ["ended", "interference"]],
    [{ ended: "diverged" }, "above", ["ended", "interference"]],
    // A conversation of protocol version 1 ended above; the restore is told below.
    [{ ended: "protocolV1", rollback: { detected: 1, lostBlobs: 0 } }, "below", ["ended", "interference", "rollback"]],
  ];
  for (const [over, where, kinds] of cases) {
    const list = noticesOf(summary({ interference, ...over }));
    assert.deepEqual(list.map((n) => n.kind), kinds, JSON.stringify(over));
    const n = list.find((x) => x.kind === "interference");
    // The mailbox can raise the unreadable notice itself (altered bodies): the warning must
    // not get softer for it.
    assert.equal(n.title, "Someone is interfering with this conversation", JSON.stringify(over));
    assert.match(n.text, new RegExp(`older copy \\(the notice ${where}\\), that most likely explains it`), JSON.stringify(over));
    assert.match(n.text, /Otherwise, or if you are not sure: Compare your safety code with Bob's .*If they differ, or this keeps happening, meet Bob and start a new conversation\./);
    assert.ok(n.actions.some((a) => a.does === "showSafety"));
  }
  // With nothing undelivered it does not say the data is not from Bob while naming Bob's
  // older copy as its likely writer.
  const [, n] = noticesOf(summary({ interference: { since: 1, undelivered: 0, rejected: 3 }, ended: "peerRestored" }));
  assert.match(n.text, /^Data that Bob's device cannot have written now/);
});

test("an unreadable conversation says when the other device is told, not that it was", () => {
  const signalAt = new Date(2026, 11, 5, 14, 7).getTime();
  const [n] = noticesOf(summary({ unreadable: { since: signalAt - 300_000, signalAt } }));
  assert.equal(n.title, "Bob's messages can't be read on this device");
  assert.match(n.text, /Hush tells Bob's device at \S/);
  assert.doesNotMatch(n.text, /has told/);
});

test("a notice standing only on what a lost copy read says messages are missing and asked back, not unreadable", () => {
  const signalAt = new Date(2026, 11, 5, 14, 7).getTime();
  // A day after the notice: the other device may simply be away (client-core `signal_at`).
  const [n, ...rest] = noticesOf(summary({ unreadable: { since: signalAt - 86_400_000, signalAt, lostReads: true } }));
  assert.equal(rest.length, 0);
  assert.equal(n.kind, "unreadable");
  assert.equal(n.title, "Some of Bob's messages are missing on this device");
  assert.doesNotMatch(n.text, /can't be read/);
  assert.match(n.text, /Hush asks Bob's device to put them back/);
  assert.match(n.text, /the conversation waits for it, also while Bob is away/);
  assert.match(n.text, /If they have not come back by \S.*Hush tells Bob's device and the conversation ends/);
  // Nothing to do but wait (a new conversation is offered once this one ends), and once the
  // conversation ends, no notice of its own.
  assert.deepEqual(n.actions, []);
  const ended = noticesOf(summary({ unreadable: { since: 1, signalAt: 2, lostReads: true }, ended: "diverged" }));
  assert.deepEqual(ended.map((x) => x.kind), ["ended"]);
});

test("an ended conversation's notices do not contradict its end", () => {
  for (const ended of ["peerRestored", "diverged"]) {
    const list = noticesOf(
      summary({ interference, rollback: { detected: 1, lostBlobs: 0 }, unreadable: { since: 1, signalAt: 2 }, ended }),
    );
    assert.deepEqual(list.map((n) => n.kind), ["ended", "interference", "rollback"], ended);
    for (const n of list) {
      assert.doesNotMatch(n.text, /goes on|the conversation ends/, `${ended}: ${n.kind}`);
    }
  }
  // Before the end, the unreadable notice says when it comes, and the rollback notice does
  // not say the conversation goes on; alone, it does.
  const ending = noticesOf(summary({ rollback: { detected: 1, lostBlobs: 0 }, unreadable: { since: 1, signalAt: 2 } }));
  assert.deepEqual(ending.map((n) => n.kind), ["unreadable", "rollback"]);
  assert.match(ending[0].text, /the conversation ends/);
  assert.doesNotMatch(ending[1].text, /goes on/);
  const [alone] = noticesOf(summary({ rollback: { detected: 1, lostBlobs: 0 } }));
  assert.match(alone.text, /goes on safely/);
});

test("every button of every notice does something", () => {
  const all = [
    ...noticesOf(summary({ interference, rollback: { detected: 1, lostBlobs: 0 }, ended: "peerRestored" })),
    ...noticesOf(summary({ unreadable: { since: 1, signalAt: 2 } })),
  ];
  assert.deepEqual(all.map((n) => n.kind), ["ended", "interference", "rollback", "unreadable"]);
  for (const n of all) {
    assert.ok(n.actions.length > 0, n.kind);
    for (const a of n.actions) {
      // Exactly one of an action or a dismissal, and the button says which.
      assert.ok(Boolean(a.does) !== Boolean(a.dismiss), `${n.kind}: ${a.text}`);
      if (a.does) assert.equal(a.text, NOTICE_ACTIONS[a.does], `${n.kind}: ${a.does}`);
      else assert.equal(a.text, "Dismiss", `${n.kind}: dismiss`);
      if (a.dismiss) assert.equal(a.dismiss, n.kind, `${n.kind} dismisses itself`);
    }
  }
});

test("a notice is announced when it appears and again when what it says changes, not otherwise", () => {
  const alone = noticesOf(summary({ interference }));
  const key = noticesKey(alone);
  assert.deepEqual(freshNotices(key, alone), [], "nothing new");
  // A restore notice appears: it is new, and the interference notice now names it.
  const both = noticesOf(summary({ interference, rollback: { detected: 1, lostBlobs: 0 } }));
  assert.deepEqual(freshNotices(key, both).map((n) => n.kind), ["interference", "rollback"]);
  // One more undelivered message changes the interference notice's text only.
  const more = noticesOf(summary({ interference: { ...interference, undelivered: 3 }, rollback: { detected: 1, lostBlobs: 0 } }));
  assert.deepEqual(freshNotices(noticesKey(both), more).map((n) => n.kind), ["interference"]);
  // A dismissed notice going away announces nothing.
  assert.deepEqual(freshNotices(noticesKey(both), alone).map((n) => n.kind), ["interference"], "its text no longer names the restore");
  assert.deepEqual(freshNotices(noticesKey(alone), []), []);
});
