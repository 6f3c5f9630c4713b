//! npm pieces in runs: which installed version a step uses, the piece loaded in the sandbox
//! once per process, and the context its actions reach through host calls (the run's store,
//! connections, waitpoints, files).

use crate::code::CodeRunner;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Instant;
use troupe_pieces::egress::Egress;
use troupe_pieces::installed::InstalledPieces;
use troupe_pieces::runtime::{self, HostOps, LoadedPiece, LoadedPieces};
use troupe_sandbox::{Outcome, SandboxError};
use troupe_store::piece::PieceRecord;
use troupe_store::{Store, StoreError};

/// Time a piece has to load (parse and initialise its modules) the first time it is used.
const LOAD_BUDGET: std::time::Duration = std::time::Duration::from_secs(30);

pub struct NpmPieces {
    pub installed: Arc<InstalledPieces>,
    loaded: LoadedPieces,
}

impl NpmPieces {
    pub fn new(installed: Arc<InstalledPieces>) -> NpmPieces {
        NpmPieces { installed, loaded: LoadedPieces::default() }
    }

    /// Pieces installed in `store`, fetched from `NPM_CONFIG_REGISTRY`.
    pub fn from_config(config: &troupe_store::Config, store: &Store) -> NpmPieces {
        let registry = troupe_pieces::registry::Registry::new(&config.npm_registry, Some(config.npm_cache_dir.clone()));
        NpmPieces::new(Arc::new(InstalledPieces::new(store.clone(), registry)))
    }

    /// The newest installed version of `name` that `spec` admits, as Activepieces resolves a
    /// step's `pieceVersion`: `^1.2.0` below the next major, `~0.3.0` below the next minor,
    /// an exact version only itself, none any.
    pub fn resolve_installed(store: &Store, name: &str, spec: Option<&str>) -> Result<Option<PieceRecord>, StoreError> {
        let mut versions = store.piece_versions(name)?;
        versions.retain(|r| troupe_pieces::resolve::admits_piece_version(spec, &r.version));
        versions.sort_by(|a, b| troupe_pieces::version_order(&a.version, &b.version));
        Ok(versions.pop())
    }

    /// `record` loaded in the sandbox: at most once per process, its metadata saved with the
    /// record the first time.
    pub async fn load(
        &self,
        store: &Store,
        code: &CodeRunner,
        egress: Arc<Egress>,
        record: &PieceRecord,
    ) -> Result<Arc<LoadedPiece>, SandboxError> {
        self.loaded
            .get_or_load(&record.key(), || async {
                let started = Instant::now();
                let files = self.installed.files(record).await.map_err(|e| SandboxError::Invalid(e.to_string()))?;
                let record_for_load = record.clone();
                let deadline = Instant::now() + LOAD_BUDGET;
                let loaded = code
                    .blocking(move |s| runtime::load(s, &record_for_load, files, egress, deadline))
                    .await
                    .map_err(|e| match e {
                        SandboxError::Failed(m) => SandboxError::Invalid(format!(
                            "{}@{} cannot run in Troupe's sandbox: {m}",
                            record.name, record.version
                        )),
                        other => other,
                    })?;
                tracing::info!(
                    piece = record.key(),
                    took_ms = started.elapsed().as_millis() as u64,
                    resident_bytes = loaded.resident_bytes(),
                    "piece loaded"
                );
                if record.metadata.is_none() {
                    let mut with = record.clone();
                    with.metadata = Some(loaded.metadata.clone());
                    if let Err(e) = store.put_piece(&with) {
                        tracing::warn!(piece = record.key(), error = %e, "could not save the piece's metadata");
                    }
                }
                Ok(loaded)
            })
            .await
    }
}

