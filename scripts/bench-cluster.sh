#!/usr/bin/env bash
# `just bench-cluster`: the same load against a cluster on this machine: one nats-server, one
# APP and two WORKER processes (release builds), so that the cost of replicating the state
# through JetStream shows next to the single-process numbers. Results go into
# docs/performance.md between the BENCH-CLUSTER markers.
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${BENCH_DURATION:-10}
dir=$(mktemp -d)
. scripts/common.sh
nats_port=$(free_port)
"$NATS_SERVER_BIN" -js -a 127.0.0.1 -p "$nats_port" -sd "$dir/nats" > "$dir/nats.log" 2>&1 &
pids=($!)
trap 'kill -TERM "${pids[@]}" 2>/dev/null; wait 2>/dev/null; rm -rf "$dir"' EXIT
wait_port "$nats_port"

export AP_API_KEY=bench-key AP_NATS_URL="nats://127.0.0.1:$nats_port"
export AP_ENCRYPTION_KEY=00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff
export AP_SANDBOX_CACHE_DIR="$PWD/target/sandbox-cache-bench" RUST_LOG=info
start() { # role name port
  AP_CONTAINER_TYPE=$1 AP_CONFIG_PATH="$dir/$2" AP_PORT=$3 ./target/release/troupe serve > "$dir/$2.log" 2>&1 &
  pids+=($!)
}
app_port=$(free_port)
start WORKER w1 "$(free_port)"
start WORKER w2 "$(free_port)"
start APP app "$app_port"
wait_port "$app_port"
for w in w1 w2; do
  for _ in $(seq 1 600); do grep -q "code sandbox ready" "$dir/$w.log" && break; sleep 0.1; done
done
sleep 3 # shares settle (8 shards each)

rows="$dir/rows.md"
lt() { ./target/release/troupe-loadtest --base-url "http://127.0.0.1:$app_port" --duration "$DURATION" --markdown "$rows" "$@"; }
lt --scenario ingress --connections 64
lt --scenario sync3 --connections 32
lt --scenario store --connections 32

machine="$(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB RAM, $(uname -sr)"
commit=$(git rev-parse --short HEAD)
{
  echo "<!-- BENCH-CLUSTER:START -->"
  echo "Measured by \`just bench-cluster\` on $(date -u +%Y-%m-%d) · $machine · commit $commit · 1 nats-server, 1 APP, 2 WORKERs and the load generator on the same machine · ${DURATION} s per scenario"
  echo
  echo "| scenario | connections | arrival rate | throughput /s | p50 ms | p99 ms | max ms | every accepted request made one run |"
  echo "|---|---|---|---|---|---|---|---|"
  cat "$rows"
  echo "<!-- BENCH-CLUSTER:END -->"
} > "$dir/table.md"
python3 - "$dir/table.md" <<'PY'
import re, sys
table = open(sys.argv[1]).read().strip()
path = "docs/performance.md"
doc = open(path).read()
if "<!-- BENCH-CLUSTER:START -->" in doc:
    doc = re.sub(r"<!-- BENCH-CLUSTER:START -->.*<!-- BENCH-CLUSTER:END -->", lambda _: table, doc, flags=re.S)
else:
    doc += "\n## A cluster on one machine\n\n" + table + "\n"
open(path, "w").write(doc)
PY
cat "$dir/table.md"
echo "results written to docs/performance.md"
