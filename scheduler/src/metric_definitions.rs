//! Every metric the scheduler exports, in one place.

use prometheus::{
    register_histogram, register_int_counter_vec, register_int_gauge, Histogram, IntCounterVec, IntGauge,
};
use std::sync::LazyLock;

pub static PENDING_TIMERS: LazyLock<IntGauge> =
    LazyLock::new(|| register_int_gauge!("troupe_timers_pending", "Timers waiting to fire").unwrap());

pub static FIRE_LAG: LazyLock<Histogram> = LazyLock::new(|| {
    register_histogram!(
        "troupe_timer_fire_lag_seconds",
        "How late a timer fired after its due time",
        vec![0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.3, 0.5, 1.0, 2.0, 5.0, 30.0, 300.0]
    )
    .unwrap()
});

pub static FIRED: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!("troupe_timers_fired_total", "Timers fired, by kind", &["kind"]).unwrap()
});

pub fn register() {
    LazyLock::force(&PENDING_TIMERS);
    LazyLock::force(&FIRE_LAG);
    for kind in ["resume_run", "expire_pause", "schedule_tick", "poll", "retention"] {
        FIRED.with_label_values(&[kind]);
    }
}
