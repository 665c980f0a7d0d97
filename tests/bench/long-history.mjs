// Long histories in the web app (issue 16, item 6), in Debian's headless Chromium against a
// real mailbox-server, printed (not asserted), for a long and a short chat in the same run:
//   * build: Bob's client (the JS API, in the profile the app then opens) sends the long
//     chat's messages to Alice in a loop, flushing every FLUSH_EVERY, so they are stored,
//     delivered and the outbox is empty, as after a long real conversation;
//   * open: from the click on the conversation to its newest message on screen (median of
//     OPENS, alternating with the short chat);
//   * commit → display: Alice sends a message; Bob's app polls it, and the time from the
//     poll's commit (HushClient.poll resolves once the messages are stored) to the message
//     on screen; likewise from the commit of Bob's own send to it on screen (median of PROBES);
//   * JS heap after GC (CDP HeapProfiler.collectGarbage, Runtime.getHeapUsage) and the DOM
//     size with each chat open.
//
// usage: node tests/bench/long-history.mjs [MESSAGES (default 100000)] [SHORT (default 20)]
// after `cargo xtask build-web` and `cargo build -p mailbox-server`. HUSH_WWW_DIR selects the
// site (a copy of www/ with an older app.js measures it), as for the tests.

import { resolve } from "node:path";
import { startNative } from "../support/servers.mjs";
import { launch } from "../support/browser.mjs";
import { unlock, listItem } from "../support/app.mjs";

const WWW = process.env.HUSH_WWW_DIR ?? resolve(import.meta.dirname, "../../www");
const MESSAGES = Number(process.argv[2] ?? 100_000);
const SHORT = Number(process.argv[3] ?? 20);
const FLUSH_EVERY = 500;
const OPENS = 5;
const PROBES = 5;
const PASS = "bob long history";
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const ms = (x) => `${x.toFixed(0)} ms`;

/** A bare same-origin page with the client module loaded as window.hush. */
async function loadModule(page, origin) {
  await page.route("**/favicon.ico", (route) => route.fulfill({ status: 204 }));
  await page.goto(`${origin}/v1/health`);
  await page.evaluate(async () => {
    const m = await import("/pkg/hush.js");
    await m.default();
    window.hush = m;
  });
}