/// What an action needs from its run: where it is, and the store its context reaches.
pub struct RunFacts {
    pub store: Store,
    pub project_id: String,
    pub flow_id: String,
    pub store_value_max: usize,
    /// `{base}/api/v1/flow-runs/{run}/requests/`: a waitpoint's id completes it.
    pub resume_base: String,
    /// Connections the action may read with `context.connections.get`, by name.
    pub connections: ConnectionLookup,
    /// When set, the hook's store writes are kept here (by entry key; `None` a delete) instead
    /// of written, for the caller to apply later (a polling trigger's, after its items are
    /// published); reads see them.
    pub buffer: Option<StoreBuffer>,
    /// Set when a request of the call was answered 401.
    pub unauthorized: Option<Arc<std::sync::atomic::AtomicBool>>,
}

impl RunFacts {
    /// The facts of a call for `flow_id` of `project_id` (empty outside a flow): its store,
    /// the project's connections; no resume URL, writes made at once.
    pub fn of(store: &Store, config: &troupe_store::Config, project_id: &str, flow_id: &str) -> RunFacts {
        RunFacts {
            store: store.clone(),
            project_id: project_id.to_string(),
            flow_id: flow_id.to_string(),
            store_value_max: config.store_value_max_bytes,
            resume_base: String::new(),
            connections: connection_lookup(store, project_id),
            buffer: None,
            unauthorized: None,
        }
    }
}

/// The `server` of a piece's context: Troupe's API (`apiUrl`, `publicUrl`, with their
/// trailing slash as Activepieces gives them) and the token a piece calls it back with.
pub fn server_context(config: &troupe_store::Config, token: &str) -> Value {
    let api = format!("{}/api/", config.public_url());
    json!({"apiUrl": api, "publicUrl": api, "token": token})
}

/// A connection's value as npm pieces of context versions 1 and 2 take it: whole, with its
/// `type`.
pub fn typed_connection(kind: troupe_store::connection::ConnectionType, mut secret: Value) -> Value {
    if let Some(m) = secret.as_object_mut() {
        m.insert("type".into(), kind.as_str().into());
    }
    secret
}

pub type StoreBuffer = Arc<std::sync::Mutex<std::collections::BTreeMap<String, Option<Value>>>>;

/// A project's connection by name, its value whole (with its `type`).
pub type ConnectionLookup = Arc<dyn Fn(&str) -> Result<Option<Value>, StoreError> + Send + Sync>;

/// The host calls of an action's context, answered for the run of `facts`.
pub fn host_ops(facts: RunFacts) -> HostOps {
    Arc::new(move |r: &Value| {
        let ok = |v: Value| {
            let mut v = v;
            v["ok"] = true.into();
            v
        };
        let fail = |m: String| json!({"ok": false, "error": m});
        let key = || -> String {
            let key = r["key"].as_str().unwrap_or_default();
            match r["scope"].as_str() {
                Some("COLLECTION") => format!("project/{}/{key}", facts.project_id),
                _ => format!("flow/{}/{key}", facts.flow_id),
            }
        };
        if let Some(buffer) = &facts.buffer {
            let mut buffer = buffer.lock().unwrap();
            match r["op"].as_str().unwrap_or_default() {
                "store.get" => {
                    if let Some(v) = buffer.get(&key()) {
                        return Some(ok(json!({"value": v})));
                    }
                }
                "store.put" => {
                    buffer.insert(key(), Some(r["value"].clone()));
                    return Some(ok(json!({})));
                }
                "store.delete" => {
                    buffer.insert(key(), None);
                    return Some(ok(json!({})));
                }
                _ => {}
            }
        }
        Some(match r["op"].as_str().unwrap_or_default() {
            "unauthorized" => {
                if let Some(flag) = &facts.unauthorized {
                    flag.store(true, std::sync::atomic::Ordering::SeqCst);
                }
                ok(json!({}))
            }
            "store.get" => match facts.store.entry_get(&key()) {
                Ok(v) => ok(json!({"value": v})),
                Err(e) => fail(e.to_string()),
            },
            "store.put" => {
                let value = &r["value"];
                let size = serde_json::to_vec(value).map(|v| v.len()).unwrap_or(0);
                if size > facts.store_value_max {
                    fail(format!(
                        "StorageLimitError: the value is {size} bytes; stored values may have at most {} bytes",
                        facts.store_value_max
                    ))
                } else {
                    match facts.store.entry_put(&key(), value) {
                        Ok(()) => ok(json!({})),
                        Err(e) => fail(e.to_string()),
                    }
                }
            }
            "store.delete" => match facts.store.entry_delete(&key()) {
                Ok(()) => ok(json!({})),
                Err(e) => fail(e.to_string()),
            },
            "waitpoint" | "resumeUrl" => {
                let id = r["id"].as_str().map(str::to_string).unwrap_or_else(troupe_store::ids::new_id);
                ok(json!({"id": id, "resumeUrl": format!("{}{id}", facts.resume_base)}))
            }
            "connection" => match (facts.connections)(r["name"].as_str().unwrap_or_default()) {
                Ok(v) => ok(json!({"value": v})),
                Err(e) => fail(e.to_string()),
            },
            "files.write" => {
                // no file service yet: the file travels as a data URL, which FILE props take
                let name = r["fileName"].as_str().unwrap_or("file");
                let mime = mime_of(name);
                ok(json!({"url": format!("data:{mime};base64,{}", r["base64"].as_str().unwrap_or_default())}))
            }
            _ => return None,
        })
    })
}

