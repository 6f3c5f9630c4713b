//! CODE steps and template expressions through the whole binary: JavaScript and WASI in the
//! Wasmer sandbox, and what a hostile step can and cannot do to a run, to other runs and to the
//! process.

use crate::support::{self, *};
use serde_json::{json, Value};
use std::time::Duration;

const SUM: &str = "export const code = async (inputs) => {
    console.log('summing', inputs.numbers.length, 'numbers');
    return { total: inputs.numbers.reduce((a, b) => a + b, 0), who: inputs.name };
};";

#[tokio::test]
async fn an_activepieces_code_step_runs_unchanged_and_feeds_the_next_step() {
    let t = Troupe::start().await;
    let flow = webhook_flow(chain(vec![
        code("step_1", SUM, json!({"numbers": "{{trigger.body.numbers}}", "name": "{{trigger.body.name}}"})),
        respond(json!({"total": "{{step_1.total}}", "shout": "{{ step_1.who.toUpperCase() + '!' }}",
            "count": "{{ trigger.body.numbers.length + 1 }}"})),
    ]));
    let id = t.publish(flow).await;
    let r = t.webhook(&id, "/sync", json!({"numbers": [1, 2, 3.5], "name": "ada"})).await;
    assert_eq!(r.status(), 200);
    let run_id = r.headers()["x-run-id"].to_str().unwrap().to_string();
    let body: Value = r.json().await.unwrap();
    assert_eq!(body, json!({"total": 6.5, "shout": "ADA!", "count": 4}));
    let run = t.run(&run_id).await;
    let step = &run["steps"]["step_1"];
    assert_eq!(step["type"], "CODE");
    assert_eq!(step["status"], "SUCCEEDED");
    assert_eq!(step["input"], json!({"numbers": [1, 2, 3.5], "name": "ada"}));
    assert_eq!(step["output"], json!({"total": 6.5, "who": "ada"}));
    assert_eq!(step["logs"], "summing 3 numbers\n");

    let metrics = t.client.get(t.url("/metrics")).send().await.unwrap().text().await.unwrap();
    let count = |line: &str| -> f64 {
        metrics.lines().find(|l| l.starts_with(line)).and_then(|l| l.rsplit(' ').next()).unwrap().parse().unwrap()
    };
    assert_eq!(count("troupe_sandbox_executions_total{kind=\"js\",outcome=\"ok\"}"), 1.0);
    assert_eq!(count("troupe_sandbox_executions_total{kind=\"expression\",outcome=\"ok\"}"), 1.0);
    assert!(count("troupe_sandbox_memory_high_water_bytes") > 1e6);
}

#[tokio::test]
async fn code_steps_have_the_node_globals_pieces_have() {
    let t = Troupe::start().await;
    let source = r#"export const code = async (inputs) => ({
        b64: Buffer.from(inputs.text).toString('base64'),
        hex: Buffer.from('ff00', 'hex').length,
        query: new URL('https://example.com/a?d=' + inputs.text).searchParams.get('d'),
        uuid: /^[0-9a-f-]{36}$/.test(crypto.randomUUID()),
        bytes: new TextEncoder().encode('é').length,
        fetch: typeof fetch, process: typeof process.env,
    });"#;
    let id = t
        .publish(webhook_flow(chain(vec![
            code("step_1", source, json!({"text": "{{trigger.body.text}}"})),
            respond(json!("{{step_1}}")),
        ])))
        .await;
    let r = t.webhook(&id, "/sync", json!({"text": "hé"})).await;
    let body: Value = r.json().await.unwrap();
    assert_eq!(
        body,
        json!({"b64": "aMOp", "hex": 2, "query": "hé", "uuid": true, "bytes": 2, "fetch": "function", "process": "object"})
    );
}

