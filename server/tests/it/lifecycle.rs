//! Run lifecycle from outside: retry, cancel, graceful shutdown.

use crate::support::*;
use serde_json::{json, Value};
use std::time::Duration;

async fn set_flag(t: &Troupe) {
    let setter = t.publish(webhook_flow(piece("put", "store", "put", json!({"key": "go", "value": true})))).await;
    assert_eq!(t.webhook(&setter, "/sync", json!({})).await.status(), 200);
}

#[tokio::test]
async fn retry_from_the_failed_step_skips_the_steps_that_succeeded() {
    let t = Troupe::start_with(&[("TROUPE_DEBUG_PIECES", "1")]).await;
    let flow = chain(vec![
        piece(
            "count",
            "store",
            "append",
            json!({"key": "count", "value": "x", "separator": ",", "store_scope": "FLOW"}),
        ),
        debug("gate", "fail_unless_flag", json!({"flag": "go"})),
        respond(json!({"count": "{{count}}"})),
    ]);
    let id = t.publish(webhook_flow(flow)).await;
    let r: Value = t.webhook(&id, "/sync", json!({})).await.json().await.unwrap();
    assert_eq!(r["status"], "FAILED");
    let run_id = r["runId"].as_str().unwrap().to_string();
    assert_eq!(r["failedStep"]["name"], "gate");

    // a run that did not fail cannot be retried; an unknown one is 404
    let ok = t.publish(fixture("greeting-flow.json")).await;
    let good = t.webhook(&ok, "/sync", json!({"name": "a", "items": [1]})).await;
    let good_id = good.headers()["x-run-id"].to_str().unwrap().to_string();
    let (s, b) = t.post(&format!("/flow-runs/{good_id}/retry"), json!({"strategy": "FROM_FAILED_STEP"})).await;
    assert_eq!(s, 409, "{b}");
    assert_eq!(t.post("/flow-runs/nope/retry", json!({"strategy": "FROM_FAILED_STEP"})).await.0, 404);
    assert_eq!(t.post(&format!("/flow-runs/{run_id}/retry"), json!({"strategy": "SIDEWAYS"})).await.0, 400);

    set_flag(&t).await;
    let (s, b) = t.post(&format!("/flow-runs/{run_id}/retry"), json!({"strategy": "FROM_FAILED_STEP"})).await;
    assert_eq!(s, 200, "{b}");
    let run = t.wait_status(&run_id, "SUCCEEDED", Duration::from_secs(30)).await;
    assert_eq!(run["steps"]["count"]["output"], "x", "the step that succeeded ran once");
    assert_eq!(run["steps"]["gate"]["status"], "SUCCEEDED");
    assert!(run["failedStep"].is_null());

    // once succeeded it cannot be retried again
    assert_eq!(t.post(&format!("/flow-runs/{run_id}/retry"), json!({"strategy": "FROM_FAILED_STEP"})).await.0, 409);
}

#[tokio::test]
async fn retry_on_the_latest_version_reruns_from_the_trigger_output() {
    let t = Troupe::start_with(&[("TROUPE_DEBUG_PIECES", "1")]).await;
    let v1 = chain(vec![
        piece(
            "count",
            "store",
            "append",
            json!({"key": "count", "value": "{{trigger.body.v}}", "separator": ",", "store_scope": "FLOW"}),
        ),
        debug("gate", "fail_unless_flag", json!({"flag": "go"})),
    ]);
    let id = t.publish(webhook_flow(v1)).await;
    let r: Value = t.webhook(&id, "/sync", json!({"v": "a"})).await.json().await.unwrap();
    let run_id = r["runId"].as_str().unwrap().to_string();
    // publish a version 2 without the gate
    let v2 = piece(
        "count",
        "store",
        "append",
        json!({"key": "count", "value": "{{trigger.body.v}}", "separator": ",", "store_scope": "FLOW"}),
    );
    let (s, _) = t.post(&format!("/flows/{id}"), json!({"type": "IMPORT_FLOW", "request": webhook_flow(v2)})).await;
    assert_eq!(s, 200);
    let (_, flow) = t.post(&format!("/flows/{id}"), json!({"type": "LOCK_AND_PUBLISH", "request": {}})).await;
    let (s, b) = t.post(&format!("/flow-runs/{run_id}/retry"), json!({"strategy": "ON_LATEST_VERSION"})).await;
    assert_eq!(s, 200, "{b}");
    let run = t.wait_status(&run_id, "SUCCEEDED", Duration::from_secs(30)).await;
    assert_eq!(run["flowVersionId"], flow["publishedVersionId"]);
    assert_eq!(run["steps"]["count"]["output"], "a,a", "rerun from the trigger output");
    assert!(run["steps"].get("gate").is_none(), "the old version's steps are gone");
}

