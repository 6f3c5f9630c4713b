//! The execution spine end to end: webhook → JetStream → shard actors → journaled runs.

use crate::support::*;
use serde_json::{json, Value};
use std::collections::HashSet;

fn steps(run: &Value) -> &serde_json::Map<String, Value> {
    run["steps"].as_object().expect("run has steps")
}

#[tokio::test]
async fn a_sync_webhook_answers_with_the_flows_response_and_the_run_shows_every_step() {
    let t = Troupe::start().await;
    let id = t.publish(fixture("greeting-flow.json")).await;
    let r = t.webhook(&id, "/sync", json!({"name": "Ada", "items": [7, 8]})).await;
    assert_eq!(r.status(), 201);
    assert_eq!(r.headers()["x-greeting"], "yes");
    let run_id = r.headers()["x-run-id"].to_str().unwrap().to_string();
    let body: Value = r.json().await.unwrap();
    assert_eq!(body, json!({"message": "Hello Ada!", "first": 7}));

    let run = t.run(&run_id).await;
    assert_eq!(run["status"], "SUCCEEDED");
    let s = steps(&run);
    assert_eq!(s["trigger"]["output"]["body"]["name"], "Ada");
    assert_eq!(s["step_1"]["status"], "SUCCEEDED");
    assert_eq!(s["step_1"]["input"]["mapping"]["greeting"], "Hello Ada!");
    assert_eq!(s["step_1"]["output"], json!({"greeting": "Hello Ada!", "count": [7, 8], "first": 7}));
    assert_eq!(s["step_2"]["output"]["status"], 201);
    assert!(s["step_2"]["duration"].is_u64());
}

