// Subscriptions, notifications and delete-after-read in the web app (issue 11), in real headless
// Chromium against a real `mailbox-server --www`. Mechanisms are asserted, never durations:
//   - a message arrives by push: Bob's regular poll delays are ten minutes (his copy of the
//     client module is served with pollDelayMs and safetyPollDelayMs patched), so only a frame
//     on the conversation's WebSocket can bring it, and he reads it from the frame without a
//     fetch (HushClient.pollPushed);
//   - one socket per conversation, and no address in two conversations' watch sets;
//   - a message to a conversation that is not open raises a notification without its text
//     (the Notification constructor spied on, the permission granted), which opens that
//     conversation when clicked; with names and text chosen in Settings, it shows them;
//   - the offer to notify appears only once a conversation is joined, never on load;
//   - with window.WebSocket removed, polling alone delivers;
//   - "Delete messages from the mailbox once read" on: the mailbox's `deleted=` count (printed
//     on SIGTERM) goes up, also after locking and unlocking; off (the default): it stays 0.

import { describe, test, before, after } from "node:test";
import assert from "node:assert/strict";
import { resolve } from "node:path";
import { startNative } from "./support/servers.mjs";
import { launch, screenshot, NO_BROWSER } from "./support/browser.mjs";
import { createPassphrase, unlock, connect, listItem, openChat, send, messages, eventually, unlabelledControls } from "./support/app.mjs";

const WWW = process.env.HUSH_WWW_DIR ?? resolve(import.meta.dirname, "../www");
const PASS = { alice: "alice correct horse", bob: "bob battery staple", carol: "carol purple lantern", dave: "dave quiet harbour" };
/** The regular poll delay Bob's client is given: longer than any test waits. */
const NEVER_MS = 600_000;

/** Serves this context's client module with both poll delays fixed at NEVER_MS. */
async function slowPolls(context) {
  await context.route("**/pkg/hush.js", async (route) => {
    const response = await route.fetch();
    const body = `${await response.text()}\nHushClient.pollDelayMs = () => ${NEVER_MS};\nHushClient.safetyPollDelayMs = () => ${NEVER_MS};\n`;
    await route.fulfill({ response, body });
  });
}

/** Records every Notification the page constructs in window.__notes (the real one never shows). */
function spyOnNotifications(context) {
  return context.addInitScript(() => {
    const Real = window.Notification;
    window.__notes = [];
    window.Notification = class {
      static get permission() {
        return Real.permission;
      }
      static requestPermission() {
        return Real.requestPermission();
      }
      constructor(title, options = {}) {
        this.title = title;
        this.onclick = null;
        window.__notes.push({ title, body: options.body, tag: options.tag, instance: this });
      }
      close() {}
    };
  });
}

/** Notifications constructed so far: [{ title, body, tag }]. */
const notes = (page) => page.evaluate(() => window.__notes.map(({ title, body, tag }) => ({ title, body, tag })));

/**
 * Every WebSocket the page opens and every request to /v1/fetch, in the order they happened:
 * { sockets: [{ url, sent: [Buffer], received: [Buffer] }], events: [{ kind, socket?, bytes? }] }.
 */
function watchTraffic(page) {
  const log = { sockets: [], events: [] };
  page.on("websocket", (ws) => {
    const socket = { url: ws.url(), sent: [], received: [] };
    log.sockets.push(socket);
    ws.on("framesent", (f) => socket.sent.push(Buffer.from(f.payload)));
    ws.on("framereceived", (f) => {
      socket.received.push(Buffer.from(f.payload));
      log.events.push({ kind: "frame", socket, bytes: Buffer.byteLength(f.payload) });
    });
  });
  page.on("request", (req) => {
    if (req.url().endsWith("/v1/fetch")) log.events.push({ kind: "fetch" });
  });
  return log;
}

/** The 32-byte addresses (hex) of a watch set. */
function addresses(watchSet) {
  const out = [];
  for (let at = 0; at < watchSet.length; at += 32) out.push(watchSet.subarray(at, at + 32).toString("hex"));
  return out;
}

