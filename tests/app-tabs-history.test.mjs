// Two everyday cases of the web app (issue 16, items 5 and 6), in real headless Chromium
// against a real mailbox-server:
//   * a second tab on the same chat shows what the first one stored (messages from the other
//     person, messages sent from the first tab, their delivery status) within a second;
//   * a long conversation opens with its newest page only, scrolling up loads older pages
//     (the view stays where it was), and a new message is appended: no whole-history read,
//     no redraw of what is shown;
//   * a message deleted on this device in one tab goes from another tab's open chat and list;
//   * Lock and the auto-lock lock every tab of the profile (activity in any tab counts).
// The conversation is set up through the client's JS API (Alice on a bare page of her own
// profile; Bob's vault in the profile whose app is then driven through roles and names).

import { test } from "node:test";
import assert from "node:assert/strict";
import { resolve } from "node:path";
import { startNative } from "./support/servers.mjs";
import { launch, screenshot, NO_BROWSER } from "./support/browser.mjs";
import { unlock, openChat, send, messages, eventually, recordArrivals, arrivals, onMailbox, listItem } from "./support/app.mjs";

const WWW = process.env.HUSH_WWW_DIR ?? resolve(import.meta.dirname, "../www");
const BOB_PASS = "bob tabs and history";

/** A bare same-origin page with the client module loaded and its vault created. */
async function apiClient(page, origin, global, passphrase) {
  await page.route("**/favicon.ico", (route) => route.fulfill({ status: 204 }));
  await page.goto(`${origin}/v1/health`);
  await page.evaluate(
    async ({ global, passphrase }) => {
      const m = await import("/pkg/hush.js");
      await m.default();
      window[global] = await m.HushClient.open("hush");
      await window[global].createVault(passphrase, true);
    },
    { global, passphrase },
  );
}

/**
 * Alice invites, Bob joins (both through the API), and Bob sends `history` messages
 * "m #0", "m #1", … Returns the conversation ids on each side.
 */
async function pair(server, alice, bob, history = 0) {
  await apiClient(alice.page, server.url, "alice", "alice passphrase");
  await apiClient(bob.page, server.url, "bob", BOB_PASS);
  const invite = await alice.page.evaluate((site) => window.alice.createInvite(site, site, "Bob"), server.url);
  const bobConv = await bob.page.evaluate(
    async ({ link, site, history }) => {
      const id = await window.bob.join(link, site, "Alice");
      // Flushes as the app does: a conversation the flush names in `pollNow` (messages held
      // back while 8 blobs waited for the mailbox) is polled, which seals them, then flushed.
      const flushAll = async () => {
        for (;;) {
          const out = await window.bob.flush();
          if (!out.pollNow.includes(id)) return out;
          await window.bob.poll(id);
        }
      };
      await flushAll();
      for (let i = 0; i < history; i++) {
        await window.bob.send(id, `m #${i}`);
        if (i % 100 === 99) await flushAll();
      }
      const out = await flushAll();
      if (out.pending) throw new Error(`${out.pending} blobs still pending`);
      return id;
    },
    { link: invite.link, site: server.url, history },
  );
  const joined = await alice.page.evaluate(async (id) => {
    for (let i = 0; i < 20; i++) if ((await window.alice.poll(id)).joined) return true;
    return false;
  }, invite.id);
  assert.ok(joined, "Alice sees Bob's join");
  return { alice: invite.id, bob: bobConv };
}

/** Alice sends `texts` through the API and delivers them. */
async function aliceSends(alice, id, texts) {
  await alice.page.evaluate(
    async ({ id, texts }) => {
      for (const text of texts) await window.alice.send(id, text);
      const out = await window.alice.flush();
      if (out.pending) throw new Error(`${out.pending} blobs still pending`);
    },
    { id, texts },
  );
}