fn mime_of(name: &str) -> &'static str {
    match name.rsplit('.').next().unwrap_or_default().to_ascii_lowercase().as_str() {
        "json" => "application/json",
        "txt" => "text/plain",
        "csv" => "text/csv",
        "html" => "text/html",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "pdf" => "application/pdf",
        _ => "application/octet-stream",
    }
}

/// Calls `operation` of a loaded piece on the blocking pool.
pub async fn call(
    code: &CodeRunner,
    piece: Arc<LoadedPiece>,
    operation: runtime::Operation,
    request: Value,
    deadline: Instant,
    egress: Arc<Egress>,
    ops: HostOps,
) -> Result<Outcome, SandboxError> {
    code.blocking(move |s| runtime::call(s, &piece, operation, &request, deadline, egress, ops)).await
}

/// A project's connection by name, typed, for operations outside a run.
pub fn connection_lookup(store: &Store, project_id: &str) -> ConnectionLookup {
    let (store, project) = (store.clone(), project_id.to_string());
    Arc::new(move |name: &str| {
        let Some(conn) = store.connection_by_name(&project, name)? else { return Ok(None) };
        Ok(Some(typed_connection(conn.kind, store.connection_value(&conn)?)))
    })
}

/// The name in `{{connections['name']}}` (or `{{connections.name}}`), when `value` is exactly
/// that template.
pub fn connection_template(value: &Value) -> Option<&str> {
    let inner = value.as_str()?.trim().strip_prefix("{{")?.strip_suffix("}}")?.trim();
    let rest = inner.strip_prefix(crate::validate::CONNECTIONS)?;
    let name = match rest.strip_prefix('.') {
        Some(n) => n,
        None => {
            rest.strip_prefix("['")?.strip_suffix("']").or_else(|| rest.strip_prefix("[\"")?.strip_suffix("\"]"))?
        }
    };
    (!name.is_empty()).then_some(name)
}

/// Runs one action of a loaded piece on the blocking pool.
pub async fn run_action(
    code: &CodeRunner,
    piece: Arc<LoadedPiece>,
    request: Value,
    deadline: Instant,
    egress: Arc<Egress>,
    ops: HostOps,
) -> Result<Outcome, SandboxError> {
    code.blocking(move |s| runtime::run_action(s, &piece, &request, deadline, egress, ops)).await
}

/// The polling triggers of npm pieces, for the scheduler.
pub struct NpmTriggers {
    pub npm: Arc<NpmPieces>,
    pub code: Arc<CodeRunner>,
    pub egress: Arc<Egress>,
    pub store: Store,
    pub config: troupe_store::Config,
}