/** Stops the server (SIGTERM) and returns the counts it printed on stopping. */
async function stopAndCount(server) {
  await server.stop();
  const line = server.output().match(/stopping; (.*)/)?.[1] ?? "";
  const count = (name) => Number(new RegExp(`\\b${name}=(\\d+)`).exec(line)?.[1] ?? NaN);
  const pushed = Number(/\bpushed=(\d+)/.exec(server.output())?.[1] ?? 0);
  return { line, deleted: count("deleted"), pushed };
}

describe("subscriptions and notifications", { skip: NO_BROWSER }, () => {
  let server;
  let alice;
  let bob;
  let traffic;

  before(async () => {
    server = await startNative({ www: WWW });
    alice = await launch();
    bob = await launch();
    await slowPolls(bob.context);
    await spyOnNotifications(bob.context);
    await bob.context.grantPermissions(["notifications"], { origin: server.url });
    traffic = watchTraffic(bob.page);
    // Delete after read is on by default; these two keep what they read, so that the last
    // test can show a mailbox that was never asked to delete anything.
    await alice.page.goto(`${server.url}/`);
    await alice.page.evaluate(() => localStorage.setItem("hush.deleteAfterRead", "off"));
    await createPassphrase(alice.page, PASS.alice);
    await bob.page.goto(`${server.url}/`);
    await bob.page.evaluate(() => localStorage.setItem("hush.deleteAfterRead", "off"));
    await createPassphrase(bob.page, PASS.bob);
  });

  after(async () => {
    for (const p of [alice, bob]) await p?.context.close().catch(() => {});
    if (server?.child.exitCode === null) await server.stop().catch(() => {});
  });

  test("the offer to notify appears once a conversation is joined, not before", async () => {
    const offer = (page) => page.getByRole("button", { name: "Get notified of new messages" });
    assert.equal(await offer(alice.page).count(), 0, "no offer on an empty list");
    await connect(alice.page, bob.page, "Bob", "Alice");
    await offer(alice.page).waitFor();
    assert.deepEqual(await unlabelledControls(alice.page), [], "every control has a name");
    await screenshot(alice.page, "push-notify-offer");
    // A permission granted before is not consent to be notified by Hush: Bob is offered too,
    // and nothing is on until he says yes (the browser does not ask again).
    await offer(bob.page).waitFor();
    assert.equal(await bob.page.evaluate(() => localStorage.getItem("hush.notify")), null, "off until accepted");
    await offer(bob.page).click();
    await eventually(async () => (await offer(bob.page).count()) === 0, { what: "Bob's offer gone once accepted" });
    await alice.page.getByRole("button", { name: "Not now" }).click();
    assert.equal(await offer(alice.page).count(), 0, "dismissed");
    await connect(alice.page, bob.page, "Bob too", "Alice too");
    assert.equal(await offer(alice.page).count(), 0, "stays dismissed");
  });

  test("a message arrives by push on the conversation's own socket and is read from the frame, with no fetch", async () => {
    await openChat(bob.page, "Alice");
    // One socket per conversation, each with its watch set in force (a snapshot came back).
    const subscribed = () => traffic.sockets.filter((s) => s.url.endsWith("/v1/subscribe") && s.received.length > 0);
    await eventually(() => subscribed().length >= 2, { what: "a live subscription for each of Bob's two conversations" });
    const sockets = traffic.sockets.filter((s) => s.sent.length > 0);
    assert.equal(sockets.length, 2, "two conversations, two sockets");
    for (const s of sockets) {
      assert.equal(s.url, `${server.url.replace("http", "ws")}/v1/subscribe`);
      for (const set of s.sent) {
        assert.ok(set.length > 0 && set.length % 32 === 0 && set.length <= 240 * 32, `a watch set of whole addresses (${set.length} bytes)`);
      }
    }
    const [one, two] = sockets.map((s) => new Set(s.sent.flatMap(addresses)));
    assert.ok([...one].every((a) => !two.has(a)), "no address is watched by both conversations' sockets");

    await openChat(alice.page, "Bob");
    const from = traffic.events.length;
    await send(alice.page, "pushed to you");
    await eventually(async () => (await messages(bob.page)).some((m) => m.text === "pushed to you"), { what: "the message at Bob" });
    const after = traffic.events.slice(from);
    const frame = after.findIndex((e) => e.kind === "frame" && e.bytes > 0);
    assert.ok(frame >= 0, "the mailbox pushed a frame");
    // Its regular polls are ten minutes apart, so only the frame brought it; and the frame is
    // read as it is (HushClient.pollPushed): the blob is next in Alice's order, no request.
    assert.deepEqual(after.filter((e) => e.kind === "fetch"), [], "Bob's client read the pushed frame without fetching");
    assert.deepEqual(await notes(bob.page), [], "no notification for a message in the chat open in front");
  });

  test("a message to another conversation raises a notification without its text, which opens it", async () => {
    await openChat(bob.page, "Alice too");
    await send(alice.page, "words the lock screen must not show");
    const [note] = await eventually(async () => {
      const n = await notes(bob.page);
      return n.length ? n : null;
    }, { what: "a notification at Bob" });
    assert.deepEqual({ title: note.title, body: note.body }, { title: "Hush", body: "New message" });
    assert.ok(typeof note.tag === "string" && note.tag.length > 0, "tagged with the conversation");
    assert.doesNotMatch(JSON.stringify(note), /lock screen|Alice/, "no text, no name");
    await eventually(async () => (await bob.page.title()) === "(1) Hush", { what: "the unread count in the title" });

    await bob.page.evaluate(() => window.__notes.at(-1).instance.onclick());
    await bob.page.getByRole("heading", { name: "Alice", exact: true }).waitFor();
    await eventually(async () => (await messages(bob.page)).some((m) => m.text === "words the lock screen must not show"), {
      what: "the conversation opened by the notification",
    });

    // Names and text, once chosen in Settings.
    await bob.page.getByRole("button", { name: "Settings" }).click();
    const notify = bob.page.getByRole("checkbox", { name: "Notify me of new messages" });
    assert.equal(await notify.isChecked(), true, "on: accepted from the offer");
    const detail = bob.page.getByRole("checkbox", { name: "Show names and message text in notifications" });
    assert.equal(await detail.isChecked(), false, "names and text are off by default");
    assert.equal(await bob.page.getByRole("checkbox", { name: "Delete messages from the mailbox once read" }).isChecked(), false, "off, as chosen in this browser");
    assert.deepEqual(await unlabelledControls(bob.page), [], "every control has a name");
    await detail.check();
    await screenshot(bob.page, "push-settings");
    await send(alice.page, "now you may show this");
    const shown = await eventually(async () => (await notes(bob.page)).find((n) => n.body === "now you may show this"), {
      what: "a notification with the text",
    });
    assert.equal(shown.title, "Alice", "with the conversation's name");
    await detail.uncheck();
  });

  test("a message shown in front in another tab of the same profile raises no notification", async (t) => {
    // The second tab can neither fetch (its requests to /v1/fetch fail) nor subscribe (its
    // sockets are closed at once): the first tab reads the message, pushed to its socket, and
    // the second shows it from the change notice, so the first is the one that would notify.
    const errorsBefore = bob.errors.length;
    const second = await bob.context.newPage();
    await second.route("**/v1/fetch", (route) => route.abort());
    await second.routeWebSocket("**/v1/subscribe", (ws) => ws.close());
    await second.goto(`${server.url}/`);
    await unlock(second, PASS.bob);
    await openChat(second, "Alice");
    // Texts in notifications, so that each notification says which message it is about.
    await bob.page.getByRole("button", { name: "Settings" }).click();
    await bob.page.getByRole("checkbox", { name: "Show names and message text in notifications" }).check();
    await openChat(bob.page, "Alice too");
    // The first tab's PUTs: its acknowledgement of the message goes out 2-8 s after it read
    // it; the second tab must show the message from the first tab's notice of the read, not
    // only from the later one of that flush. So the first tab's PUTs are held (unanswered)
    // until the second tab shows it: no flush of the first tab can complete before, however
    // slow the machine (a race with the acknowledgement's delay otherwise).
    let release;
    const released = new Promise((resolve) => (release = resolve));
    const held = [];
    const hold = async (route) => {
      if (route.request().method() !== "PUT") return route.fallback();
      held.push(route.request().url());
      await released;
      return route.fallback();
    };
    await bob.page.route("**/v1/m/*", hold);
    await send(alice.page, "seen in the other tab");
    await eventually(async () => (await messages(second)).some((m) => m.text === "seen in the other tab"), {
      what: "the message shown in the second tab, every PUT of the first tab held",
    });
    release();
    await bob.page.unroute("**/v1/m/*", hold);
    t.diagnostic(`first tab's PUTs held meanwhile: ${held.length}`);
    // Then one that no tab shows in front: the first tab notifies of it, after deciding on
    // the first (polls of one conversation run in order), so only it may be new.
    await openChat(second, "Alice too");
    await send(alice.page, "seen by nobody yet");
    await eventually(async () => (await notes(bob.page)).some((n) => n.body === "seen by nobody yet"), {
      what: "a notification of the second message",
    });
    const about = (n) => n.body === "seen in the other tab";
    assert.equal((await notes(bob.page)).filter(about).length, 0, "no notification of the message the other tab showed");
    assert.deepEqual(await notes(second), [], "nor from the tab that showed it");
    await second.close();
    // Two tabs flushing one outbox may both PUT a blob: the later gets 409 over its own bytes,
    // which the client takes as stored (docs/CLIENT.md, "Several tabs"); Chromium logs it, and
    // the second tab's fetches this test made fail.
    const added = bob.errors.splice(errorsBefore);
    const expected = /status of 409 \(Conflict\)|net::ERR_FAILED/;
    assert.deepEqual(added.filter((e) => !expected.test(e)), [], "no other console errors");
  });

  test("nothing is deleted from the mailbox with delete-after-read off; the mailbox pushed", async () => {
    for (const p of [alice, bob]) {
      assert.deepEqual(p.errors, [], "no console errors");
      await p.context.close();
    }
    const { line, deleted, pushed } = await stopAndCount(server);
    assert.equal(deleted, 0, line);
    assert.ok(pushed > 0, "the mailbox pushed to subscribers");
  });
});