const server = await startNative({ www: WWW });
const alice = await launch();
const bob = await launch();
try {
  await loadModule(alice.page, server.url);
  await loadModule(bob.page, server.url);
  await alice.page.evaluate(() => window.hush.HushClient.open("hush").then((c) => ((window.alice = c), c.createVault("alice", true))));
  await bob.page.evaluate((pass) => window.hush.HushClient.open("hush").then((c) => ((window.bob = c), c.createVault(pass, true))), PASS);

  // Two conversations between the same two people: "Alice long" and "Alice short".
  const pair = async (name) => {
    const invite = await alice.page.evaluate(({ site, name }) => window.alice.createInvite(site, site, name), { site: server.url, name });
    const conv = await bob.page.evaluate(({ link, site, name }) => window.bob.join(link, site, name).then(async (id) => (await window.bob.flush(), id)), {
      link: invite.link,
      site: server.url,
      name: `Alice ${name}`,
    });
    const joined = await alice.page.evaluate(async (id) => {
      for (let i = 0; i < 20; i++) if ((await window.alice.poll(id)).joined) return true;
      return false;
    }, invite.id);
    if (!joined) throw new Error("Alice did not see the join");
    return { alice: invite.id, bob: conv };
  };
  const long = await pair("long");
  const short = await pair("short");

  const build = (conv, count, label) =>
    bob.page.evaluate(
      async ({ conv, count, label, every }) => {
        const t = performance.now();
        for (let i = 0; i < count; i++) {
          await window.bob.send(conv, `${label} #${i} `.padEnd(80, "."));
          if ((i + 1) % every === 0 || i + 1 === count) {
            const out = await window.bob.flush();
            if (out.pending) throw new Error(`flush left ${out.pending} pending`);
          }
        }
        return performance.now() - t;
      },
      { conv, count, label, every: FLUSH_EVERY },
    );
  await build(short.bob, SHORT, "short");
  let built = 0;
  let buildMs = 0;
  const buildStarted = Date.now();
  while (built < MESSAGES) {
    const chunk = Math.min(5_000, MESSAGES - built);
    buildMs += await bob.page.evaluate(
      async ({ conv, from, count, every }) => {
        const t = performance.now();
        for (let i = from; i < from + count; i++) {
          await window.bob.send(conv, `long #${i} `.padEnd(80, "."));
          if ((i + 1) % every === 0 || i + 1 === from + count) {
            const out = await window.bob.flush();
            if (out.pending) throw new Error(`flush left ${out.pending} pending`);
          }
        }
        return performance.now() - t;
      },
      { conv: long.bob, from: built, count: chunk, every: FLUSH_EVERY },
    );
    built += chunk;
    console.error(`# built ${built} of ${MESSAGES} in ${((Date.now() - buildStarted) / 1000).toFixed(0)} s`);
  }
  console.log(`build: ${MESSAGES} messages sent, stored and delivered in ${(buildMs / 1000).toFixed(1)} s (${((buildMs / MESSAGES) * 1000).toFixed(0)} µs each)`);

  // The app, in the same profile.
  await bob.page.goto(`${server.url}/`);
  await unlock(bob.page, PASS);
  await listItem(bob.page, "Alice long").waitFor();
  await bob.page.evaluate(() => {
    // When each message text first shows, and when the client committed it.
    window.__shown = {};
    window.__committed = {};
    const scan = () => {
      const list = document.querySelector('[aria-label="Conversation history"]');
      if (!list) return;
      const last = list.lastElementChild?.querySelector("p")?.textContent;
      if (last && !(last in window.__shown)) window.__shown[last] = performance.now();
    };
    new MutationObserver(scan).observe(document.body, { childList: true, subtree: true });
  });
  // Record commit times: patch the module the app imported (same URL, same instance).
  await bob.page.evaluate(async () => {
    const { HushClient } = await import("/pkg/hush.js");
    const poll = HushClient.prototype.poll;
    HushClient.prototype.poll = async function (id) {
      const out = await poll.call(this, id);
      for (const m of out.messages) window.__committed[m.text] = performance.now();
      return out;
    };
    const send = HushClient.prototype.send;
    HushClient.prototype.send = async function (id, text) {
      const seq = await send.call(this, id, text);
      window.__committed[text] = performance.now();
      return seq;
    };
  });

  const open = (name, lastText) =>
    bob.page.evaluate(
      async ({ name, lastText }) => {
        const button = [...document.querySelectorAll("button.conv")].find((b) => b.querySelector(".conv-name")?.textContent === name);
        const t = performance.now();
        button.click();
        for (;;) {
          const list = document.querySelector('[aria-label="Conversation history"]');
          const shown = list && [...list.querySelectorAll("li p.text")].at(-1)?.textContent;
          if (shown === lastText) return performance.now() - t;
          await new Promise((r) => requestAnimationFrame(r));
        }
      },
      { name, lastText },
    );
  const lastOf = (label, count) => `${label} #${count - 1} `.padEnd(80, ".");
  const opens = { long: [], short: [] };
  for (let i = 0; i < OPENS; i++) {
    opens.long.push(await open("Alice long", lastOf("long", MESSAGES)));
    opens.short.push(await open("Alice short", lastOf("short", SHORT)));
  }

  const cdp = await bob.context.newCDPSession(bob.page);
  const heap = async () => {
    for (let i = 0; i < 3; i++) await cdp.send("HeapProfiler.collectGarbage");
    return (await cdp.send("Runtime.getHeapUsage")).usedSize;
  };
  const domNodes = () => bob.page.evaluate(() => document.getElementsByTagName("*").length);

  const probe = async (which, n) => {
    const incoming = [];
    const own = [];
    for (let i = 0; i < n; i++) {
      const text = `probe ${which} from Alice ${i}`;
      await alice.page.evaluate(({ id, text }) => window.alice.send(id, text).then(() => window.alice.flush()), { id: (which === "long" ? long : short).alice, text });
      incoming.push(await waitShown(text));
      const mine = `probe ${which} from Bob ${i}`;
      await bob.page.getByRole("textbox", { name: "Message" }).fill(mine);
      await bob.page.getByRole("button", { name: "Send", exact: true }).click();
      own.push(await waitShown(mine));
    }
    return { incoming, own };
  };
  const waitShown = async (text) => {
    const deadline = Date.now() + 60_000;
    for (;;) {
      const t = await bob.page.evaluate((text) => window.__shown[text] !== undefined && window.__committed[text] !== undefined && window.__shown[text] - window.__committed[text], text);
      if (t !== false) return t;
      if (Date.now() > deadline) throw new Error(`${text} not shown within 60 s`);
      await new Promise((r) => setTimeout(r, 50));
    }
  };

  const figures = {};
  for (const [which, name, count] of [
    ["long", "Alice long", MESSAGES],
    ["short", "Alice short", SHORT],
  ]) {
    await open(name, lastOf(which, count));
    const { incoming, own } = await probe(which, PROBES);
    figures[which] = { open: median(opens[which]), incoming: median(incoming), own: median(own), heap: await heap(), dom: await domNodes() };
  }
  for (const [which, count] of [
    ["long", MESSAGES],
    ["short", SHORT],
  ]) {
    const f = figures[which];
    console.log(
      `${which} chat (${count} messages): open ${ms(f.open)} (median of ${OPENS}); commit → display ${ms(f.incoming)} received, ${ms(f.own)} own (medians of ${PROBES}); ` +
        `JS heap after GC ${(f.heap / 1048576).toFixed(1)} MiB; ${f.dom} DOM elements`,
    );
  }
  const errors = bob.errors.filter((e) => !/favicon/.test(e));
  if (errors.length) console.log(`browser errors: ${errors.join("\n")}`);
} finally {
  await alice.context.close();
  await bob.context.close();
  await server.stop();
}
