//! RunActor: one per running run. It executes the steps in order, journals each step in sled
//! before the next starts, and finalizes the run: status, event, sync reply, next queued run.
//!
//! A restarted run reads its journal first and skips the steps that already succeeded: steps
//! are at-least-once (the step in flight at a crash runs again), runs exactly-once.

use crate::engine::{start_run, EngineCtx};
use crate::metric_definitions::{LIVE_ACTORS, RUNS_FINISHED, RUNS_PAUSED, RUNS_STARTED, RUN_DURATION, STEP_DURATION};
use crate::pieces::{self, Control, PauseRequest, PieceCtx};
use crate::{router, template};
use actix::{Actor, ActorContext, ActorFutureExt, AsyncContext, Context, WrapFuture};
use futures::future::BoxFuture;
use futures::FutureExt;
use serde_json::{json, Map, Value};
use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tracing::Instrument;
use troupe_store::flow::{Action, ActionType, BranchType, FlowVersion, RouterExecutionType};
use troupe_store::ids::now_iso;
use troupe_store::message::{RunEvent, WebhookResponse};
use troupe_store::names::subjects;
use troupe_store::run::{FailedStep, FlowRun, PauseMetadata, Resume, RunStatus, StepRecord, StepStatus};
use troupe_store::timer::{run_owner, Timer, TimerKind};

/// `retryOnFailure`: attempts in all, and the first back-off (doubled each time).
pub const RETRY_ATTEMPTS: u32 = 4;
pub const RETRY_BASE_DELAY: Duration = Duration::from_millis(250);
/// How often a running run looks whether it was canceled.
pub const CANCEL_CHECK_EVERY: Duration = Duration::from_millis(50);

pub struct RunActor {
    ctx: Arc<EngineCtx>,
    version: Option<Arc<FlowVersion>>,
    run: Option<FlowRun>,
}

impl RunActor {
    pub fn new(ctx: Arc<EngineCtx>, version: Option<Arc<FlowVersion>>, run: FlowRun) -> RunActor {
        RunActor { ctx, version, run: Some(run) }
    }
}

impl Actor for RunActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        let engine = self.ctx.clone();
        let version = self.version.clone();
        let run = self.run.take().expect("started once");
        let fut = async move {
            let project = run.project_id.clone();
            let run_id = run.id.clone();
            // a run dispatched twice is executed by the first actor only; both give back the
            // project slot they were handed
            if engine.executing.insert(run_id.clone(), run.shard).is_none() {
                LIVE_ACTORS.with_label_values(&["run"]).set(engine.executing.len() as i64);
                let span = tracing::info_span!("run", run_id = %run.id, flow_id = %run.flow_id);
                execute_run(&engine, version, run).instrument(span).await;
                engine.executing.remove(&run_id);
                LIVE_ACTORS.with_label_values(&["run"]).set(engine.executing.len() as i64);
            }
            if let Some((flow_id, run_id)) = engine.limiter.release(&project) {
                start_run(&engine, &flow_id, &run_id);
            }
        };
        ctx.spawn(fut.into_actor(self).map(|_, _, ctx| ctx.stop()));
    }
}

type LoopPath = Vec<(String, usize)>;

/// Why a chain of steps stopped early.
enum Halt {
    /// A `return_response` asked the run to stop: it succeeds.
    Stop,
    /// The run was canceled (or ended) from outside: leave its status as it is.
    Ended,
    /// A step paused the run.
    Pause(Box<PauseMetadata>),
    Fail(RunStatus, FailedStep),
}

struct Exec<'a> {
    engine: &'a EngineCtx,
    run: FlowRun,
    outputs: Map<String, Value>,
    done: HashMap<(LoopPath, String), StepRecord>,
    /// Records of this execution, for loop iteration outputs.
    records: Vec<StepRecord>,
    next_seq: u32,
    deadline: Instant,
    replied: bool,
    /// The resume the paused step consumes when execution reaches it again.
    pending_resume: Option<Resume>,
    last_cancel_check: Instant,
    /// What the step being journaled logged (code steps).
    pending_logs: Option<String>,
    /// Secret values of the connections this run resolved: redacted from everything it writes.
    secrets: Vec<String>,
}

