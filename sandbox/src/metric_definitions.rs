//! Every metric the sandbox exports, in one place.

use prometheus::{
    register_histogram_vec, register_int_counter_vec, register_int_gauge, HistogramVec, IntCounterVec, IntGauge,
};
use std::sync::LazyLock;

/// Executions by kind (`js`, `expression`, `wasi`) and outcome (`ok`, `failed`, `timeout`,
/// `memory_limit`, `internal`).
pub static EXECUTIONS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!("troupe_sandbox_executions_total", "Sandbox executions", &["kind", "outcome"]).unwrap()
});

/// Where a module came from when an execution needed it: `memory`, `disk` (a serialized
/// artifact under the cache folder) or `compiled`.
pub static MODULE_LOADS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        "troupe_sandbox_compile_cache_total",
        "Module lookups by the sandbox, by where the module was found",
        &["source"]
    )
    .unwrap()
});

pub static EXECUTION_DURATION: LazyLock<HistogramVec> = LazyLock::new(|| {
    register_histogram_vec!(
        "troupe_sandbox_execution_duration_seconds",
        "Instantiate-and-run time of one sandbox execution",
        &["kind"],
        vec![0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 30.0, 600.0]
    )
    .unwrap()
});

/// JS engine instances an execution ran in: `new` (instantiated from the module) or `reused`
/// (one a previous execution returned from normally, its memory put back to the snapshot).
pub static INSTANCES: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        "troupe_sandbox_js_instances_total",
        "JS engine instances used by executions, new or reused",
        &["source"]
    )
    .unwrap()
});

/// The largest linear memory any execution has reached since start.
pub static MEMORY_HIGH_WATER: LazyLock<IntGauge> = LazyLock::new(|| {
    register_int_gauge!("troupe_sandbox_memory_high_water_bytes", "Largest linear memory reached by an execution")
        .unwrap()
});

/// Executions running now.
pub static ACTIVE: LazyLock<IntGauge> = LazyLock::new(|| {
    register_int_gauge!("troupe_sandbox_active_executions", "Sandbox executions running now").unwrap()
});

/// Touches every metric so that each is exported from the start, even before it moves.
pub fn register() {
    for kind in ["js", "expression", "wasi"] {
        for outcome in ["ok", "failed", "timeout", "memory_limit", "internal"] {
            EXECUTIONS.with_label_values(&[kind, outcome]);
        }
        EXECUTION_DURATION.with_label_values(&[kind]);
    }
    for source in ["memory", "disk", "compiled"] {
        MODULE_LOADS.with_label_values(&[source]);
    }
    for source in ["new", "reused"] {
        INSTANCES.with_label_values(&[source]);
    }
    LazyLock::force(&MEMORY_HIGH_WATER);
    LazyLock::force(&ACTIVE);
}
