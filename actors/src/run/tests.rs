//! The step interpreter on its own: no process, no NATS server (the client never connects), a
//! real sled store in a temp dir, native pieces only.

use super::interpreter::{Exec, Halt};
use crate::context::EngineCtx;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;
use troupe_store::flow::Action;
use troupe_store::run::{FlowRun, StepRecord, StepStatus};

const MATH: &str = "@activepieces/piece-math-helper";
const TEXT: &str = "@activepieces/piece-text-helper";

struct Fixture {
    _dir: tempfile::TempDir,
    ctx: Arc<EngineCtx>,
}

async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().display().to_string();
    let config = troupe_store::Config::from_lookup(|k| match k {
        "AP_CONFIG_PATH" => Some(path.clone()),
        "AP_SHARDS" => Some("1".into()),
        _ => None,
    })
    .unwrap();
    let store = troupe_store::Store::open(&config.data_dir()).unwrap();
    let nats =
        async_nats::ConnectOptions::new().retry_on_initial_connect().connect("nats://127.0.0.1:1").await.unwrap();
    let code = Arc::new(crate::code::CodeRunner::start(&config));
    let npm = Arc::new(crate::npm::NpmPieces::from_config(&config, &store));
    let ctx = EngineCtx::new(
        config.clone(),
        store,
        nats,
        code,
        Arc::new(troupe_pieces::egress::Egress::new(&config).unwrap()),
        npm,
    )
    .unwrap();
    ctx.set_owned(0, true);
    Fixture { _dir: dir, ctx: Arc::new(ctx) }
}

fn run() -> FlowRun {
    serde_json::from_value(json!({
        "id": "run-1", "created": "2026-12-02T00:00:00Z", "updated": "2026-12-02T00:00:00Z",
        "projectId": "p", "flowId": "f", "flowVersionId": "v", "flowDisplayName": "F",
        "status": "RUNNING", "environment": "PRODUCTION", "shard": 0, "createdMicros": 1
    }))
    .unwrap()
}

/// A chain of steps from their JSON, each linked to the next.
fn chain(steps: Vec<Value>) -> Action {
    let mut next: Option<Value> = None;
    for mut s in steps.into_iter().rev() {
        if let Some(n) = next.take() {
            s["nextAction"] = n;
        }
        next = Some(s);
    }
    serde_json::from_value(next.expect("one step at least")).unwrap()
}

fn piece(name: &str, piece: &str, action: &str, input: Value) -> Value {
    json!({"name": name, "type": "PIECE", "settings": {"pieceName": piece, "actionName": action, "input": input}})
}

fn add(name: &str, a: Value, b: Value) -> Value {
    piece(name, MATH, "addition_math", json!({"first_number": a, "second_number": b}))
}

fn with_errors(mut step: Value, continue_on_failure: bool, retry: bool) -> Value {
    step["settings"]["errorHandlingOptions"] =
        json!({"continueOnFailure": {"value": continue_on_failure}, "retryOnFailure": {"value": retry}});
    step
}

async fn execute<'c>(ctx: &'c EngineCtx, first: &Action, trigger: Value) -> (Result<(), Halt>, Exec<'c>) {
    let mut exec = Exec::new(ctx, run(), "trigger", Some(trigger), Vec::new(), Duration::from_secs(60));
    let result = exec.chain(Some(first), &[]).await;
    (result, exec)
}

fn record<'r>(exec: &'r Exec<'_>, name: &str) -> &'r StepRecord {
    exec.records.iter().rev().find(|r| r.step_name == name).unwrap_or_else(|| panic!("no record of {name}"))
}