#[tokio::test]
async fn a_throwing_step_fails_the_run_with_the_javascript_message() {
    let t = Troupe::start().await;
    let source = "export const code = async (inputs) => { throw new Error(`no customer ${inputs.id}`); };";
    let id = t.publish(webhook_flow(code("step_1", source, json!({"id": "{{trigger.body.id}}"})))).await;
    t.webhook(&id, "", json!({"id": 42})).await;
    let runs = t.wait_runs(&id, 1).await;
    let run = t.run(runs[0]["id"].as_str().unwrap()).await;
    assert_eq!(run["status"], "FAILED");
    assert_eq!(run["steps"]["step_1"]["errorMessage"], "Error: no customer 42");
    assert_eq!(run["failedStep"]["name"], "step_1");
}

#[tokio::test]
async fn hostile_steps_end_their_own_runs_and_nothing_else() {
    let t = Troupe::start_with(&[("AP_FLOW_TIMEOUT_SECONDS", "3"), ("AP_SANDBOX_MEMORY_LIMIT_MB", "64")]).await;
    let looping =
        t.publish(webhook_flow(code("spin", "export const code = async () => { for (;;) {} };", json!({})))).await;
    let bomb = t
        .publish(webhook_flow(code(
            "hog",
            "export const code = async () => { const a = []; for (;;) a.push(new Array(1e6).fill(7)); };",
            json!({}),
        )))
        .await;
    let fine = t
        .publish(webhook_flow(code(
            "ok",
            "export const code = async (i) => i.n * 2;",
            json!({"n": "{{trigger.body.n}}"}),
        )))
        .await;
    t.webhook(&looping, "", json!({})).await;
    t.webhook(&bomb, "", json!({})).await;
    // while the spinning step holds a sandbox slot, other code runs carry on
    for n in 0..5 {
        t.webhook(&fine, "", json!({"n": n})).await;
    }
    let done = t.wait_runs(&fine, 5).await;
    assert!(done.iter().all(|r| r["status"] == "SUCCEEDED"), "{done:?}");

    let run = t.run(t.wait_runs(&bomb, 1).await[0]["id"].as_str().unwrap()).await;
    assert_eq!(run["status"], "MEMORY_LIMIT_EXCEEDED", "{run}");
    assert!(run["failedStep"]["message"].as_str().unwrap().contains("\"hog\""), "{run}");

    let run = t.run(t.wait_runs(&looping, 1).await[0]["id"].as_str().unwrap()).await;
    assert_eq!(run["status"], "TIMEOUT", "{run}");
    assert!(run["failedStep"]["message"].as_str().unwrap().contains("spin"), "{run}");

    // the process is unharmed
    let (s, _) = t.get("/flows?limit=1").await;
    assert_eq!(s, 200);
}

#[tokio::test]
async fn two_hundred_concurrent_code_runs_each_get_their_own_answer() {
    let t = Troupe::start().await;
    let source = "export const code = async (inputs) => {
        const seen = globalThis.seen ?? 0; globalThis.seen = seen + 1;
        await new Promise((r) => setTimeout(r, 1));
        return { n: inputs.n, square: inputs.n * inputs.n, seen };
    };";
    let id = t.publish(webhook_flow(code("step_1", source, json!({"n": "{{trigger.body.n}}"})))).await;
    let sends = (0..200).map(|n| {
        let t = &t;
        let id = id.clone();
        async move { t.webhook(&id, "", json!({"n": n})).await.status().as_u16() }
    });
    let statuses = futures::future::join_all(sends).await;
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    let runs = t.wait_runs(&id, 200).await;
    assert_eq!(runs.len(), 200);
    let mut seen_n = Vec::new();
    for r in &runs {
        assert_eq!(r["status"], "SUCCEEDED", "{r}");
        let run = t.run(r["id"].as_str().unwrap()).await;
        let out = &run["steps"]["step_1"]["output"];
        let n = out["n"].as_i64().unwrap();
        assert_eq!(out["square"], n * n);
        // nothing of an earlier execution is visible to a later one
        assert_eq!(out["seen"], 0, "{out}");
        seen_n.push(n);
    }
    seen_n.sort();
    assert_eq!(seen_n, (0..200).collect::<Vec<_>>());
}

