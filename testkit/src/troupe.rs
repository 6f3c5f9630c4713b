//! The harness of the integration tests: starts the real `troupe` binary (with its embedded
//! nats-server) on a free loopback port, in a temp dir, and talks to it over HTTP; and the flow
//! pieces tests build from (webhook trigger, steps, chains, fixtures).
//!
//! Only the `troupe` package's own test crate can name the binary (Cargo sets
//! `CARGO_BIN_EXE_troupe` for it alone), and this crate must not depend on that package: the
//! test crate passes it in as a [`Build`], and the `Troupe` it starts keeps it for restarts.

use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub use crate::{free_port, nats_server_bin, NatsServer};

pub const KEY: &str = "sk-test-key";

/// The build under test, as the test crate of the `troupe` package names it:
/// `Build { exe: env!("CARGO_BIN_EXE_troupe"), tmpdir: env!("CARGO_TARGET_TMPDIR") }`.
#[derive(Clone, Copy, Debug)]
pub struct Build {
    /// The `troupe` binary.
    pub exe: &'static str,
    /// A folder that outlives one test, shared by every test of this build.
    pub tmpdir: &'static str,
}

impl Build {
    /// Where every test's troupe keeps compiled sandbox modules.
    pub fn sandbox_cache(&self) -> PathBuf {
        Path::new(self.tmpdir).join("sandbox-cache")
    }
}

/// Compiles the JavaScript engine into the shared cache before a troupe starts, so that a cold
/// cache (the first test on a fresh checkout) costs this wait once instead of eating into the
/// deadline of a test's first code step.
fn warm_sandbox_cache(build: Build) {
    static WARM: std::sync::Once = std::sync::Once::new();
    WARM.call_once(|| {
        troupe_sandbox::Sandbox::new(troupe_sandbox::Limits::default(), Some(build.sandbox_cache()))
            .expect("the sandbox builds");
    });
}

pub struct Troupe {
    build: Build,
    pub dir: tempfile::TempDir,
    pub port: u16,
    pub env: Vec<(String, String)>,
    child: Option<Child>,
    pub client: reqwest::Client,
    pub scheme: &'static str,
    /// Where troupe's stderr goes, when a test reads its logs.
    pub log: Option<PathBuf>,
}

impl Troupe {
    /// Starts `build`'s troupe with `env` added to its environment, and waits until it listens;
    /// with `logged`, its stderr (its logs) is kept in `self.log`. Tests call it through the
    /// test crate's `Troupe::start()`, `start_with(env)` and `start_logged(env)`.
    pub async fn launch(build: Build, env: &[(&str, &str)], logged: bool) -> Troupe {
        warm_sandbox_cache(build);
        let dir = tempfile::tempdir().unwrap();
        let log = logged.then(|| dir.path().join("troupe.log"));
        let mut t = Troupe {
            build,
            dir,
            port: free_port(),
            env: env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            child: None,
            client: reqwest::Client::new(),
            scheme: "http",
            log,
        };
        t.spawn().await;
        t
    }

    /// Starts troupe on `self.port`; true once it answers its health check, false when it
    /// exited first (its port was taken: `free_port` only picks a port that was free).
    async fn spawn_once(&mut self) -> bool {
        let mut cmd = Command::new(self.build.exe);
        cmd.arg("serve")
            .env("AP_CONFIG_PATH", self.dir.path())
            .env("AP_PORT", self.port.to_string())
            .env("AP_API_KEY", KEY)
            .env("AP_SHARDS", "4")
            // the tests' fake services listen on loopback, which SSRF protection refuses by default
            .env("AP_SSRF_ALLOW_LIST", "127.0.0.1,::1")
            .env("NATS_SERVER_BIN", nats_server_bin())
            .env("RUST_LOG", "warn")
            // every test's troupe shares the compiled QuickJS and WASI modules
            .env("AP_SANDBOX_CACHE_DIR", self.build.sandbox_cache())
            .stdout(Stdio::null())
            .stderr(match &self.log {
                Some(path) => Stdio::from(std::fs::OpenOptions::new().create(true).append(true).open(path).unwrap()),
                None => Stdio::inherit(),
            });
        for (k, v) in &self.env {
            cmd.env(k, v);
            if k == "AP_TLS_CERT" {
                self.scheme = "https";
            }
        }
        self.child = Some(cmd.spawn().expect("start troupe"));
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if self.answers().await {
                return true;
            }
            if self.child.as_mut().is_some_and(|c| c.try_wait().ok().flatten().is_some()) {
                return false;
            }
            assert!(Instant::now() < deadline, "troupe did not start");
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// Whether troupe itself answers on its port: its health check over HTTP, not merely
    /// something accepting connections there (another test's server may hold a port that was
    /// free when it was picked).
    async fn answers(&self) -> bool {
        if self.scheme == "https" {
            return tokio::net::TcpStream::connect(("127.0.0.1", self.port)).await.is_ok();
        }
        let health = self.client.get(self.url("/health")).timeout(Duration::from_secs(2)).send().await;
        match health {
            Ok(r) if r.status().is_success() => r.json::<Value>().await.is_ok_and(|v| v["status"] == "ok"),
            _ => false,
        }
    }

    /// Starts troupe; when the port it was given was taken meanwhile, on another one.
    pub async fn spawn(&mut self) {
        for _ in 0..3 {
            if self.spawn_once().await {
                return;
            }
            self.port = free_port();
        }
        panic!("troupe did not start: it exited three times (see its log)");
    }

    /// SIGTERM, then wait for the exit.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let mut c = self.child.take().expect("running");
        let _ = Command::new("kill").args(["-TERM", &c.id().to_string()]).status();
        c.wait().unwrap()
    }