describe("without WebSocket: polling, and delete-after-read", { skip: NO_BROWSER }, () => {
  let server;
  let carol;
  let dave;
  const sockets = [];

  before(async () => {
    server = await startNative({ www: WWW });
    carol = await launch();
    dave = await launch();
    for (const p of [carol, dave]) {
      await p.context.addInitScript(() => delete window.WebSocket);
      p.page.on("websocket", (ws) => sockets.push(ws.url()));
      await p.page.goto(`${server.url}/`);
    }
    await createPassphrase(carol.page, PASS.carol);
    await createPassphrase(dave.page, PASS.dave);
    assert.equal(await dave.page.evaluate(() => typeof window.WebSocket), "undefined");
  });

  after(async () => {
    for (const p of [carol, dave]) await p?.context.close().catch(() => {});
    if (server?.child.exitCode === null) await server.stop().catch(() => {});
  });

  test("polling delivers, and a reader deletes what it read (on by default), also after unlocking again", async () => {
    await connect(carol.page, dave.page, "Dave", "Carol");
    await dave.page.getByRole("button", { name: "Settings" }).click();
    assert.equal(await dave.page.getByRole("checkbox", { name: "Delete messages from the mailbox once read" }).isChecked(), true, "on by default");
    await openChat(dave.page, "Carol");
    for (const text of ["one", "two", "three"]) await send(carol.page, text);
    await eventually(async () => (await messages(dave.page)).filter((m) => !m.own).length === 3, { what: "three messages at Dave, by polling" });

    // The setting lives in this browser, not the vault: it is applied again after unlocking.
    await dave.page.getByRole("button", { name: "Lock", exact: true }).click();
    await unlock(dave.page, PASS.dave);
    await openChat(dave.page, "Carol");
    await send(carol.page, "four");
    await eventually(async () => (await messages(dave.page)).some((m) => m.text === "four"), { what: "the fourth message" });
    assert.equal(await listItem(dave.page, "Carol").count(), 1);

    assert.deepEqual(sockets, [], "no WebSocket was opened");
    for (const p of [carol, dave]) {
      assert.deepEqual(p.errors, [], "no console errors");
      await p.context.close();
    }
    const { line, deleted } = await stopAndCount(server);
    assert.ok(deleted >= 4, `each message Dave read was deleted: ${line}`);
  });
});

