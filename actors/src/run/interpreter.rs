//! The step interpreter: walks a flow version's chain of steps for one run, resolves each
//! step's templates, executes it (native piece, code, loop, router) with its retry and
//! continue-on-failure settings, and journals it before the next one starts. It knows nothing
//! of actors: [`Exec::chain`] returns why it stopped, and `super::outcome` records that.

use super::outcome::{panic_message, to_webhook_response};
use super::secrets::Secrets;
use crate::context::EngineCtx;
use crate::metric_definitions::STEP_DURATION;
use crate::pieces::{self, Control, PauseRequest, PieceCtx};
use crate::{router, template};
use futures::future::BoxFuture;
use futures::FutureExt;
use serde_json::{json, Map, Value};
use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tracing::Instrument;
use troupe_store::flow::{Action, ActionType, BranchType, RouterExecutionType};
use troupe_store::run::{FailedStep, FlowRun, PauseMetadata, Resume, RunStatus, StepRecord, StepStatus};

/// `retryOnFailure`: attempts in all, and the first back-off (doubled each time).
pub const RETRY_ATTEMPTS: u32 = 4;
pub const RETRY_BASE_DELAY: Duration = Duration::from_millis(250);
/// How often a running run looks whether it was canceled.
pub const CANCEL_CHECK_EVERY: Duration = Duration::from_millis(50);

type LoopPath = Vec<(String, usize)>;

/// Why a chain of steps stopped early.
pub(crate) enum Halt {
    /// A `return_response` asked the run to stop: it succeeds.
    Stop,
    /// The run was canceled (or ended) from outside: leave its status as it is.
    Ended,
    /// A step paused the run.
    Pause(Box<PauseMetadata>),
    Fail(RunStatus, FailedStep),
}

/// One run's execution state: its outputs so far, what its journal already holds, and what it
/// has written in this execution.
pub(crate) struct Exec<'a> {
    engine: &'a EngineCtx,
    pub(crate) run: FlowRun,
    pub(crate) outputs: Map<String, Value>,
    done: HashMap<(LoopPath, String), StepRecord>,
    /// Records of this execution, for loop iteration outputs.
    pub(crate) records: Vec<StepRecord>,
    next_seq: u32,
    deadline: Instant,
    /// True once the sync caller got its answer (respond and continue).
    pub(crate) replied: bool,
    /// The resume the paused step consumes when execution reaches it again.
    pending_resume: Option<Resume>,
    last_cancel_check: Instant,
    /// What the step being journaled logged (code steps).
    pending_logs: Option<String>,
    /// Connections an npm piece read with `context.connections.get` in the step running now:
    /// their secrets join `secrets` before anything of the step is written.
    read_connections: Arc<std::sync::Mutex<Vec<(troupe_store::connection::ConnectionType, Value)>>>,
    /// Secret values of the connections this run resolved: redacted from everything it writes.
    pub(crate) secrets: Secrets,
    /// A step test (`super::testing`): nothing is journaled in the store, and no shard is
    /// needed.
    pub(crate) testing: bool,
    /// Bytes of journal records written in this execution, against
    /// `AP_MAX_FLOW_RUN_LOG_SIZE_MB`.
    journaled_bytes: usize,
    /// The version writes step outputs as `step_1['output']` (schema 22 and later).
    pub(crate) nested: bool,
    /// Tags the npm step running now added (`context.tags.add`): they join the run's.
    added_tags: Arc<std::sync::Mutex<Vec<String>>>,
    /// Expressions of the step being resolved that threw: they join its logs.
    template_warnings: Vec<String>,
    /// Set when a request of the npm step running now was answered 401.
    unauthorized: Arc<std::sync::atomic::AtomicBool>,
}

/// How a step's own work went wrong.
enum Fault {
    /// The step failed: retried, then continue-on-failure or a FAILED run.
    Failed(String),
    /// The run ends with this status whatever the step's settings say (timeout, memory cap).
    Fatal(RunStatus, String),
}

impl Fault {
    fn from_sandbox(step: &Action, e: troupe_sandbox::SandboxError) -> Fault {
        use troupe_sandbox::SandboxError as E;
        match e {
            E::Failed(m) | E::Invalid(m) => Fault::Failed(m),
            E::Timeout(m) => Fault::Fatal(RunStatus::Timeout, format!("step {:?}: {m}", step.name)),
            E::MemoryLimit(m) => Fault::Fatal(RunStatus::MemoryLimitExceeded, format!("step {:?}: {m}", step.name)),
            E::Internal(m) => Fault::Fatal(RunStatus::InternalError, format!("step {:?}: {m}", step.name)),
        }
    }
}

/// An OAuth2 connection is refreshed when its token expires within this many seconds.
const OAUTH2_REFRESH_MARGIN_SECS: u64 = 15 * 60;

fn failed(step: &Action, message: String) -> FailedStep {
    FailedStep { name: step.name.clone(), display_name: step.display().to_string(), message }
}

fn fault_halt(step: &Action, f: Fault) -> Halt {
    match f {
        Fault::Failed(m) => Halt::Fail(RunStatus::Failed, failed(step, m)),
        Fault::Fatal(status, m) => Halt::Fail(status, failed(step, m)),
    }
}

