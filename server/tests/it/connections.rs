//! Connections: encrypted at rest, resolved in flows, redacted from everything Troupe writes;
//! project-scoped API keys.

use crate::support::*;
use serde_json::{json, Value};
use std::path::Path;
use std::time::Duration;

const SECRET: &str = "tok-9f8e7d6c5b4a-planted-secret";

/// A loopback HTTP server that answers every request with the Authorization header it got.
async fn echo_server() -> (u16, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let task = tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        loop {
            let Ok((mut sock, _)) = listener.accept().await else { return };
            tokio::spawn(async move {
                let mut buf = vec![0u8; 8192];
                let n = sock.read(&mut buf).await.unwrap_or(0);
                let req = String::from_utf8_lossy(&buf[..n]).to_string();
                let auth = req
                    .lines()
                    .find_map(|l| l.strip_prefix("authorization: ").or_else(|| l.strip_prefix("Authorization: ")))
                    .unwrap_or("")
                    .to_string();
                let body = json!({"sawAuthorization": auth}).to_string();
                let resp = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = sock.write_all(resp.as_bytes()).await;
            });
        }
    });
    (port, task)
}

async fn upsert(t: &Troupe, body: Value) -> (u16, Value) {
    t.post("/app-connections", body).await
}

fn secret_text(name: &str, secret: &str) -> Value {
    json!({"externalId": name, "displayName": name, "pieceName": "@activepieces/piece-http",
        "type": "SECRET_TEXT", "value": {"type": "SECRET_TEXT", "secret_text": secret}})
}

#[tokio::test]
async fn connections_are_upserted_listed_and_deleted_without_their_values() {
    let t = Troupe::start().await;
    let (s, created) = upsert(&t, secret_text("my-api", SECRET)).await;
    assert_eq!(s, 201, "{created}");
    assert_eq!(created["externalId"], "my-api");
    assert_eq!(created["type"], "SECRET_TEXT");
    assert!(!created.to_string().contains(SECRET));
    let id = created["id"].as_str().unwrap().to_string();
    // upsert by externalId keeps the id
    let (s, again) = upsert(&t, secret_text("my-api", "another-secret-value")).await;
    assert_eq!((s, again["id"].as_str()), (201, Some(id.as_str())));
    let basic = json!({"externalId": "basic", "displayName": "b", "pieceName": "x", "type": "BASIC_AUTH",
        "value": {"type": "BASIC_AUTH", "username": "ada", "password": "pw-123456"}});
    assert_eq!(upsert(&t, basic).await.0, 201);
    let (s, list) = t.get("/app-connections?limit=10").await;
    assert_eq!(s, 200);
    assert_eq!(list["data"].as_array().unwrap().len(), 2);
    assert!(!list.to_string().contains("pw-123456") && !list.to_string().contains("another-secret"));
    let (s, one) = t.get(&format!("/app-connections/{id}")).await;
    assert_eq!(s, 200);
    assert!(one.get("value").is_none());
    // bad input: wrong shape, unknown type, unknown field
    let (s, e) = upsert(
        &t,
        json!({"externalId": "x", "displayName": "x", "pieceName": "x", "type": "BASIC_AUTH",
        "value": {"type": "BASIC_AUTH", "username": "u"}}),
    )
    .await;
    assert_eq!(s, 400);
    assert!(e["message"].as_str().unwrap().contains("password"), "{e}");
    assert_eq!(
        upsert(&t, json!({"externalId": "x", "displayName": "x", "pieceName": "x", "type": "MAGIC", "value": {}}))
            .await
            .0,
        400
    );
    let (s, _) = t.api(reqwest::Method::DELETE, &format!("/app-connections/{id}"), None).await;
    assert_eq!(s, 204);
    assert_eq!(t.get(&format!("/app-connections/{id}")).await.0, 404);
}

