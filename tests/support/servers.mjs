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
 * on a free loopback port, with the SQLite-backed Durable Object class MailboxShard bound as
 * MAILBOX_SHARD (as in edge-worker/wrangler.toml).
 * Options: ttl (seconds, ≥ 1), maxBody, shards (MAILBOX_SHARDS), logOps (MAILBOX_LOG_OPS),
 * vars (extra bindings), persist (folder for the objects' SQLite files; default: in memory,
 * gone with stop()), port (default: free).
 *
 * output() holds what the worker printed plus miniflare's warnings and errors; miniflare's own
 * per-request access log (a local dev-server feature that prints URLs, hence addresses; the
 * deployed Worker has no such log with observability off) is left out.
 */
export async function startWorker(opts = {}) {
  const { Miniflare, Log, LogLevel } = await import("miniflare");
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
    durableObjects: { MAILBOX_SHARD: { className: "MailboxShard", useSQLite: true } },
    // `kvPersist` is the name earlier callers (tests/app.test.mjs) use for the same folder.
    durableObjectsPersist: opts.persist ?? opts.kvPersist ?? false,
    bindings: {
      ...(opts.ttl !== undefined ? { MAILBOX_TTL_SECONDS: String(opts.ttl) } : {}),
      ...(opts.maxBody !== undefined ? { MAILBOX_MAX_BODY: String(opts.maxBody) } : {}),
      ...(opts.shards !== undefined ? { MAILBOX_SHARDS: String(opts.shards) } : {}),
      ...(opts.logOps ? { MAILBOX_LOG_OPS: "true" } : {}),
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
  return {
    url,
    port,
    miniflare: mf,
    output: () => out,
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
