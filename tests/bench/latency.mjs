// Send-to-display latency in the web app (issue 11), printed (not asserted): two Chromium
// profiles on loopback against a release `mailbox-server --www`, with subscriptions (push) and,
// in the same run, with window.WebSocket removed (polling only, the baseline).
//
// Per mode, a fresh pair: Alice and Bob connect twice ("A" and "B"); Alice sends MESSAGES
// messages in A, one at a time, for each receiving situation of Bob's:
//   open        Bob has A open, page in front;
//   other       Bob has B open, page in front (A shows its unread count);
//   background  Bob has A open, his page hidden. Headless Chromium pages are always
//               "visible" (a tab opened in front, a minimised window, headful under Xvfb:
//               all tried, all stay "visible" under playwright), so the page is told it is
//               hidden: document.visibilityState and document.hidden answer "hidden" / true and
//               a visibilitychange event fires, which is all the app reads (its poll delays,
//               read marks and notifications); the script checks visibilityState. Chromium's
//               own throttling of background timers is not reproduced (playwright turns it off
//               anyway), so a real background tab can only be slower when polling; push needs
//               no timer.
// Latency: from the Enter in Alice's page to the message on Bob's screen (its bubble; for
// "other", the unread count in Bob's title reaching it), both taken in the pages as
// performance.timeOrigin + performance.now() (one machine clock).
//
// With push, messages go one at a time: the next is sent 100–300 ms after the previous one
// arrived. Polling takes seconds per message, so there (unless POLL_ONE_AT_A_TIME=1) they are
// sent on a fixed random schedule without waiting for arrival (mean gap: open 1.5 s, other 3 s,
// background 8 s); each message's latency is still its own send → display.
//
// usage: node tests/bench/latency.mjs [MESSAGES (default 100)] [BASELINE_MESSAGES (default MESSAGES)]
// after `cargo build --release -p mailbox-server` and `cargo xtask build-web`.

import { resolve } from "node:path";
import { startNative } from "../support/servers.mjs";
import { launch } from "../support/browser.mjs";
import { createPassphrase, connect, openChat } from "../support/app.mjs";

const ROOT = resolve(import.meta.dirname, "../..");
const WWW = process.env.HUSH_WWW_DIR ?? resolve(ROOT, "www");
process.env.HUSH_MAILBOX_SERVER_BIN ??= resolve(ROOT, "target/release/mailbox-server");
const MESSAGES = Number(process.argv[2] ?? 100);
const BASELINE = Number(process.argv[3] ?? MESSAGES);
const ONE_AT_A_TIME = process.env.POLL_ONE_AT_A_TIME === "1";
/** Mean gap between scheduled sends when polling (ms). */
const POLL_GAP = { open: 1_500, other: 3_000, background: 8_000 };

const sleep = (ms) => new Promise((ok) => setTimeout(ok, ms));
const pct = (xs, p) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)];
};
const fmt = (x) => (x >= 10_000 ? `${(x / 1000).toFixed(1)} s` : x >= 1000 ? `${(x / 1000).toFixed(2)} s` : `${x.toFixed(0)} ms`);

/** A browser profile; without WebSocket for the polling baseline. */
async function person(noWebSocket) {
  const p = await launch();
  if (noWebSocket) await p.context.addInitScript(() => delete window.WebSocket);
  return p;
}

/** In Bob's page: when each message text first shows in the chat, and when each unread count first shows in the title. */
function recordDisplay(page) {
  return page.evaluate(() => {
    const now = () => performance.timeOrigin + performance.now();
    window.__shown = {};
    window.__count = {};
    const scan = () => {
      const t = now();
      const list = document.querySelector('[aria-label="Conversation history"]');
      if (list) {
        for (const li of list.children) {
          const text = li.querySelector("p")?.textContent;
          if (text && !(text in window.__shown)) window.__shown[text] = t;
        }
      }
      const n = Number(/^\((\d+)\)/.exec(document.title)?.[1] ?? 0);
      for (let k = 1; k <= n; k++) if (!(k in window.__count)) window.__count[k] = t;
    };
    new MutationObserver(scan).observe(document, { childList: true, subtree: true, characterData: true });
  });
}

/** In Alice's page: types `text` and presses Enter; returns the page's time of the Enter. */
function sendNow(page, text) {
  return page.evaluate((text) => {
    const box = document.querySelector("#composer");
    box.value = text;
    const t = performance.timeOrigin + performance.now();
    box.dispatchEvent(new KeyboardEvent("keydown", { key: "Enter", bubbles: true }));
    return t;
  }, text);
}

/** Bob's display time of message `i` (texts `${tag} i`), or undefined. */
async function shownAt(bob, how, tag, i, unreadBefore) {
  return bob.page.evaluate(({ how, text, k }) => (how === "count" ? window.__count[k] : window.__shown[text]), {
    how,
    text: `${tag} ${i}`,
    k: unreadBefore + i + 1,
  });
}

