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

/// The embedded nats-server's address and the users Troupe made for it.
fn embedded_nats(t: &Troupe) -> (String, Value) {
    let dir = t.dir.path().join("nats");
    let conf = std::fs::read_to_string(dir.join("nats.conf")).unwrap();
    let listen = conf.lines().find_map(|l| l.strip_prefix("listen: ")).unwrap().trim_matches('"').to_string();
    let users: Value = serde_json::from_slice(&std::fs::read(dir.join("nats-users.json")).unwrap()).unwrap();
    (format!("nats://{listen}"), users)
}

#[tokio::test]
async fn the_embedded_nats_admits_no_anonymous_client_and_a_worker_cannot_destroy_data() {
    use std::os::unix::fs::PermissionsExt;
    let mut t = Troupe::start().await;
    let (url, users) = embedded_nats(&t);
    let mode = std::fs::metadata(t.dir.path().join("nats/nats-users.json")).unwrap().permissions().mode();
    assert_eq!(mode & 0o077, 0, "the passwords are readable by their owner only");
    assert!(async_nats::connect(&url).await.is_err(), "anonymous clients are refused");
    let wrong = async_nats::ConnectOptions::with_user_and_password("troupe-worker".into(), "guess".into());
    assert!(wrong.connect(&url).await.is_err(), "a wrong password is refused");

    let as_user = |user: &str, password: &Value| {
        async_nats::ConnectOptions::with_user_and_password(user.into(), password.as_str().unwrap().into())
    };
    // a denied request gets no answer: wait one second, not the default five
    let context = |client| {
        let mut js = async_nats::jetstream::new(client);
        js.set_timeout(std::time::Duration::from_secs(1));
        js
    };
    let admin = context(as_user("troupe-admin", &users["admin"]).connect(&url).await.unwrap());
    let bucket = async_nats::jetstream::kv::Config { bucket: "probe".into(), ..Default::default() };
    admin.create_key_value(bucket).await.expect("the operator's user may do anything");
    let js = context(as_user("troupe-worker", &users["worker"]).connect(&url).await.unwrap());
    assert!(js.delete_stream("AP_WEBHOOKS").await.is_err(), "a worker cannot delete a stream");
    let mut stream = js.get_stream("AP_WEBHOOKS").await.expect("a worker reads streams");
    assert!(stream.purge().await.is_err(), "a worker cannot purge a stream");
    assert!(js.delete_key_value("probe").await.is_err(), "a worker cannot delete a bucket");
    assert!(admin.get_key_value("probe").await.is_ok(), "the bucket is still there");
    let published =
        async { js.publish("ap.webhook.0", "forged".into()).await?.await.map(drop).map_err(async_nats::Error::from) };
    let denied = tokio::time::timeout(std::time::Duration::from_secs(3), published).await;
    assert!(!matches!(denied, Ok(Ok(()))), "a worker cannot publish a webhook");
    let app_js = context(as_user("troupe-app", &users["app"]).connect(&url).await.unwrap());
    assert!(app_js.delete_stream("AP_WEBHOOKS").await.is_err(), "nor can an APP process delete one");
    assert!(stream.info().await.is_ok());

    // Troupe itself works with its user, across a restart (the passwords are kept)
    let id = t.publish(webhook_flow(respond(json!({"ok": true})))).await;
    assert_eq!(t.webhook(&id, "/sync", json!({})).await.status(), 200);
    t.kill();
    t.spawn().await;
    assert_eq!(embedded_nats(&t).1, users, "the same users after a restart");
    assert_eq!(t.webhook(&id, "/sync", json!({})).await.status(), 200);
}