describe("with WebSocket: delete-after-read deletes over the subscription", { skip: NO_BROWSER }, () => {
  let server;
  let erin;
  let frank;

  before(async () => {
    server = await startNative({ www: WWW });
    erin = await launch();
    frank = await launch();
    await slowPolls(frank.context);
    for (const [p, pass] of [[erin, PASS.alice], [frank, PASS.bob]]) {
      await p.page.goto(`${server.url}/`);
      await createPassphrase(p.page, pass);
    }
  });

  after(async () => {
    for (const p of [erin, frank]) await p?.context.close().catch(() => {});
    if (server?.child.exitCode === null) await server.stop().catch(() => {});
  });

  test("what a push brought is deleted by a delete message on its socket, not by DELETE requests", async () => {
    await connect(erin.page, frank.page, "Frank", "Erin");
    await frank.page.getByRole("button", { name: "Settings" }).click();
    await frank.page.getByRole("checkbox", { name: "Delete messages from the mailbox once read" }).check();
    await openChat(frank.page, "Erin");
    const traffic = watchTraffic(frank.page);
    // Opening the chat reopens nothing: wait for a live socket (a snapshot received).
    await frank.page.reload();
    await unlock(frank.page, PASS.bob);
    await openChat(frank.page, "Erin");
    await eventually(async () => traffic.sockets.some((s) => s.received.length > 0), { what: "a live subscription at Frank" });
    const httpDeletes = [];
    frank.page.on("request", (req) => {
      if (req.method() === "DELETE") httpDeletes.push(req.url());
    });
    const texts = ["pushed and deleted one", "pushed and deleted two"];
    for (const text of texts) {
      await send(erin.page, text);
      await eventually(async () => (await messages(frank.page)).some((m) => m.text === text), { what: `"${text}" at Frank` });
    }
    // The blobs pushed to Frank (records: address 32, length 4, blob).
    const pushedAddresses = [];
    for (const s of traffic.sockets) {
      for (const frame of s.received) {
        for (let at = 0; at + 36 <= frame.length; ) {
          const len = frame.readUInt32BE(at + 32);
          if (len > 0) pushedAddresses.push(frame.subarray(at, at + 32).toString("hex"));
          at += 36 + len;
        }
      }
    }
    assert.ok(pushedAddresses.length >= texts.length, `the messages came by push (${pushedAddresses.length} blobs)`);
    const deleteMessages = await eventually(async () => {
      const sent = traffic.sockets.flatMap((s) => s.sent).filter((m) => m.length % 32 === 1);
      return sent.length >= texts.length ? sent : null;
    }, { what: "delete messages on Frank's socket" });
    for (const m of deleteMessages) {
      assert.equal(m[0], 0x44, "a delete message starts with 0x44");
      assert.ok(m.length >= 33 && m.length <= 1 + 64 * 32, `1 + 32·k bytes (${m.length})`);
    }
    assert.deepEqual(httpDeletes, [], "no DELETE request for what a push brought");
    // Gone from the mailbox: each address pushed reads 410 (spent: read and deleted) once the
    // mailbox has taken the delete message (sent is not yet taken: no answer comes for it).
    for (const address of pushedAddresses) {
      await eventually(async () => {
        const res = await fetch(`${server.url}/v1/m/${address}`);
        await res.arrayBuffer();
        return res.status === 410;
      }, { what: `pushed ${address.slice(0, 8)}… deleted (410)` });
    }
    for (const p of [erin, frank]) assert.deepEqual(p.errors, [], "no console errors");
  });
});