test("a second tab on the same chat shows the other person's messages and the first tab's within a second", { skip: NO_BROWSER, timeout: 180_000 }, async () => {
  const server = await startNative({ www: WWW });
  const alice = await launch();
  const bob = await launch();
  try {
    const ids = await pair(server, alice, bob);
    // Bob's profile, two tabs of the app on the same chat.
    const tab1 = bob.page;
    const tab2 = await bob.context.newPage();
    for (const tab of [tab1, tab2]) {
      await tab.goto(`${server.url}/`);
      await unlock(tab, BOB_PASS);
      await openChat(tab, "Alice");
      await recordArrivals(tab);
    }

    // Alice sends three: whichever tab polls them first, the other shows them within a second.
    const fromAlice = ["one from Alice", "two from Alice", "three from Alice"];
    await aliceSends(alice, ids.alice, fromAlice);
    const both = async (texts) => {
      const seen = await eventually(
        async () => {
          const [a, b] = [await arrivals(tab1), await arrivals(tab2)];
          return texts.every((t) => t in a && t in b) && [a, b];
        },
        { timeout: 20_000, what: `${texts.join(", ")} in both tabs` },
      );
      return texts.map((t) => Math.abs(seen[0][t] - seen[1][t]));
    };
    for (const lag of await both(fromAlice)) assert.ok(lag < 1_000, `both tabs show each message within a second of each other (${lag} ms)`);

    // Bob writes from tab 1: tab 2 shows it, then its delivery, within a second.
    const fromTab1 = ["first from tab 1", "second from tab 1"];
    for (const text of fromTab1) await send(tab1, text);
    for (const lag of await both(fromTab1)) assert.ok(lag < 1_000, `tab 2 shows tab 1's message within a second (${lag} ms)`);
    await eventually(async () => (await messages(tab1)).filter((m) => m.own && onMailbox(m.status)).length === 2, { what: "sent in tab 1" });
    await eventually(async () => (await messages(tab2)).filter((m) => m.own && onMailbox(m.status)).length === 2, {
      timeout: 1_500,
      what: "tab 2 shows the delivery within a second",
    });

    // Both tabs show the same chat, once each, in order; the peer got Bob's messages.
    const [one, two] = [await messages(tab1), await messages(tab2)];
    assert.deepEqual(two, one);
    assert.deepEqual(
      one.map((m) => m.text),
      [...fromAlice, ...fromTab1],
    );
    const got = await alice.page.evaluate((id) => window.alice.poll(id).then((out) => out.messages.map((m) => m.text)), ids.alice);
    assert.deepEqual(got, fromTab1);
    await screenshot(tab2, "app-tabs-second-tab");
    assert.deepEqual(bob.errors, []);
  } finally {
    await alice.context.close();
    await bob.context.close();
    await server.stop();
  }
});

/** Bob's two tabs of the app, each unlocked; the first on the chat with Alice if `chat`. */
async function twoTabs(server, bob, { chat = true } = {}) {
  const tabs = [bob.page, await bob.context.newPage()];
  for (const tab of tabs) {
    await tab.goto(`${server.url}/`);
    await unlock(tab, BOB_PASS);
    if (chat) await openChat(tab, "Alice");
  }
  return tabs;
}

/**
 * Console errors, but for the browser's line about a 409: two tabs polling the same
 * conversation may both deposit its acknowledgement, and the mailbox keeps the first; or a
 * 410 where the peer read and deleted the first before the second came (delete after read
 * is on by default).
 */
const errorsBut409And410 = (errors) => errors.filter((line) => !/status of (409 \(Conflict\)|410 \(Gone\))/.test(line));

/** The page's text and form values: what a look at the tab (or its DOM) could show. */
const pageText = (tab) => tab.evaluate(() => document.documentElement.outerHTML + [...document.querySelectorAll("input, textarea")].map((el) => el.value).join("\n"));

/** Runs `body({ server, alice, bob, ids })` with a mailbox, Alice and Bob paired; then closes all. */
async function withPair(body) {
  const server = await startNative({ www: WWW });
  const alice = await launch();
  const bob = await launch();
  try {
    await body({ server, alice, bob, ids: await pair(server, alice, bob) });
  } finally {
    await alice.context.close();
    await bob.context.close();
    await server.stop();
  }
}

test("a message deleted on this device in one tab goes from another tab's open chat and list at once", { skip: NO_BROWSER, timeout: 180_000 }, () =>
  withPair(async ({ server, alice, bob, ids }) => {
    const [tab1, tab2] = await twoTabs(server, bob);
    await aliceSends(alice, ids.alice, ["keep this", "delete this"]);
    for (const tab of [tab1, tab2]) {
      await eventually(async () => (await messages(tab)).map((m) => m.text).join() === "keep this,delete this", { what: "both messages in each tab" });
    }
    const item = tab1.getByRole("list", { name: "Conversation history" }).getByRole("listitem").filter({ hasText: "delete this" });
    await item.hover();
    await item.getByRole("button", { name: "Message actions" }).click();
    await tab1.getByRole("menuitem", { name: "Delete on this device" }).click();
    await tab1.getByRole("button", { name: "Delete message" }).click();
    await eventually(async () => (await messages(tab1)).map((m) => m.text).join() === "keep this", { what: "gone in the tab that deleted it" });
    // The other tab, not reloaded: gone from its chat and from the list's last message.
    await eventually(async () => (await messages(tab2)).map((m) => m.text).join() === "keep this", { timeout: 5_000, what: "gone from the other tab's open chat" });
    await eventually(async () => /keep this/.test(await listItem(tab2, "Alice").innerText()), { timeout: 5_000, what: "the other tab's list shows the message before it" });
    assert.ok(!(await pageText(tab2)).includes("delete this"), "nowhere in the other tab");
    assert.deepEqual(errorsBut409And410(bob.errors), []);
  }),
);

