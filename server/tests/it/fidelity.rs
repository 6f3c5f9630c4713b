//! Fidelity to Activepieces: older exports import (schema migrations), both template dialects
//! resolve, templates behave as Activepieces' engine.

use crate::support::*;
use serde_json::{json, Value};

#[tokio::test]
async fn an_export_from_before_routers_imports_with_its_branch_as_a_router_and_runs() {
    let t = Troupe::start().await;
    // an Activepieces export of the BRANCH era: no schemaVersion
    let export = json!({
        "displayName": "old branch",
        "trigger": {"name": "trigger", "type": "PIECE_TRIGGER", "valid": true, "displayName": "Catch Webhook",
            "settings": {"pieceName": "@activepieces/piece-webhook", "pieceVersion": "~0.1.3", "triggerName": "catch_webhook",
                "input": {}, "inputUiInfo": {}},
            "nextAction": {"name": "step_1", "type": "BRANCH", "valid": true, "displayName": "Big?",
                "settings": {"conditions": [[{"operator": "NUMBER_IS_GREATER_THAN", "firstValue": "{{trigger.body.n}}", "secondValue": "10"}]], "inputUiInfo": {}},
                "onSuccessAction": respond(json!({"size": "big"})),
                "onFailureAction": piece("small", "webhook", "return_response",
                    json!({"responseType": "json", "respond": "stop", "fields": {"status": 200, "body": {"size": "small"}}}))}}
    });
    let id = t.publish(export).await;
    let (_, flow) = t.get(&format!("/flows/{id}")).await;
    assert_eq!(flow["version"]["trigger"]["nextAction"]["type"], "ROUTER", "{flow}");
    assert_eq!(flow["version"]["schemaVersion"], "21", "{flow}");
    for (n, size) in [(50, "big"), (5, "small")] {
        let r = t.webhook(&id, "/sync", json!({"n": n})).await;
        assert_eq!(r.json::<Value>().await.unwrap(), json!({"size": size}), "n={n}");
    }
}

#[tokio::test]
async fn a_flow_of_todays_activepieces_reads_step_outputs_under_output() {
    let t = Troupe::start().await;
    // schema 22 and later write `step_1['output']`, in paths and in expressions
    let export = json!({
        "displayName": "nested",
        "schemaVersion": "22",
        "trigger": {"name": "trigger", "type": "PIECE_TRIGGER", "valid": true, "displayName": "Catch Webhook",
            "settings": {"pieceName": "@activepieces/piece-webhook", "pieceVersion": "0.1.29", "triggerName": "catch_webhook", "input": {}},
            "nextAction": chain(vec![
                piece("step_1", "data-mapper", "advanced_mapping", json!({"mapping": {"name": "{{trigger['output'].body.name}}", "n": "{{trigger['output']['body']['n']}}"}})),
                respond(json!({"hello": "{{step_1['output'].name}}", "next": "{{ step_1['output'].n + 1 }}", "flat": "{{step_1.name}}"})),
            ])}
    });
    let id = t.publish(export).await;
    let (_, flow) = t.get(&format!("/flows/{id}")).await;
    assert_eq!(flow["version"]["schemaVersion"], troupe_store::migrate::LATEST);
    let r = t.webhook(&id, "/sync", json!({"name": "Ada", "n": 41})).await;
    // the old dialect's path means nothing here: an empty string, as in Activepieces
    assert_eq!(r.json::<Value>().await.unwrap(), json!({"hello": "Ada", "next": 42, "flat": ""}));
}

#[tokio::test]
async fn a_run_whose_log_passes_the_limit_ends_log_size_exceeded() {
    let t = Troupe::start_with(&[("AP_MAX_FLOW_RUN_LOG_SIZE_MB", "1")]).await;
    let flow = webhook_flow(chain(vec![
        code("big", "export const code = async () => 'x'.repeat(1536 * 1024);", json!({})),
        piece("after", "data-mapper", "advanced_mapping", json!({"mapping": {"ran": true}})),
    ]));
    let id = t.publish(flow).await;
    t.webhook(&id, "", json!({})).await;
    let run = t.wait_runs(&id, 1).await.remove(0);
    let run = t.run(run["id"].as_str().unwrap()).await;
    assert_eq!(run["status"], "LOG_SIZE_EXCEEDED", "{}", run["failedStep"]);
    assert!(
        run["failedStep"]["message"].as_str().unwrap().contains("AP_MAX_FLOW_RUN_LOG_SIZE_MB"),
        "{}",
        run["failedStep"]
    );
    assert!(run["steps"].get("after").is_none(), "no step runs after the limit");
}

