//! Every metric the store exports, in one place: the cluster's replicated state.

use prometheus::{
    register_int_counter, register_int_counter_vec, register_int_gauge, IntCounter, IntCounterVec, IntGauge,
};
use std::sync::LazyLock;

pub static STATE_APPLIED_SEQUENCE: LazyLock<IntGauge> = LazyLock::new(|| {
    register_int_gauge!("troupe_state_applied_sequence", "Stream sequence of AP_STATE this process has applied through")
        .unwrap()
});

pub static STATE_LAG: LazyLock<IntGauge> = LazyLock::new(|| {
    register_int_gauge!("troupe_state_lag_messages", "Messages of AP_STATE not yet applied here, as last sampled")
        .unwrap()
});

pub static STATE_WRITES: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        "troupe_state_writes_total",
        "Replicated writes: published by this process, applied from others, skipped (older than an own write), retried",
        &["outcome"]
    )
    .unwrap()
});

pub static STATE_CONSUMER_STARTS: LazyLock<IntCounter> = LazyLock::new(|| {
    register_int_counter!(
        "troupe_state_consumer_starts_total",
        "Times the AP_STATE consumer was (re)created: once at start, then after each stall or error"
    )
    .unwrap()
});

pub static TASK_PANICS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!("troupe_task_panics_total", "Panics of background tasks, by task", &["task"]).unwrap()
});

pub static TASK_RESTARTS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        "troupe_task_restarts_total",
        "Background tasks started again after a panic, by task",
        &["task"]
    )
    .unwrap()
});

/// Touches every metric so that each is exported from the start.
pub fn register() {
    LazyLock::force(&STATE_APPLIED_SEQUENCE);
    LazyLock::force(&STATE_LAG);
    LazyLock::force(&STATE_CONSUMER_STARTS);
    LazyLock::force(&TASK_PANICS);
    LazyLock::force(&TASK_RESTARTS);
    for outcome in ["published", "applied", "skipped", "retried"] {
        STATE_WRITES.with_label_values(&[outcome]);
    }
}