/// The journal's name of a step type (Activepieces' `type` of a step output).
fn type_name(kind: ActionType) -> &'static str {
    match kind {
        ActionType::Code => "CODE",
        ActionType::Piece => "PIECE",
        ActionType::LoopOnItems => "LOOP_ON_ITEMS",
        ActionType::Router => "ROUTER",
    }
}

/// A journal record in the making: `Entry::new(step, path, status).input(..).output(..)`.
/// Input and output default to `null`, the duration to 0 and the attempts to 1.
struct Entry<'s> {
    step: &'s Action,
    path: &'s [(String, usize)],
    status: StepStatus,
    input: Value,
    output: Value,
    error: Option<String>,
    duration: u64,
    attempts: u32,
}

impl<'s> Entry<'s> {
    fn new(step: &'s Action, path: &'s [(String, usize)], status: StepStatus) -> Entry<'s> {
        Entry { step, path, status, input: Value::Null, output: Value::Null, error: None, duration: 0, attempts: 1 }
    }

    fn failed(step: &'s Action, path: &'s [(String, usize)], message: String) -> Entry<'s> {
        Entry { error: Some(message), ..Entry::new(step, path, StepStatus::Failed) }
    }

    fn input(self, input: Value) -> Entry<'s> {
        Entry { input, ..self }
    }

    fn output(self, output: Value) -> Entry<'s> {
        Entry { output, ..self }
    }

    fn took(self, duration_ms: u64) -> Entry<'s> {
        Entry { duration: duration_ms, ..self }
    }

    fn attempts(self, attempts: u32) -> Entry<'s> {
        Entry { attempts, ..self }
    }
}