/// The metadata of an installed npm piece's trigger (its `type`, `handshakeConfiguration`,
/// `renewConfiguration`, …); `None` for Troupe's own triggers, which stay native whatever
/// `AP_NATIVE_PIECES` says, and for what is not installed.
pub fn trigger_metadata(store: &Store, piece: &str, version: Option<&str>, trigger: &str) -> Option<Value> {
    if crate::pieces::catalog::piece(piece).is_some() {
        return None;
    }
    let mut metadata = NpmPieces::resolve_installed(store, piece, version).ok().flatten()?.metadata?;
    Some(metadata["triggers"][trigger].take()).filter(|t| !t.is_null())
}

/// The strategy of an installed npm piece's trigger (`POLLING`, `WEBHOOK`, `APP_WEBHOOK`).
pub fn npm_trigger_type(store: &Store, piece: &str, version: Option<&str>, trigger: &str) -> Option<String> {
    trigger_metadata(store, piece, version, trigger)?["type"].as_str().map(str::to_string)
}

impl troupe_scheduler::PieceTriggers for NpmTriggers {
    fn trigger_type(&self, store: &Store, piece: &str, version: Option<&str>, trigger: &str) -> Option<String> {
        npm_trigger_type(store, piece, version, trigger)
    }

    fn renew_cron(&self, store: &Store, piece: &str, version: Option<&str>, trigger: &str) -> Option<String> {
        let renew = trigger_metadata(store, piece, version, trigger)?["renewConfiguration"].take();
        (renew["strategy"] == "CRON").then(|| renew["cronExpression"].as_str().map(str::to_string)).flatten()
    }

    fn poll<'a>(
        &'a self,
        flow: &'a troupe_store::flow::Flow,
        version: &'a troupe_store::flow::FlowVersion,
        enable: bool,
    ) -> futures::future::BoxFuture<'a, Result<troupe_scheduler::Polled, troupe_scheduler::PollFailed>> {
        use futures::FutureExt;
        self.hook(flow, version, if enable { "onEnable" } else { "run" }, None, true).boxed()
    }

    fn call_hook<'a>(
        &'a self,
        flow: &'a troupe_store::flow::Flow,
        version: &'a troupe_store::flow::FlowVersion,
        hook: &'a str,
    ) -> futures::future::BoxFuture<'a, Result<(), troupe_scheduler::PollFailed>> {
        use futures::FutureExt;
        async move { self.hook(flow, version, hook, None, false).await.map(|_| ()) }.boxed()
    }
}

impl NpmTriggers {
    /// An app webhook for `piece` (its newest installed version): whether `payload` is signed
    /// with the app's secret (`events.verify`), and what `events.parseAndReply` makes of it
    /// (`{reply}`, or `{event, identifierValue}`).
    pub async fn app_event(&self, piece: &str, payload: &Value, secret: &str) -> Result<(bool, Value), String> {
        let short = piece.strip_prefix("@activepieces/piece-").unwrap_or(piece);
        let request = json!({
            "payload": payload,
            "webhookSecret": secret,
            "appWebhookUrl": format!("{}/api/v1/app-events/{short}", self.config.public_url()),
        });
        let facts = RunFacts::of(&self.store, &self.config, "", "");
        let outcome = self.call_piece(piece, None, runtime::Operation::AppEvent, request, facts).await?;
        Ok((outcome.output["verified"] == true, outcome.output["parsed"].clone()))
    }

    /// Calls `operation` of the installed version of `piece` that `version` admits, loading it
    /// if this process has not, within `AP_TRIGGER_TIMEOUT_SECONDS`.
    async fn call_piece(
        &self,
        piece: &str,
        version: Option<&str>,
        operation: runtime::Operation,
        request: Value,
        facts: RunFacts,
    ) -> Result<Outcome, String> {
        let record = NpmPieces::resolve_installed(&self.store, piece, version)
            .map_err(|e| e.to_string())?
            .ok_or_else(|| format!("{piece} is not installed"))?;
        let loaded =
            self.npm.load(&self.store, &self.code, self.egress.clone(), &record).await.map_err(|e| e.to_string())?;
        let deadline = Instant::now() + self.config.trigger_timeout;
        call(&self.code, loaded, operation, request, deadline, self.egress.clone(), host_ops(facts))
            .await
            .map_err(|e| e.to_string())
    }