test("Lock, and the auto-lock, lock every tab of the profile; activity in any tab postpones the auto-lock", { skip: NO_BROWSER, timeout: 180_000 }, () =>
  withPair(async ({ server, alice, bob, ids }) => {
    await aliceSends(alice, ids.alice, ["a secret in the chat"]);
    await bob.context.clock.install(); // Both tabs: time flows as usual until fast-forwarded.
    const [tab1, tab2] = await twoTabs(server, bob);
    for (const tab of [tab1, tab2]) await eventually(async () => (await messages(tab)).length === 1, { what: "the message in each tab" });
    const lockedTab = async (tab, what) => {
      await tab.getByLabel("Passphrase", { exact: true }).waitFor({ timeout: 10_000 });
      const text = await pageText(tab);
      for (const secret of ["a secret in the chat", "Alice"]) assert.ok(!text.includes(secret), `${what}: "${secret}" is not in the page`);
    };

    // Lock in the first tab: the second locks too, and says why.
    await tab1.getByRole("button", { name: "Lock", exact: true }).click();
    await lockedTab(tab1, "the tab locked by hand");
    await lockedTab(tab2, "the other tab");
    assert.equal(await tab2.locator("#announcer").textContent(), "Hush was locked in another tab.");

    // Auto-lock after 15 minutes without activity in any tab: the second tab is in use, so the
    // first (idle) does not lock them; then nobody is, and both lock.
    for (const tab of [tab1, tab2]) await unlock(tab, BOB_PASS);
    await tab1.clock.fastForward("08:00");
    await tab2.keyboard.press("Shift"); // Activity in the second tab only.
    await tab1.clock.fastForward("08:00"); // 16 minutes since the first tab's last activity.
    for (const tab of [tab1, tab2]) assert.equal(await tab.getByRole("button", { name: "Lock", exact: true }).isVisible(), true, "activity in another tab postponed it");
    await tab1.clock.fastForward("08:00");
    await lockedTab(tab1, "auto-locked: the first tab");
    await lockedTab(tab2, "auto-locked: the second tab");
    // Each says why: its own idle time, or the other tab's lock (whichever timer ran first).
    for (const tab of [tab1, tab2]) {
      assert.match(await tab.locator("#announcer").textContent(), /^(Hush locked itself after 15 minutes without activity\.|Hush was locked in another tab\.)$/);
    }
    assert.deepEqual(errorsBut409And410(bob.errors), []);
  }),
);