impl<'a> Exec<'a> {
    /// The execution of `run` from its `journal` (records of earlier executions, the trigger
    /// record among them unless `trigger_output` is given), with `active_left` of its time.
    pub(crate) fn new(
        engine: &'a EngineCtx,
        run: FlowRun,
        trigger_name: &str,
        trigger_output: Option<Value>,
        journal: Vec<StepRecord>,
        active_left: Duration,
    ) -> Exec<'a> {
        let now = Instant::now();
        let next_seq = journal.iter().map(|r| r.seq + 1).max().unwrap_or(1);
        let mut exec = Exec {
            engine,
            pending_resume: run.resume.clone(),
            last_cancel_check: now,
            outputs: Map::new(),
            done: journal.into_iter().map(|r| ((r.loop_path.clone(), r.step_name.clone()), r)).collect(),
            records: Vec::new(),
            next_seq,
            deadline: now + active_left,
            replied: false,
            pending_logs: None,
            read_connections: Arc::default(),
            secrets: Secrets::default(),
            testing: false,
            unauthorized: Arc::default(),
            template_warnings: Vec::new(),
            added_tags: Arc::default(),
            nested: false,
            journaled_bytes: 0,
            run,
        };
        // the trigger record (seq 0) holds the output the run started from
        let trigger_output = trigger_output
            .or_else(|| exec.done.values().find(|r| r.seq == 0).map(|r| r.output.clone()))
            .unwrap_or_default();
        exec.outputs.insert(trigger_name.to_string(), trigger_output);
        exec.done.retain(|_, r| r.seq != 0);
        exec
    }

    /// Appends one step record to the run's journal (redacted), unless the shard moved.
    fn journal(&mut self, entry: Entry<'_>) {
        let Entry { step, path, status, mut input, mut output, mut error, duration, attempts } = entry;
        let mut logs = self.pending_logs.take();
        if !self.template_warnings.is_empty() {
            let mut warned = std::mem::take(&mut self.template_warnings).join("\n");
            if let Some(l) = logs.take() {
                warned = format!("{warned}\n{l}");
            }
            logs = Some(warned);
        }
        if !self.secrets.is_empty() {
            self.secrets.redact(&mut input);
            self.secrets.redact(&mut output);
            for s in error.iter_mut().chain(logs.iter_mut()) {
                self.secrets.redact_str(s);
            }
        }
        let record = StepRecord {
            seq: self.next_seq,
            step_name: step.name.clone(),
            kind: type_name(step.kind).to_string(),
            loop_path: path.to_vec(),
            status,
            input,
            output,
            error_message: error,
            duration,
            attempts,
            logs,
        };
        self.next_seq += 1;
        self.run.steps_count += 1;
        // once another worker owns the shard, its journal is not ours to write; the size the
        // store wrote counts against AP_MAX_FLOW_RUN_LOG_SIZE_MB (a test counts its own)
        self.journaled_bytes += if !self.testing && self.engine.owns(self.run.shard) {
            match self.engine.store.journal_step(self.run.shard, &self.run.id, &record) {
                Ok(size) => size,
                Err(e) => {
                    tracing::error!(run_id = self.run.id, step = step.name, error = %e, "could not journal the step");
                    0
                }
            }
        } else {
            json_size(&record)
        };
        self.records.push(record);
    }

    pub(crate) fn chain<'b>(
        &'b mut self,
        first: Option<&'b Action>,
        path: &'b [(String, usize)],
    ) -> BoxFuture<'b, Result<(), Halt>> {
        async move {
            let mut cur = first;
            while let Some(step) = cur {
                if step.skip != Some(true) {
                    if self.ended_elsewhere() {
                        return Err(Halt::Ended);
                    }
                    if Instant::now() >= self.deadline {
                        let msg = format!(
                            "the run exceeded AP_FLOW_TIMEOUT_SECONDS ({} s) before step {:?}",
                            self.engine.config.flow_timeout.as_secs(),
                            step.name
                        );
                        return Err(Halt::Fail(RunStatus::Timeout, failed(step, msg)));
                    }
                    let span = tracing::info_span!("step", step = %step.name);
                    match step.kind {
                        ActionType::Piece | ActionType::Code => self.piece_step(step, path).instrument(span).await?,
                        ActionType::LoopOnItems => self.loop_step(step, path).instrument(span).await?,
                        ActionType::Router => self.router_step(step, path).instrument(span).await?,
                    }
                    let max = self.engine.config.max_run_log_bytes;
                    if self.journaled_bytes > max {
                        let msg = format!(
                            "the run's log reached {} bytes, more than AP_MAX_FLOW_RUN_LOG_SIZE_MB ({} MB), at step {:?}",
                            self.journaled_bytes,
                            max / (1024 * 1024),
                            step.name
                        );
                        return Err(Halt::Fail(RunStatus::LogSizeExceeded, failed(step, msg)));
                    }
                }
                cur = step.next_action.as_deref();
            }
            Ok(())
        }
        .boxed()
    }

    async fn piece_step(&mut self, step: &Action, path: &[(String, usize)]) -> Result<(), Halt> {
        let key = (path.to_vec(), step.name.clone());
        if let Some(rec) = self.done.get(&key).filter(|r| r.status == StepStatus::Succeeded) {
            self.outputs.insert(step.name.clone(), rec.output.clone());
            return Ok(());
        }
        let resume_payload = match &self.pending_resume {
            Some(r) if r.step_name == step.name && r.loop_path == path => Some(r.payload.clone()),
            _ => None,
        };
        let raw_input = Value::Object(step.settings.input.clone().unwrap_or_default());
        let npm = step.kind == ActionType::Piece
            && !pieces::runs_natively(&self.engine.config, step.settings.piece_name.as_deref().unwrap_or_default());
        let input = match self.resolve_as(step, &raw_input, npm).await {
            Ok(v) => v,
            Err(Fault::Failed(e)) => {
                self.journal(Entry::failed(step, path, e.clone()).input(raw_input));
                return self.on_failure(step, e);
            }
            Err(Fault::Fatal(status, e)) => {
                return Err(self.abort_step(Entry::failed(step, path, e).input(raw_input), status))
            }
        };
        let mut input = input;
        let mut input_map = input.as_object().cloned().unwrap_or_default();
        self.unauthorized.store(false, std::sync::atomic::Ordering::SeqCst);
        let attempts_allowed = if step.retry_on_failure() { RETRY_ATTEMPTS } else { 1 };
        let started = Instant::now();
        let mut attempt = 0;
        let result = loop {
            attempt += 1;
            let remaining = self.deadline.saturating_duration_since(Instant::now());
            let fut = async {
                if step.kind == ActionType::Code {
                    return self.code_step(step, &input_map).await;
                }
                if npm {
                    return self.npm_step(step, &input_map, resume_payload.as_ref()).await;
                }
                let piece = step.settings.piece_name.as_deref().unwrap_or_default();
                let action = step.settings.action_name.as_deref().unwrap_or_default();
                if piece == pieces::catalog::CONNECTIONS && action == "read_connection" {
                    return self.read_connection(&input_map).await;
                }
                let ctx = PieceCtx { engine: self.engine, run: &self.run, resume: resume_payload.as_ref() };
                pieces::execute(&ctx, piece, action, &input_map)
                    .await
                    .map(|r| (r, None))
                    .map_err(|e| Fault::Failed(e.to_string()))
            };
            let outcome = tokio::time::timeout(remaining, AssertUnwindSafe(fut).catch_unwind()).await;
            match outcome {
                Err(_) => {
                    let msg = format!(
                        "step {:?} was still running when the run reached AP_FLOW_TIMEOUT_SECONDS ({} s)",
                        step.name,
                        self.engine.config.flow_timeout.as_secs()
                    );
                    let took = started.elapsed().as_millis() as u64;
                    let entry = Entry::failed(step, path, msg).input(input).took(took).attempts(attempt);
                    return Err(self.abort_step(entry, RunStatus::Timeout));
                }
                Ok(Err(panic)) => {
                    let msg = panic_message(&panic);
                    let took = started.elapsed().as_millis() as u64;
                    let entry = Entry::failed(step, path, msg).input(input).took(took).attempts(attempt);
                    return Err(self.abort_step(entry, RunStatus::InternalError));
                }
                Ok(Ok(Ok((r, logs)))) => {
                    self.pending_logs = logs;
                    break Ok(r);
                }
                Ok(Ok(Err(Fault::Fatal(status, msg)))) => {
                    let took = started.elapsed().as_millis() as u64;
                    let entry = Entry::failed(step, path, msg).input(input).took(took).attempts(attempt);
                    return Err(self.abort_step(entry, status));
                }
                Ok(Ok(Err(Fault::Failed(e)))) if attempt >= attempts_allowed => break Err(e),
                Ok(Ok(Err(Fault::Failed(e)))) => {
                    let delay = RETRY_BASE_DELAY * 2u32.pow(attempt - 1);
                    let mut e = e;
                    self.secrets.redact_str(&mut e);
                    tracing::info!(
                        run_id = self.run.id,
                        step = step.name,
                        attempt,
                        error = e,
                        "step failed, retrying in {delay:?}"
                    );
                    tokio::time::sleep(delay.min(self.deadline.saturating_duration_since(Instant::now()))).await;
                }
            }
        };
        // an npm step that failed after a 401 gets its OAuth2 connections refreshed, and one
        // more attempt with the new tokens
        let mut result = result;
        if npm && result.is_err() && self.unauthorized.swap(false, std::sync::atomic::Ordering::SeqCst) {
            match self.reauthorize(step, &raw_input).await {
                Ok(Some(fresh)) => {
                    input = fresh;
                    input_map = input.as_object().cloned().unwrap_or_default();
                    attempt += 1;
                    result = match self.npm_step(step, &input_map, resume_payload.as_ref()).await {
                        Ok((r, logs)) => {
                            self.pending_logs = logs;
                            Ok(r)
                        }
                        Err(Fault::Failed(e)) => Err(e),
                        Err(Fault::Fatal(status, msg)) => {
                            let took = started.elapsed().as_millis() as u64;
                            let entry = Entry::failed(step, path, msg).input(input).took(took).attempts(attempt);
                            return Err(self.abort_step(entry, status));
                        }
                    };
                }
                Ok(None) => {}
                Err(Fault::Failed(e)) => result = Err(e),
                Err(Fault::Fatal(status, msg)) => {
                    let entry = Entry::failed(step, path, msg).input(input).attempts(attempt);
                    return Err(self.abort_step(entry, status));
                }
            }
        }
        for tag in std::mem::take(&mut *self.added_tags.lock().unwrap()) {
            if !self.run.tags.contains(&tag) {
                self.run.tags.push(tag);
            }
        }
        for (kind, secret) in std::mem::take(&mut *self.read_connections.lock().unwrap()) {
            self.secrets.add_connection(kind, &secret);
        }
        let duration = started.elapsed().as_millis() as u64;
        let piece = step.settings.piece_name.as_deref().unwrap_or("code");
        let action = step.settings.action_name.as_deref().unwrap_or("code");
        STEP_DURATION.with_label_values(&[piece, action]).observe(started.elapsed().as_secs_f64());
        match result {
            Ok(r) => {
                if resume_payload.is_some() {
                    self.pending_resume = None;
                    self.run.resume = None;
                }
                if let Control::Pause(request) = r.control {
                    let entry = Entry::new(step, path, StepStatus::Paused).input(input).output(r.output);
                    self.journal(entry.took(duration).attempts(attempt));
                    let loop_path = path.to_vec();
                    let step_name = step.name.clone();
                    return Err(Halt::Pause(Box::new(match request {
                        PauseRequest::Delay { until } => PauseMetadata::Delay {
                            resume_date_time: troupe_store::ids::iso(until),
                            step_name,
                            loop_path,
                        },
                        PauseRequest::Webhook { request_id, response } => {
                            PauseMetadata::Webhook { request_id, response, step_name, loop_path }
                        }
                    })));
                }
                let entry = Entry::new(step, path, StepStatus::Succeeded).input(input).output(r.output.clone());
                self.journal(entry.took(duration).attempts(attempt));
                self.outputs.insert(step.name.clone(), r.output);
                match r.control {
                    Control::Continue | Control::Pause(_) => Ok(()),
                    Control::Stop(mut response) => {
                        self.secrets.redact(&mut response);
                        self.run.response = Some(response);
                        Err(Halt::Stop)
                    }
                    Control::Respond(response) => {
                        self.respond_now(&response).await;
                        Ok(())
                    }
                }
            }
            Err(e) => {
                self.journal(Entry::failed(step, path, e.clone()).input(input).took(duration).attempts(attempt));
                self.on_failure(step, e)
            }
        }
    }

    /// Journals a step that ends the run (timeout, panic) and says how the run ends.
    fn abort_step(&mut self, entry: Entry<'_>, status: RunStatus) -> Halt {
        let failed = failed(entry.step, entry.error.clone().unwrap_or_default());
        self.journal(entry);
        Halt::Fail(status, failed)
    }

    /// True when the stored run is already terminal: canceled, or swept as timed out. Looked
    /// up at most every [`CANCEL_CHECK_EVERY`], so a cancel stops a run within that time plus
    /// the step in flight, and fast runs do not pay a read per step.
    fn ended_elsewhere(&mut self) -> bool {
        if self.testing {
            return false;
        }
        if !self.engine.owns(self.run.shard) {
            // the shard moved to another worker, which recovers the run from the journal
            tracing::info!(
                run_id = self.run.id,
                shard = self.run.shard,
                "shard lost; leaving the run to its new owner"
            );
            return true;
        }
        if self.last_cancel_check.elapsed() < CANCEL_CHECK_EVERY {
            return false;
        }
        self.last_cancel_check = Instant::now();
        matches!(self.engine.store.get_run(&self.run.id), Ok(Some(r)) if r.status().is_terminal())
    }

    /// Resolves the templates of `value`, evaluating its expressions in the sandbox first.
    async fn resolve(&mut self, step: &Action, value: &Value) -> Result<Value, Fault> {
        self.resolve_as(step, value, false).await
    }

    /// [`Self::resolve`]; with `typed`, connections resolve to their whole value with its
    /// `type` (what npm pieces of context versions 1 and 2 expect), else as native pieces
    /// take them.
    async fn resolve_as(&mut self, step: &Action, value: &Value, typed: bool) -> Result<Value, Fault> {
        let connections = self.connections(value, typed).await?;
        let exprs = template::expressions(value);
        let mut evals = template::Evaluations::new();
        if !exprs.is_empty() {
            let scope = template::expression_scope(&self.outputs, self.nested);
            let results = self
                .engine
                .code
                .eval(exprs.clone(), scope, self.deadline)
                .await
                .map_err(|e| Fault::from_sandbox(step, e))?;
            evals.extend(exprs.into_iter().zip(results));
        }
        let (resolved, warnings) = match connections {
            None => template::resolve(value, &self.outputs, &evals, self.nested),
            Some(conns) => {
                let mut outputs = self.outputs.clone();
                outputs.insert(crate::validate::CONNECTIONS.into(), Value::Object(conns));
                template::resolve(value, &outputs, &evals, self.nested)
            }
        };
        // as Activepieces: the expression gives an empty string and the step goes on; the
        // warning joins the step's logs
        for w in warnings {
            let mut msg = format!("{w}; it resolved to an empty string");
            self.secrets.redact_str(&mut msg);
            tracing::warn!(run_id = self.run.id, step = step.name, "{msg}");
            self.template_warnings.push(msg);
        }
        Ok(resolved)
    }

    /// The connections `value` names, decrypted and shaped as pieces see them; their secrets
    /// join the run's list of values to redact.
    async fn connections(&mut self, value: &Value, typed: bool) -> Result<Option<Map<String, Value>>, Fault> {
        let mut found = Map::new();
        for name in connection_names(value) {
            let name = &name;
            let store = &self.engine.store;
            let conn = store
                .connection_by_name(&self.run.project_id, name)
                .map_err(|e| Fault::Fatal(RunStatus::InternalError, e.to_string()))?
                .ok_or_else(|| Fault::Failed(format!("connection {name:?} does not exist in this project")))?;
            let mut secret =
                store.connection_value(&conn).map_err(|e| Fault::Fatal(RunStatus::InternalError, e.to_string()))?;
            if conn.kind == troupe_store::connection::ConnectionType::OAuth2
                && troupe_pieces::oauth2::expiring(&secret, OAUTH2_REFRESH_MARGIN_SECS)
            {
                self.secrets.add_connection(conn.kind, &secret);
                secret = self.refresh(conn.clone(), &secret).await?;
            }
            self.secrets.add_connection(conn.kind, &secret);
            let value =
                if typed { crate::npm::typed_connection(conn.kind, secret) } else { conn.kind.resolved(&secret) };
            found.insert(name.clone(), value);
        }
        Ok((!found.is_empty()).then_some(found))
    }

    /// `@activepieces/piece-connections`' `read_connection`: the named connection's value, as
    /// `{{connections['name']}}` gives it (its secrets redacted from the journal).
    async fn read_connection(
        &mut self,
        input: &Map<String, Value>,
    ) -> Result<(pieces::ActionResult, Option<String>), Fault> {
        let name = pieces::text(input, "connection_name").unwrap_or_default();
        let not_found = || {
            let message = serde_json::json!({"message": format!("connection ({name}) not found")});
            Fault::Failed(serde_json::to_string_pretty(&message).expect("json"))
        };
        if name.is_empty() || name.contains(['\'', '"']) {
            return Err(not_found());
        }
        let template = Value::String(format!("{{{{connections['{name}']}}}}"));
        let found = match self.connections(&template, false).await {
            Err(Fault::Failed(_)) => return Err(not_found()),
            other => other?,
        };
        let value = found.and_then(|mut m| m.remove(&name)).ok_or_else(not_found)?;
        Ok((pieces::ActionResult::output(value), None))
    }

    /// Refreshes the OAuth2 connections `raw_input` names, whatever their expiry, and
    /// resolves it again with the new tokens; `None` when it names no OAuth2 connection.
    async fn reauthorize(&mut self, step: &Action, raw_input: &Value) -> Result<Option<Value>, Fault> {
        let mut refreshed = false;
        for name in connection_names(raw_input) {
            let name = &name;
            let store = &self.engine.store;
            let internal = |e: troupe_store::StoreError| Fault::Fatal(RunStatus::InternalError, e.to_string());
            let Some(conn) = store.connection_by_name(&self.run.project_id, name).map_err(internal)? else { continue };
            if conn.kind != troupe_store::connection::ConnectionType::OAuth2 {
                continue;
            }
            let secret = store.connection_value(&conn).map_err(internal)?;
            tracing::info!(
                run_id = self.run.id,
                step = step.name,
                connection = name,
                "answered 401: refreshing the connection"
            );
            self.refresh(conn, &secret).await?;
            refreshed = true;
        }
        if !refreshed {
            return Ok(None);
        }
        self.resolve_as(step, raw_input, true).await.map(Some)
    }

    /// Refreshes an OAuth2 connection's tokens and keeps them (sealed and replicated like any
    /// write); a refresh that fails marks the connection `ERROR` and fails the step.
    async fn refresh(&mut self, conn: troupe_store::connection::Connection, value: &Value) -> Result<Value, Fault> {
        let store = &self.engine.store;
        let internal = |e: troupe_store::StoreError| Fault::Fatal(RunStatus::InternalError, e.to_string());
        match troupe_pieces::oauth2::refresh(&self.engine.egress, value).await {
            Ok(fresh) => {
                let updated = troupe_store::connection::Connection {
                    status: "ACTIVE".into(),
                    updated: troupe_store::ids::now_iso(),
                    ..conn
                };
                store.upsert_connection(updated, &fresh).map_err(internal)?;
                store.flush().await.map_err(internal)?;
                Ok(fresh)
            }
            Err(e) => {
                let name = conn.external_id.clone();
                let updated = troupe_store::connection::Connection {
                    status: "ERROR".into(),
                    updated: troupe_store::ids::now_iso(),
                    ..conn
                };
                store.upsert_connection(updated, value).map_err(internal)?;
                let mut message = format!("connection {name:?} could not be refreshed: {e}");
                self.secrets.redact_str(&mut message);
                Err(Fault::Failed(message))
            }
        }
    }

    /// A CODE step: JavaScript from `sourceCode.code`, or the WASI module `wasmModule`.
    async fn code_step(
        &self,
        step: &Action,
        inputs: &Map<String, Value>,
    ) -> Result<(pieces::ActionResult, Option<String>), Fault> {
        let inputs = Value::Object(inputs.clone());
        let code = &self.engine.code;
        let outcome = match (&step.settings.wasm_module, &step.settings.source_code) {
            (Some(id), _) => code.run_wasi(self.engine.store.clone(), id.clone(), inputs, self.deadline).await,
            (None, Some(src)) => {
                // Activepieces stores code steps as TypeScript: the types go first
                let js = code.typescript.javascript(&src.code).map_err(|e| Fault::Failed(e.to_string()))?;
                let host = troupe_pieces::egress::fetch_handler(self.engine.egress.clone(), self.deadline);
                code.run_js_with(js.to_string(), inputs, self.deadline, host).await
            }
            (None, None) => return Err(Fault::Failed("the step has no sourceCode".into())),
        }
        .map_err(|e| Fault::from_sandbox(step, e))?;
        let logs = Some(outcome.logs).filter(|l| !l.is_empty());
        Ok((pieces::ActionResult { output: outcome.output, control: Control::Continue }, logs))
    }

    /// A step of an npm piece: the installed version its `pieceVersion` admits, loaded in the
    /// sandbox (once per process), runs the action with Activepieces' context.
    async fn npm_step(
        &self,
        step: &Action,
        input: &Map<String, Value>,
        resume: Option<&Value>,
    ) -> Result<(pieces::ActionResult, Option<String>), Fault> {
        let engine = self.engine;
        let piece = step.settings.piece_name.as_deref().unwrap_or_default();
        let spec = step.settings.piece_version.as_deref();
        let action = step.settings.action_name.as_deref().unwrap_or_default();
        let record = crate::npm::NpmPieces::resolve_installed(&engine.store, piece, spec)
            .map_err(|e| Fault::Fatal(RunStatus::InternalError, e.to_string()))?
            .ok_or_else(|| {
                Fault::Failed(format!(
                    "piece {piece}@{} is not installed; install it with POST /api/v1/pieces",
                    spec.unwrap_or("latest")
                ))
            })?;
        let loaded = engine
            .npm
            .load(&engine.store, &engine.code, engine.egress.clone(), &record)
            .await
            .map_err(|e| Fault::from_sandbox(step, e))?;
        let ctx = PieceCtx { engine, run: &self.run, resume };
        let base = ctx.base_url();
        let request = json!({
            "action": action,
            "input": input,
            "propertySettings": step.settings.extra.get("propertySettings"),
            "executionType": if resume.is_some() { "RESUME" } else { "BEGIN" },
            "resumePayload": resume,
            "runId": self.run.id,
            "projectId": self.run.project_id,
            "flowId": self.run.flow_id,
            "flowVersionId": self.run.flow_version_id,
            "stepName": step.name,
            "storeKeyMax": engine.config.store_key_max_chars,
            "server": crate::npm::server_context(&engine.config, &self.engine_token()),
        });
        let store = engine.store.clone();
        let project = self.run.project_id.clone();
        let read = self.read_connections.clone();
        let facts = crate::npm::RunFacts {
            resume_base: format!("{base}/api/v1/flow-runs/{}/requests/", self.run.id),
            unauthorized: Some(self.unauthorized.clone()),
            connections: Arc::new(move |name: &str| {
                let Some(conn) = store.connection_by_name(&project, name)? else {
                    return Ok(None);
                };
                let secret = store.connection_value(&conn)?;
                read.lock().unwrap().push((conn.kind, secret.clone()));
                Ok(Some(crate::npm::typed_connection(conn.kind, secret)))
            }),
            ..crate::npm::RunFacts::of(&engine.store, &engine.config, &self.run.project_id, &self.run.flow_id)
        };
        let ops = crate::npm::host_ops(facts);
        let outcome = crate::npm::run_action(&engine.code, loaded, request, self.deadline, engine.egress.clone(), ops)
            .await
            .map_err(|e| Fault::from_sandbox(step, e))?;
        let logs = Some(outcome.logs).filter(|l| !l.is_empty());
        let mut answer = outcome.output;
        let output = answer["output"].take();
        let hook = &answer["hook"];
        let tags = hook["tags"].as_array().into_iter().flatten().filter_map(Value::as_str).map(str::to_string);
        self.added_tags.lock().unwrap().extend(tags);
        let response = || {
            let r = &hook["response"];
            json!({
                "status": r["status"].as_u64().unwrap_or(200),
                "body": r.get("body").cloned().unwrap_or_else(|| json!({})),
                "headers": r.get("headers").cloned().unwrap_or_else(|| json!({})),
            })
        };
        let control = match hook["type"].as_str() {
            Some("stopped") => Control::Stop(response()),
            Some("respond") => Control::Respond(response()),
            Some("paused") => {
                let w = &hook["waitpoint"];
                let request = match w["type"].as_str() {
                    Some("DELAY") => {
                        let at = w["resumeDateTime"].as_str().unwrap_or_default();
                        let until = chrono::DateTime::parse_from_rfc3339(at)
                            .or_else(|_| chrono::DateTime::parse_from_rfc2822(at))
                            .map_err(|_| {
                                Fault::Failed(format!("the piece paused until {at:?}, which is not a date"))
                            })?;
                        PauseRequest::Delay { until: until.with_timezone(&chrono::Utc) }
                    }
                    _ => PauseRequest::Webhook {
                        request_id: w["id"].as_str().map(str::to_string).unwrap_or_else(troupe_store::ids::new_id),
                        response: w.get("response").filter(|r| !r.is_null()).cloned(),
                    },
                };
                Control::Pause(request)
            }
            _ => Control::Continue,
        };
        Ok((pieces::ActionResult { output, control }, logs))
    }

    /// The token a piece calls back with (`server.token`): this run's project store, until the
    /// run's time is up.
    fn engine_token(&self) -> String {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
        let token = troupe_store::db::EngineToken {
            project_id: self.run.project_id.clone(),
            flow_id: self.run.flow_id.clone(),
            run_id: self.run.id.clone(),
            expires: now + self.engine.config.flow_timeout.as_secs() + 60,
        };
        self.engine.store.seal_engine_token(&token).unwrap_or_default()
    }

    fn on_failure(&mut self, step: &Action, message: String) -> Result<(), Halt> {
        if step.continue_on_failure() {
            Ok(())
        } else {
            Err(Halt::Fail(RunStatus::Failed, failed(step, message)))
        }
    }

    /// "Respond and continue": the sync webhook gets its answer now, durably recorded first.
    async fn respond_now(&mut self, response: &Value) {
        let mut response = response.clone();
        self.secrets.redact(&mut response);
        let response = &response;
        self.run.response = Some(response.clone());
        let Some(reply_to) = self.run.reply_to.clone() else {
            return;
        };
        if self.replied {
            return;
        }
        let _ = self.engine.store.update_run(&self.run.id, |stored| {
            stored.response = Some(response.clone());
            Ok(())
        });
        let _ = self.engine.store.flush().await;
        let r = to_webhook_response(response, &self.run.id);
        let _ = self.engine.nats.publish(reply_to, serde_json::to_vec(&r).expect("serializes").into()).await;
        self.replied = true;
    }

    async fn loop_step(&mut self, step: &Action, path: &[(String, usize)]) -> Result<(), Halt> {
        let started = Instant::now();
        let raw = step.settings.items.clone().unwrap_or(Value::Null);
        let items = match self.resolve(step, &raw).await.map_err(|f| match f {
            Fault::Failed(m) | Fault::Fatal(_, m) => m,
        }) {
            Ok(Value::Array(a)) => a,
            // a template that led nowhere (an empty string, as in Activepieces): nothing to loop on
            Ok(Value::Null) => vec![],
            Ok(Value::String(s)) if s.is_empty() => vec![],
            Ok(other) => {
                let msg = format!("items must be a list, got {}", short(&other));
                self.journal(Entry::failed(step, path, msg.clone()).input(json!({"items": other})));
                return Err(Halt::Fail(RunStatus::Failed, failed(step, msg)));
            }
            Err(e) => {
                self.journal(Entry::failed(step, path, e.to_string()).input(json!({"items": raw})));
                return Err(Halt::Fail(RunStatus::Failed, failed(step, e.to_string())));
            }
        };
        let mut iterations = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            self.outputs.insert(step.name.clone(), json!({"item": item, "index": i + 1}));
            let mut inner = path.to_vec();
            inner.push((step.name.clone(), i));
            let from = self.records.len();
            let result = self.chain(step.first_loop_action.as_deref(), &inner).await;
            let iteration: Map<String, Value> = self.records[from..]
                .iter()
                .filter(|r| r.loop_path == inner)
                .map(|r| {
                    (
                        r.step_name.clone(),
                        json!({"type": r.kind, "status": r.status, "input": r.input, "output": r.output}),
                    )
                })
                .collect();
            iterations.push(Value::Object(iteration));
            if let Err(halt) = result {
                let output = json!({"item": item, "index": i + 1, "iterations": iterations});
                self.outputs.insert(step.name.clone(), output.clone());
                if matches!(halt, Halt::Pause(_)) {
                    // the loop is not done: no record for it until it finishes
                    return Err(halt);
                }
                let (status, err) = match &halt {
                    Halt::Stop | Halt::Ended | Halt::Pause(_) => (StepStatus::Succeeded, None),
                    Halt::Fail(_, f) => (StepStatus::Failed, Some(f.message.clone())),
                };
                let mut entry = Entry::new(step, path, status).input(json!({"items": items}));
                entry = entry.output(json!({"item": item, "index": i + 1})).took(started.elapsed().as_millis() as u64);
                entry.error = err;
                self.journal(entry);
                return Err(halt);
            }
        }
        let (item, index) = match items.last() {
            Some(last) => (last.clone(), json!(items.len())),
            None => (Value::Null, json!(0)),
        };
        self.outputs.insert(step.name.clone(), json!({"item": item, "index": index, "iterations": iterations}));
        let entry = Entry::new(step, path, StepStatus::Succeeded).input(json!({"items": items}));
        self.journal(entry.output(json!({"item": item, "index": index})).took(started.elapsed().as_millis() as u64));
        Ok(())
    }

    async fn router_step(&mut self, step: &Action, path: &[(String, usize)]) -> Result<(), Halt> {
        let started = Instant::now();
        let branches = step.settings.branches.clone().unwrap_or_default();
        let all = step.settings.execution_type == Some(RouterExecutionType::ExecuteAllMatch);
        let mut results = Vec::new();
        let mut chosen = Vec::new();
        let mut resolved_input = Vec::new();
        for (i, b) in branches.iter().enumerate() {
            if b.branch_type == BranchType::Fallback {
                continue;
            }
            let mut any = false;
            let mut groups = Vec::new();
            for group in b.conditions.as_deref().unwrap_or_default() {
                let mut all_hold = !group.is_empty();
                let mut conds = Vec::new();
                for c in group {
                    let first = self.resolve(step, &c.first_value).await.map_err(|f| fault_halt(step, f))?;
                    let second = match &c.second_value {
                        Some(v) => self.resolve(step, v).await.map_err(|f| fault_halt(step, f))?,
                        None => Value::Null,
                    };
                    let op = c.operator.as_deref().unwrap_or_default();
                    all_hold &= router::evaluate(op, &first, &second, c.case_sensitive.unwrap_or(false));
                    conds.push(json!({"operator": op, "firstValue": first, "secondValue": second}));
                }
                groups.push(Value::Array(conds));
                any |= all_hold;
            }
            resolved_input.push(json!({"branchName": b.branch_name, "conditions": groups}));
            results.push(json!({"branchName": b.branch_name, "branchIndex": i, "evaluation": any}));
            if any && (all || chosen.is_empty()) {
                chosen.push(i);
            }
        }
        if chosen.is_empty() {
            if let Some(i) = branches.iter().position(|b| b.branch_type == BranchType::Fallback) {
                chosen.push(i);
                results.push(json!({"branchName": branches[i].branch_name, "branchIndex": i, "evaluation": true}));
            }
        }
        let output = json!({"branches": results});
        self.outputs.insert(step.name.clone(), output.clone());
        let input = json!({"branches": resolved_input, "executionType": step.settings.execution_type});
        let entry = Entry::new(step, path, StepStatus::Succeeded).input(input).output(output);
        self.journal(entry.took(started.elapsed().as_millis() as u64));
        let children = step.children.clone().unwrap_or_default();
        for i in chosen {
            if let Some(Some(first)) = children.get(i) {
                self.chain(Some(first), path).await?;
            }
        }
        Ok(())
    }
}

/// The connections the templates of `value` name (`{{connections['name']}}`), each once, in
/// order.
fn connection_names(value: &Value) -> Vec<String> {
    let mut tokens = Vec::new();
    template::tokens(value, &mut tokens);
    let mut names: Vec<String> = Vec::new();
    for t in tokens {
        let Some(path) = template::parse_path(&t).filter(|p| p.root == crate::validate::CONNECTIONS) else {
            continue;
        };
        if let Some(template::Segment::Key(name)) = path.segments.first() {
            if !names.contains(name) {
                names.push(name.clone());
            }
        }
    }
    names
}

/// The size of `v` as JSON, without keeping the text.
fn json_size(v: &impl serde::Serialize) -> usize {
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 += buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut count = Count(0);
    let _ = serde_json::to_writer(&mut count, v);
    count.0
}

fn short(v: &Value) -> String {
    let s = v.to_string();
    if s.len() > 80 {
        format!("{}…", &s[..s.char_indices().take_while(|(i, _)| *i < 80).last().map_or(0, |(i, _)| i)])
    } else {
        s
    }
}
