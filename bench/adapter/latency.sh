#!/bin/bash
# Round trips at each concurrency, this adapter against c-libgearman (or any adapter folders given),
# called directly: one private gearmand (-t 1) per adapter and round, the adapter's own worker
# (--mode echo) and client (W1, 64 bytes). Adapters alternate within each round so that load from
# other work on the box hits them alike; prints per concurrency the median rate, p50 and p99 over
# the rounds and the median of the per-round ratios to the first adapter.
#   sh bench/adapter/build.sh && bash bench/adapter/latency.sh [adapter-dir ...]
#   (default adapters: ../shared/bench/adapters/c-libgearman ./bench/adapter; they are not rebuilt here)
#   ROUNDS=5 CS="1 8 64 256" N=5000 WARMUP=300 OUT=/tmp/latency.jsonl
set -e
cd "$(dirname "$0")/../.."
ROUNDS=${ROUNDS:-5}
CS=${CS:-"1 8 64 256"}
N=${N:-5000}
WARMUP=${WARMUP:-300}
GEARMAND=${GEARMAND:-/usr/sbin/gearmand}
OUT=${OUT:-$(mktemp /tmp/latency.XXXXXX.jsonl)}
[ $# -gt 0 ] || set -- ../shared/bench/adapters/c-libgearman ./bench/adapter
for dir in "$@"; do
  [ -x "$dir/client" ] && [ -x "$dir/worker" ] || { echo "latency.sh: $dir has no client and worker (built?)" >&2; exit 2; }
done
PIDFILE=$(mktemp /tmp/latency.XXXXXX.pid)
for round in $(seq 1 "$ROUNDS"); do
  for dir in "$@"; do
    port=$((20000 + RANDOM % 20000))
    : >"$PIDFILE"
    "$GEARMAND" -L 127.0.0.1 -p "$port" -t 1 --log-file=none --verbose=ERROR -d -P "$PIDFILE"
    for _ in $(seq 50); do [ -s "$PIDFILE" ] && break; sleep 0.1; done
    "$dir/worker" --port "$port" --mode echo >/dev/null &
    worker=$!
    sleep 0.5
    for c in $CS; do
      line=$("$dir/client" --port "$port" --workload w1 --n "$N" --c "$c" --size 64 --warmup "$WARMUP")
      echo "{\"round\":$round,\"adapter\":\"$dir\",\"result\":$line}" >>"$OUT"
    done
    # The adapters' worker scripts exec or run their program: stop the program, then the script.
    kill $(pgrep -P "$worker") "$worker" 2>/dev/null || true
    wait "$worker" 2>/dev/null || true
    kill "$(cat "$PIDFILE")"
  done
done
rm -f "$PIDFILE"
echo "results: $OUT"
node -e '
const rows = require("fs").readFileSync(process.argv[1], "utf8").trim().split("\n").map((l) => JSON.parse(l));
const median = (xs) => { const s = [...xs].sort((a, b) => a - b); const m = s.length >> 1; return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2; };
const adapters = [...new Set(rows.map((r) => r.adapter))];
for (const c of [...new Set(rows.map((r) => r.result.c))]) {
  for (const a of adapters) {
    const mine = rows.filter((r) => r.adapter === a && r.result.c === c);
    const ratios = mine.map((r) => r.result.jobs_per_s / rows.find((b) => b.adapter === adapters[0] && b.round === r.round && b.result.c === c).result.jobs_per_s);
    const bad = mine.reduce((s, r) => s + r.result.errors + r.result.mismatches + (r.result.completed === r.result.n ? 0 : 1), 0);
    console.log(`C=${c}\t${a}\t${median(mine.map((r) => r.result.jobs_per_s)).toFixed(0)} jobs/s\tp50 ${median(mine.map((r) => r.result.p50_ms)).toFixed(3)} ms\tp99 ${median(mine.map((r) => r.result.p99_ms)).toFixed(3)} ms\tx${median(ratios).toFixed(2)}${bad ? `\tERRORS ${bad}` : ""}`);
  }
}' "$OUT"
