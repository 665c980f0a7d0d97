// Subscriptions on the native mailbox-server under load: prints figures, asserts nothing timed.
//
//   node tests/bench/subscribe-load.mjs
//
// Against a release build (built here unless HUSH_MAILBOX_SERVER_BIN is set), on 127.0.0.1:
//   1. PUT throughput with no subscription open (wrk, fresh addresses, as mailbox-load.sh);
//   2. SUBSCRIPTIONS (default 10,000) WebSockets opened, each watching WATCHED (default 48)
//      addresses; the server's resident memory before, once they are open, while they idle
//      (sampled for IDLE_SECONDS, default 30: it must stay flat), and after they close;
//   3. push latency: LATENCY_PUTS (default 1,000) PUTs one after another, each to an address
//      one subscription watches, from the PUT's 201 arriving (and from the PUT being sent) to
//      the push arriving at that subscription: p50 / p99;
//   4. PUT throughput again with the subscriptions open: to fresh addresses nobody watches, and
//      to watched addresses (each PUT pushes one frame).
// 5. PUT throughput once more after the subscriptions closed (the machine's load may change).
// One client process holds every socket, so the open-file limit of this process and of the
// server are raised (the script re-runs itself under `prlimit --nofile=N:N`, N = NOFILE,
// default 20,000: at most the hard limit unless root may raise it). Needs wrk (apt-get install
// -y wrk).
//
// Env: SUBSCRIPTIONS, WATCHED, IDLE_SECONDS, LATENCY_PUTS, BENCH_SECONDS (per wrk run, default
// 5), BLOB_BYTES (default 1024), NOFILE, HUSH_MAILBOX_SERVER_BIN.

import { spawn, spawnSync } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { performance } from "node:perf_hooks";

import WebSocket from "ws";

import { startNative } from "../support/servers.mjs";

const ROOT = resolve(import.meta.dirname, "../..");
// Open files per process (client and server each): enough for 10,000 sockets. The machine's
// hard limit here is 20,000 and root lacks CAP_SYS_RESOURCE to go past it.
const NOFILE = Number(process.env.NOFILE ?? 20_000);
const SUBSCRIPTIONS = Number(process.env.SUBSCRIPTIONS ?? 10_000);
const WATCHED = Number(process.env.WATCHED ?? 48);
const IDLE_SECONDS = Number(process.env.IDLE_SECONDS ?? 30);
const LATENCY_PUTS = Number(process.env.LATENCY_PUTS ?? 1_000);
const BENCH_SECONDS = Number(process.env.BENCH_SECONDS ?? 5);
const BLOB_BYTES = Number(process.env.BLOB_BYTES ?? 1024);
const OPEN_AT_ONCE = 500;

if (!process.env.SUBSCRIBE_LOAD_RAISED) {
  // Re-run under a raised open-file limit (Node cannot raise its own).
  const run = spawnSync("prlimit", [`--nofile=${NOFILE}:${NOFILE}`, process.execPath, ...process.argv.slice(1)], {
    stdio: "inherit",
    env: { ...process.env, SUBSCRIBE_LOAD_RAISED: "1" },
  });
  process.exit(run.status ?? 1);
}

