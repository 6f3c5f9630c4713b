//! Pauses and the scheduler: delays, webhook resumes, approvals, schedules, polling.

use crate::support::*;
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub(crate) async fn only_run(t: &Troupe, flow_id: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(r) = t.all_runs(flow_id).await.first() {
            return r["id"].as_str().unwrap().to_string();
        }
        assert!(Instant::now() < deadline, "no run");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn delay(seconds: u64) -> Value {
    piece("wait", "delay", "delayFor", json!({"unit": "seconds", "delayFor": seconds}))
}

fn counter(name: &str) -> Value {
    piece(name, "store", "append", json!({"key": name, "value": "x", "store_scope": "FLOW"}))
}

#[tokio::test]
async fn a_delay_pauses_the_run_then_resumes_it_on_time() {
    let t = Troupe::start().await;
    let id = t.publish(webhook_flow(chain(vec![delay(2), counter("after")]))).await;
    let sent = chrono::Utc::now();
    t.webhook(&id, "", json!({})).await;
    let run_id = only_run(&t, &id).await;
    let paused = t.wait_status(&run_id, "PAUSED", Duration::from_secs(5)).await;
    assert_eq!(paused["pause"]["type"], "DELAY");
    assert_eq!(paused["steps"]["wait"]["status"], "PAUSED");
    let done = t.wait_status(&run_id, "SUCCEEDED", Duration::from_secs(10)).await;
    assert_eq!(done["steps"]["wait"]["output"], json!({"delayForInMs": 2000, "success": true}));
    assert_eq!(done["steps"]["after"]["output"], "x");
    let finished = chrono::DateTime::parse_from_rfc3339(done["finishTime"].as_str().unwrap()).unwrap();
    let took = (finished.with_timezone(&chrono::Utc) - sent).num_milliseconds();
    // the 1 s bound under load is measured by the benchmark; here leave room for a busy CI
    assert!((2000..4500).contains(&took), "resumed soon after its due time: {took} ms");
    assert!(done["activeMs"].as_u64().unwrap() < 1500, "paused time does not count as active: {done}");
}

#[tokio::test]
async fn a_run_paused_across_a_crash_resumes_exactly_once() {
    let mut t = Troupe::start().await;
    let id = t.publish(webhook_flow(chain(vec![counter("before"), delay(2), counter("after")]))).await;
    t.webhook(&id, "", json!({})).await;
    let run_id = only_run(&t, &id).await;
    t.wait_status(&run_id, "PAUSED", Duration::from_secs(5)).await;
    t.kill();
    tokio::time::sleep(Duration::from_millis(2500)).await; // due while down
    t.spawn().await;
    let done = t.wait_status(&run_id, "SUCCEEDED", Duration::from_secs(10)).await;
    assert_eq!(done["steps"]["before"]["output"], "x", "steps before the pause ran once");
    assert_eq!(done["steps"]["after"]["output"], "x", "steps after the pause ran once");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(t.run(&run_id).await["steps"]["after"]["output"], "x");
}

#[tokio::test]
async fn return_response_and_wait_resumes_with_the_next_request() {
    let t = Troupe::start().await;
    let wait = piece(
        "ask",
        "webhook",
        "return_response_and_wait_for_next_webhook",
        json!({"responseType": "json", "fields": {"status": 200, "body": {"question": "name?"}}}),
    );
    let flow = chain(vec![wait, respond(json!({"hello": "{{ask.body.name}}", "q": "{{ask.queryParams.x}}"}))]);
    let id = t.publish(webhook_flow(flow)).await;
    let r = t.webhook(&id, "/sync", json!({})).await;
    assert_eq!(r.status(), 200);
    let resume_url = r.headers()["x-activepieces-resume-webhook-url"].to_str().unwrap().to_string();
    let run_id = r.headers()["x-run-id"].to_str().unwrap().to_string();
    assert_eq!(r.json::<Value>().await.unwrap()["question"], "name?");
    t.wait_status(&run_id, "PAUSED", Duration::from_secs(5)).await;
    assert!(
        resume_url.contains(&format!("/api/v1/flow-runs/{run_id}/requests/")) && resume_url.ends_with("/sync"),
        "{resume_url}"
    );
    // the resume answers with the run's next response; today's Activepieces names the same
    // URL `/waitpoints/{id}`, which Troupe serves too
    let resume_url = resume_url.replace("/requests/", "/waitpoints/");
    let r = t.client.post(format!("{resume_url}?x=1")).json(&json!({"name": "Ada"})).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap(), json!({"hello": "Ada", "q": "1"}));
    let run = t.wait_status(&run_id, "SUCCEEDED", Duration::from_secs(5)).await;
    assert_eq!(run["steps"]["ask"]["output"]["body"], json!({"name": "Ada"}));
    // a second resume of the same request, a finished run: 409; an unknown run: 404
    let again = t.client.post(&resume_url).json(&json!({})).send().await.unwrap();
    assert_eq!(again.status(), 409);
    let unknown = t.client.post(t.url("/api/v1/flow-runs/nope/requests/x")).send().await.unwrap();
    assert_eq!(unknown.status(), 404);
}

