#!/usr/bin/env bash
# `just bench`: starts a local release troupe, runs the standard load scenarios against it and
# writes the results table into docs/performance.md (between the BENCH markers).
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${BENCH_DURATION:-10}
dir=$(mktemp -d)
. scripts/common.sh
port=$(free_port)
export AP_API_KEY=bench-key
# compiled sandbox modules survive between bench runs, as they do across restarts in production
# (the first run ever compiles QuickJS, ≈ 2.3 s of CPU, before the scenarios start)
export AP_SANDBOX_CACHE_DIR="$PWD/target/sandbox-cache-bench"
AP_CONFIG_PATH="$dir" AP_PORT="$port" RUST_LOG=info ./target/release/troupe serve > "$dir/troupe.log" 2>&1 &
pid=$!
trap 'kill -TERM $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$dir"' EXIT
wait_troupe "$port" "$dir/troupe.log"

rows="$dir/rows.md"
lt() { ./target/release/troupe-loadtest --base-url "http://127.0.0.1:$port" --duration "$DURATION" --markdown "$rows" "$@"; }
lt --scenario ingress --connections 64
lt --scenario ingress --connections 64 --rate 2000
lt --scenario sync3 --connections 32
lt --scenario sync3 --connections 32 --rate 1000
lt --scenario store --connections 32

# Ingress alone: an APP process (the gateway, no engine) and its own nats-server, as gateways
# are deployed apart from workers; two WORKERs start when the load ends, drain the stream, and
# the check waits for every run. What the gateway accepts while nothing competes for the cores
# but nats-server and the load generator.
ingress_alone() {
  local adir="$dir/alone" nport aport
  mkdir -p "$adir"
  nport=$(free_port)
  aport=$(free_port)
  "$NATS_SERVER_BIN" -js -a 127.0.0.1 -p "$nport" -sd "$adir/nats" > "$adir/nats.log" 2>&1 &
  echo $! >> "$adir/pids"
  wait_port "$nport"
  role() { # role name port
    AP_NATS_URL="nats://127.0.0.1:$nport" AP_CONTAINER_TYPE=$1 AP_CONFIG_PATH="$adir/$2" AP_PORT=$3 \
      AP_ENCRYPTION_KEY=00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff \
      ./target/release/troupe serve > "$adir/$2.log" 2>&1 &
    echo $! >> "$adir/pids"
  }
  role APP app "$aport"
  wait_port "$aport"
  ( sleep 7; role WORKER w1 "$(free_port)"; role WORKER w2 "$(free_port)" ) &
  # 5 s of load: two workers on these 2 cores drain ≈ 2,000 runs/s (each run's records also
  # travel to the APP through JetStream), so the check may wait minutes
  local status=0
  ./target/release/troupe-loadtest --base-url "http://127.0.0.1:$aport" --duration 5 --markdown "$rows" \
    --label "ingress, APP alone, 5 s" --scenario ingress --connections 64 --verify-timeout 400 || status=$?
  while read -r p; do kill -TERM "$p" 2>/dev/null || true; done < "$adir/pids"
  while read -r p; do while kill -0 "$p" 2>/dev/null; do sleep 0.1; done; done < "$adir/pids"
  return $status
}
ingress_alone

# 10,000 runs paused on a 20 s delay: they must all resume on time, and waiting must not cost
# memory. RSS is sampled every second while they wait.
rss_before=$(ps -o rss= -p $pid | tr -d ' ')
( while kill -0 $pid 2>/dev/null; do ps -o rss= -p $pid | tr -d ' '; sleep 1; done ) > "$dir/rss.txt" &
sampler=$!
lt --scenario pauses --count 10000 --pause-seconds 20 --connections 64 --json "$dir/pauses.json"
kill $sampler 2>/dev/null || true
rss_peak=$(sort -n "$dir/rss.txt" | tail -1)
lag=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["timerFireLagMs"])' "$dir/pauses.json")

rss_kb=$(ps -o rss= -p $pid | tr -d ' ')
machine="$(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB RAM, $(uname -sr)"
commit=$(git rev-parse --short HEAD)
{
  echo "<!-- BENCH:START -->"
  echo "Measured by \`just bench\` on $(date -u +%Y-%m-%d) · $machine · commit $commit · load generator on the same machine · ${DURATION} s per scenario · troupe RSS after the run: $((rss_kb / 1024)) MiB"
  echo
  echo "| scenario | connections | arrival rate | throughput /s | p50 ms | p99 ms | max ms | every accepted request made one run |"
  echo "|---|---|---|---|---|---|---|---|"
  cat "$rows"
  echo
  echo "Pauses: 10,000 runs paused on a 20 s delay; timer fire lag (ms, bucket bounds): $lag. troupe RSS before $((rss_before / 1024)) MiB, peak while they waited and resumed $((rss_peak / 1024)) MiB."
  echo "<!-- BENCH:END -->"
} > "$dir/table.md"
python3 - "$dir/table.md" <<'PY'
import re, sys
table = open(sys.argv[1]).read().strip()
path = "docs/performance.md"
doc = open(path).read()
doc = re.sub(r"<!-- BENCH:START -->.*<!-- BENCH:END -->", lambda _: table, doc, flags=re.S)
open(path, "w").write(doc)
PY
echo "results written to docs/performance.md"
