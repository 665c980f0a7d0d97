// mailbox-server under disk pressure, on a small tmpfs (the tests run as root; without the
// right to mount they are skipped, and the store's unit tests cover the same paths with an
// injected free-space probe and a failing file):
// - writes fail cleanly (507 disk full, never a crash), reads go on, /v1/health says 503;
// - writes resume once space is freed, without a restart;
// - a restart on a full disk (SIGTERM or kill -9) starts and serves reads, and leaves no file;
// - no acknowledged message is lost or altered;
// - a quota below the free space answers 507 before the disk fills.
//
// Env: HUSH_MAILBOX_SERVER_BIN.

import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { closeSync, mkdtempSync, openSync, readdirSync, rmSync, statfsSync, writeSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { randomBytes } from "node:crypto";

import { startNative } from "../support/servers.mjs";
import { bytes, fetchBatch, get, newSlot, parseFrames, put, sleep } from "./helpers.mjs";

const MAX_BODY = 1024;

/** Mounts a tmpfs of `mib` MiB; resolves to its path, or null when mounting is not allowed. */
function mountTmpfs(mib) {
  if (process.getuid?.() !== 0) return null;
  const dir = mkdtempSync(join(tmpdir(), "hush-tmpfs-"));
  try {
    execFileSync("mount", ["-t", "tmpfs", "-o", `size=${mib}m`, "tmpfs", dir], { stdio: "ignore" });
    return dir;
  } catch {
    rmSync(dir, { recursive: true, force: true });
    return null;
  }
}

function unmount(dir) {
  try {
    execFileSync("umount", [dir], { stdio: "ignore" });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Fills the file system holding `dir` to the last byte with one file; returns its path. */
function fillDisk(dir) {
  const path = join(dir, `filler-${Date.now()}`);
  const fd = openSync(path, "w");
  try {
    for (const size of [1 << 20, 64 << 10, 4 << 10, 512]) {
      const chunk = Buffer.alloc(size, 0x5a);
      for (;;) {
        try {
          writeSync(fd, chunk);
        } catch (err) {
          if (err.code === "ENOSPC") break;
          throw err;
        }
      }
    }
  } finally {
    closeSync(fd);
  }
  return path;
}

const freeBytes = (dir) => {
  const s = statfsSync(dir);
  return s.bavail * s.bsize;
};

async function status(promise) {
  const res = await promise;
  const body = await bytes(res);
  return { status: res.status, text: body.toString() };
}

/** Every acknowledged message reads back byte for byte, by GET and by fetch. */
async function assertAllReadable(url, acked, what) {
  const wrong = [];
  for (const [slot, blob] of acked) {
    const res = await get(url, slot);
    const body = await bytes(res);
    if (res.status !== 200 || !body.equals(blob)) wrong.push(`${res.status}`);
  }
  assert.deepEqual(wrong, [], `${what}: every acknowledged message reads back`);
  const batch = acked.slice(0, 200);
  const res = await fetchBatch(url, batch.map(([slot]) => slot.address));
  assert.equal(res.status, 200);
  assert.equal(parseFrames(await bytes(res)).length, batch.length, `${what}: fetch finds them`);
}

test("native: a full disk refuses writes cleanly, keeps reads, recovers without restart, restarts full", async (t) => {
  const mnt = mountTmpfs(24);
  if (!mnt) return t.skip("needs root and mount(8) for a tmpfs");
  let server;
  try {
    const dataDir = join(mnt, "data");
    const start = () => startNative({ dataDir, maxBody: MAX_BODY, extraArgs: ["--disk-reserve-mb", "2"] });
    server = await start();
    const acked = [];
    const putMany = async (n) => {
      const statuses = [];
      for (let i = 0; i < n; i += 1) {
        const slot = newSlot();
        const blob = randomBytes(1 + Math.floor(Math.random() * MAX_BODY));
        const { status: s } = await status(put(server.url, slot, blob));
        statuses.push(s);
        if (s === 201) acked.push([slot, blob]);
      }
      return statuses;
    };
    assert.deepEqual(new Set(await putMany(300)), new Set([201]));

    // Something else fills the disk.
    let filler = fillDisk(mnt);
    assert.equal(freeBytes(mnt), 0);
    const refused = await putMany(20);
    assert.deepEqual(new Set(refused), new Set([507]), "writes on a full disk: 507");
    const health = await status(fetch(`${server.url}/v1/health`));
    assert.deepEqual(health, { status: 503, text: "writes failing: disk full" });
    const head = await fetch(`${server.url}/v1/health`, { method: "HEAD" });
    assert.equal(head.status, 503, "HEAD health says so too");
    await assertAllReadable(server.url, acked, "disk full");

    // Space returns: writes resume without a restart.
    rmSync(filler);
    const freed = Date.now();
    let resumedAfter = null;
    while (Date.now() - freed < 10_000) {
      const slot = newSlot();
      const blob = randomBytes(100);
      const { status: s } = await status(put(server.url, slot, blob));
      if (s === 201) {
        acked.push([slot, blob]);
        resumedAfter = Date.now() - freed;
        break;
      }
      await sleep(50);
    }
    assert.ok(resumedAfter !== null, "a PUT succeeds within 10 s of freeing space");
    assert.deepEqual(await status(fetch(`${server.url}/v1/health`)), { status: 200, text: "ok" });
    assert.deepEqual(new Set(await putMany(50)), new Set([201]));

    // Full again right after more writes, and killed before the index checkpoints them: the
    // restart on the full disk must re-apply them from the segments.
    assert.deepEqual(new Set(await putMany(30)), new Set([201]));
    filler = fillDisk(mnt);
    assert.deepEqual(new Set(await putMany(5)), new Set([507]));
    await server.kill9();
    server = await start();
    // (Normally it re-applies them; were the machine stalled past the 1 s idle checkpoint,
    // they would come from the index instead: either way they must all read back.)
    const replayed = server.output().match(/recovered (\d+) messages from the write-ahead log/)?.[1] ?? 0;
    await assertAllReadable(server.url, acked, "kill -9 on a full disk, then restart");
    await server.stop({ keepData: true });
    const segments = () => readdirSync(join(dataDir, "segments")).sort();
    const before = segments();
    const restarts = [];
    for (const how of ["sigterm", "kill9", "sigterm"]) {
      const t0 = Date.now();
      server = await start();
      restarts.push(Date.now() - t0);
      await assertAllReadable(server.url, acked, `restart on a full disk (${how})`);
      assert.equal((await status(put(server.url, newSlot(), "x"))).status, 507);
      if (how === "kill9") await server.kill9();
      else await server.stop({ keepData: true });
    }
    assert.ok(segments().length <= before.length + 3, `restarts add no files: ${before} -> ${segments()}`);

    // Free space once more: everything acknowledged is still there and writes work.
    rmSync(filler);
    server = await start();
    assert.deepEqual(new Set(await putMany(20)), new Set([201]));
    await assertAllReadable(server.url, acked, "after the disk was freed");
    assert.doesNotMatch(server.output(), /panicked/);
    t.diagnostic(
      `${acked.length} acknowledged messages intact; writes resumed ${resumedAfter} ms after space was freed; ` +
        `restarts on a full disk took ${restarts.join(", ")} ms; ${replayed} re-applied from the segments after kill -9 on the full disk`,
    );
  } finally {
    await server?.stop({ keepData: true });
    unmount(mnt);
  }
});

test("native: thousands of unsaved writes, then a disk filled to the last byte: reads go on, a restart serves them", async (t) => {
  const mnt = mountTmpfs(24);
  if (!mnt) return t.skip("needs root and mount(8) for a tmpfs");
  let server;
  try {
    const dataDir = join(mnt, "data");
    // The default reserve (an eighth of the disk: 3 MiB, so a 1.5 MiB ballast).
    const start = () => startNative({ dataDir, maxBody: MAX_BODY });
    server = await start();
    const filler = join(mnt, "filler");
    execFileSync("dd", ["if=/dev/zero", `of=${filler}`, "bs=1M", "count=8"], { stdio: "ignore" });
    const acked = [];
    const putUntilFull = async () => {
      let refused = 0;
      let stored = 0;
      while (refused < 20) {
        const round = await Promise.all(
          Array.from({ length: 32 }, async () => {
            const slot = newSlot();
            const blob = randomBytes(MAX_BODY);
            const { status: s } = await status(put(server.url, slot, blob));
            if (s === 201) acked.push([slot, blob]);
            return s;
          }),
        );
        stored += round.filter((s) => s === 201).length;
        refused += round.filter((s) => s !== 201).length;
      }
      return stored;
    };
    const first = await putUntilFull();
    rmSync(filler);
    await sleep(1500);
    const burst = await putUntilFull();
    // Right after the burst, something else takes the last byte.
    fillDisk(mnt);
    await sleep(3000);
    const health = await status(fetch(`${server.url}/v1/health`));
    assert.equal(health.status, 503, "health says writes fail");
    const readAll = async (what) => {
      const missing = [];
      for (let i = 0; i < acked.length; i += 256) {
        const batch = acked.slice(i, i + 256);
        const res = await fetchBatch(server.url, batch.map(([slot]) => slot.address));
        assert.equal(res.status, 200, `${what}: fetch answers`);
        const frames = parseFrames(await bytes(res));
        if (frames.length !== batch.length) missing.push(batch.length - frames.length);
      }
      assert.deepEqual(missing, [], `${what}: every acknowledged message is found`);
      for (const [slot, blob] of acked.filter((_, i) => i % 50 === 0)) {
        const res = await get(server.url, slot);
        assert.equal(res.status, 200, `${what}: GET answers`);
        assert.ok((await bytes(res)).equals(blob), `${what}: unaltered`);
      }
    };
    await readAll("disk filled after the burst");
    await server.stop({ keepData: true });
    const t0 = Date.now();
    server = await start();
    const restart = Date.now() - t0;
    await readAll("restart on the full disk");
    assert.equal((await status(fetch(`${server.url}/v1/health`))).status, 503);
    const errorLines = (server.output().match(/store error/g) ?? []).length;
    assert.doesNotMatch(server.output(), /panicked/);
    t.diagnostic(
      `${first} then a burst of ${burst} PUTs, disk filled: ${acked.length} acknowledged all read back, health ${health.status} ${health.text}; ` +
        `restart on the full disk listening in ${restart} ms, reads served; ${errorLines} store error lines`,
    );
  } finally {
    await server?.stop({ keepData: true });
    unmount(mnt);
  }
});

test("native: a quota below the free space answers 507 before the disk fills", async (t) => {
  const mnt = mountTmpfs(16);
  if (!mnt) return t.skip("needs root and mount(8) for a tmpfs");
  let server;
  try {
    server = await startNative({ dataDir: join(mnt, "data"), maxBody: MAX_BODY, quota: 4 << 20, extraArgs: ["--disk-reserve-mb", "1"] });
    const statuses = new Map();
    let reasons = new Set();
    for (let i = 0; i < 5000; i += 1) {
      const r = await status(put(server.url, newSlot(), randomBytes(MAX_BODY)));
      statuses.set(r.status, (statuses.get(r.status) ?? 0) + 1);
      if (r.status !== 201) reasons.add(r.text);
      if (r.status === 507) break;
    }
    assert.deepEqual([...reasons], ["quota reached"], `refusals: ${[...statuses]}`);
    assert.ok(freeBytes(mnt) > 4 << 20, `the disk kept free space: ${freeBytes(mnt)}`);
    t.diagnostic(`quota 4 MiB on a 16 MiB disk: ${statuses.get(201)} PUTs of 1 KiB, then 507; ${(freeBytes(mnt) / 2 ** 20).toFixed(1)} MiB still free`);
  } finally {
    await server?.stop({ keepData: true });
    unmount(mnt);
  }
});