#[tokio::test]
async fn an_async_webhook_is_acknowledged_then_runs_with_the_request_as_trigger_output() {
    let t = Troupe::start().await;
    let id = t
        .publish(webhook_flow(piece(
            "step_1",
            "data-mapper",
            "advanced_mapping",
            json!({"mapping": {"got": "{{trigger.body}}"}}),
        )))
        .await;
    let r = t
        .client
        .post(t.url(&format!("/api/v1/webhooks/{id}?source=test")))
        .json(&json!({"a": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers().contains_key("x-webhook-id"));
    let r = t
        .client
        .put(t.url(&format!("/api/v1/webhooks/{id}")))
        .form(&[("name", "Ada"), ("age", "36")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = t
        .client
        .get(t.url(&format!("/api/v1/webhooks/{id}")))
        .header("content-type", "text/plain")
        .body("hello")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = t
        .client
        .post(t.url(&format!("/api/v1/webhooks/{id}")))
        .header("content-type", "application/octet-stream")
        .body(vec![0u8, 159, 146, 150])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    let runs = t.wait_runs(&id, 4).await;
    let mut bodies = Vec::new();
    for r in &runs {
        assert_eq!(r["status"], "SUCCEEDED");
        let run = t.run(r["id"].as_str().unwrap()).await;
        let trigger = &steps(&run)["trigger"]["output"];
        bodies.push((
            trigger["method"].as_str().unwrap().to_string(),
            trigger["body"].clone(),
            trigger["queryParams"].clone(),
        ));
        assert_eq!(steps(&run)["step_1"]["output"]["got"], trigger["body"]);
    }
    assert!(bodies.contains(&("POST".into(), json!({"a": 1}), json!({"source": "test"}))));
    assert!(bodies.contains(&("PUT".into(), json!({"name": "Ada", "age": "36"}), json!({}))));
    assert!(bodies.contains(&("GET".into(), json!("hello"), json!({}))));
    assert!(bodies.contains(&("POST".into(), json!("AJ+Slg=="), json!({}))));

    // list filters: status and time range, and pages of runs
    let (_, ok) = t.get(&format!("/flow-runs?flowId={id}&status=SUCCEEDED&status=FAILED&limit=3")).await;
    assert_eq!(ok["data"].as_array().unwrap().len(), 3);
    let (_, rest) = t.get(&format!("/flow-runs?flowId={id}&limit=3&cursor={}", ok["next"].as_str().unwrap())).await;
    assert_eq!(rest["data"].as_array().unwrap().len(), 1);
    assert!(rest["next"].is_null());
    let (_, failed) = t.get(&format!("/flow-runs?flowId={id}&status=FAILED")).await;
    assert_eq!(failed["data"], json!([]));
    let (_, future) = t.get(&format!("/flow-runs?flowId={id}&createdAfter=2999-01-01T00:00:00.000Z")).await;
    assert_eq!(future["data"], json!([]));
    let (_, past) = t
        .get(&format!(
            "/flow-runs?flowId={id}&createdAfter=2000-01-01T00:00:00.000Z&createdBefore=2999-01-01T00:00:00.000Z"
        ))
        .await;
    assert_eq!(past["data"].as_array().unwrap().len(), 4);
    assert_eq!(t.get("/flow-runs?status=NOPE").await.0, 400);
}

fn router(execution: &str, branches: Value, children: Value) -> Value {
    json!({"name": "router", "type": "ROUTER", "displayName": "Router", "valid": true,
        "settings": {"executionType": execution, "branches": branches}, "children": children})
}

fn mark(name: &str) -> Value {
    piece(name, "data-mapper", "advanced_mapping", json!({"mapping": {"branch": name}}))
}

#[tokio::test]
async fn routers_take_the_first_match_all_matches_or_the_fallback() {
    let t = Troupe::start().await;
    let branches = json!([
        {"branchName": "big", "branchType": "CONDITION", "conditions": [[{"operator": "NUMBER_IS_GREATER_THAN", "firstValue": "{{trigger.body.n}}", "secondValue": "10"}]]},
        {"branchName": "named", "branchType": "CONDITION", "conditions": [[{"operator": "TEXT_CONTAINS", "firstValue": "{{trigger.body.name}}", "secondValue": "ada", "caseSensitive": false}]]},
        {"branchName": "otherwise", "branchType": "FALLBACK"}
    ]);
    let children = json!([mark("a"), mark("b"), mark("c")]);
    let first = t.publish(webhook_flow(router("EXECUTE_FIRST_MATCH", branches.clone(), children.clone()))).await;
    let all = t.publish(webhook_flow(router("EXECUTE_ALL_MATCH", branches, children))).await;
    let ran = |run: &Value| {
        let mut names: Vec<String> =
            steps(run).keys().filter(|k| ["a", "b", "c"].contains(&k.as_str())).cloned().collect();
        names.sort();
        names
    };
    for (flow, body, expected) in [
        (&first, json!({"n": 20, "name": "Ada"}), vec!["a"]),
        (&all, json!({"n": 20, "name": "ADA"}), vec!["a", "b"]),
        (&first, json!({"n": 1, "name": "Bob"}), vec!["c"]),
        (&all, json!({"n": 1, "name": "Bob"}), vec!["c"]),
    ] {
        let r = t.webhook(flow, "/sync", body.clone()).await;
        let run = t.run(r.headers()["x-run-id"].to_str().unwrap()).await;
        assert_eq!(run["status"], "SUCCEEDED");
        assert_eq!(ran(&run), expected, "body {body}");
    }
    let r = t.webhook(&first, "/sync", json!({"n": 20, "name": "x"})).await;
    let run = t.run(r.headers()["x-run-id"].to_str().unwrap()).await;
    assert_eq!(
        steps(&run)["router"]["output"]["branches"][0],
        json!({"branchName": "big", "branchIndex": 0, "evaluation": true})
    );
}

#[tokio::test]
async fn a_loop_journals_each_iteration() {
    let t = Troupe::start().await;
    let mut lp = json!({"name": "loop_1", "type": "LOOP_ON_ITEMS", "displayName": "Loop", "valid": true, "settings": {"items": "{{trigger.body.items}}"}});
    lp["firstLoopAction"] = piece(
        "double",
        "math-helper",
        "multiplication_math",
        json!({"first_number": "{{loop_1.item}}", "second_number": 2}),
    );
    let flow = chain(vec![lp, respond(json!({"last": "{{double}}", "loop": "{{loop_1.index}}"}))]);
    let id = t.publish(webhook_flow(flow)).await;
    let r = t.webhook(&id, "/sync", json!({"items": [1, 2, 3]})).await;
    let run_id = r.headers()["x-run-id"].to_str().unwrap().to_string();
    assert_eq!(r.json::<Value>().await.unwrap(), json!({"last": 6, "loop": 3}));
    let run = t.run(&run_id).await;
    let its = steps(&run)["loop_1"]["output"]["iterations"].as_array().unwrap().clone();
    assert_eq!(its.len(), 3);
    let outputs: Vec<Value> = its.iter().map(|i| i["double"]["output"].clone()).collect();
    assert_eq!(outputs, vec![json!(2), json!(4), json!(6)]);
    assert_eq!(its[1]["double"]["input"]["first_number"], 2);

    // a loop over something that is not a list fails the run and says why
    let r = t.webhook(&id, "/sync", json!({"items": "nope"})).await;
    assert_eq!(r.status(), 500);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["status"], "FAILED");
    assert!(body["failedStep"]["message"].as_str().unwrap().contains("must be a list"), "{body}");
}

#[tokio::test]
async fn the_store_piece_keeps_values_per_scope_and_enforces_its_limits() {
    let t = Troupe::start().await;
    let store = |name: &str, action: &str, input: Value| piece(name, "store", action, input);
    let flow = chain(vec![
        store("put", "put", json!({"key": "greeting", "value": "{{trigger.body.v}}", "store_scope": "COLLECTION"})),
        store(
            "append",
            "append",
            json!({"key": "log", "value": "{{trigger.body.v}}", "separator": ",", "store_scope": "FLOW"}),
        ),
        store(
            "add",
            "add_to_list",
            json!({"key": "list", "value": ["x", "y"], "ignore_if_exists": true, "store_scope": "FLOW"}),
        ),
        store("remove", "remove_from_list", json!({"key": "list", "value": "x", "store_scope": "FLOW"})),
        store("run_put", "put", json!({"key": "mine", "value": "only this run", "store_scope": "RUN"})),
        store("get", "get", json!({"key": "greeting", "store_scope": "COLLECTION"})),
        store("missing", "get", json!({"key": "nothing", "defaultValue": "fallback", "store_scope": "COLLECTION"})),
        store("drop", "remove_value", json!({"key": "nothing", "store_scope": "COLLECTION"})),
        respond(
            json!({"get": "{{get}}", "log": "{{append}}", "list": "{{remove}}", "missing": "{{missing}}", "run": "{{run_put}}"}),
        ),
    ]);
    let id = t.publish(webhook_flow(flow)).await;
    let first: Value = t.webhook(&id, "/sync", json!({"v": "a"})).await.json().await.unwrap();
    assert_eq!(first, json!({"get": "a", "log": "a", "list": ["y"], "missing": "fallback", "run": "only this run"}));
    let second: Value = t.webhook(&id, "/sync", json!({"v": "b"})).await.json().await.unwrap();
    // ignore_if_exists adds only "x" (removed again), so the list stays ["y"]
    assert_eq!(second, json!({"get": "b", "log": "a,b", "list": ["y"], "missing": "fallback", "run": "only this run"}));

    // a project-scoped value is visible to another flow of the project
    let reader = t
        .publish(webhook_flow(chain(vec![
            store("get", "get", json!({"key": "greeting", "store_scope": "COLLECTION"})),
            respond(json!({"v": "{{get}}"})),
        ])))
        .await;
    let v: Value = t.webhook(&reader, "/sync", json!({})).await.json().await.unwrap();
    assert_eq!(v, json!({"v": "b"}));

    // limits: a key over 128 characters, a value over 512 KB
    let limits = t
        .publish(webhook_flow(store("put", "put", json!({"key": "{{trigger.body.k}}", "value": "{{trigger.body.v}}"}))))
        .await;
    let r: Value = t.webhook(&limits, "/sync", json!({"k": "k".repeat(129), "v": 1})).await.json().await.unwrap();
    assert_eq!(r["status"], "FAILED");
    assert!(r["failedStep"]["message"].as_str().unwrap().contains("at most 128"), "{r}");
    let r: Value =
        t.webhook(&limits, "/sync", json!({"k": "big", "v": "x".repeat(600 * 1024)})).await.json().await.unwrap();
    assert!(r["failedStep"]["message"].as_str().unwrap().contains("524288"), "{r}");
}

#[tokio::test]
async fn the_http_piece_sends_requests_and_failsafe_keeps_the_run_going() {
    let t = Troupe::start().await;
    // an echo flow, called by the HTTP piece through its sync webhook
    let echo = t
        .publish(webhook_flow(respond(
            json!({"echo": "{{trigger.body}}", "q": "{{trigger.queryParams.x}}", "h": "{{trigger.headers['x-test']}}"}),
        )))
        .await;
    let send = piece(
        "send",
        "http",
        "send_request",
        json!({
            "method": "POST", "url": t.url(&format!("/api/v1/webhooks/{echo}/sync")),
            "headers": {"x-test": "yes"}, "queryParams": {"x": "1"},
            "body_type": "json", "body": {"data": {"hello": "{{trigger.body.name}}"}}
        }),
    );
    let missing = piece(
        "missing",
        "http",
        "send_request",
        json!({"method": "GET", "url": t.url("/nothing-here"), "headers": {}, "queryParams": {}, "failsafe": true}),
    );
    let flow = chain(vec![send, missing, respond(json!({"sent": "{{send}}", "missing": "{{missing.status}}"}))]);
    let id = t.publish(webhook_flow(flow)).await;
    let r: Value = t.webhook(&id, "/sync", json!({"name": "Ada"})).await.json().await.unwrap();
    assert_eq!(r["sent"]["status"], 200);
    assert_eq!(r["sent"]["body"], json!({"echo": {"hello": "Ada"}, "q": "1", "h": "yes"}));
    assert_eq!(r["missing"], 404);

    // without failsafe an error status fails the step
    let strict = t
        .publish(webhook_flow(piece(
            "get",
            "http",
            "send_request",
            json!({"method": "GET", "url": t.url("/nothing-here"), "headers": {}, "queryParams": {}}),
        )))
        .await;
    let r: Value = t.webhook(&strict, "/sync", json!({})).await.json().await.unwrap();
    assert_eq!(r["status"], "FAILED");
    assert!(r["failedStep"]["message"].as_str().unwrap().contains("404"), "{r}");
}

#[tokio::test]
async fn retry_on_failure_retries_and_continue_on_failure_carries_on() {
    let t = Troupe::start().await;
    let closed = format!("http://127.0.0.1:{}/", free_port());
    let mut retried = piece(
        "flaky",
        "http",
        "send_request",
        json!({"method": "GET", "url": closed, "headers": {}, "queryParams": {}}),
    );
    retried["settings"]["errorHandlingOptions"] =
        json!({"retryOnFailure": {"value": true}, "continueOnFailure": {"value": false}});
    let id = t.publish(webhook_flow(retried.clone())).await;
    let r: Value = t.webhook(&id, "/sync", json!({})).await.json().await.unwrap();
    assert_eq!(r["status"], "FAILED");
    let run = t.run(r["runId"].as_str().unwrap()).await;
    assert_eq!(run["failedStep"]["name"], "flaky");
    let (_, raw) = t.get(&format!("/flow-runs/{}", r["runId"].as_str().unwrap())).await;
    assert!(
        raw["steps"]["flaky"]["duration"].as_u64().unwrap() >= 250 + 500 + 1000,
        "backs off between attempts: {raw}"
    );

    let mut tolerant = retried;
    tolerant["settings"]["errorHandlingOptions"] = json!({"continueOnFailure": {"value": true}});
    let id = t.publish(webhook_flow(chain(vec![tolerant, respond(json!({"after": "failure"}))]))).await;
    let r = t.webhook(&id, "/sync", json!({})).await;
    assert_eq!(r.status(), 200);
    let run_id = r.headers()["x-run-id"].to_str().unwrap().to_string();
    assert_eq!(r.json::<Value>().await.unwrap(), json!({"after": "failure"}));
    let run = t.run(&run_id).await;
    assert_eq!(run["status"], "SUCCEEDED");
    assert_eq!(steps(&run)["flaky"]["status"], "FAILED");
    assert!(steps(&run)["flaky"]["errorMessage"].as_str().unwrap().contains("failed"));
}

#[tokio::test]
async fn text_math_and_date_helpers_give_activepieces_outputs() {
    let t = Troupe::start().await;
    let flow = chain(vec![
        piece("concat", "text-helper", "concat", json!({"texts": ["a", "{{trigger.body.b}}", 3], "seperator": "-"})),
        piece("replace", "text-helper", "replace", json!({"text": "a.b.c", "searchValue": "\\.", "replaceValue": "/"})),
        piece("split", "text-helper", "split", json!({"text": "x,y", "delimiter": ","})),
        piece(
            "add",
            "math-helper",
            "addition_math",
            json!({"first_number": "{{trigger.body.n}}", "second_number": 2.5}),
        ),
        piece("div", "math-helper", "division_math", json!({"first_number": 9, "second_number": 3})),
        piece(
            "diff",
            "date-helper",
            "date_difference",
            json!({"startDate": "2024-01-01T00:00:00Z", "endDate": "2024-01-02T06:00:00Z", "unitDifference": ["day", "hour"]}),
        ),
        piece("now", "date-helper", "get_current_date", json!({"timeFormat": "YYYY", "timeZone": "UTC"})),
        respond(
            json!({"concat": "{{concat}}", "replace": "{{replace}}", "split": "{{split}}", "add": "{{add}}", "div": "{{div}}", "diff": "{{diff}}", "now": "{{now.result}}"}),
        ),
    ]);
    let id = t.publish(webhook_flow(flow)).await;
    let r: Value = t.webhook(&id, "/sync", json!({"b": "b", "n": 1})).await.json().await.unwrap();
    let year = chrono::Utc::now().format("%Y").to_string();
    assert_eq!(
        r,
        json!({"concat": "a-b-3", "replace": "a/b/c", "split": ["x", "y"], "add": 3.5, "div": 3, "diff": {"day": 1, "hour": 6}, "now": year})
    );
}

#[tokio::test]
async fn a_slow_sync_webhook_answers_202_with_the_runs_location() {
    let t = Troupe::start_with(&[("AP_WEBHOOK_TIMEOUT_SECONDS", "1"), ("TROUPE_DEBUG_PIECES", "1")]).await;
    let id = t.publish(webhook_flow(debug("slow", "sleep", json!({"ms": 2500})))).await;
    let r = t.webhook(&id, "/sync", json!({})).await;
    assert_eq!(r.status(), 202);
    let location = r.headers()["location"].to_str().unwrap().to_string();
    let body: Value = r.json().await.unwrap();
    assert_eq!(location, format!("/api/v1/flow-runs/{}", body["runId"].as_str().unwrap()));
    assert!(matches!(body["status"].as_str(), Some("QUEUED" | "RUNNING")), "{body}");
    let runs = t.wait_runs(&id, 1).await;
    assert_eq!(runs[0]["status"], "SUCCEEDED");
}

#[tokio::test]
async fn draft_webhooks_run_the_draft_and_live_webhooks_the_published_version() {
    let t = Troupe::start().await;
    let id = t.publish(webhook_flow(respond(json!({"version": "one"})))).await;
    let update = respond(json!({"version": "two"}));
    let (s, _) = t.post(&format!("/flows/{id}"), json!({"type": "UPDATE_ACTION", "request": update})).await;
    assert_eq!(s, 200);
    let live: Value = t.webhook(&id, "/sync", json!({})).await.json().await.unwrap();
    let draft: Value = t.webhook(&id, "/draft/sync", json!({})).await.json().await.unwrap();
    assert_eq!(live, json!({"version": "one"}));
    assert_eq!(draft, json!({"version": "two"}));
    let r = t.webhook(&id, "/draft", json!({})).await;
    assert_eq!(r.status(), 200);
    let runs = t.wait_runs(&id, 3).await;
    let envs: HashSet<String> = runs.iter().map(|r| r["environment"].as_str().unwrap().to_string()).collect();
    assert_eq!(envs, HashSet::from(["PRODUCTION".to_string(), "TESTING".to_string()]));
}

#[tokio::test]
async fn webhooks_for_disabled_unknown_or_oversized_requests_are_refused() {
    let t = Troupe::start().await;
    let id = t.publish(fixture("greeting-flow.json")).await;
    assert_eq!(t.webhook("no-such-flow", "", json!({})).await.status(), 404);
    // a body just under the limit is accepted and runs
    let near = "y".repeat(4 * 1024 * 1024);
    let r = t
        .client
        .post(t.url(&format!("/api/v1/webhooks/{id}")))
        .header("content-type", "text/plain")
        .body(near)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let run = &t.wait_runs(&id, 1).await[0];
    assert_eq!(run["status"], "SUCCEEDED");
    assert_eq!(run["triggerOutput"]["body"].as_str().unwrap().len(), 4 * 1024 * 1024);
    let big = "x".repeat(5 * 1024 * 1024 + 1);
    let r = t.client.post(t.url(&format!("/api/v1/webhooks/{id}"))).body(big).send().await.unwrap();
    assert_eq!(r.status(), 413);
    assert_eq!(r.json::<Value>().await.unwrap()["code"], "PAYLOAD_TOO_LARGE");
    t.post(&format!("/flows/{id}"), json!({"type": "CHANGE_STATUS", "request": {"status": "DISABLED"}})).await;
    let r = t.webhook(&id, "", json!({})).await;
    assert_eq!(r.status(), 404);
    assert!(r.json::<Value>().await.unwrap()["message"].as_str().unwrap().contains("not enabled"));
    assert_eq!(t.all_runs(&id).await.len(), 1, "no run for refused webhooks");
}

#[tokio::test]
async fn a_panicking_step_fails_its_run_with_internal_error_and_nothing_else() {
    let t = Troupe::start_with(&[("TROUPE_DEBUG_PIECES", "1")]).await;
    let bad = t.publish(webhook_flow(debug("boom", "panic", json!({})))).await;
    let good = t.publish(fixture("greeting-flow.json")).await;
    let r: Value = t.webhook(&bad, "/sync", json!({})).await.json().await.unwrap();
    assert_eq!(r["status"], "INTERNAL_ERROR");
    assert!(r["failedStep"]["message"].as_str().unwrap().contains("panic"), "{r}");
    assert_eq!(r["failedStep"]["name"], "boom");
    let ok = t.webhook(&good, "/sync", json!({"name": "still here", "items": [1]})).await;
    assert_eq!(ok.status(), 201);
}

#[tokio::test]
async fn a_run_past_the_flow_timeout_ends_as_timeout() {
    let t = Troupe::start_with(&[("AP_FLOW_TIMEOUT_SECONDS", "1"), ("TROUPE_DEBUG_PIECES", "1")]).await;
    let id = t.publish(webhook_flow(debug("slow", "sleep", json!({"ms": 5000})))).await;
    let r: Value = t.webhook(&id, "/sync", json!({})).await.json().await.unwrap();
    assert_eq!(r["status"], "TIMEOUT");
    assert!(r["failedStep"]["message"].as_str().unwrap().contains("AP_FLOW_TIMEOUT_SECONDS"));
}

#[tokio::test]
async fn runs_beyond_the_project_limit_wait_queued_and_start_in_arrival_order() {
    let t = Troupe::start_with(&[("AP_MAX_CONCURRENT_JOBS_PER_PROJECT", "1"), ("TROUPE_DEBUG_PIECES", "1")]).await;
    let id = t.publish(webhook_flow(debug("slow", "sleep", json!({"ms": 300})))).await;
    let mut ids = Vec::new();
    for i in 0..4 {
        let r = t.webhook(&id, "", json!({"i": i})).await;
        assert_eq!(r.status(), 200);
        ids.push(i);
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    tokio::time::sleep(std::time::Duration::from_millis(150)).await;
    let (_, queued) = t.get(&format!("/flow-runs?flowId={id}&status=QUEUED")).await;
    assert!(!queued["data"].as_array().unwrap().is_empty(), "some runs wait as QUEUED");
    let mut runs = t.wait_runs(&id, 4).await;
    runs.sort_by_key(|r| r["createdMicros"].as_u64().unwrap());
    for pair in runs.windows(2) {
        assert!(
            pair[1]["startTime"].as_str().unwrap() >= pair[0]["finishTime"].as_str().unwrap(),
            "one at a time, in order: {pair:?}"
        );
        assert_eq!(pair[1]["status"], "SUCCEEDED");
    }
}

/// Sends webhooks `{"n": n}` for `range` with 32 in flight; returns the accepted (200) `n`s.
async fn send_webhooks(t: &Troupe, flow_id: &str, range: std::ops::Range<u64>) -> HashSet<u64> {
    use futures::StreamExt;
    let url = t.url(&format!("/api/v1/webhooks/{flow_id}"));
    futures::stream::iter(range.map(|n| {
        let (client, url) = (t.client.clone(), url.clone());
        async move { (n, client.post(url).json(&json!({"n": n})).send().await.map(|r| r.status().as_u16())) }
    }))
    .buffer_unordered(32)
    .filter_map(|(n, r)| std::future::ready(matches!(r, Ok(200)).then_some(n)))
    .collect()
    .await
}

/// Every accepted webhook has exactly one run, no webhook has two, and all succeeded. A
/// webhook whose answer was lost in a crash may have a run without having been "accepted".
fn assert_one_succeeded_run_per_webhook(runs: &[Value], accepted: &HashSet<u64>) {
    let ns: Vec<u64> = runs.iter().map(|r| r["triggerOutput"]["body"]["n"].as_u64().unwrap()).collect();
    let unique: HashSet<u64> = ns.iter().copied().collect();
    assert_eq!(unique.len(), ns.len(), "no webhook made two runs");
    let webhook_ids: HashSet<&str> = runs.iter().map(|r| r["webhookId"].as_str().unwrap()).collect();
    assert_eq!(webhook_ids.len(), runs.len(), "no duplicates");
    let missing: Vec<_> = accepted.difference(&unique).collect();
    assert!(missing.is_empty(), "accepted webhooks without a run: {missing:?}");
    assert!(runs.iter().all(|r| r["status"] == "SUCCEEDED"));
}

#[tokio::test]
async fn two_thousand_webhooks_make_exactly_two_thousand_runs_across_a_worker_crash() {
    let mut t = Troupe::start().await;
    let id = t.publish(counting_flow()).await;
    let mut accepted = send_webhooks(&t, &id, 0..1000).await;
    assert_eq!(accepted.len(), 1000);
    // kill -9 while the worker is still consuming, then start again on the same data
    t.kill();
    t.spawn().await;
    accepted.extend(send_webhooks(&t, &id, 1000..2000).await);
    assert_eq!(accepted.len(), 2000);
    let runs = t.wait_runs(&id, 2000).await;
    assert_eq!(runs.len(), 2000);
    assert_one_succeeded_run_per_webhook(&runs, &accepted);
}

#[tokio::test]
async fn a_worker_that_dies_between_recording_runs_and_acking_them_makes_no_duplicates() {
    let mut t = Troupe::start_with(&[("TROUPE_FAULT_ABORT_BEFORE_ACK", "300")]).await;
    let id = t.publish(counting_flow()).await;
    // the worker aborts once 300 runs are durable but unacked; the gateway dies with it
    let accepted = send_webhooks(&t, &id, 0..1000).await;
    // 300 runs were durable when it aborted; some of their 200s may have died with the gateway
    assert!(!accepted.is_empty(), "webhooks were accepted before the abort");
    assert!(accepted.len() < 1000, "the worker aborted as asked");
    t.kill();
    t.env.clear();
    t.spawn().await;
    // the restarted worker gets the unacked messages again (after ack_wait) and finds their runs
    t.wait_runs(&id, accepted.len().max(300)).await;
    tokio::time::sleep(std::time::Duration::from_secs(12)).await;
    let runs = t.all_runs(&id).await;
    assert!(runs.len() >= 300, "every run recorded before the abort finished: {}", runs.len());
    assert_one_succeeded_run_per_webhook(&runs, &accepted);
}

#[tokio::test]
async fn with_nats_down_webhooks_get_503_never_200() {
    let nats = NatsServer::start().await;
    let t = Troupe::start_with(&[("AP_NATS_URL", &nats.url)]).await;
    let id = t.publish(fixture("greeting-flow.json")).await;
    assert_eq!(t.webhook(&id, "", json!({"name": "a", "items": [1]})).await.status(), 200);
    drop(nats);
    let r = t.webhook(&id, "", json!({"name": "b", "items": [1]})).await;
    assert_eq!(r.status(), 503);
    assert!(r.headers().contains_key("retry-after"));
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["code"], "UNAVAILABLE");
    assert_eq!(t.client.get(t.url("/ready")).send().await.unwrap().status(), 503);
    assert_eq!(t.client.get(t.url("/health")).send().await.unwrap().status(), 200);
}

#[tokio::test]
async fn finished_runs_are_published_as_events_on_their_shard_subject() {
    use futures::StreamExt;
    let nats = NatsServer::start().await;
    let t = Troupe::start_with(&[("AP_NATS_URL", &nats.url)]).await;
    let client = async_nats::connect(&nats.url).await.unwrap();
    let mut events = client.subscribe("ap.event.>").await.unwrap();
    let id = t.publish(fixture("greeting-flow.json")).await;
    let r = t.webhook(&id, "/sync", json!({"name": "Ada", "items": [1]})).await;
    let run_id = r.headers()["x-run-id"].to_str().unwrap().to_string();
    let msg = tokio::time::timeout(std::time::Duration::from_secs(10), events.next()).await.unwrap().unwrap();
    let event: Value = serde_json::from_slice(&msg.payload).unwrap();
    assert_eq!(event["runId"], run_id.as_str());
    assert_eq!(event["status"], "SUCCEEDED");
    let run = t.run(&run_id).await;
    assert_eq!(msg.subject.as_str(), format!("ap.event.{}", run["shard"]));
}