const sleep = (ms) => new Promise((ok) => setTimeout(ok, ms));
const ADDRESS_LABEL = "hush/v1/address";
function newSlot() {
  const key = randomBytes(32);
  const address = createHash("sha256").update(ADDRESS_LABEL).update(key).digest();
  return { key, address, keyHex: key.toString("hex"), addressHex: address.toString("hex") };
}
const rssMiB = (pid) => Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))?.[1] ?? NaN) / 1024;
const mib = (x) => `${x.toFixed(1)} MiB`;
function percentile(sorted, p) {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

let bin = process.env.HUSH_MAILBOX_SERVER_BIN;
if (!bin) {
  const built = spawnSync("cargo", ["build", "--quiet", "--release", "-p", "mailbox-server"], { cwd: ROOT, stdio: "inherit" });
  if (built.status !== 0) process.exit(1);
  bin = join(process.env.CARGO_TARGET_DIR ?? join(ROOT, "target"), "release/mailbox-server");
}
process.env.HUSH_MAILBOX_SERVER_BIN = bin;

const work = mkdtempSync(join(tmpdir(), "hush-subscribe-load-"));
const blobPath = join(work, "blob.bin");
writeFileSync(blobPath, randomBytes(BLOB_BYTES));
/** Writes `address key` lines for wrk's put.lua. */
function pairsFile(name, slots) {
  const path = join(work, name);
  writeFileSync(path, slots.map((s) => `${s.addressHex} ${s.keyHex}`).join("\n") + "\n");
  return path;
}

/** One wrk PUT run; resolves to { rps, p50, p99, non2xx } (asynchronously: sockets keep being read). */
function wrkPut(url, pairs) {
  return new Promise((ok, fail) => {
    const args = ["-t2", "-c50", `-d${BENCH_SECONDS}s`, "--latency", "-s", join(ROOT, "tests/bench/wrk/put.lua"), url, "--", pairs, blobPath, "2"];
    const child = spawn("wrk", args, { stdio: ["ignore", "pipe", "inherit"] });
    let out = "";
    child.stdout.on("data", (c) => (out += c));
    child.once("error", fail);
    child.once("exit", () => {
      const rps = Number(/Requests\/sec:\s+([\d.]+)/.exec(out)?.[1] ?? NaN);
      const lat = (p) => new RegExp(`${p}\\s+([\\d.]+)(us|ms|s)`).exec(out);
      const ms = (m) => (m ? Number(m[1]) * { us: 1e-3, ms: 1, s: 1e3 }[m[2]] : NaN);
      const non2xx = Number(/Non-2xx or 3xx responses:\s+(\d+)/.exec(out)?.[1] ?? 0);
      ok({ rps, p50: ms(lat("50%")), p99: ms(lat("99%")), non2xx });
    });
  });
}
const showWrk = (name, r) =>
  console.log(`${name}: ${r.rps.toFixed(0)} PUT/s, p50 ${r.p50.toFixed(2)} ms, p99 ${r.p99.toFixed(2)} ms${r.non2xx ? `, ${r.non2xx} non-2xx` : ""}`);

const server = await startNative({ nofile: NOFILE, maxBody: BLOB_BYTES });
const pid = server.child.pid;
try {
  console.log(`server: ${bin}`);
  console.log(server.output().match(/limits: .*/)?.[0] ?? "");
  const expected = BENCH_SECONDS * 60_000;
  const withoutSubs = await wrkPut(server.url, pairsFile("fresh-1.txt", Array.from({ length: expected }, newSlot)));
  const before = rssMiB(pid);

  // Open the subscriptions, each watching WATCHED real slots (so that they can be written).
  const subs = [];
  const pushWaiters = new Map(); // address hex -> resolve(arrival time)
  let pushes = 0;
  const opened = performance.now();
  for (let i = 0; i < SUBSCRIPTIONS; i += OPEN_AT_ONCE) {
    const batch = [];
    for (let j = i; j < Math.min(SUBSCRIPTIONS, i + OPEN_AT_ONCE); j++) {
      batch.push(
        new Promise((ok, fail) => {
          const slots = Array.from({ length: WATCHED }, newSlot);
          const ws = new WebSocket(`${server.url.replace(/^http/, "ws")}/v1/subscribe`, { perMessageDeflate: false });
          let snapshot = false;
          ws.on("message", (data) => {
            const at = performance.now();
            if (!snapshot) {
              snapshot = true;
              ok({ ws, slots });
              return;
            }
            pushes += 1;
            const address = Buffer.from(data).subarray(0, 32).toString("hex");
            pushWaiters.get(address)?.(at);
          });
          ws.once("open", () => ws.send(Buffer.concat(slots.map((s) => s.address))));
          ws.once("error", fail);
          ws.once("close", (code) => !snapshot && fail(new Error(`closed ${code}`)));
        }),
      );
    }
    subs.push(...(await Promise.all(batch)));
  }
  const openSecs = (performance.now() - opened) / 1000;
  const withSubs = rssMiB(pid);
  console.log(
    `opened ${subs.length} subscriptions of ${WATCHED} addresses in ${openSecs.toFixed(1)} s (every snapshot received)`,
  );
  const samples = [];
  for (let t = 0; t < IDLE_SECONDS; t += 3) {
    await sleep(3000);
    samples.push(rssMiB(pid));
  }

  // Push latency: one PUT at a time, each to an address a different subscription watches.
  const fromResponse = [];
  const fromRequest = [];
  for (let i = 0; i < LATENCY_PUTS; i++) {
    const { slots } = subs[(i * 7919) % subs.length];
    const slot = slots[i % Math.floor(WATCHED / 2)]; // the other half is for the watched wrk run
    const arrived = new Promise((ok) => pushWaiters.set(slot.addressHex, ok));
    const sent = performance.now();
    const res = await fetch(`${server.url}/v1/m/${slot.addressHex}`, {
      method: "PUT",
      headers: { "Mailbox-Write-Key": slot.keyHex },
      body: randomBytes(BLOB_BYTES),
    });
    const answered = performance.now();
    await res.arrayBuffer();
    if (res.status !== 201) throw new Error(`PUT ${res.status}`);
    const at = await arrived;
    pushWaiters.delete(slot.addressHex);
    fromResponse.push(at - answered);
    fromRequest.push(at - sent);
  }
  fromResponse.sort((a, b) => a - b);
  fromRequest.sort((a, b) => a - b);

  // Throughput with the subscriptions open: to unwatched addresses, then to watched ones.
  const withSubsFresh = await wrkPut(server.url, pairsFile("fresh-2.txt", Array.from({ length: expected }, newSlot)));
  const watchedSlots = subs.flatMap((s) => s.slots.slice(Math.floor(WATCHED / 2)));
  const pushesBefore = pushes;
  const withSubsWatched = await wrkPut(server.url, pairsFile("watched.txt", watchedSlots));
  await sleep(1000);
  const pushedDuringLoad = pushes - pushesBefore;
  const afterLoad = rssMiB(pid);

  for (const { ws } of subs) ws.close(1000);
  await sleep(5000);
  const after = rssMiB(pid);
  // Once more without subscriptions, so that the machine's load at either end shows.
  const withoutSubsAgain = await wrkPut(server.url, pairsFile("fresh-3.txt", Array.from({ length: expected }, newSlot)));

  console.log("");
  console.log(`resident memory of mailbox-server (release):`);
  console.log(`  before subscriptions:              ${mib(before)}`);
  console.log(`  with ${subs.length} open (all snapshots in): ${mib(withSubs)}`);
  console.log(`  idling ${IDLE_SECONDS} s, sampled every 3 s:     ${samples.map((x) => x.toFixed(1)).join(", ")} MiB`);
  console.log(`  after the PUT loads below:         ${mib(afterLoad)}`);
  console.log(`  5 s after all closed:              ${mib(after)}`);
  console.log(`  per subscription while open:       ${(((withSubs - before) * 1024) / subs.length).toFixed(1)} KiB`);
  console.log("");
  console.log(`push latency over ${LATENCY_PUTS} PUTs (one at a time, ${BLOB_BYTES} B, loopback):`);
  console.log(
    `  from the 201 arriving:  p50 ${percentile(fromResponse, 50).toFixed(3)} ms, p99 ${percentile(fromResponse, 99).toFixed(3)} ms (negative: the push arrived first)`,
  );
  console.log(
    `  from the PUT being sent: p50 ${percentile(fromRequest, 50).toFixed(3)} ms, p99 ${percentile(fromRequest, 99).toFixed(3)} ms`,
  );
  console.log("");
  console.log(`PUT throughput (wrk, 50 connections, 2 threads, ${BENCH_SECONDS} s each, ${BLOB_BYTES} B):`);
  showWrk("  no subscription open                      ", withoutSubs);
  showWrk(`  ${subs.length} open, unwatched addresses         `, withSubsFresh);
  showWrk(`  ${subs.length} open, watched addresses (1 push each)`, withSubsWatched);
  showWrk("  no subscription open, after they closed   ", withoutSubsAgain);
  console.log(`  pushes received during the watched run: ${pushedDuringLoad}`);
} finally {
  await server.stop();
  rmSync(work, { recursive: true, force: true });
  const summary = server.output().match(/subscriptions: open=.*/g);
  if (summary) console.log(`server: ${summary.at(-1)}`);
}
