#!/usr/bin/env bash
# Same-sitting A/B of troupe binaries: `scripts/ab.sh <scenario> <rounds> <binary>...` starts
# each binary fresh in turn (its own data dir), waits for its sandbox, drives one 10 s
# `troupe-loadtest` scenario at it (extra loadtest flags in $AB_FLAGS, e.g. "--connections 32"),
# stops it, and prints one results row per run; rounds alternate the binaries so that the
# machine's drift falls on all of them alike. Copy binaries aside (cp target/release/troupe
# /tmp/troupe-A) before rebuilding the next variant.
set -uo pipefail
cd "$(dirname "$0")/.."
. scripts/common.sh
export PATH="$PWD/.venv/bin:$PATH" AP_API_KEY=bench-key AP_SANDBOX_CACHE_DIR="$PWD/target/sandbox-cache-bench"
scenario=$1 rounds=$2
shift 2
for r in $(seq 1 "$rounds"); do
    for bin in "$@"; do
        dir=$(mktemp -d)
        port=$(free_port)
        AP_CONFIG_PATH="$dir" AP_PORT="$port" RUST_LOG=info "$bin" serve > "$dir/troupe.log" 2>&1 &
        pid=$!
        wait_troupe "$port" "$dir/troupe.log"
        # shellcheck disable=SC2086
        ./target/release/troupe-loadtest --base-url "http://127.0.0.1:$port" --duration 10 --scenario "$scenario" \
            --markdown "$dir/rows.md" ${AB_FLAGS:-} > /dev/null 2>&1
        echo "round $r $(basename "$bin") $(cat "$dir/rows.md" 2>/dev/null)"
        kill -TERM $pid
        wait $pid 2>/dev/null
        rm -rf "$dir"
    done
done
