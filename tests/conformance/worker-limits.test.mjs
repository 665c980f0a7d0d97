// The edge worker in workerd against oversized streamed bodies: a 50 MiB chunked PUT and a
// 50 MiB chunked fetch (no Content-Length) are refused once the limit is passed, and workerd's
// memory barely moves (resident set of the workerd process, sampled from /proc).
//
// Env: HUSH_EDGE_WORKER_DIR.

import { test } from "node:test";
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { connect } from "node:net";

import { startWorker } from "../support/servers.mjs";
import { newSlot, sleep } from "./helpers.mjs";

const MIB = 2 ** 20;

/** Resident memory of a process in bytes. */
function rss(pid) {
  const line = readFileSync(`/proc/${pid}/status`, "utf8").match(/^VmRSS:\s+(\d+) kB/m);
  return line ? Number(line[1]) * 1024 : NaN;
}

/** Pids of this process's descendants named `name`. */
function descendants(name) {
  const parent = new Map();
  const comm = new Map();
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, "utf8");
      const close = stat.lastIndexOf(")");
      comm.set(Number(entry), stat.slice(stat.indexOf("(") + 1, close));
      parent.set(Number(entry), Number(stat.slice(close + 2).split(" ")[1]));
    } catch {
      // gone meanwhile
    }
  }
  const mine = (pid) => {
    for (let p = parent.get(pid); p; p = parent.get(p)) if (p === process.pid) return true;
    return false;
  };
  return [...comm].filter(([pid, c]) => c === name && mine(pid)).map(([pid]) => pid);
}

/** Streams `total` bytes as a chunked body (no Content-Length) on a raw socket, stopping once
 * an answer arrives or the connection ends; resolves to { status, text, sent }, with `status`
 * null when the connection ended without an answer. (workerd resets the connection after
 * answering early, so the answer is read as it comes, not through an HTTP client; the reset
 * can overtake the answer on a loaded machine, which discards it.) */
function streamedRequest(url, path, method, headers, total) {
  const { hostname, port } = new URL(url);
  return new Promise((ok, fail) => {
    const socket = connect(Number(port), hostname);
    const chunk = Buffer.concat([Buffer.from("10000\r\n"), Buffer.alloc(0x10000, 0x42), Buffer.from("\r\n")]);
    let sent = 0;
    let answer = "";
    let done = false;
    const finish = () => {
      if (done) return;
      const head = answer.match(/^HTTP\/1\.1 (\d{3})[^]*?\r\n\r\n([^]*)$/);
      if (!head) return;
      done = true;
      socket.destroy();
      ok({ status: Number(head[1]), text: head[2], sent });
    };
    socket.on("data", (c) => {
      answer += c;
      const len = answer.match(/content-length: (\d+)/i);
      const body = answer.indexOf("\r\n\r\n");
      if (len && body >= 0 && answer.length >= body + 4 + Number(len[1])) finish();
    });
    socket.on("error", () => {});
    socket.on("close", () => {
      finish();
      if (!done) {
        done = true;
        ok({ status: null, text: null, sent });
      }
    });
    const extra = Object.entries(headers).map(([k, v]) => `${k}: ${v}\r\n`).join("");
    socket.write(`${method} ${path} HTTP/1.1\r\nHost: ${hostname}\r\n${extra}Transfer-Encoding: chunked\r\n\r\n`);
    const pump = () => {
      while (!done && !socket.destroyed && sent < total) {
        sent += 0x10000;
        if (!socket.write(chunk)) return socket.once("drain", pump);
      }
      if (!done && !socket.destroyed) socket.write("0\r\n\r\n");
    };
    pump();
  });
}

/** `streamedRequest`, tried again (up to three times) when workerd's reset after its early
 * answer overtook the answer itself: the refusal is seen as its precise status when the
 * connection lets it through. (Every attempt is a refusal either way: the precise status of a
 * chunked body past the limit is also checked, race-free, by the conformance suite.) */
async function answeredRequest(...args) {
  let last;
  for (let attempt = 1; attempt <= 3; attempt += 1) {
    last = await streamedRequest(...args);
    if (last.status !== null) return last;
  }
  return last;
}

test("edge worker: 50 MiB chunked PUT and fetch are refused with bounded workerd memory", { timeout: 180_000 }, async (t) => {
  const host = await startWorker({ ttl: 60, maxBody: 1024 });
  let sampler;
  try {
    const pids = descendants("workerd");
    assert.ok(pids.length > 0, "found workerd");
    const total = () => pids.reduce((sum, pid) => sum + rss(pid), 0);
    // Warm up, so that the baseline includes the compiled worker.
    for (let i = 0; i < 20; i += 1) await (await fetch(`${host.url}/v1/health`)).text();
    const before = total();
    let peak = before;
    sampler = setInterval(() => (peak = Math.max(peak, total())), 10);
    const slot = newSlot();
    const put = await answeredRequest(host.url, `/v1/m/${slot.addressHex}`, "PUT", { "Mailbox-Write-Key": slot.keyHex }, 50 * MIB);
    const batch = await answeredRequest(host.url, "/v1/fetch", "POST", {}, 50 * MIB);
    await sleep(200);
    clearInterval(sampler);
    // Refused long before the end: workerd stopped taking the body (an answer or a reset)
    // while most of the 50 MiB was still unsent, and the answer, when it came through, is the
    // precise one.
    for (const [name, r, expected] of [["PUT", put, [413, "body too large"]], ["fetch", batch, [400, "bad batch"]]]) {
      assert.ok(r.sent < 25 * MIB, `${name}: workerd read ${(r.sent / MIB).toFixed(1)} MiB before ending the request`);
      if (r.status !== null) assert.deepEqual([r.status, r.text], expected, name);
    }
    assert.equal((await fetch(`${host.url}/v1/health`)).status, 200, "workerd still serves");
    const res = await fetch(`${host.url}/v1/m/${slot.addressHex}`);
    assert.equal(res.status, 404, "nothing stored");
    await res.arrayBuffer();
    const growth = peak - before;
    assert.ok(growth < 32 * MIB, `workerd grew by ${(growth / MIB).toFixed(1)} MiB`);
    t.diagnostic(
      `workerd RSS ${(before / MIB).toFixed(1)} MiB before, peak ${(peak / MIB).toFixed(1)} MiB ` +
        `(+${(growth / MIB).toFixed(1)} MiB) over a 50 MiB chunked PUT (ended after ${(put.sent / MIB).toFixed(1)} MiB sent) ` +
        `and a 50 MiB chunked fetch (after ${(batch.sent / MIB).toFixed(1)} MiB)` +
        `; answers seen: PUT ${put.status ?? "reset first"}, fetch ${batch.status ?? "reset first"}`,
    );
  } finally {
    // A failed request must not leave the sampler keeping the test process alive.
    clearInterval(sampler);
    await host.stop();
  }
});