#[tokio::test]
async fn a_canceled_run_stops_before_its_next_step_and_never_resumes() {
    let t = Troupe::start_with(&[("TROUPE_DEBUG_PIECES", "1"), ("AP_MAX_CONCURRENT_JOBS_PER_PROJECT", "1")]).await;
    let flow = chain(vec![
        debug("s1", "sleep", json!({"ms": 600})),
        debug("s2", "sleep", json!({"ms": 600})),
        debug("s3", "sleep", json!({"ms": 600})),
    ]);
    let id = t.publish(webhook_flow(flow)).await;
    t.webhook(&id, "", json!({"n": 1})).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    t.webhook(&id, "", json!({"n": 2})).await;
    let runs = loop {
        let runs = t.all_runs(&id).await;
        if runs.len() == 2 && runs.iter().any(|r| r["status"] == "RUNNING") {
            break runs;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let running = runs.iter().find(|r| r["status"] == "RUNNING").unwrap()["id"].as_str().unwrap().to_string();
    let queued = runs.iter().find(|r| r["status"] == "QUEUED").unwrap()["id"].as_str().unwrap().to_string();
    let (s, b) = t.post(&format!("/flow-runs/{queued}/cancel"), json!({})).await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["status"], "CANCELED");
    let (s, _) = t.post(&format!("/flow-runs/{running}/cancel"), json!({})).await;
    assert_eq!(s, 200);
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let r = t.run(&running).await;
    assert_eq!(r["status"], "CANCELED");
    assert!(r["steps"].get("s3").is_none(), "no step started after the cancel: {}", r["steps"]);
    let q = t.run(&queued).await;
    assert_eq!(q["status"], "CANCELED");
    let step_names: Vec<&String> = q["steps"].as_object().unwrap().keys().collect();
    assert_eq!(step_names, ["trigger"], "the queued run never started a step");
    assert_eq!(t.post(&format!("/flow-runs/{running}/cancel"), json!({})).await.0, 409);
    assert_eq!(
        t.post(&format!("/flow-runs/{running}/retry"), json!({"strategy": "FROM_FAILED_STEP"})).await.0,
        409,
        "canceled is not a failure"
    );
}

#[tokio::test]
async fn sigterm_lets_the_run_in_flight_finish_and_exits_zero() {
    let mut t = Troupe::start_with(&[("TROUPE_DEBUG_PIECES", "1")]).await;
    let id = t
        .publish(webhook_flow(chain(vec![
            debug("s1", "sleep", json!({"ms": 800})),
            debug("s2", "sleep", json!({"ms": 10})),
        ])))
        .await;
    t.webhook(&id, "", json!({})).await;
    let run_id = loop {
        let runs = t.all_runs(&id).await;
        if let Some(r) = runs.iter().find(|r| r["status"] == "RUNNING") {
            break r["id"].as_str().unwrap().to_string();
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let status = t.terminate();
    assert!(status.success(), "troupe exits 0 on SIGTERM: {status}");
    t.spawn().await;
    let run = t.run(&run_id).await;
    assert_eq!(run["status"], "SUCCEEDED", "finished during the grace period");
    assert_eq!(run["steps"]["s2"]["status"], "SUCCEEDED");
}