#[tokio::test]
async fn templates_resolve_against_the_trigger_and_earlier_steps() {
    let f = fixture().await;
    let flow = chain(vec![
        add("step_1", json!("{{trigger.body.a}}"), json!(2)),
        piece(
            "step_2",
            TEXT,
            "concat",
            json!({"texts": ["sum=", "{{step_1}}", " of ", "{{trigger['body']['name']}}"]}),
        ),
    ]);
    let (result, exec) = execute(&f.ctx, &flow, json!({"body": {"a": 40, "name": "Ada"}})).await;
    assert!(result.is_ok());
    assert_eq!(exec.outputs["step_1"], json!(42));
    assert_eq!(exec.outputs["step_2"], json!("sum=42 of Ada"));
    let r = record(&exec, "step_1");
    assert_eq!((r.status, r.kind.as_str(), r.seq), (StepStatus::Succeeded, "PIECE", 1));
    assert_eq!(r.input, json!({"first_number": 40, "second_number": 2}));
    // every record is in the journal, in order
    let journal = f.ctx.store.run_steps(0, "run-1").unwrap();
    assert_eq!(journal.iter().map(|r| r.step_name.as_str()).collect::<Vec<_>>(), ["step_1", "step_2"]);
}

#[tokio::test]
async fn a_failing_step_fails_the_run_and_names_the_step() {
    let f = fixture().await;
    let flow = chain(vec![add("bad", json!("x"), json!(1)), add("after", json!(1), json!(1))]);
    let (result, exec) = execute(&f.ctx, &flow, json!({})).await;
    let Err(Halt::Fail(status, failed)) = result else { panic!("the run should fail") };
    assert_eq!(status, troupe_store::run::RunStatus::Failed);
    assert_eq!(failed.name, "bad");
    assert!(failed.message.contains("first_number"), "{}", failed.message);
    assert_eq!(record(&exec, "bad").status, StepStatus::Failed);
    assert!(exec.records.iter().all(|r| r.step_name != "after"));
}

#[tokio::test]
async fn continue_on_failure_goes_on_to_the_next_step() {
    let f = fixture().await;
    let flow =
        chain(vec![with_errors(add("bad", json!("x"), json!(1)), true, false), add("after", json!(1), json!(1))]);
    let (result, exec) = execute(&f.ctx, &flow, json!({})).await;
    assert!(result.is_ok());
    assert_eq!(record(&exec, "bad").status, StepStatus::Failed);
    assert_eq!(exec.outputs["after"], json!(2));
}

#[tokio::test]
async fn retry_on_failure_tries_four_times_with_backoff() {
    let f = fixture().await;
    let flow = chain(vec![with_errors(add("bad", json!("x"), json!(1)), false, true)]);
    let started = std::time::Instant::now();
    let (result, exec) = execute(&f.ctx, &flow, json!({})).await;
    assert!(matches!(result, Err(Halt::Fail(..))));
    let r = record(&exec, "bad");
    assert_eq!((r.status, r.attempts), (StepStatus::Failed, super::interpreter::RETRY_ATTEMPTS));
    // back-offs of 250, 500 and 1000 ms between the four attempts
    assert!(started.elapsed() >= Duration::from_millis(1750), "{:?}", started.elapsed());
}

#[tokio::test]
async fn a_loop_runs_its_body_per_item_and_records_iterations() {
    let f = fixture().await;
    let body = chain(vec![add("double", json!("{{each.item}}"), json!("{{each.item}}"))]);
    let mut each = json!({"name": "each", "type": "LOOP_ON_ITEMS", "settings": {"items": "{{trigger.items}}"}});
    each["firstLoopAction"] = serde_json::to_value(&body).unwrap();
    let flow = chain(vec![each]);
    let (result, exec) = execute(&f.ctx, &flow, json!({"items": [1, 2, 3]})).await;
    assert!(result.is_ok());
    let doubled: Vec<&StepRecord> = exec.records.iter().filter(|r| r.step_name == "double").collect();
    assert_eq!(doubled.iter().map(|r| r.output.clone()).collect::<Vec<_>>(), [json!(2), json!(4), json!(6)]);
    assert_eq!(doubled[2].loop_path, vec![("each".to_string(), 2)]);
    let l = record(&exec, "each");
    assert_eq!((l.kind.as_str(), &l.output), ("LOOP_ON_ITEMS", &json!({"item": 3, "index": 3})));
    assert_eq!(exec.outputs["each"]["iterations"].as_array().map(Vec::len), Some(3));
}