#[tokio::test]
async fn approval_links_approve_or_reject_a_waiting_run() {
    let t = Troupe::start().await;
    let links = piece("links", "approval", "create_approval_links", json!({}));
    let wait = piece("approval", "approval", "wait_for_approval", json!({}));
    let router = json!({"name": "router", "type": "ROUTER", "displayName": "Router",
        "settings": {"executionType": "EXECUTE_FIRST_MATCH", "branches": [
            {"branchName": "approved", "branchType": "CONDITION", "conditions": [[{"operator": "BOOLEAN_IS_TRUE", "firstValue": "{{approval.approved}}"}]]},
            {"branchName": "rejected", "branchType": "FALLBACK"}]},
        "children": [counter("yes"), counter("no")]});
    let id = t.publish(webhook_flow(chain(vec![links, wait, router]))).await;
    let mut outcomes = Vec::new();
    for decision in ["approve", "disapprove"] {
        let r = t.webhook(&id, "", json!({})).await;
        let webhook_id = r.headers()["x-webhook-id"].to_str().unwrap().to_string();
        let run_id = loop {
            let runs = t.all_runs(&id).await;
            if let Some(r) = runs.iter().find(|r| r["webhookId"] == webhook_id.as_str()) {
                break r["id"].as_str().unwrap().to_string();
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        let run = t.wait_status(&run_id, "PAUSED", Duration::from_secs(5)).await;
        let link = run["steps"]["links"]["output"]
            [if decision == "approve" { "approvalLink" } else { "disapprovalLink" }]
        .as_str()
        .unwrap()
        .to_string();
        assert!(link.ends_with(&format!("?action={decision}")));
        let r = t.client.get(&link).send().await.unwrap();
        assert_eq!(r.status(), 200);
        let run = t.wait_status(&run_id, "SUCCEEDED", Duration::from_secs(5)).await;
        outcomes.push((run["steps"]["approval"]["output"]["approved"].clone(), run["steps"].get("yes").is_some()));
    }
    assert_eq!(outcomes, vec![(json!(true), true), (json!(false), false)]);
}

#[tokio::test]
async fn two_racing_resumes_make_one_resume_and_one_conflict() {
    let t = Troupe::start().await;
    let wait = piece(
        "ask",
        "webhook",
        "return_response_and_wait_for_next_webhook",
        json!({"responseType": "json", "fields": {"body": {}}}),
    );
    let id = t.publish(webhook_flow(chain(vec![wait, counter("after")]))).await;
    for _ in 0..5 {
        let r = t.webhook(&id, "/sync", json!({})).await;
        let url =
            r.headers()["x-activepieces-resume-webhook-url"].to_str().unwrap().trim_end_matches("/sync").to_string();
        let run_id = r.headers()["x-run-id"].to_str().unwrap().to_string();
        t.wait_status(&run_id, "PAUSED", Duration::from_secs(5)).await;
        let (a, b) = tokio::join!(t.client.post(&url).send(), t.client.post(&url).send());
        let mut codes = vec![a.unwrap().status().as_u16(), b.unwrap().status().as_u16()];
        codes.sort();
        assert_eq!(codes, vec![200, 409]);
        t.wait_status(&run_id, "SUCCEEDED", Duration::from_secs(5)).await;
    }
    let runs = t.all_runs(&id).await;
    assert_eq!(runs.len(), 5);
    // the flow-scoped counter grew once per run: no run was resumed twice
    let last = t.run(runs[0]["id"].as_str().unwrap()).await;
    assert_eq!(last["steps"]["after"]["output"], "xxxxx");
}

#[tokio::test]
async fn a_run_paused_past_the_paused_timeout_ends_as_timeout() {
    let t = Troupe::start_with(&[("AP_PAUSED_FLOW_TIMEOUT_DAYS", "0")]).await;
    let id = t.publish(webhook_flow(chain(vec![delay(30), counter("after")]))).await;
    t.webhook(&id, "", json!({})).await;
    let run_id = only_run(&t, &id).await;
    let run = t.wait_status(&run_id, "TIMEOUT", Duration::from_secs(5)).await;
    assert!(run["failedStep"]["message"].as_str().unwrap().contains("AP_PAUSED_FLOW_TIMEOUT_DAYS"));
    assert!(run["steps"].get("after").is_none());
}

#[tokio::test]
async fn a_canceled_paused_run_never_resumes() {
    let t = Troupe::start().await;
    let id = t.publish(webhook_flow(chain(vec![delay(1), counter("after")]))).await;
    t.webhook(&id, "", json!({})).await;
    let run_id = only_run(&t, &id).await;
    t.wait_status(&run_id, "PAUSED", Duration::from_secs(5)).await;
    let (s, _) = t.post(&format!("/flow-runs/{run_id}/cancel"), json!({})).await;
    assert_eq!(s, 200);
    tokio::time::sleep(Duration::from_millis(2000)).await;
    let run = t.run(&run_id).await;
    assert_eq!(run["status"], "CANCELED");
    assert!(run["steps"].get("after").is_none());
}

fn schedule_flow(trigger: &str, input: Value, first: Value) -> Value {
    json!({
        "displayName": "scheduled",
        "trigger": {"name": "trigger", "type": "PIECE_TRIGGER", "valid": true, "displayName": "Schedule",
            "settings": {"pieceName": "@activepieces/piece-schedule", "pieceVersion": "~0.1.5", "triggerName": trigger, "input": input},
            "nextAction": first}
    })
}

#[tokio::test]
async fn a_schedule_ticks_once_per_tick_and_stops_when_disabled() {
    let t = Troupe::start().await;
    // a six-field cron (seconds first) so the test needs no minutes of waiting
    let flow = schedule_flow(
        "cron_expression",
        json!({"cronExpression": "*/1 * * * * *", "timezone": "UTC"}),
        counter("tick"),
    );
    let id = t.publish(flow).await;
    tokio::time::sleep(Duration::from_millis(3500)).await;
    let (s, _) =
        t.post(&format!("/flows/{id}"), json!({"type": "CHANGE_STATUS", "request": {"status": "DISABLED"}})).await;
    assert_eq!(s, 200);
    let runs = t.wait_runs(&id, 1).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let after = t.all_runs(&id).await;
    assert!((2..=5).contains(&runs.len()), "about one run per second: {}", runs.len());
    assert!(after.len() <= runs.len() + 1, "no ticks after disabling: {} then {}", runs.len(), after.len());
    let ids: std::collections::HashSet<_> =
        after.iter().map(|r| r["webhookId"].as_str().unwrap().to_string()).collect();
    assert_eq!(ids.len(), after.len(), "one run per tick");
    assert!(after.iter().all(|r| r["triggerOutput"] == json!({})));

    // an invalid schedule cannot be published
    let bad = t.import(schedule_flow("every_x_minutes", json!({"minutes": 0}), counter("tick"))).await;
    let (s, b) = t.post(&format!("/flows/{bad}"), json!({"type": "LOCK_AND_PUBLISH", "request": {}})).await;
    assert_eq!(s, 400, "{b}");
    assert!(b["message"].as_str().unwrap().contains("minutes"));
}

/// A tiny RSS server on loopback whose feed the test changes.
async fn feed_server(items: Arc<Mutex<Vec<&'static str>>>, failing: Arc<Mutex<bool>>) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut sock, _)) = listener.accept().await else { return };
            let (items, failing) = (items.clone(), failing.clone());
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = sock.read(&mut buf).await;
                let (status, body) = if *failing.lock().unwrap() {
                    ("500 Internal Server Error", String::from("down"))
                } else {
                    let entries: String = items
                        .lock()
                        .unwrap()
                        .iter()
                        .rev()
                        .map(|id| {
                            format!("<item><guid>{id}</guid><title>Item {id}</title><link>http://x/{id}</link></item>")
                        })
                        .collect();
                    ("200 OK", format!("<?xml version=\"1.0\"?><rss version=\"2.0\"><channel><title>t</title>{entries}</channel></rss>"))
                };
                let resp = format!("HTTP/1.1 {status}\r\ncontent-type: application/rss+xml\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}", body.len());
                let _ = sock.write_all(resp.as_bytes()).await;
            });
        }
    });
    format!("http://{addr}/feed.xml")
}

