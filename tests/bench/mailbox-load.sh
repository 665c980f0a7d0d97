#!/usr/bin/env bash
# Loopback load benchmark of the mailbox, next to redis-server as the ceiling, in one run.
#
# Measures with wrk (50 connections, 2 threads) against 127.0.0.1 only:
#   mailbox-server: GET hit, GET miss, PUT of one blob (fresh address each), fetch of 16
#   redis-server:   SET and GET of the same blob size (redis-benchmark, 50 clients)
#   edge worker in workerd (miniflare): the same four, shorter
# and prints requests/s, p50 and p99 latency, and mailbox/redis ratios.
#
# Needs: wrk, redis-server, redis-benchmark (apt-get install -y wrk redis-server), node, a
# release mailbox-server (built here unless HUSH_MAILBOX_SERVER_BIN is set) and, for the
# worker, edge-worker/build (`cargo xtask build-worker`; skipped if missing).
#
# Env: BENCH_SECONDS (per native run, default 10), WORKER_SECONDS (default 5),
#      BLOB_BYTES (default 1024), HUSH_MAILBOX_SERVER_BIN, HUSH_EDGE_WORKER_DIR.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
HERE="$ROOT/tests/bench"
SECS="${BENCH_SECONDS:-10}"
WSECS="${WORKER_SECONDS:-5}"
SIZE="${BLOB_BYTES:-1024}"
CONN=50
THREADS=2

for tool in wrk redis-server redis-benchmark node; do
  command -v "$tool" >/dev/null || { echo "mailbox-load: $tool is missing (apt-get install -y wrk redis-server)" >&2; exit 1; }
done

BIN="${HUSH_MAILBOX_SERVER_BIN:-}"
if [[ -z "$BIN" ]]; then
  (cd "$ROOT" && cargo build --quiet --release -p mailbox-server)
  BIN="${CARGO_TARGET_DIR:-$ROOT/target}/release/mailbox-server"
fi
WORKER_DIR="${HUSH_EDGE_WORKER_DIR:-$ROOT/edge-worker/build}"

WORK="$(mktemp -d /tmp/hush-bench-XXXXXX)"
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

free_port() { node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})'; }

# Waits until FILE contains PATTERN (at most 20 s).
wait_for() {
  for _ in $(seq 200); do grep -q "$2" "$1" 2>/dev/null && return 0; sleep 0.1; done
  echo "mailbox-load: timed out waiting for '$2' in $1" >&2; cat "$1" >&2; exit 1
}

declare -A RPS P50 P90 P99 ERRS
# run_wrk NAME URL SECONDS SCRIPT ARGS...: one wrk run, parsed into RPS/P50/P99/ERRS[NAME].
run_wrk() {
  local name="$1" url="$2" secs="$3" script="$4"; shift 4
  local out="$WORK/wrk-$name.txt"
  wrk -t"$THREADS" -c"$CONN" -d"${secs}s" --latency -s "$HERE/wrk/$script" "$url" -- "$@" > "$out" 2>&1
  RPS[$name]="$(awk '/^Requests\/sec:/ {printf "%.0f", $2}' "$out")"
  P50[$name]="$(awk '$1=="50%" {print $2}' "$out")"
  P90[$name]="$(awk '$1=="90%" {print $2}' "$out")"
  P99[$name]="$(awk '$1=="99%" {print $2}' "$out")"
  ERRS[$name]="$(awk '/Non-2xx or 3xx responses:/ {print $5} /Socket errors/ {print "sock:" $0}' "$out" | tr '\n' ' ')"
  printf '  %-22s %9s req/s   p50 %-9s p90 %-9s p99 %-9s %s\n' "$name" "${RPS[$name]}" "${P50[$name]}" \
    "${P90[$name]}" "${P99[$name]}" "${ERRS[$name]:+non-2xx/errors: ${ERRS[$name]}}"
}

echo "mailbox-load: ${CONN} connections, ${THREADS} wrk threads, ${SIZE}-byte blobs, $(nproc) cores"

# --- redis-server: the ceiling, same box, same run.
RPORT="$(free_port)"
redis-server --port "$RPORT" --bind 127.0.0.1 --save '' --appendonly no --daemonize no \
  --logfile "$WORK/redis.log" &