pub const REDACTED: &str = "**REDACTED**";

/// Replaces every secret inside the strings of `v`.
fn redact_value(v: &mut Value, secrets: &[String]) {
    match v {
        Value::String(s) => redact_str(s, secrets),
        Value::Array(a) => a.iter_mut().for_each(|x| redact_value(x, secrets)),
        Value::Object(m) => m.values_mut().for_each(|x| redact_value(x, secrets)),
        _ => {}
    }
}

fn redact_str(s: &mut String, secrets: &[String]) {
    for secret in secrets {
        if s.contains(secret.as_str()) {
            *s = s.replace(secret.as_str(), REDACTED);
        }
    }
}

/// The parts of a connection value that are secret (and the forms they travel in).
fn secrets_of(kind: troupe_store::connection::ConnectionType, value: &Value) -> Vec<String> {
    use troupe_store::connection::ConnectionType as T;
    let text = |k: &str| value.get(k).and_then(Value::as_str).map(String::from);
    let mut out: Vec<String> = match kind {
        T::SecretText => text("secret_text").into_iter().collect(),
        T::BasicAuth => {
            let user = text("username").unwrap_or_default();
            let pass = text("password").unwrap_or_default();
            use base64::Engine as _;
            vec![base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}")), pass]
        }
        T::OAuth2 => {
            ["access_token", "refresh_token", "client_secret", "id_token"].iter().filter_map(|k| text(k)).collect()
        }
        T::CustomAuth => {
            fn leaves(v: &Value, out: &mut Vec<String>) {
                match v {
                    Value::String(s) => out.push(s.clone()),
                    Value::Array(a) => a.iter().for_each(|x| leaves(x, out)),
                    Value::Object(m) => m.values().for_each(|x| leaves(x, out)),
                    _ => {}
                }
            }
            let mut out = Vec::new();
            leaves(value.get("props").unwrap_or(&Value::Null), &mut out);
            out
        }
    };
    // very short values would redact ordinary words; they are not secrets worth the name
    out.retain(|s| s.len() >= 4);
    out
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

fn failed(step: &Action, message: String) -> FailedStep {
    FailedStep { name: step.name.clone(), display_name: step.display().to_string(), message }
}

fn fault_halt(step: &Action, f: Fault) -> Halt {
    match f {
        Fault::Failed(m) => Halt::Fail(RunStatus::Failed, failed(step, m)),
        Fault::Fatal(status, m) => Halt::Fail(status, failed(step, m)),
    }
}

fn type_name(kind: ActionType) -> &'static str {
    match kind {
        ActionType::Code => "CODE",
        ActionType::Piece => "PIECE",
        ActionType::LoopOnItems => "LOOP_ON_ITEMS",
        ActionType::Router => "ROUTER",
    }
}