#[tokio::test]
async fn an_rss_polling_trigger_runs_once_per_new_item_and_is_disabled_when_it_keeps_failing() {
    let items = Arc::new(Mutex::new(vec!["a", "b"]));
    let failing = Arc::new(Mutex::new(false));
    let url = feed_server(items.clone(), failing.clone()).await;
    // poll every 0.3 s
    let t = Troupe::start_with(&[("AP_TRIGGER_DEFAULT_POLL_INTERVAL", "0.005")]).await;
    let flow = json!({
        "displayName": "rss",
        "trigger": {"name": "trigger", "type": "PIECE_TRIGGER", "valid": true, "displayName": "New item",
            "settings": {"pieceName": "@activepieces/piece-rss", "pieceVersion": "~0.4.0", "triggerName": "new-item", "input": {"rss_feed_url": url}},
            "nextAction": piece("seen", "data-mapper", "advanced_mapping", json!({"mapping": {"title": "{{trigger.title}}"}}))}
    });
    let id = t.publish(flow).await;
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert!(t.all_runs(&id).await.is_empty(), "items present before enabling are not new");
    items.lock().unwrap().push("c");
    let runs = t.wait_runs(&id, 1).await;
    assert_eq!(runs[0]["triggerOutput"]["title"], "Item c");
    items.lock().unwrap().extend(["d", "e"]);
    let runs = t.wait_runs(&id, 3).await;
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let runs_after = t.all_runs(&id).await;
    assert_eq!(runs_after.len(), 3, "one run per new item: {runs:?}");
    let mut titles: Vec<String> =
        runs_after.iter().map(|r| r["triggerOutput"]["title"].as_str().unwrap().to_string()).collect();
    titles.sort();
    assert_eq!(titles, ["Item c", "Item d", "Item e"]);

    *failing.lock().unwrap() = true;
    let deadline = Instant::now() + Duration::from_secs(10);
    let flow = loop {
        let (_, f) = t.get(&format!("/flows/{id}")).await;
        if f["status"] == "DISABLED" {
            break f;
        }
        assert!(Instant::now() < deadline, "the failing trigger was not disabled");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(flow["disabledReason"].as_str().unwrap().contains("5 times"), "{flow}");
}

#[tokio::test]
async fn runs_older_than_the_retention_are_deleted() {
    let mut t = Troupe::start().await;
    let id = t.publish(fixture("greeting-flow.json")).await;
    for _ in 0..3 {
        t.webhook(&id, "/sync", json!({"name": "a", "items": [1]})).await;
    }
    assert_eq!(t.all_runs(&id).await.len(), 3);
    t.kill();
    // retention runs at start: with 0 days, every finished run is old enough
    t.env.push(("AP_EXECUTION_DATA_RETENTION_DAYS".into(), "0".into()));
    t.spawn().await;
    let deadline = Instant::now() + Duration::from_secs(5);
    while !t.all_runs(&id).await.is_empty() {
        assert!(Instant::now() < deadline, "old runs were not deleted");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let r = t.webhook(&id, "/sync", json!({"name": "b", "items": [1]})).await;
    assert_eq!(r.status(), 201, "new runs still work");
}