PIDS+=($!)
for _ in $(seq 100); do redis-cli -p "$RPORT" ping >/dev/null 2>&1 && break; sleep 0.1; done
echo "redis-server (no persistence):"
redis-benchmark -h 127.0.0.1 -p "$RPORT" -t set,get -d "$SIZE" -c "$CONN" -n 300000 -r 1000000 --csv \
  > "$WORK/redis.csv" 2>/dev/null
while IFS=, read -r test rps avg min p50 p95 p99 max; do
  test="${test//\"/}"; [[ "$test" == "test" ]] && continue
  name="redis ${test}"
  RPS[$name]="$(printf '%.0f' "${rps//\"/}")"; P50[$name]="${p50//\"/}ms"; P99[$name]="${p99//\"/}ms"
  printf '  %-22s %9s req/s   p50 %-9s p99 %-9s\n' "$name" "${RPS[$name]}" "${P50[$name]}" "${P99[$name]}"
done < "$WORK/redis.csv"
kill "${PIDS[-1]}" 2>/dev/null || true

# --- mailbox-server (release, durable: every 201 is fsynced).
MPORT="$(free_port)"
"$BIN" --listen "127.0.0.1:$MPORT" --data "$WORK/data" --max-body "$SIZE" > "$WORK/server.log" 2>&1 &
SERVER_PID=$!
PIDS+=($SERVER_PID)
wait_for "$WORK/server.log" "listening on http://"
MURL="http://127.0.0.1:$MPORT"
node "$HERE/prepare.mjs" "$MURL" "$WORK/native" --hits 10000 --pairs 600000 --size "$SIZE"
echo "mailbox-server (release, segment files + redb index, durable PUTs):"
run_wrk "native GET hit" "$MURL" "$SECS" get.lua "$WORK/native/hits.txt"
run_wrk "native GET miss" "$MURL" "$SECS" get.lua "$WORK/native/misses.txt"
run_wrk "native PUT" "$MURL" "$SECS" put.lua "$WORK/native/pairs.txt" "$WORK/native/blob.bin" "$THREADS"
run_wrk "native fetch x16" "$MURL" "$SECS" fetch.lua "$WORK/native/fetch.txt"
echo "  resident memory after the runs: $(awk '/VmRSS/ {print $2, $3}' /proc/$SERVER_PID/status)"
kill -TERM "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null || true

ratio() { awk -v a="${RPS[$1]:-0}" -v b="${RPS[$2]:-0}" 'BEGIN { if (b > 0) printf "%.0f%%", 100 * a / b; else print "n/a" }'; }
echo "ratios to redis: GET hit $(ratio "native GET hit" "redis GET"), GET miss $(ratio "native GET miss" "redis GET"), PUT $(ratio "native PUT" "redis SET")"

# --- the edge worker in workerd (miniflare serving HTTP directly, local KV).
if [[ -f "$WORKER_DIR/index.js" ]]; then
  HUSH_EDGE_WORKER_DIR="$WORKER_DIR" node "$HERE/worker-host.mjs" > "$WORK/worker.log" 2>&1 &
  PIDS+=($!)
  wait_for "$WORK/worker.log" "worker listening on"
  WURL="$(awk '/worker listening on/ {print $4}' "$WORK/worker.log")"
  node "$HERE/prepare.mjs" "$WURL" "$WORK/worker" --hits 1000 --pairs 50000 --size "$SIZE"
  echo "edge worker in workerd (miniflare, local KV):"
  run_wrk "worker GET hit" "$WURL" "$WSECS" get.lua "$WORK/worker/hits.txt"
  run_wrk "worker GET miss" "$WURL" "$WSECS" get.lua "$WORK/worker/misses.txt"
  run_wrk "worker PUT" "$WURL" "$WSECS" put.lua "$WORK/worker/pairs.txt" "$WORK/worker/blob.bin" "$THREADS"
  run_wrk "worker fetch x16" "$WURL" "$WSECS" fetch.lua "$WORK/worker/fetch.txt"
else
  echo "edge worker: $WORKER_DIR/index.js missing (run cargo xtask build-worker); skipped"
fi
