//! A run's outcome, once its chain stopped: a pause recorded (journal, header, timers, the
//! early answer of a sync caller), or an end recorded (status, flush, the sync reply, the run
//! event). Everything here writes only while this process owns the run's shard.

use crate::context::EngineCtx;
use crate::metric_definitions::{RUNS_FINISHED, RUNS_PAUSED, RUN_DURATION};
use serde_json::{json, Map, Value};
use troupe_store::ids::now_iso;
use troupe_store::message::{RunEvent, WebhookResponse};
use troupe_store::names::subjects;
use troupe_store::run::{FailedStep, FlowRun, PauseMetadata, RunStatus};
use troupe_store::timer::{run_owner, Timer, TimerKind};

/// Records the pause and lets the actor go: a paused run is a journal, a header and a timer.
pub(super) async fn pause_run(
    engine: &EngineCtx,
    mut run: FlowRun,
    pause: PauseMetadata,
    elapsed_ms: u64,
    replied: bool,
) {
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
    let paused = engine.store.transition_run(&run.id, RunStatus::Paused, |stored| {
        let mut paused = run.clone();
        paused.pause = Some(pause.clone());
        paused.updated = now_iso();
        stored.update_from(paused);
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

pub(super) fn panic_message(panic: &Box<dyn std::any::Any + Send>) -> String {
    let what = panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into());
    format!("internal error while executing the step: {what}")
}

pub(super) async fn finalize(
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
    let stored = engine.store.transition_run(&run.id, status, |stored| {
        stored.update_from(run.clone());
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
        status: run.status(),
        finish_time: run.finish_time.clone(),
    };
    if let Err(e) =
        engine.js.publish(subjects::event(run.shard), serde_json::to_vec(&event).expect("serializes").into()).await
    {
        tracing::warn!(run_id = run.id, error = %e, "could not publish the run event");
    }
}

pub(super) fn to_webhook_response(r: &Value, run_id: &str) -> WebhookResponse {
    WebhookResponse {
        status: r.get("status").and_then(Value::as_u64).and_then(|s| u16::try_from(s).ok()).unwrap_or(200),
        headers: r.get("headers").and_then(Value::as_object).cloned().unwrap_or_default(),
        body: r.get("body").cloned().unwrap_or(Value::Null),
        run_id: run_id.to_string(),
    }
}

/// A sync webhook whose flow gave no response answers with the run's outcome.
fn outcome_response(run: &FlowRun) -> WebhookResponse {
    let mut body = json!({"runId": run.id, "status": run.status().as_str()});
    if let Some(f) = &run.failed_step {
        body["failedStep"] = json!({"name": f.name, "displayName": f.display_name, "message": f.message});
    }
    WebhookResponse {
        status: if run.status() == RunStatus::Succeeded { 200 } else { 500 },
        headers: Map::new(),
        body,
        run_id: run.id.clone(),
    }
}
