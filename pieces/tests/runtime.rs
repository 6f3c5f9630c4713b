//! Real pieces from the npm registry (cached under the target directory), loaded in the real
//! sandbox: their metadata, and actions run with a context whose host calls the test answers.

use serde_json::{json, Value};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};
use troupe_pieces::egress::Egress;
use troupe_pieces::installed::InstalledPieces;
use troupe_pieces::registry::{Registry, DEFAULT_REGISTRY};
use troupe_pieces::runtime::{self, HostOps, LoadedPiece};
use troupe_sandbox::{Limits, Sandbox, SandboxError};

fn sandbox() -> &'static Sandbox {
    static SANDBOX: OnceLock<Sandbox> = OnceLock::new();
    SANDBOX.get_or_init(|| Sandbox::new(Limits::default(), None).unwrap())
}

fn egress() -> Arc<Egress> {
    let config = troupe_store::Config::from_lookup(|k| match k {
        "AP_SSRF_ALLOW_LIST" => Some("127.0.0.1".into()),
        _ => None,
    })
    .unwrap();
    Arc::new(Egress::new(&config).unwrap())
}

async fn load(name: &str, version: &str) -> LoadedPiece {
    let dir = tempfile::tempdir().unwrap();
    let store = troupe_store::Store::open(dir.path()).unwrap();
    let cache = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("npm-cache");
    let pieces = InstalledPieces::new(store, Registry::new(DEFAULT_REGISTRY, Some(cache)));
    let record = pieces.add(name, version, None).await.unwrap();
    let files = pieces.files(&record).await.unwrap();
    let egress = egress();
    let what = format!("{name}@{version}");
    tokio::task::spawn_blocking(move || {
        let started = Instant::now();
        let loaded = runtime::load(sandbox(), &record, files, egress, Instant::now() + Duration::from_secs(60));
        eprintln!("{what} loaded in {:?}", started.elapsed());
        loaded
    })
    .await
    .unwrap()
    .unwrap_or_else(|e| panic!("{name}@{version} did not load: {e}"))
}

/// Host calls answered from a map: the store, and waitpoints with a fixed URL.
fn ops(store: Arc<Mutex<HashMap<String, Value>>>) -> HostOps {
    Arc::new(move |r: &Value| {
        let key = format!("{}/{}", r["scope"].as_str().unwrap_or("FLOW"), r["key"].as_str().unwrap_or_default());
        Some(match r["op"].as_str()? {
            "store.put" => {
                store.lock().unwrap().insert(key, r["value"].clone());
                json!({"ok": true})
            }
            "store.get" => json!({"ok": true, "value": store.lock().unwrap().get(&key).cloned()}),
            "store.delete" => {
                store.lock().unwrap().remove(&key);
                json!({"ok": true})
            }
            "waitpoint" | "resumeUrl" => {
                json!({"ok": true, "id": "req-1", "resumeUrl": "http://troupe.test/resume/req-1"})
            }
            _ => return None,
        })
    })
}

async fn run(piece: Arc<LoadedPiece>, request: Value, ops: HostOps) -> Result<Value, SandboxError> {
    let egress = egress();
    tokio::task::spawn_blocking(move || {
        let deadline = Instant::now() + Duration::from_secs(30);
        runtime::run_action(sandbox(), &piece, &request, deadline, egress, ops).map(|o| o.output)
    })
    .await
    .unwrap()
}

fn request(action: &str, input: Value) -> Value {
    json!({
        "action": action, "input": input, "executionType": "BEGIN", "runId": "run-1", "projectId": "p",
        "flowId": "f", "flowVersionId": "v", "stepName": "step_1", "storeKeyMax": 128,
        "server": {"apiUrl": "http://troupe.test/api/", "publicUrl": "http://troupe.test/api/", "token": ""},
    })
}

#[tokio::test]
async fn a_bundled_piece_loads_and_gives_activepieces_metadata() {
    let slack = load("@activepieces/piece-slack", "0.17.9").await;
    let m = &slack.metadata;
    assert_eq!(m["name"], "@activepieces/piece-slack");
    assert_eq!(m["version"], "0.17.9");
    assert_eq!(m["displayName"], "Slack");
    // two ways to connect: OAuth2, or a bot token
    assert_eq!(
        (m["auth"][0]["type"].as_str(), m["auth"][1]["type"].as_str()),
        (Some("OAUTH2"), Some("CUSTOM_AUTH")),
        "{}",
        m["auth"]
    );
    let send = &m["actions"]["send_channel_message"];
    assert_eq!(send["name"], "send_channel_message");
    assert_eq!(send["props"]["text"]["type"], "LONG_TEXT", "{}", send["props"]);
    assert!(m["triggers"].as_object().is_some_and(|t| !t.is_empty()));
    eprintln!("slack: {} bytes resident", slack.resident_bytes());
}

#[tokio::test]
async fn a_compiled_piece_with_dependencies_runs_its_actions_and_pauses() {
    let delay = Arc::new(load("@activepieces/piece-delay", "0.3.26").await);
    assert_eq!(delay.metadata["actions"]["delayFor"]["displayName"], "Delay For");
    let store = Arc::new(Mutex::new(HashMap::new()));
    // a short delay waits in the action, in real time
    let started = Instant::now();
    let out = run(delay.clone(), request("delayFor", json!({"unit": "seconds", "delayFor": "1"})), ops(store.clone()))
        .await
        .unwrap();
    assert_eq!(out["output"], json!({"delayForInMs": 1000, "success": true}), "{out}");
    assert_eq!(out["hook"]["type"], "none");
    assert!(started.elapsed() >= Duration::from_secs(1), "the timer did not wait: {:?}", started.elapsed());
    // a long one pauses the run until a date
    let out = run(delay.clone(), request("delayFor", json!({"unit": "minutes", "delayFor": 5})), ops(store.clone()))
        .await
        .unwrap();
    assert_eq!(out["hook"]["type"], "paused", "{out}");
    assert_eq!(out["hook"]["waitpoint"]["type"], "DELAY");
    assert!(out["hook"]["waitpoint"]["resumeDateTime"].as_str().unwrap().ends_with("GMT"));
    // the props are validated as Activepieces does
    let err =
        run(delay, request("delayFor", json!({"unit": "seconds", "delayFor": "soon"})), ops(store)).await.unwrap_err();
    assert!(err.to_string().contains("Expected number, received: soon"), "{err}");
}

#[tokio::test]
async fn a_piece_uses_its_context_store() {
    let piece = Arc::new(load("@activepieces/piece-store", "0.6.20").await);
    let store = Arc::new(Mutex::new(HashMap::new()));
    let put = request("put", json!({"key": "greeting", "value": "hello", "store_scope": "COLLECTION"}));
    let out = run(piece.clone(), put, ops(store.clone())).await.unwrap();
    assert_eq!(out["output"], "hello", "{out}");
    assert_eq!(store.lock().unwrap().get("COLLECTION/greeting"), Some(&json!("hello")));
    let get = request("get", json!({"key": "greeting", "store_scope": "COLLECTION"}));
    let out = run(piece, get, ops(store)).await.unwrap();
    assert_eq!(out["output"], "hello", "{out}");
}
