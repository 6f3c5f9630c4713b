//! The scheduler driven by an injected clock, against a real store and a real nats-server:
//! one run per tick, and a process that was down for many ticks fires once, not a burst.

use chrono::{DateTime, Utc};
use serde_json::json;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use troupe_scheduler::{sync_flow_triggers, Clock, Scheduler};
use troupe_store::flow::{Flow, FlowStatus, FlowVersion};
use troupe_store::{Config, Store};

struct FakeClock(Mutex<DateTime<Utc>>);

impl Clock for FakeClock {
    fn now(&self) -> DateTime<Utc> {
        *self.0.lock().unwrap()
    }
}

impl FakeClock {
    fn set(&self, t: &str) {
        *self.0.lock().unwrap() = at(t);
    }
}

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

/// A published, enabled flow whose trigger is `every_x_minutes` with 1 minute.
fn scheduled_flow(store: &Store) -> Flow {
    let version: FlowVersion = serde_json::from_value(json!({
        "id": "v1", "created": "t", "updated": "t", "flowId": "f1", "displayName": "every minute", "state": "LOCKED", "valid": true,
        "trigger": {"name": "trigger", "type": "PIECE_TRIGGER", "settings": {
            "pieceName": "@activepieces/piece-schedule", "triggerName": "every_x_minutes", "input": {"minutes": 1}}}
    }))
    .unwrap();
    let flow: Flow = serde_json::from_value(json!({
        "id": "f1", "created": "t", "updated": "t", "projectId": "p", "status": "ENABLED",
        "publishedVersionId": "v1", "latestVersionId": "v1"
    }))
    .unwrap();
    assert_eq!(flow.status, FlowStatus::Enabled);
    store.insert_new_flow(&flow, &version, 1).unwrap();
    flow
}

async fn queued_ticks(js: &async_nats::jetstream::Context) -> u64 {
    let mut stream = js.get_stream("AP_WEBHOOKS").await.unwrap();
    stream.info().await.unwrap().state.messages
}

async fn wait_for_ticks(js: &async_nats::jetstream::Context, n: u64) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while queued_ticks(js).await < n {
        assert!(Instant::now() < deadline, "expected {n} ticks, have {}", queued_ticks(js).await);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // and no more than that
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(queued_ticks(js).await, n);
}

#[tokio::test]
async fn schedule_ticks_follow_the_clock_and_missed_ticks_fire_once() {
    let nats = troupe_testkit::NatsServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let client = async_nats::connect(&nats.url).await.unwrap();
    let js = async_nats::jetstream::new(client);
    troupe_store::streams::ensure_streams(&js, 1 << 24, 1, false).await.unwrap();
    let flow = scheduled_flow(&store);
    let clock = Arc::new(FakeClock(Mutex::new(at("2026-01-05T10:00:30Z"))));
    sync_flow_triggers(&store, "f1", Some(&flow), clock.as_ref(), None).unwrap();
    let config = Config::from_lookup(|_| None).unwrap();
    let tasks = troupe_store::tasks::Tasks::default();
    let scheduler =
        Scheduler::start(config.clone(), store.clone(), js.clone(), clock.clone(), egress(&config), None, None, &tasks);

    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(queued_ticks(&js).await, 0, "nothing before the first tick");
    clock.set("2026-01-05T10:01:00Z");
    wait_for_ticks(&js, 1).await;
    clock.set("2026-01-05T10:02:05Z");
    wait_for_ticks(&js, 2).await;
    // down for ten ticks: one tick at the jump, then the rhythm again
    clock.set("2026-01-05T10:12:30Z");
    wait_for_ticks(&js, 3).await;
    clock.set("2026-01-05T10:13:00Z");
    wait_for_ticks(&js, 4).await;

    // disabling removes the schedule
    sync_flow_triggers(&store, "f1", None, clock.as_ref(), None).unwrap();
    clock.set("2026-01-05T10:20:00Z");
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(queued_ticks(&js).await, 4);
    scheduler.stop().await;
}

fn egress(config: &troupe_store::Config) -> Arc<troupe_pieces::egress::Egress> {
    Arc::new(troupe_pieces::egress::Egress::new(config).expect("the egress client builds"))
}