test("a long conversation opens with its newest page, loads older pages on scroll, and appends new messages", { skip: NO_BROWSER, timeout: 300_000 }, async () => {
  const HISTORY = 600;
  const server = await startNative({ www: WWW });
  const alice = await launch();
  const bob = await launch();
  try {
    const ids = await pair(server, alice, bob, HISTORY);
    const page = bob.page;
    await page.goto(`${server.url}/`);
    // Count the app's history reads: the module it imported is this one (same URL).
    await page.evaluate(async () => {
      const { HushClient } = await import("/pkg/hush.js");
      window.__reads = [];
      for (const name of ["history", "historyPage"]) {
        const original = HushClient.prototype[name];
        HushClient.prototype[name] = async function (...args) {
          const out = await original.apply(this, args);
          window.__reads.push({ name, limit: args[2] ?? null, entries: out.length });
          return out;
        };
      }
    });
    await unlock(page, BOB_PASS);
    await openChat(page, "Alice");
    const last = `m #${HISTORY - 1}`;
    await eventually(async () => (await messages(page)).at(-1)?.text === last, { what: "the newest message shown" });
    const reads = () => page.evaluate(() => window.__reads.splice(0));
    const opening = await reads();
    assert.ok(!opening.some((r) => r.name === "history"), `no whole-history read on opening: ${JSON.stringify(opening)}`);
    const shownAtOpen = await messages(page);
    assert.ok(shownAtOpen.length >= 20 && shownAtOpen.length <= 150, `one page shown, not ${HISTORY}: ${shownAtOpen.length}`);
    assert.ok(opening.reduce((n, r) => n + r.entries, 0) <= 150, `one page read: ${JSON.stringify(opening)}`);
    const expected = Array.from({ length: HISTORY }, (_, i) => `m #${i}`);
    assert.deepEqual(
      shownAtOpen.map((m) => m.text),
      expected.slice(-shownAtOpen.length),
    );

    // Scrolling up loads the page before, and the message at the top stays where it was.
    const list = page.getByRole("list", { name: "Conversation history" });
    const scrollUp = () =>
      list.evaluate((ol) => {
        const scroller = ol.parentElement;
        const first = ol.querySelector("li.msg");
        const top = first.getBoundingClientRect().top;
        scroller.scrollTop = 0;
        return { text: first.querySelector("p").textContent, top };
      });
    let shown = shownAtOpen.length;
    let rounds = 0;
    while (shown < HISTORY) {
      const anchor = await scrollUp();
      const more = await eventually(
        async () => {
          const n = (await messages(page)).length;
          return n > shown && n;
        },
        { timeout: 10_000, what: "an older page after scrolling up" },
      );
      // The message that was at the top is still in view, below what was loaded above it.
      const top = await list.evaluate((ol, text) => {
        const li = [...ol.querySelectorAll("li")].find((l) => l.querySelector("p")?.textContent === text);
        const box = li.getBoundingClientRect();
        const view = ol.parentElement.getBoundingClientRect();
        return { inView: box.bottom > view.top && box.top < view.bottom, scrollTop: ol.parentElement.scrollTop };
      }, anchor.text);
      assert.ok(top.scrollTop > 0 && top.inView, `the view stays on the message that was at the top: ${JSON.stringify(top)}`);
      shown = more;
      rounds += 1;
      assert.ok(rounds < HISTORY / 20, "each scroll loads a page");
    }
    const older = await reads();
    assert.ok(!older.some((r) => r.name === "history"), `older pages are pages: ${JSON.stringify(older)}`);
    assert.ok(older.every((r) => r.entries <= 100), `older pages are pages: ${JSON.stringify(older)}`);
    assert.deepEqual(
      (await messages(page)).map((m) => m.text),
      expected,
    );
    await page.getByRole("button", { name: "Show earlier messages" }).waitFor({ state: "hidden" });

    // New messages, from Alice (a poll) and from Bob, are appended: every node shown stays.
    await list.evaluate((ol) => {
      window.__nodes = [...ol.children];
      ol.parentElement.scrollTop = ol.parentElement.scrollHeight;
    });
    await aliceSends(alice, ids.alice, ["new from Alice"]);
    await eventually(async () => (await messages(page)).at(-1)?.text === "new from Alice", { what: "Alice's new message" });
    await send(page, "new from Bob");
    await eventually(async () => onMailbox((await messages(page)).at(-1)?.status), { what: "Bob's new message sent" });
    const kept = await list.evaluate((ol) => ({
      kept: window.__nodes.every((n) => n.isConnected && n.parentElement === ol),
      count: ol.children.length,
      before: window.__nodes.length,
    }));
    assert.deepEqual(kept, { kept: true, count: kept.before + 2, before: kept.before });
    const after = await reads();
    assert.ok(!after.some((r) => r.name === "history"), `appending reads no whole history: ${JSON.stringify(after)}`);
    assert.ok(
      after.every((r) => r.entries <= 60),
      `appending reads the newest end only: ${JSON.stringify(after)}`,
    );
    assert.deepEqual(
      (await messages(page)).map((m) => m.text),
      [...expected, "new from Alice", "new from Bob"],
    );
    await screenshot(page, "app-long-history");
    assert.deepEqual(bob.errors, []);
  } finally {
    await alice.context.close();
    await bob.context.close();
    await server.stop();
  }
});

test("reading history pages again and again does not grow the JS heap (the cursor's handlers are freed)", { skip: NO_BROWSER, timeout: 300_000 }, async () => {
  const READS = 300;
  const server = await startNative({ www: WWW });
  const alice = await launch();
  const bob = await launch();
  try {
    const ids = await pair(server, alice, bob, 100);
    const readPages = (reads) =>
      bob.page.evaluate(
        async ({ id, reads }) => {
          let entries = 0;
          for (let i = 0; i < reads; i++) entries = (await window.bob.historyPage(id, i % 2 ? 60 : null, 40)).length;
          return entries;
        },
        { id: ids.bob, reads },
      );
    const cdp = await bob.context.newCDPSession(bob.page);
    const heapAfterGc = async () => {
      for (let i = 0; i < 3; i++) await cdp.send("HeapProfiler.collectGarbage");
      return (await cdp.send("Runtime.getHeapUsage")).usedSize;
    };
    assert.equal(await readPages(20), 40); // warm up: code, caches, wasm memory
    const before = await heapAfterGc();
    assert.equal(await readPages(READS), 40);
    const after = await heapAfterGc();
    const perRead = (after - before) / READS;
    console.log(`# JS heap after GC: ${before} B before, ${after} B after ${READS} page reads: ${perRead.toFixed(0)} B per read`);
    // A leaked cursor request would keep its 40 results and handlers: several KB per read.
    assert.ok(perRead < 1_000, `the heap grew ${perRead.toFixed(0)} B per page read`);
  } finally {
    await alice.context.close();
    await bob.context.close();
    await server.stop();
  }
});
