//! Fault-injection suite: while webhooks stream in, crash things, then check that every
//! webhook answered 2xx has exactly one run, every run ends, and Troupe keeps serving.
//! Bounded in count and time; loopback only. Run alone with `just faults`.

use crate::support::*;
use serde_json::json;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

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

/// nats-server can come back from an unclean stop with a durable consumer that claims more than
/// it delivered (nats-io/nats-server#4736): webhooks stay in the work queue and are never
/// handed out. Made here on purpose: the shard's consumer is replaced by one that delivers a
/// message once (`max_deliver` 1), and the test takes the webhooks without acking them. The
/// shard's orphan sweep must find and run them.
#[tokio::test]
async fn webhooks_a_consumer_never_delivers_are_taken_from_the_stream() {
    use async_nats::jetstream::consumer::{pull, AckPolicy};
    use futures::StreamExt;
    use troupe_store::message::{ShardMessage, WebhookMessage};
    let nats = NatsServer::start().await;
    let mut t = Troupe::start_with(&[("AP_NATS_URL", &nats.url)]).await;
    let id = t.publish(counting_flow()).await;
    t.terminate();

    let js = async_nats::jetstream::new(async_nats::connect(&nats.url).await.unwrap());
    let shard = troupe_store::ids::shard_for_flow(&id, 4);
    let subject = troupe_store::names::subjects::webhook(shard);
    for n in 0..5u64 {
        let msg = ShardMessage::Webhook(WebhookMessage {
            webhook_id: format!("orphan-{n}"),
            flow_id: id.clone(),
            version_id: None,
            payload: json!({"body": {"n": n}}),
            received_at: troupe_store::ids::now_iso(),
        });
        js.publish(subject.clone(), serde_json::to_vec(&msg).unwrap().into()).await.unwrap().await.unwrap();
    }
    let stream = js.get_stream(troupe_store::names::subjects::WEBHOOK_STREAM).await.unwrap();
    let durable = troupe_store::names::subjects::shard_consumer(shard);
    stream.delete_consumer(&durable).await.unwrap();
    let config = pull::Config {
        durable_name: Some(durable.clone()),
        filter_subject: subject.clone(),
        ack_policy: AckPolicy::Explicit,
        ack_wait: Duration::from_secs(1),
        max_deliver: 1,
        ..Default::default()
    };
    let consumer = stream.create_consumer(config).await.unwrap();
    let mut taken = consumer.fetch().max_messages(5).messages().await.unwrap();
    let mut n = 0;
    while let Some(m) = taken.next().await {
        m.unwrap(); // delivered, never acked
        n += 1;
    }
    assert_eq!(n, 5);
    tokio::time::sleep(Duration::from_secs(2)).await;

    t.spawn().await;
    let runs = t.wait_runs(&id, 5).await;
    let mut ns: Vec<u64> = runs.iter().map(|r| r["triggerOutput"]["body"]["n"].as_u64().unwrap()).collect();
    ns.sort_unstable();
    assert_eq!(ns, vec![0, 1, 2, 3, 4], "each orphan made one run");
    assert!(runs.iter().all(|r| r["status"] == "SUCCEEDED"));
    // and they leave the stream (deleted once their runs are durable)
    let deadline = Instant::now() + Duration::from_secs(10);
    while stream.get_first_raw_message_by_subject(&subject, 1).await.is_ok() {
        assert!(Instant::now() < deadline, "the orphans stayed in the stream");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_shard_consumer_that_panics_is_started_again_and_loses_no_webhook() {
    let t = Troupe::start_logged(&[("TROUPE_FAULT_CONSUMER_PANIC", "3")]).await;
    let echo = piece("step_1", "data-mapper", "advanced_mapping", json!({"mapping": {"n": "{{trigger.body.n}}"}}));
    let id = t.publish(webhook_flow(echo)).await;
    for n in 0..20u64 {
        assert!(t.webhook(&id, "", json!({"n": n})).await.status().is_success());
    }
    // the runs of the batch it panicked on were recorded; their messages come back (ack_wait)
    // to a new consumer, which finds them made: every webhook once, the later ones too
    let runs = t.wait_runs(&id, 20).await;
    let mut seen = HashSet::new();
    for r in &runs {
        assert_eq!(r["status"], "SUCCEEDED", "{r}");
        let run = t.run(r["id"].as_str().unwrap()).await;
        assert!(seen.insert(run["steps"]["step_1"]["output"]["n"].as_u64().unwrap()), "a webhook ran twice");
    }
    assert_eq!(seen.len(), 20);
    // counted when the consumer starts again, after its back-off
    let deadline = Instant::now() + Duration::from_secs(10);
    while metric(&t, "troupe_consumer_restarts_total", "shard=").await < 1.0 {
        assert!(Instant::now() < deadline, "the consumer was not started again");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(metric(&t, "troupe_consumer_restarts_total", "shard=").await, 1.0, "one restart, counted");
    let log = std::fs::read_to_string(t.log.as_ref().unwrap()).unwrap();
    assert!(log.contains("a task panicked; restarting it") && log.contains("shard consumer"), "logged");
}

#[tokio::test]
async fn background_tasks_that_panic_are_started_again_and_troupe_serves_on() {
    // each panics once, at its start; a request's handler panics on the first API call
    let t = Troupe::start_logged(&[("TROUPE_FAULT_TASK_PANIC", "reply listener,scheduler,http request")]).await;
    let (status, body) = t.get("/flows").await;
    assert_eq!((status, body["code"].as_str()), (500, Some("INTERNAL_ERROR")), "{body}");
    assert_eq!(body["message"], "the request failed unexpectedly", "no detail of the panic");
    assert_eq!(t.get("/flows").await.0, 200, "the next request is served");

    // the reply listener, started again, routes a sync webhook's response (a reply sent during
    // its back-off is lost: that caller gets the 202 with its run's location after the timeout)
    let deadline = Instant::now() + Duration::from_secs(10);
    while metric(&t, "troupe_task_restarts_total", "task=\"reply listener\"").await < 1.0 {
        assert!(Instant::now() < deadline, "the reply listener was not started again");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let id = t.publish(webhook_flow(respond(json!({"echo": "{{trigger.body.n}}"})))).await;
    let r = t.webhook(&id, "/sync", json!({"n": 7})).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<serde_json::Value>().await.unwrap()["echo"], 7);

    // the scheduler, started again, ends a delay
    let delayed = t
        .publish(webhook_flow(chain(vec![
            piece("wait", "delay", "delayFor", json!({"unit": "seconds", "delayFor": 1})),
            piece("step_1", "data-mapper", "advanced_mapping", json!({"mapping": {"n": "{{trigger.body.n}}"}})),
        ])))
        .await;
    assert!(t.webhook(&delayed, "", json!({"n": 1})).await.status().is_success());
    let runs = t.wait_runs(&delayed, 1).await;
    assert_eq!(runs[0]["status"], "SUCCEEDED");

    for task in ["reply listener", "scheduler"] {
        let label = format!("task=\"{task}\"");
        assert_eq!(metric(&t, "troupe_task_restarts_total", &label).await, 1.0, "{task} restarted once");
    }
    assert_eq!(metric(&t, "troupe_task_panics_total", "task=\"http request\"").await, 1.0);
    let log = std::fs::read_to_string(t.log.as_ref().unwrap()).unwrap();
    assert_eq!(log.matches("a task panicked; restarting it").count(), 2, "{log}");
}

#[tokio::test]
async fn an_essential_task_that_panics_stops_troupe_in_order_and_nothing_accepted_is_lost() {
    // the HTTP server holds the listener: its panic stops the process (here 3 s after start)
    let mut t = Troupe::start_logged(&[("TROUPE_FAULT_TASK_PANIC", "http server@3")]).await;
    let id = t.publish(counting_flow()).await;
    let mut accepted = HashSet::new();
    let client = reqwest::Client::builder().timeout(Duration::from_secs(2)).build().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    for n in 0u64.. {
        let sent = client.post(t.url(&format!("/api/v1/webhooks/{id}"))).json(&json!({"n": n})).send().await;
        match sent {
            Ok(r) if r.status().is_success() => assert!(accepted.insert(n)),
            _ => break,
        }
        assert!(Instant::now() < deadline, "the server never stopped");
    }
    assert!(!accepted.is_empty());
    let status = t.wait_exit(Duration::from_secs(60)).await;
    assert_eq!(status.code(), Some(1), "a failed essential task is an error exit");
    let log = std::fs::read_to_string(t.log.as_ref().unwrap()).unwrap();
    assert!(log.contains("an essential task panicked; stopping the process"), "{log}");
    assert!(log.contains("stopped because the task \"http server\" panicked"), "{log}");
    // started again (as its supervisor would), it has every accepted webhook's run, once
    t.env.clear();
    t.spawn().await;
    let runs = t.wait_runs(&id, accepted.len()).await;
    let mut seen = HashSet::new();
    for r in &runs {
        assert_eq!(r["status"], "SUCCEEDED", "{r}");
        let run = t.run(r["id"].as_str().unwrap()).await;
        assert!(seen.insert(run["steps"]["step_1"]["output"]["n"].as_u64().unwrap()), "a webhook ran twice");
    }
    assert_eq!(seen, accepted);
}