#[tokio::test]
async fn an_activepieces_client_edits_flows_and_folders_with_activepieces_operations() {
    let t = Troupe::start().await;
    let op = |kind: &str, request: Value| json!({"type": kind, "request": request});
    // folders: create, rename, list with their flow counts
    let (status, folder) = t.post("/folders", json!({"displayName": "Sales"})).await;
    assert_eq!(status, 201, "{folder}");
    let folder_id = folder["id"].as_str().unwrap().to_string();
    let (status, _) = t.post("/folders", json!({"displayName": "sales"})).await;
    assert_eq!(status, 409, "names are unique per project");
    let flow = webhook_flow(chain(vec![
        piece("step_1", "data-mapper", "advanced_mapping", json!({"mapping": {"a": 1}})),
        piece("step_2", "data-mapper", "advanced_mapping", json!({"mapping": {"b": "{{step_1.a}}"}})),
        respond(json!({"one": "{{step_1}}", "two": "{{step_2}}", "three": "{{step_3}}"})),
    ]));
    let id = t.import(flow).await;
    let path = format!("/flows/{id}");
    for (kind, request) in [
        ("CHANGE_FOLDER", json!({"folderId": folder_id})),
        ("UPDATE_METADATA", json!({"metadata": {"team": "growth"}})),
        ("DUPLICATE_ACTION", json!({"stepName": "step_2"})),
        ("SET_SKIP_ACTION", json!({"names": ["step_1"], "skip": true})),
        (
            "ADD_NOTE",
            json!({"id": "n1", "content": "hi", "color": "blue", "position": {"x": 0, "y": 0}, "size": {"width": 1, "height": 1}}),
        ),
    ] {
        let (status, body) = t.post(&path, op(kind, request)).await;
        assert_eq!(status, 200, "{kind}: {body}");
    }
    let (status, body) = t.post(&path, op("MOVE_ACTION", json!({"name": "step_9", "newParentStep": "trigger"}))).await;
    assert_eq!(status, 400, "an unknown step is named: {body}");
    assert!(body["message"].as_str().unwrap().contains("step_9"), "{body}");
    let (_, flow) = t.get(&path).await;
    assert_eq!((&flow["folderId"], &flow["metadata"]["team"]), (&json!(folder_id), &json!("growth")));
    let second = &flow["version"]["trigger"]["nextAction"]["nextAction"];
    assert_eq!(
        (&second["nextAction"]["name"], &second["nextAction"]["displayName"]),
        (&json!("step_3"), &json!("step_2 Copy"))
    );
    assert_eq!(flow["version"]["notes"][0]["id"], "n1");
    let (_, folders) = t.get("/folders").await;
    assert_eq!(folders["data"][0]["numberOfFlows"], 1, "{folders}");
    // the skipped step does not run; the copy reads step_1 (empty: skipped)
    t.post(&path, json!({"type": "LOCK_AND_PUBLISH", "request": {}})).await;
    let r = t.webhook(&id, "/sync", json!({})).await;
    assert_eq!(r.json::<Value>().await.unwrap(), json!({"one": "", "two": {"b": ""}, "three": {"b": ""}}));
    // deleting the folder leaves its flow uncategorized
    let (status, _) = t.api(reqwest::Method::DELETE, &format!("/folders/{folder_id}"), None).await;
    assert_eq!(status, 204);
    let (_, flow) = t.get(&path).await;
    assert!(flow["folderId"].is_null(), "{flow}");
    let (status, _) = t.post(&path, op("CHANGE_FOLDER", json!({"folderId": folder_id}))).await;
    assert_eq!(status, 404, "a folder that does not exist");
}
