//! Every metric the engine exports, in one place.

use prometheus::{
    register_gauge_vec, register_histogram, register_histogram_vec, register_int_counter, register_int_counter_vec,
    register_int_gauge, register_int_gauge_vec, GaugeVec, Histogram, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec,
};
use std::sync::LazyLock;

const DURATION_BUCKETS: &[f64] =
    &[0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 600.0];

pub static RUNS_STARTED: LazyLock<IntCounter> =
    LazyLock::new(|| register_int_counter!("troupe_runs_started_total", "Runs that started executing").unwrap());

pub static RUNS_FINISHED: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!("troupe_runs_finished_total", "Runs that reached a terminal status", &["status"]).unwrap()
});

pub static RUN_DURATION: LazyLock<Histogram> = LazyLock::new(|| {
    register_histogram!("troupe_run_duration_seconds", "Active time of finished runs", DURATION_BUCKETS.to_vec())
        .unwrap()
});

pub static STEP_DURATION: LazyLock<HistogramVec> = LazyLock::new(|| {
    register_histogram_vec!(
        "troupe_step_duration_seconds",
        "Time of one step execution, by piece and action",
        &["piece", "action"],
        DURATION_BUCKETS.to_vec()
    )
    .unwrap()
});

pub static RUNS_PAUSED: LazyLock<IntCounter> =
    LazyLock::new(|| register_int_counter!("troupe_runs_paused_total", "Times a run paused").unwrap());

pub static PAUSED_RUNS: LazyLock<IntGauge> = LazyLock::new(|| {
    register_int_gauge!("troupe_paused_runs", "Runs waiting in PAUSED (sampled by the sweepers)").unwrap()
});

pub static CONSUMER_LAG: LazyLock<GaugeVec> = LazyLock::new(|| {
    register_gauge_vec!(
        "troupe_consumer_lag_messages",
        "Webhooks waiting in JetStream for a shard's worker",
        &["shard"]
    )
    .unwrap()
});

pub static CONSUMER_RESTARTS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        "troupe_consumer_restarts_total",
        "Times a shard's consumer task ended (a panic) and was started again",
        &["shard"]
    )
    .unwrap()
});

pub static LIVE_ACTORS: LazyLock<IntGaugeVec> =
    LazyLock::new(|| register_int_gauge_vec!("troupe_live_actors", "Live actors by kind", &["kind"]).unwrap());

pub static OWNED_SHARDS: LazyLock<IntGauge> =
    LazyLock::new(|| register_int_gauge!("troupe_owned_shards", "Shards this process works on").unwrap());

pub static SHARD_OWNED: LazyLock<IntGaugeVec> = LazyLock::new(|| {
    register_int_gauge_vec!(
        "troupe_shard_owned",
        "1 for each shard this process owns now, 0 for the others",
        &["shard"]
    )
    .unwrap()
});

pub static RUNS_CREATED: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        "troupe_consumer_messages_total",
        "Messages the shard consumers handled, by outcome",
        &["outcome"]
    )
    .unwrap()
});

/// Touches every metric so that each is exported from the start, even before it moves.
pub fn register() {
    LazyLock::force(&RUNS_STARTED);
    troupe_pieces::metric_definitions::register();
    LazyLock::force(&RUNS_FINISHED);
    LazyLock::force(&RUN_DURATION);
    LazyLock::force(&STEP_DURATION);
    LazyLock::force(&RUNS_PAUSED);
    LazyLock::force(&PAUSED_RUNS);
    LazyLock::force(&CONSUMER_LAG);
    LazyLock::force(&CONSUMER_RESTARTS);
    LazyLock::force(&LIVE_ACTORS);
    LazyLock::force(&OWNED_SHARDS);
    LazyLock::force(&RUNS_CREATED);
    for kind in ["shard", "flow", "run"] {
        LIVE_ACTORS.with_label_values(&[kind]).set(0);
    }
    for outcome in ["created", "redelivered", "start", "dropped", "orphan"] {
        RUNS_CREATED.with_label_values(&[outcome]);
    }
    for status in
        ["SUCCEEDED", "FAILED", "TIMEOUT", "CANCELED", "INTERNAL_ERROR", "MEMORY_LIMIT_EXCEEDED", "QUOTA_EXCEEDED"]
    {
        RUNS_FINISHED.with_label_values(&[status]);
    }
    for piece in crate::pieces::catalog::PIECES {
        for action in piece.actions {
            STEP_DURATION.with_label_values(&[piece.name, action.name]);
        }
    }
}

/// Exports a zero lag for each shard from the start.
pub fn register_shards(shards: u16) {
    for shard in 0..shards {
        CONSUMER_LAG.with_label_values(&[&shard.to_string()]).set(0.0);
        SHARD_OWNED.with_label_values(&[&shard.to_string()]).set(0);
    }
}