    /// Waits (up to `within`) for troupe to exit by itself; its exit status.
    pub async fn wait_exit(&mut self, within: Duration) -> std::process::ExitStatus {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.as_mut().expect("running").try_wait().unwrap() {
                self.child = None;
                return status;
            }
            assert!(Instant::now() < deadline, "troupe did not exit within {within:?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// kill -9, as a crash would.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        // troupe's embedded nats-server follows its parent (PR_SET_PDEATHSIG); wait until it is gone
        let pattern = format!("nats-server -c {}", self.dir.path().join("nats").join("nats.conf").display());
        let deadline = Instant::now() + Duration::from_secs(10);
        while Command::new("pgrep").args(["-f", &pattern]).stdout(Stdio::null()).status().is_ok_and(|s| s.success()) {
            assert!(Instant::now() < deadline, "the embedded nats-server outlived troupe");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}://127.0.0.1:{}{}", self.scheme, self.port, path)
    }

    pub async fn api(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut req = self.client.request(method, self.url(&format!("/api/v1{path}"))).bearer_auth(KEY);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        self.api(reqwest::Method::GET, path, None).await
    }

    pub async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        self.api(reqwest::Method::POST, path, Some(body)).await
    }

    /// Creates a flow, imports `flow` (an IMPORT_FLOW request) and publishes it.
    pub async fn publish(&self, flow: Value) -> String {
        let id = self.import(flow).await;
        let (s, b) = self.post(&format!("/flows/{id}"), json!({"type": "LOCK_AND_PUBLISH", "request": {}})).await;
        assert_eq!(s, 200, "publish: {b}");
        id
    }

    /// Imports `flow` into a new flow and tries to publish it: it must be refused (400); the
    /// answer says why.
    pub async fn publish_refused(&self, flow: Value) -> Value {
        let id = self.import(flow).await;
        let (s, b) = self.post(&format!("/flows/{id}"), json!({"type": "LOCK_AND_PUBLISH", "request": {}})).await;
        assert_eq!(s, 400, "{b}");
        b
    }

    pub async fn import(&self, flow: Value) -> String {
        let (s, created) = self.post("/flows", json!({"displayName": "test"})).await;
        assert_eq!(s, 201, "{created}");
        let id = created["id"].as_str().unwrap().to_string();
        let (s, b) = self.post(&format!("/flows/{id}"), json!({"type": "IMPORT_FLOW", "request": flow})).await;
        assert_eq!(s, 200, "import: {b}");
        id
    }

    pub async fn webhook(&self, flow_id: &str, suffix: &str, body: Value) -> reqwest::Response {
        self.client.post(self.url(&format!("/api/v1/webhooks/{flow_id}{suffix}"))).json(&body).send().await.unwrap()
    }