/** Sends `count` messages from Alice and returns their latencies (ms). */
async function measure(alice, bob, { tag, how, count, polling, gap }) {
  await recordDisplay(bob.page);
  const sent = [];
  if (!polling || ONE_AT_A_TIME) {
    for (let i = 0; i < count; i++) {
      sent.push(await sendNow(alice.page, `${tag} ${i}`));
      const deadline = Date.now() + 120_000;
      while (!(await shownAt(bob, how, tag, i, 0))) {
        if (Date.now() > deadline) throw new Error(`${tag} ${i} never showed`);
        await sleep(polling ? 50 : 5);
      }
      await sleep(100 + Math.random() * 200);
    }
  } else {
    for (let i = 0; i < count; i++) {
      sent.push(await sendNow(alice.page, `${tag} ${i}`));
      await sleep(gap * (0.5 + Math.random()));
    }
  }
  const latencies = [];
  const deadline = Date.now() + 180_000;
  for (let i = 0; i < count; i++) {
    let at;
    while (!(at = await shownAt(bob, how, tag, i, 0))) {
      if (Date.now() > deadline) throw new Error(`${tag} ${i} never showed`);
      await sleep(200);
    }
    latencies.push(at - sent[i]);
  }
  return latencies;
}

/** Tells Bob's page it is hidden (`hidden` true) or visible again, as a tab switch would. */
async function setHidden(bob, hidden) {
  const state = await bob.page.evaluate((hidden) => {
    window.__hidden = hidden;
    if (!("__hidden_patched" in window)) {
      window.__hidden_patched = true;
      Object.defineProperty(document, "visibilityState", { configurable: true, get: () => (window.__hidden ? "hidden" : "visible") });
      Object.defineProperty(document, "hidden", { configurable: true, get: () => window.__hidden });
    }
    document.dispatchEvent(new Event("visibilitychange"));
    return document.visibilityState;
  }, hidden);
  if (state !== (hidden ? "hidden" : "visible")) throw new Error(`Bob's page is ${state}`);
}

async function runMode(server, polling) {
  const alice = await person(polling);
  const bob = await person(polling);
  const rows = [];
  try {
    for (const p of [alice, bob]) await p.page.goto(`${server.url}/`);
    await createPassphrase(alice.page, "alice latency");
    await createPassphrase(bob.page, "bob latency");
    await connect(alice.page, bob.page, "Bob A", "Alice A");
    await connect(alice.page, bob.page, "Bob B", "Alice B");
    await openChat(alice.page, "Bob A");
    const count = polling ? BASELINE : MESSAGES;
    const mode = polling ? "polling (no WebSocket)" : "push (subscriptions)";
    // Warm-up: one message, so that first-use costs are not in the figures.
    await openChat(bob.page, "Alice A");
    await measure(alice, bob, { tag: `warm ${polling}`, how: "bubble", count: 1, polling: false });

    rows.push([mode, "chat open", await measure(alice, bob, { tag: `open ${polling}`, how: "bubble", count, polling, gap: POLL_GAP.open })]);
    console.error(`# ${mode}: chat open done`);

    await openChat(bob.page, "Alice B");
    await sleep(1_000);
    rows.push([mode, "other conversation open", await measure(alice, bob, { tag: `other ${polling}`, how: "count", count, polling, gap: POLL_GAP.other })]);
    console.error(`# ${mode}: other conversation done`);

    await openChat(bob.page, "Alice A");
    await sleep(1_000);
    await setHidden(bob, true);
    // The polls scheduled in front run out first (at most 3.5 s), as after a real tab switch.
    await sleep(4_000);
    rows.push([mode, "background tab", await measure(alice, bob, { tag: `bg ${polling}`, how: "bubble", count, polling, gap: POLL_GAP.background })]);
    await setHidden(bob, false);
    console.error(`# ${mode}: background tab done`);
  } finally {
    await alice.context.close();
    await bob.context.close();
  }
  return rows;
}

const server = await startNative({ www: WWW });
try {
  const rows = [...(await runMode(server, false)), ...(await runMode(server, true))];
  console.log(`send → display latency, ${MESSAGES} messages with push, ${BASELINE} polling${ONE_AT_A_TIME ? " (one at a time)" : " (scheduled sends)"}`);
  console.log("| mode | receiver | n | p50 | p99 | max |");
  console.log("|---|---|---|---|---|---|");
  for (const [mode, where, xs] of rows) console.log(`| ${mode} | ${where} | ${xs.length} | ${fmt(pct(xs, 50))} | ${fmt(pct(xs, 99))} | ${fmt(Math.max(...xs))} |`);
} finally {
  await server.stop();
}