#[tokio::test]
async fn a_flow_uses_a_connection_and_the_secret_is_found_nowhere_but_encrypted() {
    let (port, _server) = echo_server().await;
    let mut t = Troupe::start_logged(&[("RUST_LOG", "info")]).await;
    assert_eq!(upsert(&t, secret_text("my-api", SECRET)).await.0, 201);
    let http = piece(
        "step_1",
        "http",
        "send_request",
        json!({
        "method": "GET", "url": format!("http://127.0.0.1:{port}/whoami"), "headers": {}, "queryParams": {},
        "auth": "{{connections['my-api']}}"}),
    );
    let code = code("step_2", "export const code = async (inputs) => { console.log('token is', inputs.token); return { echoed: inputs.token, len: inputs.token.length }; };",
        json!({"token": "{{connections['my-api']}}"}));
    let flow = webhook_flow(chain(vec![
        http,
        code,
        respond(json!({"saw": "{{step_1.body.sawAuthorization}}", "code": "{{step_2}}", "input": "{{trigger.body}}"})),
    ]));
    let id = t.publish(flow).await;
    let r = t.webhook(&id, "/sync", json!({"hello": "world"})).await;
    assert_eq!(r.status(), 200);
    let run_id = r.headers()["x-run-id"].to_str().unwrap().to_string();
    let answer = r.text().await.unwrap();
    // the secret was used (the server saw it, the code step got a string of its length) ...
    let answer_json: Value = serde_json::from_str(&answer).unwrap();
    assert_eq!(answer_json["saw"], "Bearer **REDACTED**");
    assert_eq!(answer_json["code"]["len"], SECRET.len());
    // ... and never came back
    assert!(!answer.contains(SECRET), "{answer}");
    let run = t.run(&run_id).await;
    assert_eq!(run["status"], "SUCCEEDED");
    let run_text = run.to_string();
    assert!(!run_text.contains(SECRET), "{run_text}");
    assert_eq!(run["steps"]["step_2"]["logs"], "token is **REDACTED**\n");
    assert_eq!(run["steps"]["step_2"]["input"]["token"], "**REDACTED**");
    let (_, runs) = t.get(&format!("/flow-runs?flowId={id}")).await;
    assert!(!runs.to_string().contains(SECRET));

    // every byte Troupe wrote: sled, the JetStream store, the log
    t.terminate();
    let mut files = Vec::new();
    walk(t.dir.path(), &mut files);
    assert!(files.len() > 5, "{files:?}");
    for f in &files {
        let bytes = std::fs::read(f).unwrap_or_default();
        assert!(
            !bytes.windows(SECRET.len()).any(|w| w == SECRET.as_bytes()),
            "the secret is in clear in {}",
            f.display()
        );
    }
    let log = std::fs::read_to_string(t.log.as_ref().unwrap()).unwrap();
    assert!(log.contains(&run_id), "the log has lines about the run");
}

fn walk(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            walk(&p, out);
        } else {
            out.push(p);
        }
    }
}

#[tokio::test]
async fn a_flow_naming_a_missing_connection_cannot_be_published() {
    let t = Troupe::start().await;
    let step = piece(
        "step_1",
        "http",
        "send_request",
        json!({"method": "GET", "url": "http://127.0.0.1:9/",
        "headers": {}, "queryParams": {}, "auth": "{{connections['nope']}}"}),
    );
    let b = t.publish_refused(webhook_flow(step)).await;
    assert!(b.to_string().contains("nope") && b.to_string().contains("step_1"), "{b}");
}

#[tokio::test]
async fn the_encryption_key_is_generated_once_and_a_wrong_one_stops_the_start() {
    let mut t = Troupe::start().await;
    let key_file = t.dir.path().join("encryption-key");
    let meta = std::fs::metadata(&key_file).expect("a key was generated");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    assert_eq!(upsert(&t, secret_text("a", SECRET)).await.0, 201);
    assert!(t.terminate().success());
    std::fs::write(&key_file, "0".repeat(64)).unwrap();
    let out = tokio::time::timeout(
        Duration::from_secs(30),
        tokio::process::Command::new(env!("CARGO_BIN_EXE_troupe"))
            .arg("serve")
            .env("AP_CONFIG_PATH", t.dir.path())
            .env("AP_PORT", free_port().to_string())
            .env("AP_API_KEY", KEY)
            .env("NATS_SERVER_BIN", nats_server_bin())
            .output(),
    )
    .await
    .expect("troupe refused to start promptly")
    .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("AP_ENCRYPTION_KEY"), "{err}");
}

