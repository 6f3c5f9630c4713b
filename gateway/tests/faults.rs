//! Fault-injection suite: while webhooks stream in, crash things, then check that every
//! webhook answered 2xx has exactly one run, every run ends, and Troupe keeps serving.
//! Bounded in count and time; loopback only. Run alone with `just faults`.

mod support;

use serde_json::json;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::*;

const TOTAL: u64 = 1500;
const IN_FLIGHT: usize = 16;

struct Stream {
    sent: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<(HashSet<u64>, usize)>,
}

/// Streams `{"n": n}` webhooks for n in 0..TOTAL; returns (accepted ns, rejected count).
fn stream_webhooks(t: &Troupe, flow_id: &str) -> Stream {
    use futures::StreamExt;
    let sent = Arc::new(AtomicUsize::new(0));
    let client = reqwest::Client::builder().timeout(Duration::from_secs(15)).build().unwrap();
    let url = t.url(&format!("/api/v1/webhooks/{flow_id}"));
    let counter = sent.clone();
    let task = tokio::spawn(async move {
        let results: Vec<(u64, bool)> = futures::stream::iter((0..TOTAL).map(|n| {
            let (client, url, counter) = (client.clone(), url.clone(), counter.clone());
            async move {
                let ok = matches!(client.post(url).json(&json!({"n": n})).send().await, Ok(r) if r.status() == 200);
                counter.fetch_add(1, Ordering::SeqCst);
                if !ok {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                (n, ok)
            }
        }))
        .buffer_unordered(IN_FLIGHT)
        .collect()
        .await;
        let accepted = results.iter().filter(|(_, ok)| *ok).map(|(n, _)| *n).collect::<HashSet<_>>();
        (accepted.clone(), results.len() - accepted.len())
    });
    Stream { sent, task }
}

async fn when_sent(s: &Stream, n: usize) {
    while s.sent.load(Ordering::SeqCst) < n {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Waits for the runs to settle, prints the counts, and checks the promises.
async fn check(name: &str, t: &Troupe, flow_id: &str, accepted: &HashSet<u64>, rejected: usize) {
    let deadline = Instant::now() + Duration::from_secs(90);
    let runs = loop {
        let runs = t.all_runs(flow_id).await;
        let settled = runs.iter().all(|r| !matches!(r["status"].as_str(), Some("QUEUED" | "RUNNING")));
        let covered = accepted.iter().all(|n| runs.iter().any(|r| r["triggerOutput"]["body"]["n"] == *n));
        if (settled && covered) || Instant::now() > deadline {
            // a redelivery may still be on its way: look once more after the ack wait
            tokio::time::sleep(Duration::from_secs(11)).await;
            break t.all_runs(flow_id).await;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let mut per_n: HashMap<u64, usize> = HashMap::new();
    for r in &runs {
        *per_n.entry(r["triggerOutput"]["body"]["n"].as_u64().unwrap()).or_default() += 1;
    }
    let duplicates = per_n.values().filter(|c| **c > 1).count();
    let missing = accepted.iter().filter(|n| !per_n.contains_key(n)).count();
    let stuck = runs.iter().filter(|r| matches!(r["status"].as_str(), Some("QUEUED" | "RUNNING"))).count();
    let mut by_status: HashMap<String, usize> = HashMap::new();
    for r in &runs {
        *by_status.entry(r["status"].as_str().unwrap().to_string()).or_default() += 1;
    }
    println!(
        "fault {name}: sent {TOTAL}, accepted {}, rejected {rejected}, runs {}, duplicates {duplicates}, missing {missing}, stuck {stuck}, statuses {by_status:?}",
        accepted.len(),
        runs.len()
    );
    assert_eq!(duplicates, 0, "{name}: a webhook made two runs");
    assert_eq!(missing, 0, "{name}: an accepted webhook has no run");
    assert_eq!(stuck, 0, "{name}: runs did not finish");
    // still serving
    let probe = t.publish(fixture("greeting-flow.json")).await;
    let r = t.webhook(&probe, "/sync", json!({"name": "probe", "items": [1]})).await;
    assert_eq!(r.status(), 201, "{name}: troupe stopped serving");
}

#[tokio::test]
async fn fault_kill_troupe_while_webhooks_stream_in() {
    let mut t = Troupe::start().await;
    let id = t.publish(counting_flow()).await;
    let s = stream_webhooks(&t, &id);
    when_sent(&s, 500).await;
    t.kill();
    tokio::time::sleep(Duration::from_millis(300)).await;
    t.spawn().await;
    let (accepted, rejected) = s.task.await.unwrap();
    assert!(rejected > 0 || accepted.len() == TOTAL as usize);
    check("kill -9 troupe", &t, &id, &accepted, rejected).await;
}

#[tokio::test]
async fn fault_kill_nats_server_while_webhooks_stream_in() {
    let t = Troupe::start().await;
    let id = t.publish(counting_flow()).await;
    let s = stream_webhooks(&t, &id);
    when_sent(&s, 500).await;
    t.kill_embedded_nats();
    let (accepted, rejected) = s.task.await.unwrap();
    check("kill -9 nats-server", &t, &id, &accepted, rejected).await;
}

#[tokio::test]
async fn fault_steps_panic_while_webhooks_stream_in() {
    let t = Troupe::start_with(&[("TROUPE_DEBUG_PIECES", "1")]).await;
    let panic_step = json!({"name": "boom", "type": "PIECE", "displayName": "boom",
        "settings": {"pieceName": "@troupe/piece-debug", "pieceVersion": "0.1.0", "actionName": "panic", "input": {}}});
    let router = json!({"name": "router", "type": "ROUTER", "displayName": "Router",
        "settings": {"executionType": "EXECUTE_FIRST_MATCH", "branches": [
            {"branchName": "every tenth", "branchType": "CONDITION", "conditions": [[{"operator": "TEXT_ENDS_WITH", "firstValue": "{{trigger.body.n}}", "secondValue": "0"}]]},
            {"branchName": "otherwise", "branchType": "FALLBACK"}]},
        "children": [panic_step, piece("fine", "data-mapper", "advanced_mapping", json!({"mapping": {"ok": true}}))]});
    let id = t.publish(webhook_flow(router)).await;
    let s = stream_webhooks(&t, &id);
    let (accepted, rejected) = s.task.await.unwrap();
    assert_eq!(rejected, 0);
    check("step panics", &t, &id, &accepted, rejected).await;
    let failed = t.all_runs(&id).await.iter().filter(|r| r["status"] == "INTERNAL_ERROR").count();
    assert_eq!(failed, (TOTAL / 10) as usize, "exactly the panicking runs failed");
}

#[tokio::test]
async fn fault_stream_full_refuses_with_503_and_loses_nothing() {
    // workers off (gateway only), a small stream: it fills and the gateway answers 503
    let mut t = Troupe::start_with(&[
        ("AP_CONTAINER_TYPE", "APP"),
        ("AP_ENCRYPTION_KEY", "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"),
        ("AP_WEBHOOK_STREAM_MAX_BYTES", "262144"),
    ])
    .await;
    let id = t.publish(counting_flow()).await;
    let s = stream_webhooks(&t, &id);
    let (accepted, rejected) = s.task.await.unwrap();
    assert!(rejected > 0, "the stream filled up");
    assert!(!accepted.is_empty());
    let r = t.webhook(&id, "", json!({"n": 999_999})).await;
    assert_eq!(r.status(), 503);
    assert!(r.headers().contains_key("retry-after"));
    // workers come back and drain the stream
    t.kill();
    t.env.retain(|(k, _)| k != "AP_CONTAINER_TYPE");
    t.spawn().await;
    check("stream full", &t, &id, &accepted, rejected).await;
}
