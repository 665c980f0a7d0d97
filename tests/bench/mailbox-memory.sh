#!/usr/bin/env bash
# Resident memory of mailbox-server while its store grows to MESSAGES (default 1,000,000)
# messages of BLOB_BYTES (default 1024), written by wrk with 50 connections on 127.0.0.1.
# Prints elapsed seconds, VmRSS and the store's size on disk every 5 s, then the totals and
# a spot check that sampled messages read back.
#
# Env: HUSH_MAILBOX_SERVER_BIN (default: build the release binary), MESSAGES, BLOB_BYTES,
#      CACHE_MB (the server's --cache-mb, default its own default).
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
HERE="$ROOT/tests/bench"
MESSAGES="${MESSAGES:-1000000}"
SIZE="${BLOB_BYTES:-1024}"
BIN="${HUSH_MAILBOX_SERVER_BIN:-}"
if [[ -z "$BIN" ]]; then
  (cd "$ROOT" && cargo build --quiet --release -p mailbox-server)
  BIN="${CARGO_TARGET_DIR:-$ROOT/target}/release/mailbox-server"
fi
WORK="$(mktemp -d /tmp/hush-memory-XXXXXX)"
SERVER_PID=""
cleanup() {
  [[ -n "$SERVER_PID" ]] && kill "$SERVER_PID" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

PORT="$(node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})')"
EXTRA=()
[[ -n "${CACHE_MB:-}" ]] && EXTRA=(--cache-mb "$CACHE_MB")
"$BIN" --listen "127.0.0.1:$PORT" --data "$WORK/data" --max-body "$SIZE" "${EXTRA[@]}" > "$WORK/server.log" 2>&1 &
SERVER_PID=$!
for _ in $(seq 100); do grep -q "listening on" "$WORK/server.log" && break; sleep 0.1; done
URL="http://127.0.0.1:$PORT"

node "$HERE/prepare.mjs" "$URL" "$WORK/p" --hits 0 --pairs "$MESSAGES" --size "$SIZE"
rss() { awk '/VmRSS/ {print $2}' "/proc/$SERVER_PID/status"; }
echo "start: VmRSS $(rss) kB"
wrk -t2 -c50 -d3600s --latency -s "$HERE/wrk/put.lua" "$URL" -- "$WORK/p/pairs.txt" "$WORK/p/blob.bin" 2 \
  > "$WORK/wrk.txt" 2>&1 &
WRK_PID=$!
START=$(date +%s)
PEAK=0
# Each wrk thread writes its share of pairs.txt in order: when the last pair of every share
# is stored, all MESSAGES are in.
mapfile -t LAST < <(tail -n 2 "$WORK/p/pairs.txt" | cut -d' ' -f1)
stored() { [[ "$(curl -s -o /dev/null -w '%{http_code}' "$URL/v1/m/$1")" == 200 ]]; }
while kill -0 "$WRK_PID" 2>/dev/null; do
  sleep 5
  now=$(( $(date +%s) - START ))
  r=$(rss); (( r > PEAK )) && PEAK=$r
  printf '  %4ss  VmRSS %7s kB  store %s\n' "$now" "$r" "$(du -sh "$WORK/data" | cut -f1)"
  if stored "${LAST[0]}" && stored "${LAST[1]}"; then kill -INT "$WRK_PID" 2>/dev/null || true; break; fi
  if (( now > 1800 )); then echo "gave up after 30 min" >&2; kill -INT "$WRK_PID" 2>/dev/null || true; break; fi
done
wait "$WRK_PID" || true
echo "wrk: $(grep -E 'requests in|Requests/sec|Non-2xx' "$WORK/wrk.txt" | tr -s ' ' | tr '\n' ' ')"
ok=$(node -e '
  const [url, hits] = process.argv.slice(1);
  const lines = require("fs").readFileSync(hits, "utf8").trim().split("\n");
  const pick = Array.from({ length: 200 }, (_, i) => lines[Math.floor(i * lines.length / 200)].split(" ")[0]);
  Promise.all(pick.map((a) => fetch(`${url}/v1/m/${a}`).then((r) => r.status))).then((s) => console.log(s.filter((x) => x === 200).length));
' "$URL" "$WORK/p/pairs.txt")
echo "spot check: $ok of 200 sampled messages readable"
echo "end: VmRSS $(rss) kB (peak $PEAK kB), store $(du -sh "$WORK/data" | cut -f1)"