/// Runs a run to its end (or its pause), whatever happens inside: never panics out.
async fn execute_run(engine: &EngineCtx, version: Option<Arc<FlowVersion>>, mut run: FlowRun) {
    let run_id = run.id.clone();
    if run.status.is_terminal() || !engine.owns(run.shard) {
        return;
    }
    let Some(version) = version else {
        let msg = format!("flow version {} no longer exists", run.flow_version_id);
        finalize(
            engine,
            run,
            RunStatus::InternalError,
            Some(FailedStep { name: "trigger".into(), display_name: "Trigger".into(), message: msg }),
            false,
        )
        .await;
        return;
    };
    let started = engine.store.update_run(&run_id, |stored| {
        if stored.status == RunStatus::Queued {
            stored.status = stored.status.transition(RunStatus::Running).map_err(|e| e.to_string())?;
        } else if stored.status != RunStatus::Running {
            return Err(format!("the run is {}", stored.status.as_str()));
        }
        let now = now_iso();
        stored.start_time.get_or_insert_with(|| now.clone());
        stored.running_since = Some(now.clone());
        stored.updated = now;
        Ok(())
    });
    match started {
        Ok(r) => {
            RUNS_STARTED.inc();
            run = r
        }
        Err(e) => {
            tracing::info!(run_id, error = %e, "run not started");
            return;
        }
    }
    // a run this process just created has only its trigger record: no need to read it back
    let fresh = engine.fresh.take(&run.id);
    let journal = match fresh {
        Some(_) => Vec::new(),
        None => engine.store.run_steps(run.shard, &run.id).unwrap_or_default(),
    };
    let next_seq = journal.iter().map(|r| r.seq + 1).max().unwrap_or(1);
    let stretch_start = Instant::now();
    let active_left = engine.config.flow_timeout.saturating_sub(Duration::from_millis(run.active_ms));
    let mut exec = Exec {
        engine,
        pending_resume: run.resume.clone(),
        last_cancel_check: stretch_start,
        outputs: Map::new(),
        done: journal.into_iter().map(|r| ((r.loop_path.clone(), r.step_name.clone()), r)).collect(),
        records: Vec::new(),
        next_seq,
        deadline: stretch_start + active_left,
        replied: false,
        pending_logs: None,
        secrets: Vec::new(),
        run,
    };
    // the trigger record (seq 0) holds the output the run started from
    let trigger_output =
        fresh.or_else(|| exec.done.values().find(|r| r.seq == 0).map(|r| r.output.clone())).unwrap_or_default();
    exec.outputs.insert(version.trigger.name.clone(), trigger_output);
    exec.done.retain(|_, r| r.seq != 0);
    let result = AssertUnwindSafe(exec.chain(version.trigger.next_action.as_deref(), &[])).catch_unwind().await;
    let (status, failed_step) = match result {
        Ok(Err(Halt::Pause(pause))) => {
            let elapsed = stretch_start.elapsed().as_millis() as u64;
            let replied = exec.replied;
            return pause_run(engine, exec.run, *pause, elapsed, replied).await;
        }
        Ok(Err(Halt::Ended)) => {
            tracing::info!(run_id = exec.run.id, "run was ended from outside; stopping");
            return;
        }
        Ok(Ok(())) | Ok(Err(Halt::Stop)) => (RunStatus::Succeeded, None),
        Ok(Err(Halt::Fail(status, mut step))) => {
            redact_str(&mut step.message, &exec.secrets);
            (status, Some(step))
        }
        Err(panic) => {
            let msg = panic_message(&panic);
            (
                RunStatus::InternalError,
                Some(FailedStep { name: "engine".into(), display_name: "Engine".into(), message: msg }),
            )
        }
    };
    let replied = exec.replied;
    let mut run = exec.run;
    run.active_ms += stretch_start.elapsed().as_millis() as u64;
    finalize(engine, run, status, failed_step, replied).await;
}

