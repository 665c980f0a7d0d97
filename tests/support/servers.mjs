// Starts the real mailbox hosts for tests: the native `mailbox-server` binary and the edge
// worker inside workerd (through miniflare). Each resolves to { url, output(), stop() };
// output() is everything the process printed, for the no-secrets-in-logs checks.
//
// Env (set by `cargo xtask test`): HUSH_MAILBOX_SERVER_BIN, HUSH_EDGE_WORKER_DIR.

import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { createServer } from "node:net";

const ROOT = resolve(import.meta.dirname, "../..");

/** An unused loopback TCP port. */
export async function freePort() {
  return new Promise((ok, fail) => {
    const srv = createServer();
    srv.once("error", fail);
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address();
      srv.close(() => ok(port));
    });
  });
}

/**
 * Starts `mailbox-server` on a free loopback port.
 * Options: ttl (seconds), maxBody, quota, www (folder), dataDir (default: a fresh temp dir,
 * removed by stop()), port (default: free), extraArgs, nofile (run it under
 * `prlimit --nofile=N:N`, a lower open-file limit).
 */
export async function startNative(opts = {}) {
  const bin = process.env.HUSH_MAILBOX_SERVER_BIN ?? join(ROOT, "target/debug/mailbox-server");
  const ownData = !opts.dataDir;
  const dataDir = opts.dataDir ?? mkdtempSync(join(tmpdir(), "hush-mailbox-"));
  const port = opts.port ?? (await freePort());
  const args = ["--listen", `127.0.0.1:${port}`, "--data", dataDir];
  if (opts.ttl !== undefined) args.push("--ttl", String(opts.ttl));
  if (opts.maxBody !== undefined) args.push("--max-body", String(opts.maxBody));
  if (opts.quota !== undefined) args.push("--quota", String(opts.quota));
  if (opts.www) args.push("--www", opts.www);
  args.push(...(opts.extraArgs ?? []));

  let out = "";
  const child =
    opts.nofile === undefined
      ? spawn(bin, args, { stdio: ["ignore", "pipe", "pipe"] })
      : spawn("prlimit", [`--nofile=${opts.nofile}:${opts.nofile}`, bin, ...args], { stdio: ["ignore", "pipe", "pipe"] });
  const ready = new Promise((ok, fail) => {
    const onData = (chunk) => {
      out += chunk;
      if (out.includes("listening on http://")) ok();
    };
    child.stdout.on("data", onData);
    child.stderr.on("data", onData);
    child.once("exit", (code, sig) => fail(new Error(`mailbox-server exited early (${code ?? sig}):\n${out}`)));
    child.once("error", fail);
  });
  await withTimeout(ready, 15_000, "mailbox-server did not start");
  const exited = new Promise((ok) => child.once("exit", ok));
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    dataDir,
    child,
    output: () => out,
    /** SIGTERM (graceful), wait for exit; removes the data dir if we made it. */
    async stop({ keepData = false } = {}) {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGTERM");
      await withTimeout(exited, 10_000, "mailbox-server did not stop on SIGTERM");
      if (ownData && !keepData) rmSync(dataDir, { recursive: true, force: true });
    },
    /** SIGKILL: no chance to flush anything. */
    async kill9() {
      child.kill("SIGKILL");
      await exited;
    },
  };
}

/**
 * Runs the built edge worker (edge-worker/build) in workerd through miniflare, serving HTTP
 * on a free loopback port, with an in-memory KV namespace bound as MAILBOX.
 * Options: ttl (seconds, ≥ 60 on KV), maxBody, vars (extra bindings), kvPersist (folder),
 * fakeTime (true: `advanceKvTime(ms)` moves KV's clock forward, so expiry tests need not
 * wait 60 s of real time).
 *
 * output() holds what the worker printed plus miniflare's warnings and errors; miniflare's own
 * per-request access log (a local dev-server feature that prints URLs, hence addresses; the
 * deployed Worker has no such log with observability off) is left out.
 */
export async function startWorker(opts = {}) {
  const { Miniflare, Log, LogLevel, _enableControlEndpoints } = await import("miniflare");
  if (opts.fakeTime) _enableControlEndpoints();
  const dir = process.env.HUSH_EDGE_WORKER_DIR ?? join(ROOT, "edge-worker/build");
  const port = opts.port ?? (await freePort());
  let out = "";
  class CapturingLog extends Log {
    constructor() {
      super(LogLevel.WARN);
    }
    log(message) {
      out += `${message}\n`;
    }
  }
  const mf = new Miniflare({
    modules: true,
    scriptPath: join(dir, "index.js"),
    modulesRoot: dir,
    modulesRules: [
      { type: "ESModule", include: ["**/*.js"] },
      { type: "CompiledWasm", include: ["**/*.wasm"] },
    ],
    compatibilityDate: "2026-04-26",
    kvNamespaces: ["MAILBOX"],
    kvPersist: opts.kvPersist ?? false,
    bindings: {
      ...(opts.ttl !== undefined ? { MAILBOX_TTL_SECONDS: String(opts.ttl) } : {}),
      ...(opts.maxBody !== undefined ? { MAILBOX_MAX_BODY: String(opts.maxBody) } : {}),
      ...(opts.vars ?? {}),
    },
    host: "127.0.0.1",
    port,
    cf: false,
    log: new CapturingLog(),
    handleRuntimeStdio(stdout, stderr) {
      stdout.on("data", (c) => (out += c));
      stderr.on("data", (c) => (out += c));
    },
  });
  const url = (await mf.ready).toString().replace(/\/$/, "");
  // The KV simulator's durable object, which owns KV's clock (miniflare's control endpoints).
  let kvControl;
  const kvOp = async (name, args) => {
    if (!opts.fakeTime) throw new Error("startWorker: pass { fakeTime: true } to move KV's clock");
    if (!kvControl) {
      const ns = await mf._getInternalDurableObjectNamespace("kv", "kv:ns", "KVNamespaceObject");
      kvControl = ns.get(ns.idFromName("MAILBOX"));
    }
    const res = await kvControl.fetch("http://kv-control/", {
      cf: { miniflare: { name: "MAILBOX", controlOp: { name, args } } },
    });
    await res.text();
    if (!res.ok) throw new Error(`KV control ${name}: ${res.status}`);
  };
  // KV runs on real time until the first advance, which freezes its clock at now + ms.
  // (Once controlled, miniflare's KV also caps values at 1 KiB, its test-mode limit.)
  let faking = false;
  const advanceKvTime = async (ms) => {
    if (faking) return kvOp("advanceFakeTime", [ms]);
    faking = true;
    return kvOp("enableFakeTimers", [Date.now() + ms]);
  };
  return {
    url,
    port,
    miniflare: mf,
    output: () => out,
    /** Moves KV's (fake) clock forward by `ms`. */
    advanceKvTime,
    async stop() {
      await mf.dispose();
    },
  };
}

function withTimeout(promise, ms, what) {
  let timer;
  return Promise.race([
    promise,
    new Promise((_, fail) => (timer = setTimeout(() => fail(new Error(`${what} within ${ms} ms`)), ms))),
  ]).finally(() => clearTimeout(timer));
}