#[tokio::test]
async fn npm_dependencies_are_refused_at_publish() {
    let t = Troupe::start().await;
    let mut step = code("step_1", SUM, json!({}));
    step["settings"]["sourceCode"]["packageJson"] = json!("{\"dependencies\": {\"axios\": \"1.6.0\"}}");
    let b = t.publish_refused(webhook_flow(step)).await;
    assert!(b.to_string().contains("axios") && b.to_string().contains("step_1"), "{b}");
}

#[tokio::test]
async fn a_wasi_module_is_uploaded_once_and_runs_as_a_code_step() {
    let t = Troupe::start().await;
    let wasm = std::fs::read(troupe_sandbox::WASI_EXAMPLE_PATH).unwrap();
    let upload =
        |body: Vec<u8>| t.client.post(t.url("/api/v1/wasm-modules")).bearer_auth(support::KEY).body(body).send();
    let r = upload(wasm.clone()).await.unwrap();
    assert_eq!(r.status(), 201);
    let created: Value = r.json().await.unwrap();
    let module_id = created["id"].as_str().unwrap().to_string();
    assert_eq!(created["size"], wasm.len());
    assert_eq!(upload(wasm.clone()).await.unwrap().status(), 200);
    let r = upload(b"\0asm but not really".to_vec()).await.unwrap();
    assert_eq!(r.status(), 400);
    let (s, got) = t.get(&format!("/wasm-modules/{module_id}")).await;
    assert_eq!((s, got["size"].clone()), (200, json!(wasm.len())));

    let step = json!({"name": "count", "type": "CODE", "displayName": "Count words",
        "settings": {"wasmModule": module_id, "input": {"text": "{{trigger.body.text}}"}}});
    let id = t.publish(webhook_flow(chain(vec![step, respond(json!("{{count}}"))]))).await;
    let r = t.webhook(&id, "/sync", json!({"text": "one two three"})).await;
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body, json!({"words": 3, "chars": 13, "upper": "ONE TWO THREE"}));

    // a step naming a module that was never uploaded cannot be published
    let missing = json!({"name": "count", "type": "CODE", "displayName": "x",
        "settings": {"wasmModule": "ab".repeat(32), "input": {}}});
    let b = t.publish_refused(webhook_flow(missing)).await;
    assert!(b.to_string().contains("settings.wasmModule"), "{b}");
}

#[tokio::test]
async fn an_expression_that_throws_is_an_empty_string_and_a_warning_in_the_steps_logs() {
    let t = Troupe::start().await;
    let step = piece(
        "step_1",
        "data-mapper",
        "advanced_mapping",
        json!({"mapping": {"x": "{{ trigger.body.nope.deeper.toString() }}", "missing": "{{trigger.body.nope}}",
            "text": "[{{trigger.body.nope}}]", "ids": "{{ flattenNestedKeys(trigger, ['body', 'items', 'id']) }}",
            "lines": "id {{ flattenNestedKeys(trigger, ['body', 'items', 'id']) }}"}}),
    );
    let id = t.publish(webhook_flow(step)).await;
    t.webhook(&id, "", json!({"items": [{"id": 1}, {"id": 2}]})).await;
    let runs = t.wait_runs(&id, 1).await;
    let run = t.wait_status(runs[0]["id"].as_str().unwrap(), "SUCCEEDED", Duration::from_secs(10)).await;
    assert_eq!(
        run["steps"]["step_1"]["output"],
        json!({"x": "", "missing": "", "text": "[]", "ids": [1, 2], "lines": ["id 1", "id 2"]}),
        "{run}"
    );
    let logs = run["steps"]["step_1"]["logs"].as_str().unwrap_or_default();
    assert!(logs.contains("{{trigger.body.nope.deeper.toString()}}") && logs.contains("undefined"), "{run}");
}
