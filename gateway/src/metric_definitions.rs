//! Every metric the HTTP front door exports, in one place.

use prometheus::{
    register_histogram, register_int_counter, register_int_counter_vec, Histogram, IntCounter, IntCounterVec,
};
use std::sync::LazyLock;

const LATENCY_BUCKETS: &[f64] =
    &[0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];

pub static WEBHOOKS_RECEIVED: LazyLock<IntCounter> =
    LazyLock::new(|| register_int_counter!("troupe_webhooks_received_total", "Webhook requests received").unwrap());

pub static WEBHOOKS_ACCEPTED: LazyLock<IntCounter> = LazyLock::new(|| {
    register_int_counter!("troupe_webhooks_accepted_total", "Webhooks made durable in JetStream").unwrap()
});

pub static WEBHOOKS_REJECTED: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!("troupe_webhooks_rejected_total", "Webhooks refused, by reason", &["reason"]).unwrap()
});

pub static INGRESS_LATENCY: LazyLock<Histogram> = LazyLock::new(|| {
    register_histogram!(
        "troupe_ingress_latency_seconds",
        "Time from a webhook request to its answer",
        LATENCY_BUCKETS.to_vec()
    )
    .unwrap()
});

pub static PUBLISH_LATENCY: LazyLock<Histogram> = LazyLock::new(|| {
    register_histogram!(
        "troupe_jetstream_publish_latency_seconds",
        "Time from publishing a webhook to JetStream's ack",
        LATENCY_BUCKETS.to_vec()
    )
    .unwrap()
});

pub fn register() {
    LazyLock::force(&WEBHOOKS_RECEIVED);
    LazyLock::force(&WEBHOOKS_ACCEPTED);
    LazyLock::force(&INGRESS_LATENCY);
    LazyLock::force(&PUBLISH_LATENCY);
    for reason in ["not_found", "gone", "disabled", "too_large", "unavailable", "bad_request"] {
        WEBHOOKS_REJECTED.with_label_values(&[reason]);
    }
}

/// The text exposition of every registered metric.
pub fn render() -> String {
    use prometheus::Encoder;
    let mut buf = Vec::new();
    prometheus::TextEncoder::new().encode(&prometheus::gather(), &mut buf).expect("text encoding");
    String::from_utf8(buf).expect("utf-8")
}