/// Records the pause and lets the actor go: a paused run is a journal, a header and a timer.
async fn pause_run(engine: &EngineCtx, mut run: FlowRun, pause: PauseMetadata, elapsed_ms: u64, replied: bool) {
    if !engine.owns(run.shard) {
        tracing::info!(run_id = run.id, "shard lost before the pause was recorded; its new owner runs the step again");
        return;
    }
    run.active_ms += elapsed_ms;
    run.resume = None;
    let early_response = match &pause {
        PauseMetadata::Webhook { response: Some(r), .. } if !replied => run.reply_to.take().map(|to| (to, r.clone())),
        _ => None,
    };
    let paused = engine.store.update_run(&run.id, |stored| {
        let next = stored.status.transition(RunStatus::Paused).map_err(|e| e.to_string())?;
        *stored = FlowRun { status: next, pause: Some(pause.clone()), updated: now_iso(), ..run.clone() };
        Ok(())
    });
    let run = match paused {
        Ok(r) => r,
        Err(e) => return tracing::info!(run_id = run.id, error = %e, "run ended elsewhere before it could pause"),
    };
    let owner = run_owner(&run.id);
    let expiry = chrono::Utc::now() + chrono::Duration::days(engine.config.paused_flow_timeout_days as i64);
    let mut timers = vec![Timer::new(
        &owner,
        expiry.timestamp_millis().max(0) as u64,
        TimerKind::ExpirePause { run_id: run.id.clone() },
    )];
    if let PauseMetadata::Delay { resume_date_time, .. } = &pause {
        let due = chrono::DateTime::parse_from_rfc3339(resume_date_time).map(|d| d.timestamp_millis()).unwrap_or(0);
        timers.push(Timer::new(&owner, due.max(0) as u64, TimerKind::ResumeRun { run_id: run.id.clone() }));
    }
    for t in &timers {
        if let Err(e) = engine.store.add_timer(t) {
            tracing::error!(run_id = run.id, error = %e, "could not record the pause timer");
        }
    }
    if let Err(e) = engine.store.flush().await {
        tracing::error!(run_id = run.id, error = %e, "flushing the store failed");
    }
    tracing::info!("run paused");
    RUNS_PAUSED.inc();
    if let Some((reply_to, response)) = early_response {
        let r = to_webhook_response(&response, &run.id);
        let _ = engine.nats.publish(reply_to, serde_json::to_vec(&r).expect("serializes").into()).await;
    }
}

fn panic_message(panic: &Box<dyn std::any::Any + Send>) -> String {
    let what = panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into());
    format!("internal error while executing the step: {what}")
}

async fn finalize(
    engine: &EngineCtx,
    mut run: FlowRun,
    status: RunStatus,
    failed_step: Option<FailedStep>,
    replied: bool,
) {
    if !engine.owns(run.shard) {
        tracing::info!(run_id = run.id, "shard lost before the run's end was recorded; its new owner ends it");
        return;
    }
    let now = now_iso();
    run.finish_time = Some(now.clone());
    run.updated = now;
    run.failed_step = failed_step;
    if let Some(start) = run.start_time.as_deref().and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok()) {
        run.duration_ms =
            Some((chrono::Utc::now() - start.with_timezone(&chrono::Utc)).num_milliseconds().max(0) as u64);
    }
    // Compare-and-swap on the stored header: a run canceled meanwhile stays canceled.
    let stored = engine.store.update_run(&run.id, |stored| {
        let next = stored.status.transition(status).map_err(|e| e.to_string())?;
        *stored = FlowRun { status: next, ..run.clone() };
        Ok(())
    });
    let run = match stored {
        Ok(r) => r,
        Err(e) => {
            tracing::info!(run_id = run.id, error = %e, "run ended elsewhere first");
            return;
        }
    };
    if let Err(e) = engine.store.flush().await {
        tracing::error!(run_id = run.id, error = %e, "flushing the store failed");
    }
    tracing::info!(status = status.as_str(), "run finished");
    RUNS_FINISHED.with_label_values(&[status.as_str()]).inc();
    RUN_DURATION.observe(run.active_ms as f64 / 1000.0);
    if let (Some(reply_to), false) = (&run.reply_to, replied) {
        let response =
            run.response.clone().map(|r| to_webhook_response(&r, &run.id)).unwrap_or_else(|| outcome_response(&run));
        let _ = engine.nats.publish(reply_to.clone(), serde_json::to_vec(&response).expect("serializes").into()).await;
    }
    publish_event(engine, &run).await;
}

/// Announces a run's end on `ap.event.<shard>`.
pub async fn publish_event(engine: &EngineCtx, run: &FlowRun) {
    let event = RunEvent {
        run_id: run.id.clone(),
        flow_id: run.flow_id.clone(),
        project_id: run.project_id.clone(),
        status: run.status,
        finish_time: run.finish_time.clone(),
    };
    if let Err(e) =
        engine.js.publish(subjects::event(run.shard), serde_json::to_vec(&event).expect("serializes").into()).await
    {
        tracing::warn!(run_id = run.id, error = %e, "could not publish the run event");
    }
}

