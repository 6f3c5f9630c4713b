//! The audit log: what the API and the runs did, who did it, durable, filtered and paged, in
//! Activepieces' event shapes, with no secret in any event.

use crate::support::*;
use serde_json::{json, Value};

fn actions(page: &Value) -> Vec<String> {
    page["data"].as_array().unwrap().iter().map(|e| e["action"].as_str().unwrap().to_string()).collect()
}

#[tokio::test]
async fn the_audit_log_records_who_did_what_durably_and_pages_it() {
    let mut t = Troupe::start().await;
    let secret = "audit-secret-value-42";
    let (_, conn) = t
        .post(
            "/app-connections",
            json!({"externalId": "k", "displayName": "Key", "pieceName": "@activepieces/piece-http",
                "type": "SECRET_TEXT", "value": {"type": "SECRET_TEXT", "secret_text": secret}}),
        )
        .await;
    let (_, folder) = t.post("/folders", json!({"displayName": "Ops"})).await;
    let folder_id = folder["id"].as_str().unwrap();
    t.post(&format!("/folders/{folder_id}"), json!({"displayName": "Ops 2"})).await;
    let id = t.publish(webhook_flow(respond(json!({"ok": true})))).await;
    t.webhook(&id, "/sync", json!({})).await;
    t.wait_runs(&id, 1).await;
    t.post(&format!("/flows/{id}"), json!({"type": "CHANGE_STATUS", "request": {"status": "DISABLED"}})).await;
    t.api(reqwest::Method::DELETE, &format!("/app-connections/{}", conn["id"].as_str().unwrap()), None).await;
    t.api(reqwest::Method::DELETE, &format!("/flows/{id}"), None).await;
    t.api(reqwest::Method::DELETE, &format!("/folders/{folder_id}"), None).await;

    // every event survives a crash: they were flushed with the changes they record
    t.kill();
    t.spawn().await;
    let (status, page) = t.get("/audit-events?limit=100").await;
    assert_eq!(status, 200, "{page}");
    let mut seen = actions(&page);
    seen.reverse(); // oldest first
    let expected = [
        "connection.upserted",
        "folder.created",
        "folder.updated",
        "flow.created",
        "flow.updated",
        "flow.updated",
        "flow.published",
        "flow.activated",
        "flow.run.started",
        "flow.run.finished",
        "flow.updated",
        "flow.deactivated",
        "connection.deleted",
        "flow.deleted",
        "folder.deleted",
    ];
    assert_eq!(seen, expected, "{page:#}");
    let text = page.to_string();
    assert!(!text.contains(secret), "no secret in any event");
    for event in page["data"].as_array().unwrap() {
        let principal = &event["principal"];
        if event["action"].as_str().unwrap().starts_with("flow.run") {
            assert_eq!(principal["type"], "TROUPE", "{event}");
        } else {
            assert_eq!(principal["type"], "API_KEY", "{event}");
            assert!(principal["id"].is_string(), "{event}");
        }
        assert_eq!(event["outcome"], "SUCCEEDED");
    }
    let finished = page["data"].as_array().unwrap().iter().find(|e| e["action"] == "flow.run.finished").unwrap();
    assert_eq!(finished["data"]["flowRun"]["status"], "SUCCEEDED", "{finished}");

    // filters and seek pagination
    let (_, created) = t.get("/audit-events?action=flow.created&action=folder.created").await;
    assert_eq!(actions(&created), ["flow.created", "folder.created"]);
    let (_, first) = t.get("/audit-events?limit=4").await;
    assert_eq!(first["data"].as_array().unwrap().len(), 4);
    let next = first["next"].as_str().unwrap();
    let (_, second) = t.get(&format!("/audit-events?limit=4&cursor={next}")).await;
    assert_eq!(actions(&second), seen.iter().rev().skip(4).take(4).cloned().collect::<Vec<_>>());
    let after = page["data"][3]["created"].as_str().unwrap();
    let (_, newer) = t.get(&format!("/audit-events?limit=100&createdAfter={after}")).await;
    assert!(newer["data"].as_array().unwrap().len() <= 3);

    // a project's key sees its project's events only
    let (_, project) = t.post("/projects", json!({"displayName": "Other"})).await;
    let other = project["id"].as_str().unwrap();
    let (_, key) = t.post("/api-keys", json!({"displayName": "k2", "projectId": other})).await;
    let k2 = key["value"].as_str().unwrap().to_string();
    let as_k2 = |path: &str| t.client.get(t.url(&format!("/api/v1{path}"))).bearer_auth(&k2).send();
    let mine: Value = as_k2("/audit-events").await.unwrap().json().await.unwrap();
    assert!(mine["data"].as_array().unwrap().is_empty(), "{mine}");
    let others = as_k2("/audit-events?projectId=someone-else").await.unwrap();
    assert_eq!(others.status(), 404);

    // the events are Activepieces' ApplicationEvent
    let file = t.dir.path().join("events.json");
    std::fs::write(&file, json!([["SeekPage<ApplicationEvent>", page]]).to_string()).unwrap();
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/validate-shapes.js");
    let out = std::process::Command::new("node")
        .arg(script)
        .arg(crate::fidelity::shared_schemas())
        .arg(&file)
        .output()
        .expect("node runs");
    assert!(
        out.status.success(),
        "events fail @activepieces/shared's schema:\n{}",
        String::from_utf8_lossy(&out.stdout)
    );
}