#[tokio::test]
async fn a_loop_over_something_else_than_a_list_fails() {
    let f = fixture().await;
    let flow = chain(vec![json!({"name": "each", "type": "LOOP_ON_ITEMS", "settings": {"items": "{{trigger.n}}"}})]);
    let (result, exec) = execute(&f.ctx, &flow, json!({"n": 5})).await;
    let Err(Halt::Fail(_, failed)) = result else { panic!("the loop should fail") };
    assert_eq!(failed.message, "items must be a list, got 5");
    assert_eq!(record(&exec, "each").status, StepStatus::Failed);
}

fn router(execution_type: &str, children: Vec<Value>) -> Value {
    let cond =
        |v: &str| json!([[{"operator": "TEXT_EXACTLY_MATCHES", "firstValue": "{{trigger.color}}", "secondValue": v}]]);
    json!({
        "name": "route", "type": "ROUTER",
        "settings": {"executionType": execution_type, "branches": [
            {"branchName": "red", "branchType": "CONDITION", "conditions": cond("red")},
            {"branchName": "any", "branchType": "CONDITION", "conditions": [[{"operator": "TEXT_CONTAINS", "firstValue": "{{trigger.color}}", "secondValue": "e"}]]},
            {"branchName": "otherwise", "branchType": "FALLBACK"}
        ]},
        "children": children
    })
}

#[tokio::test]
async fn a_router_takes_the_first_match_or_every_match_or_the_fallback() {
    let f = fixture().await;
    let children = || {
        vec![add("on_red", json!(1), json!(0)), add("on_any", json!(2), json!(0)), add("on_other", json!(3), json!(0))]
    };
    let ran = |exec: &Exec<'_>| {
        let mut names: Vec<String> =
            exec.records.iter().filter(|r| r.step_name.starts_with("on_")).map(|r| r.step_name.clone()).collect();
        names.sort();
        names
    };
    let first = chain(vec![router("EXECUTE_FIRST_MATCH", children())]);
    let (result, exec) = execute(&f.ctx, &first, json!({"color": "red"})).await;
    assert!(result.is_ok());
    assert_eq!(ran(&exec), ["on_red"]);
    assert_eq!(exec.outputs["route"]["branches"][1]["evaluation"], json!(true));

    let all = chain(vec![router("EXECUTE_ALL_MATCH", children())]);
    let (_, exec) = execute(&f.ctx, &all, json!({"color": "red"})).await;
    assert_eq!(ran(&exec), ["on_any", "on_red"]);

    let (_, exec) = execute(&f.ctx, &first, json!({"color": "blue"})).await;
    assert_eq!(ran(&exec), ["on_any"]);
    let (_, exec) = execute(&f.ctx, &first, json!({"color": "pink"})).await;
    assert_eq!(ran(&exec), ["on_other"]);
}

#[tokio::test]
async fn steps_the_journal_holds_as_succeeded_are_skipped() {
    let f = fixture().await;
    let flow = chain(vec![add("step_1", json!(1), json!(1)), add("step_2", json!("{{step_1}}"), json!(1))]);
    let done = StepRecord {
        seq: 1,
        step_name: "step_1".into(),
        kind: "PIECE".into(),
        loop_path: vec![],
        status: StepStatus::Succeeded,
        input: json!({}),
        output: json!(100),
        error_message: None,
        duration: 0,
        attempts: 1,
        logs: None,
    };
    let mut exec = Exec::new(&f.ctx, run(), "trigger", Some(json!({})), vec![done], Duration::from_secs(60));
    assert!(exec.chain(Some(&flow), &[]).await.is_ok());
    assert_eq!(exec.outputs["step_2"], json!(101));
    assert_eq!(exec.records.len(), 1, "only step_2 ran");
    assert_eq!(exec.records[0].seq, 2);
}