    /// Waits until the flow has `n` runs in a terminal status; returns them.
    pub async fn wait_runs(&self, flow_id: &str, n: usize) -> Vec<Value> {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let runs = self.all_runs(flow_id).await;
            let done =
                runs.iter().filter(|r| !matches!(r["status"].as_str(), Some("QUEUED" | "RUNNING" | "PAUSED"))).count();
            if done >= n {
                return runs;
            }
            if Instant::now() >= deadline {
                let unfinished: Vec<_> = runs
                    .iter()
                    .filter(|r| matches!(r["status"].as_str(), Some("QUEUED" | "RUNNING" | "PAUSED")))
                    .map(|r| format!("{} {} (created {})", r["id"], r["status"], r["created"]))
                    .collect();
                panic!("only {done} of {n} runs finished; unfinished: {unfinished:?}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub async fn all_runs(&self, flow_id: &str) -> Vec<Value> {
        let mut out = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let mut path = format!("/flow-runs?flowId={flow_id}&limit=1000");
            if let Some(c) = &cursor {
                path.push_str(&format!("&cursor={c}"));
            }
            let (s, page) = self.get(&path).await;
            assert_eq!(s, 200, "{page}");
            out.extend(page["data"].as_array().unwrap().iter().cloned());
            match page["next"].as_str() {
                Some(c) => cursor = Some(c.to_string()),
                None => return out,
            }
        }
    }

    /// Waits until the run has `status`; returns it with its steps.
    pub async fn wait_status(&self, run_id: &str, status: &str, within: Duration) -> Value {
        let deadline = Instant::now() + within;
        loop {
            let run = self.run(run_id).await;
            if run["status"] == status {
                return run;
            }
            assert!(Instant::now() < deadline, "run stayed {} instead of {status}: {run}", run["status"]);
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub async fn run(&self, run_id: &str) -> Value {
        let (s, run) = self.get(&format!("/flow-runs/{run_id}")).await;
        assert_eq!(s, 200, "{run}");
        run
    }
}

impl Drop for Troupe {
    fn drop(&mut self) {
        if let Some(c) = &self.child {
            let _ = Command::new("kill").args(["-TERM", &c.id().to_string()]).status();
        }
        if let Some(mut c) = self.child.take() {
            let deadline = Instant::now() + Duration::from_secs(5);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = c.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = c.kill();
        }
    }
}

pub fn fixture(name: &str) -> Value {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures").join(name);
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

/// A webhook trigger followed by `first`.
pub fn webhook_flow(first: Value) -> Value {
    json!({
        "displayName": "test flow",
        "trigger": {"name": "trigger", "type": "PIECE_TRIGGER", "valid": true, "displayName": "Catch Webhook",
            "settings": {"pieceName": "@activepieces/piece-webhook", "pieceVersion": "~0.1.25", "triggerName": "catch_webhook", "input": {}},
            "nextAction": first}
    })
}

pub fn piece(name: &str, piece: &str, action: &str, input: Value) -> Value {
    json!({"name": name, "type": "PIECE", "valid": true, "displayName": name,
        "settings": {"pieceName": format!("@activepieces/piece-{piece}"), "pieceVersion": "~0.1.0", "actionName": action, "input": input}})
}

/// Links steps into a chain with `nextAction`.
pub fn chain(mut steps: Vec<Value>) -> Value {
    let mut next: Option<Value> = None;
    while let Some(mut s) = steps.pop() {
        if let Some(n) = next.take() {
            s["nextAction"] = n;
        }
        next = Some(s);
    }
    next.expect("at least one step")
}

pub fn respond(body: Value) -> Value {
    piece(
        "respond",
        "webhook",
        "return_response",
        json!({"responseType": "json", "respond": "stop", "fields": {"status": 200, "body": body}}),
    )
}

impl Troupe {
    /// kill -9 the embedded nats-server only.
    pub fn kill_embedded_nats(&self) {
        let pattern = format!("nats-server -c {}", self.dir.path().join("nats").join("nats.conf").display());
        let status = Command::new("pkill").args(["-9", "-f", &pattern]).status().unwrap();
        assert!(status.success(), "no embedded nats-server to kill");
    }
}

/// A webhook flow with one step that echoes `trigger.body.n`: counts runs per webhook.
pub fn counting_flow() -> Value {
    webhook_flow(piece("step_1", "data-mapper", "advanced_mapping", json!({"mapping": {"n": "{{trigger.body.n}}"}})))
}

/// A step of the fault-injection piece (`TROUPE_DEBUG_PIECES=1`): `panic`, `sleep`, `fail_unless_flag`.
pub fn debug(name: &str, action: &str, input: Value) -> Value {
    json!({"name": name, "type": "PIECE", "displayName": name,
        "settings": {"pieceName": "@troupe/piece-debug", "pieceVersion": "0.1.0", "actionName": action, "input": input}})
}

/// An Activepieces CODE step running `source` with `input`.
pub fn code(name: &str, source: &str, input: Value) -> Value {
    json!({"name": name, "type": "CODE", "valid": true, "displayName": name,
        "settings": {"input": input, "sourceCode": {"code": source, "packageJson": "{}"}, "errorHandlingOptions": {
            "continueOnFailure": {"value": false}, "retryOnFailure": {"value": false}}}})
}
