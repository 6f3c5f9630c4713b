//! Every metric this crate exports, in one place.

use prometheus::{register_int_counter_vec, IntCounterVec};
use std::sync::LazyLock;

pub static EGRESS_REQUESTS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        "troupe_egress_requests_total",
        "HTTP requests steps and triggers sent out, by outcome (ok, blocked by SSRF protection, error, too_large)",
        &["outcome"]
    )
    .unwrap()
});

/// Makes every series exist before traffic.
pub fn register() {
    for outcome in ["ok", "blocked", "error", "too_large"] {
        EGRESS_REQUESTS.with_label_values(&[outcome]);
    }
}