    /// The triggers runner of an engine.
    pub fn of(ctx: &crate::context::EngineCtx) -> NpmTriggers {
        NpmTriggers {
            npm: ctx.npm.clone(),
            code: ctx.code.clone(),
            egress: ctx.egress.clone(),
            store: ctx.store.clone(),
            config: ctx.config.clone(),
        }
    }

    /// What `hook` (`onHandshake`) answers for `payload`.
    pub async fn hook_output(
        &self,
        flow: &troupe_store::flow::Flow,
        version: &troupe_store::flow::FlowVersion,
        hook: &str,
        payload: &Value,
    ) -> Result<Value, troupe_scheduler::PollFailed> {
        self.hook(flow, version, hook, Some(payload), false).await.map(|p| p.output)
    }

    /// Calls `hook` of the flow's trigger; with `buffered`, its store writes are returned
    /// rather than written.
    pub async fn hook(
        &self,
        flow: &troupe_store::flow::Flow,
        version: &troupe_store::flow::FlowVersion,
        hook: &str,
        payload: Option<&Value>,
        buffered: bool,
    ) -> Result<troupe_scheduler::Polled, troupe_scheduler::PollFailed> {
        use troupe_scheduler::PollFailed;
        let t = &version.trigger;
        let piece = t.settings.piece_name.as_deref().unwrap_or_default();
        let trigger = t.settings.trigger_name.as_deref().unwrap_or_default();
        let lookup = connection_lookup(&self.store, &flow.project_id);
        let mut input = t.settings.input.clone().unwrap_or_default();
        if let Some(name) = input.get("auth").and_then(connection_template).map(str::to_string) {
            let value = lookup(&name)
                .map_err(|e| PollFailed(e.to_string()))?
                .ok_or_else(|| PollFailed(format!("connection {name:?} does not exist in this project")))?;
            input.insert("auth".into(), value);
        }
        let request = json!({
            "trigger": trigger,
            "hook": hook,
            "input": input,
            "webhookUrl": format!("{}/api/v1/webhooks/{}", self.config.public_url(), flow.id),
            "payload": payload,
            "projectId": flow.project_id,
            "flowId": flow.id,
            "flowVersionId": version.id,
            "storeKeyMax": self.config.store_key_max_chars,
            "server": server_context(&self.config, ""),
        });
        let buffer = StoreBuffer::default();
        let facts = RunFacts {
            connections: lookup,
            buffer: buffered.then(|| buffer.clone()),
            ..RunFacts::of(&self.store, &self.config, &flow.project_id, &flow.id)
        };
        let version_spec = t.settings.piece_version.as_deref();
        let outcome = self
            .call_piece(piece, version_spec, runtime::Operation::Trigger, request, facts)
            .await
            .map_err(PollFailed)?;
        let output = outcome.output["output"].clone();
        // `run` and `test` answer items; the other hooks do not
        let items = match (matches!(hook, "run" | "test"), output.clone()) {
            (true, Value::Array(items)) => items,
            (true, Value::Null) | (false, _) => Vec::new(),
            (true, other) => return Err(PollFailed(format!("the trigger's run gave {other}, not a list"))),
        };
        let writes = std::mem::take(&mut *buffer.lock().unwrap()).into_iter().collect();
        let listeners = outcome.output["listeners"].as_array().cloned().unwrap_or_default();
        let schedule = outcome.output["schedule"].clone();
        Ok(troupe_scheduler::Polled { items, output, writes, listeners, schedule })
    }
}
