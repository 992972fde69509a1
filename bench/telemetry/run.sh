#!/bin/bash
# What OpenTelemetry costs per job: the same Nest client and worker (bench/telemetry/*.ts) in each
# OT_MODE (see otel-setup.ts), modes alternating within each round on one private gearmand (-t 1)
# so that load from other work on the box hits them alike. Prints per mode the median rate, the
# client's and the worker's CPU per job and the median per-round ratio of client + worker CPU to `off`.
#   bash bench/telemetry/run.sh          (= npm run bench:telemetry)
#   ROUNDS=3 MODES="off api sdk sdk-traces sdk-traces-r10 sdk-traces-r0 sdk-off-als" N=20000 OUT=/tmp/telemetry.jsonl
set -e
cd "$(dirname "$0")"
ROOT=$(cd ../.. && pwd)
ROUNDS=${ROUNDS:-3}
MODES=${MODES:-"off api sdk sdk-traces sdk-traces-r10 sdk-traces-r0 sdk-off-als"}
GEARMAND=${GEARMAND:-/usr/sbin/gearmand}
OUT=${OUT:-$(mktemp /tmp/telemetry.XXXXXX.jsonl)}
mkdir -p build && echo '{"type":"module"}' >build/package.json
"$ROOT/node_modules/.bin/esbuild" client.ts worker.ts --bundle --packages=external --platform=node --format=esm \
  --target=node20 --tsconfig="$ROOT/tsconfig.json" --outdir=build --log-level=warning
PIDFILE=$(mktemp /tmp/telemetry.XXXXXX.pid)
READY=$(mktemp /tmp/telemetry.XXXXXX.out)
port=$((20000 + RANDOM % 20000))
"$GEARMAND" -L 127.0.0.1 -p "$port" -t 1 --log-file=none --verbose=ERROR -d -P "$PIDFILE"
for _ in $(seq 50); do [ -s "$PIDFILE" ] && break; sleep 0.1; done
worker=
# A failed client (set -e) must not leave the worker or gearmand running.
trap '[ -n "$worker" ] && kill "$worker" 2>/dev/null; kill "$(cat "$PIDFILE")" 2>/dev/null; rm -f "$PIDFILE" "$READY"' EXIT
export ADDR=127.0.0.1:$port
for round in $(seq 1 "$ROUNDS"); do
  for mode in $MODES; do
    : >"$READY"
    OT_MODE=$mode node build/worker.js >"$READY" &
    worker=$!
    for _ in $(seq 100); do grep -q ready "$READY" && break; kill -0 "$worker" 2>/dev/null || break; sleep 0.1; done
    grep -q ready "$READY" || { echo "run.sh: the $mode worker did not start" >&2; exit 1; }
    client=$(OT_MODE=$mode timeout 120 node build/client.js)
    kill -TERM "$worker"
    wait "$worker" || true
    worker=
    echo "{\"round\":$round,\"client\":$client,\"worker\":$(grep worker_us "$READY")}" >>"$OUT"
  done
done
echo "results: $OUT"
node -e '
const rows = require("fs").readFileSync(process.argv[1], "utf8").trim().split("\n").map((l) => JSON.parse(l));
const median = (xs) => { const s = [...xs].sort((a, b) => a - b); const m = s.length >> 1; return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2; };
const cpu = (r) => r.client.client_us_per_job + r.worker.worker_us_per_job;
for (const mode of [...new Set(rows.map((r) => r.client.mode))]) {
  const mine = rows.filter((r) => r.client.mode === mode);
  const ratios = mine.map((r) => cpu(r) / cpu(rows.find((b) => b.round === r.round && b.client.mode === "off") ?? r));
  console.log(`${mode.padEnd(16)}${median(mine.map((r) => r.client.rate)).toFixed(0).padStart(7)} jobs/s\tclient ${median(mine.map((r) => r.client.client_us_per_job)).toFixed(1)} µs\tworker ${median(mine.map((r) => r.worker.worker_us_per_job)).toFixed(1)} µs\tcpu x${median(ratios).toFixed(2)} of off`);
}' "$OUT"