#[tokio::test]
async fn troupe_connects_to_a_cluster_it_does_not_run_with_the_user_it_is_given() {
    let users = r#"authorization { users = [{user: "svc", password: "s3cret"}] }"#;
    let nats = troupe_testkit::NatsServer::with_config(&format!("{users}\n")).await;
    assert!(async_nats::connect(&nats.url).await.is_err(), "the server admits no anonymous client");
    let t = Troupe::start_with(&[("AP_NATS_URL", &nats.url), ("AP_NATS_USER", "svc"), ("AP_NATS_PASSWORD", "s3cret")])
        .await;
    let id = t.publish(webhook_flow(respond(json!({"ok": true})))).await;
    assert_eq!(t.webhook(&id, "/sync", json!({})).await.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shutdown_lets_a_sync_webhook_in_flight_get_its_answer() {
    // an APP whose run is on a WORKER: only waiting for the connection keeps the answer
    let nats = troupe_testkit::NatsServer::start().await;
    let key = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
    let env = |role| {
        [
            ("AP_CONTAINER_TYPE", role),
            ("AP_NATS_URL", nats.url.as_str()),
            ("AP_ENCRYPTION_KEY", key),
            ("TROUPE_DEBUG_PIECES", "1"),
        ]
    };
    let _worker = Troupe::start_with(&env("WORKER")).await;
    let mut app = Troupe::start_with(&env("APP")).await;
    let flow = webhook_flow(chain(vec![debug("slow", "sleep", json!({"ms": 2000})), respond(json!({"done": true}))]));
    let id = app.publish(flow).await;
    let (client, url) = (app.client.clone(), app.url(&format!("/api/v1/webhooks/{id}/sync")));
    let request = tokio::spawn(async move { client.post(url).json(&json!({})).send().await });
    tokio::time::sleep(Duration::from_millis(600)).await;
    let exit = tokio::task::spawn_blocking(move || {
        let status = app.terminate();
        (app, status)
    });
    let answer = request.await.unwrap().expect("the connection was not cut");
    assert_eq!(answer.status(), 200);
    let body: Value = answer.json().await.unwrap();
    assert_eq!(body, json!({"done": true}), "the run finished during the shutdown and was answered");
    let (_app, status) = exit.await.unwrap();
    assert!(status.success(), "{status:?}");
}

/// A NATS JWT: `claims` signed by `issuer` (decentralized authentication's operator → account
/// → user chain).
fn nats_jwt(issuer: &nkeys::KeyPair, subject: &str, name: &str, nats: Value) -> String {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let header = b64.encode(br#"{"typ":"JWT","alg":"ed25519-nkey"}"#);
    let claims = json!({
        "jti": format!("{:x}", rand::random::<u128>()), "iat": 1_700_000_000, "iss": issuer.public_key(),
        "name": name, "sub": subject, "nats": nats,
    });
    let payload = b64.encode(claims.to_string());
    let signature = issuer.sign(format!("{header}.{payload}").as_bytes()).unwrap();
    format!("{header}.{payload}.{}", b64.encode(signature))
}

#[tokio::test]
async fn troupe_connects_with_a_standard_creds_file_and_its_permissions_hold() {
    let (operator, account, user) =
        (nkeys::KeyPair::new_operator(), nkeys::KeyPair::new_account(), nkeys::KeyPair::new_user());
    let operator_jwt = nats_jwt(&operator, &operator.public_key(), "op", json!({"type": "operator", "version": 2}));
    let unlimited = json!({"subs": -1, "data": -1, "payload": -1, "imports": -1, "exports": -1, "wildcards": true,
        "conn": -1, "leaf": -1, "mem_storage": -1, "disk_storage": -1, "streams": -1, "consumer": -1});
    let account_jwt = nats_jwt(
        &operator,
        &account.public_key(),
        "troupe",
        json!({"type": "account", "version": 2, "limits": unlimited}),
    );
    // the user may do what Troupe does, not delete streams (as docs/deployment.md configures)
    let user_jwt = nats_jwt(
        &account,
        &user.public_key(),
        "troupe-app",
        json!({"type": "user", "version": 2, "subs": -1, "data": -1, "payload": -1,
            "pub": {"deny": ["$JS.API.STREAM.DELETE.>"]}, "sub": {}}),
    );
    // JetStream needs the server's own (system) account
    let system = nkeys::KeyPair::new_account();
    let system_jwt =
        nats_jwt(&operator, &system.public_key(), "SYS", json!({"type": "account", "version": 2, "limits": {}}));
    let config = format!(
        "operator: {operator_jwt}\nsystem_account: {sys}\nresolver: MEMORY\n\
         resolver_preload: {{\n  {sys}: {system_jwt}\n  {}: {account_jwt}\n}}\n",
        account.public_key(),
        sys = system.public_key(),
    );
    let nats = troupe_testkit::NatsServer::with_config(&config).await;
    assert!(async_nats::connect(&nats.url).await.is_err(), "the server admits no anonymous client");
    let dir = tempfile::tempdir().unwrap();
    let creds = dir.path().join("troupe.creds");
    std::fs::write(
        &creds,
        format!(
            "-----BEGIN NATS USER JWT-----\n{user_jwt}\n------END NATS USER JWT------\n\n\
             -----BEGIN USER NKEY SEED-----\n{}\n------END USER NKEY SEED------\n",
            user.seed().unwrap()
        ),
    )
    .unwrap();

    let t = Troupe::start_with(&[("AP_NATS_URL", &nats.url), ("AP_NATS_CREDS", creds.to_str().unwrap())]).await;
    let id = t.publish(webhook_flow(respond(json!({"ok": true})))).await;
    assert_eq!(t.webhook(&id, "/sync", json!({})).await.status(), 200, "a run end to end through the creds' user");
    // the user's permissions are the server's to enforce: a stolen creds file cannot delete
    let client = async_nats::ConnectOptions::with_credentials_file(&creds).await.unwrap().connect(&nats.url).await;
    let mut js = async_nats::jetstream::new(client.unwrap());
    js.set_timeout(std::time::Duration::from_secs(1));
    assert!(js.delete_stream("AP_WEBHOOKS").await.is_err(), "the creds' user cannot delete a stream");
    assert!(js.get_stream("AP_WEBHOOKS").await.is_ok(), "the stream is still there");
}