fn to_webhook_response(r: &Value, run_id: &str) -> WebhookResponse {
    WebhookResponse {
        status: r.get("status").and_then(Value::as_u64).and_then(|s| u16::try_from(s).ok()).unwrap_or(200),
        headers: r.get("headers").and_then(Value::as_object).cloned().unwrap_or_default(),
        body: r.get("body").cloned().unwrap_or(Value::Null),
        run_id: run_id.to_string(),
    }
}

/// A sync webhook whose flow gave no response answers with the run's outcome.
fn outcome_response(run: &FlowRun) -> WebhookResponse {
    let mut body = json!({"runId": run.id, "status": run.status.as_str()});
    if let Some(f) = &run.failed_step {
        body["failedStep"] = json!({"name": f.name, "displayName": f.display_name, "message": f.message});
    }
    WebhookResponse {
        status: if run.status == RunStatus::Succeeded { 200 } else { 500 },
        headers: Map::new(),
        body,
        run_id: run.id.clone(),
    }
}

impl Exec<'_> {
    #[allow(clippy::too_many_arguments)]
    fn journal(
        &mut self,
        name: &str,
        kind: &str,
        path: &[(String, usize)],
        status: StepStatus,
        input: Value,
        output: Value,
        error: Option<String>,
        duration: u64,
        attempts: u32,
    ) {
        let (mut input, mut output, mut error) = (input, output, error);
        let mut logs = self.pending_logs.take();
        if !self.secrets.is_empty() {
            redact_value(&mut input, &self.secrets);
            redact_value(&mut output, &self.secrets);
            for s in error.iter_mut().chain(logs.iter_mut()) {
                redact_str(s, &self.secrets);
            }
        }
        let record = StepRecord {
            seq: self.next_seq,
            step_name: name.to_string(),
            kind: kind.to_string(),
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
        // once another worker owns the shard, its journal is not ours to write
        if self.engine.owns(self.run.shard) {
            if let Err(e) = self.engine.store.journal_step(self.run.shard, &self.run.id, &record) {
                tracing::error!(run_id = self.run.id, step = name, error = %e, "could not journal the step");
            }
        }
        self.records.push(record);
    }

    fn chain<'b>(
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
        let kind = type_name(step.kind);
        let resume_payload = match &self.pending_resume {
            Some(r) if r.step_name == step.name && r.loop_path == path => Some(r.payload.clone()),
            _ => None,
        };
        let raw_input = Value::Object(step.settings.input.clone().unwrap_or_default());
        let input = match self.resolve(step, &raw_input).await {
            Ok(v) => v,
            Err(Fault::Failed(e)) => {
                self.journal_failure(step, kind, path, raw_input, e.clone(), 0, 1);
                return self.on_failure(step, e);
            }
            Err(Fault::Fatal(status, e)) => return Err(self.abort_step(step, kind, path, &raw_input, e, 0, 1, status)),
        };
        let input_map = input.as_object().cloned().unwrap_or_default();
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
                let piece = step.settings.piece_name.as_deref().unwrap_or_default();
                let action = step.settings.action_name.as_deref().unwrap_or_default();
                let ctx = PieceCtx { engine: self.engine, run: &self.run, resume: resume_payload.as_ref() };
                pieces::execute(&ctx, piece, action, &input_map).await.map(|r| (r, None)).map_err(Fault::Failed)
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
                    return Err(self.abort_step(step, kind, path, &input, msg, took, attempt, RunStatus::Timeout));
                }
                Ok(Err(panic)) => {
                    let msg = panic_message(&panic);
                    let took = started.elapsed().as_millis() as u64;
                    return Err(self.abort_step(
                        step,
                        kind,
                        path,
                        &input,
                        msg,
                        took,
                        attempt,
                        RunStatus::InternalError,
                    ));
                }
                Ok(Ok(Ok((r, logs)))) => {
                    self.pending_logs = logs;
                    break Ok(r);
                }
                Ok(Ok(Err(Fault::Fatal(status, msg)))) => {
                    let took = started.elapsed().as_millis() as u64;
                    return Err(self.abort_step(step, kind, path, &input, msg, took, attempt, status));
                }
                Ok(Ok(Err(Fault::Failed(e)))) if attempt >= attempts_allowed => break Err(e),
                Ok(Ok(Err(Fault::Failed(e)))) => {
                    let delay = RETRY_BASE_DELAY * 2u32.pow(attempt - 1);
                    let mut e = e;
                    redact_str(&mut e, &self.secrets);
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
                    self.journal(&step.name, kind, path, StepStatus::Paused, input, r.output, None, duration, attempt);
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
                self.journal(
                    &step.name,
                    kind,
                    path,
                    StepStatus::Succeeded,
                    input,
                    r.output.clone(),
                    None,
                    duration,
                    attempt,
                );
                self.outputs.insert(step.name.clone(), r.output);
                match r.control {
                    Control::Continue | Control::Pause(_) => Ok(()),
                    Control::Stop(mut response) => {
                        redact_value(&mut response, &self.secrets);
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
                self.journal_failure(step, kind, path, input, e.clone(), duration, attempt);
                self.on_failure(step, e)
            }
        }
    }

    /// Journals a failed execution of a step.
    #[allow(clippy::too_many_arguments)]
    fn journal_failure(
        &mut self,
        step: &Action,
        kind: &str,
        path: &[(String, usize)],
        input: Value,
        msg: String,
        took_ms: u64,
        attempt: u32,
    ) {
        self.journal(&step.name, kind, path, StepStatus::Failed, input, Value::Null, Some(msg), took_ms, attempt);
    }

    /// Journals a step that ends the run (timeout, panic) and says how the run ends.
    #[allow(clippy::too_many_arguments)]
    fn abort_step(
        &mut self,
        step: &Action,
        kind: &str,
        path: &[(String, usize)],
        input: &Value,
        msg: String,
        took_ms: u64,
        attempt: u32,
        status: RunStatus,
    ) -> Halt {
        self.journal_failure(step, kind, path, input.clone(), msg.clone(), took_ms, attempt);
        Halt::Fail(status, failed(step, msg))
    }

    /// True when the stored run is already terminal: canceled, or swept as timed out. Looked
    /// up at most every [`CANCEL_CHECK_EVERY`], so a cancel stops a run within that time plus
    /// the step in flight, and fast runs do not pay a read per step.
    fn ended_elsewhere(&mut self) -> bool {
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
        matches!(self.engine.store.get_run(&self.run.id), Ok(Some(r)) if r.status.is_terminal())
    }

    /// Resolves the templates of `value`, evaluating its expressions in the sandbox first.
    async fn resolve(&mut self, step: &Action, value: &Value) -> Result<Value, Fault> {
        let connections = self.connections(value)?;
        let exprs = template::expressions(value);
        let mut evals = template::Evaluations::new();
        if !exprs.is_empty() {
            let scope = Value::Object(self.outputs.clone());
            let results = self
                .engine
                .code
                .eval(exprs.clone(), scope, self.deadline)
                .await
                .map_err(|e| Fault::from_sandbox(step, e))?;
            evals.extend(exprs.into_iter().zip(results));
        }
        let resolved = match connections {
            None => template::resolve(value, &self.outputs, &evals),
            Some(conns) => {
                let mut outputs = self.outputs.clone();
                outputs.insert(crate::validate::CONNECTIONS.into(), Value::Object(conns));
                template::resolve(value, &outputs, &evals)
            }
        };
        resolved.map_err(|e| {
            let mut msg = e.to_string();
            redact_str(&mut msg, &self.secrets);
            Fault::Failed(msg)
        })
    }

    /// The connections `value` names, decrypted and shaped as pieces see them; their secrets
    /// join the run's list of values to redact.
    fn connections(&mut self, value: &Value) -> Result<Option<Map<String, Value>>, Fault> {
        let mut tokens = Vec::new();
        template::tokens(value, &mut tokens);
        let mut found = Map::new();
        for t in tokens {
            let Some(path) = template::parse_path(&t).filter(|p| p.root == crate::validate::CONNECTIONS) else {
                continue;
            };
            let Some(template::Segment::Key(name)) = path.segments.first() else { continue };
            if found.contains_key(name) {
                continue;
            }
            let store = &self.engine.store;
            let conn = store
                .connection_by_name(&self.run.project_id, name)
                .map_err(|e| Fault::Fatal(RunStatus::InternalError, e.to_string()))?
                .ok_or_else(|| Fault::Failed(format!("connection {name:?} does not exist in this project")))?;
            let secret =
                store.connection_value(&conn).map_err(|e| Fault::Fatal(RunStatus::InternalError, e.to_string()))?;
            for s in secrets_of(conn.kind, &secret) {
                if !self.secrets.contains(&s) {
                    self.secrets.push(s);
                }
            }
            // longest first, so that a secret inside another is not half-redacted
            self.secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
            found.insert(name.clone(), conn.kind.resolved(&secret));
        }
        Ok((!found.is_empty()).then_some(found))
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
            (None, Some(src)) => code.run_js(src.code.clone(), inputs, self.deadline).await,
            (None, None) => return Err(Fault::Failed("the step has no sourceCode".into())),
        }
        .map_err(|e| Fault::from_sandbox(step, e))?;
        let logs = Some(outcome.logs).filter(|l| !l.is_empty());
        Ok((pieces::ActionResult { output: outcome.output, control: Control::Continue }, logs))
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
        redact_value(&mut response, &self.secrets);
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
            Ok(Value::Null) => vec![],
            Ok(other) => {
                let msg = format!("items must be a list, got {}", short(&other));
                self.journal(
                    &step.name,
                    "LOOP_ON_ITEMS",
                    path,
                    StepStatus::Failed,
                    json!({"items": other}),
                    Value::Null,
                    Some(msg.clone()),
                    0,
                    1,
                );
                return Err(Halt::Fail(RunStatus::Failed, failed(step, msg)));
            }
            Err(e) => {
                self.journal(
                    &step.name,
                    "LOOP_ON_ITEMS",
                    path,
                    StepStatus::Failed,
                    json!({"items": raw}),
                    Value::Null,
                    Some(e.to_string()),
                    0,
                    1,
                );
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
                self.journal(
                    &step.name,
                    "LOOP_ON_ITEMS",
                    path,
                    status,
                    json!({"items": items}),
                    json!({"item": item, "index": i + 1}),
                    err,
                    started.elapsed().as_millis() as u64,
                    1,
                );
                return Err(halt);
            }
        }
        let (item, index) = match items.last() {
            Some(last) => (last.clone(), json!(items.len())),
            None => (Value::Null, json!(0)),
        };
        self.outputs.insert(step.name.clone(), json!({"item": item, "index": index, "iterations": iterations}));
        self.journal(
            &step.name,
            "LOOP_ON_ITEMS",
            path,
            StepStatus::Succeeded,
            json!({"items": items}),
            json!({"item": item, "index": index}),
            None,
            started.elapsed().as_millis() as u64,
            1,
        );
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
        self.journal(
            &step.name,
            "ROUTER",
            path,
            StepStatus::Succeeded,
            json!({"branches": resolved_input, "executionType": step.settings.execution_type}),
            output,
            None,
            started.elapsed().as_millis() as u64,
            1,
        );
        let children = step.children.clone().unwrap_or_default();
        for i in chosen {
            if let Some(Some(first)) = children.get(i) {
                self.chain(Some(first), path).await?;
            }
        }
        Ok(())
    }
}

fn short(v: &Value) -> String {
    let s = v.to_string();
    if s.len() > 80 {
        format!("{}…", &s[..s.char_indices().take_while(|(i, _)| *i < 80).last().map_or(0, |(i, _)| i)])
    } else {
        s
    }
}