#[tokio::test]
async fn a_project_key_sees_its_own_project_only() {
    let t = Troupe::start().await;
    // admin: a flow, a run and a connection in the default project
    let flow_a = t.publish(counting_flow()).await;
    t.webhook(&flow_a, "", json!({"n": 1})).await;
    let run_a = t.wait_runs(&flow_a, 1).await[0]["id"].as_str().unwrap().to_string();
    let (_, conn_a) = upsert(&t, secret_text("a", SECRET)).await;
    let conn_a = conn_a["id"].as_str().unwrap().to_string();

    let (s, p2) = t.post("/projects", json!({"displayName": "Second"})).await;
    assert_eq!(s, 201, "{p2}");
    let p2 = p2["id"].as_str().unwrap().to_string();
    let (s, key) = t.post("/api-keys", json!({"displayName": "k2", "projectId": p2})).await;
    assert_eq!(s, 201, "{key}");
    let k2 = key["value"].as_str().unwrap().to_string();
    let key_id = key["id"].as_str().unwrap().to_string();
    let (_, keys) = t.get("/api-keys").await;
    assert!(!keys.to_string().contains(&k2), "key values are never listed");

    let as_k2 = |method: reqwest::Method, path: &str, body: Option<Value>| {
        let mut req = t.client.request(method, t.url(&format!("/api/v1{path}"))).bearer_auth(&k2);
        if let Some(b) = body {
            req = req.json(&b);
        }
        async move {
            let r = req.send().await.unwrap();
            let s = r.status().as_u16();
            (s, r.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    use reqwest::Method;
    for path in [format!("/flows/{flow_a}"), format!("/flow-runs/{run_a}"), format!("/app-connections/{conn_a}")] {
        assert_eq!(as_k2(Method::GET, &path, None).await.0, 404, "{path}");
    }
    assert_eq!(
        as_k2(
            Method::POST,
            &format!("/flows/{flow_a}"),
            Some(json!({"type": "CHANGE_STATUS", "request": {"status": "DISABLED"}}))
        )
        .await
        .0,
        404
    );
    assert_eq!(as_k2(Method::DELETE, &format!("/flows/{flow_a}"), None).await.0, 404);
    assert_eq!(as_k2(Method::DELETE, &format!("/app-connections/{conn_a}"), None).await.0, 404);
    assert_eq!(as_k2(Method::POST, &format!("/flow-runs/{run_a}/cancel"), None).await.0, 404);
    for list in ["/flows", "/flow-runs", "/app-connections"] {
        let (s, page) = as_k2(Method::GET, list, None).await;
        assert_eq!((s, page["data"].as_array().map(Vec::len)), (200, Some(0)), "{list}");
    }
    let (s, _) = as_k2(Method::GET, &format!("/flows?projectId={}", "someone-else"), None).await;
    assert_eq!(s, 404);
    // its own flow, in its own project
    let (s, own) = as_k2(Method::POST, "/flows", Some(json!({"displayName": "mine"}))).await;
    assert_eq!(s, 201);
    assert_eq!(own["projectId"], p2.as_str());
    assert_eq!(as_k2(Method::GET, "/flows", None).await.1["data"].as_array().unwrap().len(), 1);
    // it cannot manage keys; once revoked it is refused
    assert_eq!(as_k2(Method::GET, "/api-keys", None).await.0, 403);
    let (s, _) = t.api(Method::DELETE, &format!("/api-keys/{key_id}"), None).await;
    assert_eq!(s, 204);
    assert_eq!(as_k2(Method::GET, "/flows", None).await.0, 401);
    // the admin still sees everything
    assert_eq!(t.get(&format!("/flows/{flow_a}")).await.0, 200);
}

#[tokio::test]
async fn connections_are_renamed_replaced_in_drafts_and_may_carry_no_auth() {
    let t = Troupe::start().await;
    let (status, old) = upsert(&t, secret_text("old", "s-old")).await;
    assert_eq!(status, 201, "{old}");
    let (status, new) = upsert(&t, secret_text("new", "s-new")).await;
    assert_eq!(status, 201, "{new}");
    let (status, none) = upsert(
        &t,
        json!({"externalId": "none", "displayName": "none", "pieceName": "@activepieces/piece-http", "type": "NO_AUTH", "value": {"type": "NO_AUTH"}}),
    )
    .await;
    assert_eq!((status, none["type"].as_str()), (201, Some("NO_AUTH")), "{none}");
    // rename
    let old_id = old["id"].as_str().unwrap();
    let (status, renamed) = t.post(&format!("/app-connections/{old_id}"), json!({"displayName": "Old one"})).await;
    assert_eq!((status, renamed["displayName"].as_str()), (200, Some("Old one")), "{renamed}");
    // replace: a draft naming the old connection names the new one, the old one is gone
    let flow = webhook_flow(code(
        "step_1",
        "export const code = async (i) => i.token.length;",
        json!({"token": "{{connections['old']}}"}),
    ));
    let id = t.import(flow).await;
    let (status, body) = t
        .post("/app-connections/replace", json!({"sourceAppConnectionId": old_id, "targetAppConnectionId": new["id"]}))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["replacedVersions"], 1, "{body}");
    let (_, flow) = t.get(&format!("/flows/{id}")).await;
    assert_eq!(flow["version"]["trigger"]["nextAction"]["settings"]["input"]["token"], "{{connections['new']}}");
    let (status, _) = t.get(&format!("/app-connections/{old_id}")).await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn read_connection_gives_a_step_the_value_and_the_journal_keeps_it_redacted() {
    let t = Troupe::start().await;
    let secret = "s3cret-value-1234";
    assert_eq!(upsert(&t, secret_text("vault", secret)).await.0, 201);
    let read = piece("read", "connections", "read_connection", json!({"connection_name": "vault"}));
    let length = code("len", "export const code = async (inputs) => inputs.v.length;", json!({"v": "{{read}}"}));
    let id = t.publish(webhook_flow(chain(vec![read, length]))).await;
    t.webhook(&id, "", json!({})).await;
    let run = t.wait_runs(&id, 1).await.remove(0);
    let run = t.run(run["id"].as_str().unwrap()).await;
    assert_eq!(run["status"], "SUCCEEDED", "{run}");
    assert_eq!(run["steps"]["len"]["output"], json!(secret.len()), "the next step had the value");
    assert!(!run.to_string().contains(secret), "the value is not in the run: {run}");
    // a name that is not a connection of the project fails the step, as the package's resolver
    let missing = piece("read", "connections", "read_connection", json!({"connection_name": "nope"}));
    let id = t.publish(webhook_flow(missing)).await;
    t.webhook(&id, "", json!({})).await;
    let run = t.wait_runs(&id, 1).await.remove(0);
    let run = t.run(run["id"].as_str().unwrap()).await;
    assert_eq!(run["status"], "FAILED");
    assert!(run["steps"]["read"]["errorMessage"].as_str().unwrap().contains("connection (nope) not found"), "{run}");
}
