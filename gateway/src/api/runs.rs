//! `/api/v1/flow-runs`: list and get, each run with its journaled steps.

use crate::error::{json_response, ApiError};
use crate::http::{query_all, query_limit, query_one, query_pairs, read_json, Scope};
use crate::AppState;
use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use serde_json::{json, Value};
use troupe_store::db::RunFilter;
use troupe_store::message::ShardMessage;
use troupe_store::publish::{publish_to_shard, ShardPost};
use troupe_store::run::{steps_object, FlowRun, RunConflict, RunStatus};

type Resp = Result<Response<Full<Bytes>>, ApiError>;

pub async fn list(state: &AppState, scope: &Scope, req: Request<Incoming>) -> Resp {
    let q = query_pairs(&req)?;
    let statuses = query_all(&q, "status")
        .into_iter()
        .map(|s| RunStatus::parse(s).ok_or_else(|| ApiError::bad_request(format!("unknown run status {s:?}"))))
        .collect::<Result<Vec<_>, _>>()?;
    let filter = RunFilter {
        project_id: scope.list_filter(query_one(&q, "projectId"))?,
        flow_ids: query_all(&q, "flowId").into_iter().map(String::from).collect(),
        statuses,
        created_after: query_one(&q, "createdAfter").map(String::from),
        created_before: query_one(&q, "createdBefore").map(String::from),
    };
    let mut page = state.store.list_runs(&filter, query_limit(&q)?, query_one(&q, "cursor"))?;
    for run in &mut page.data {
        run.trigger_output = state.store.trigger_output(run.shard, &run.id)?;
    }
    Ok(json_response(StatusCode::OK, &json!({"data": page.data, "next": page.next, "previous": page.previous})))
}

pub fn run_with_steps(state: &AppState, mut run: FlowRun) -> Result<Value, ApiError> {
    let steps = state.store.run_steps(run.shard, &run.id)?;
    run.trigger_output = steps.iter().find(|r| r.seq == 0).map(|r| r.output.clone()).unwrap_or_default();
    let mut body = serde_json::to_value(&run).expect("serializes");
    body["steps"] = steps_object(&steps);
    Ok(body)
}

/// A run the caller may see.
fn load_run(state: &AppState, scope: &Scope, id: &str) -> Result<FlowRun, ApiError> {
    state.store.get_run(id)?.filter(|r| scope.allows(&r.project_id)).ok_or_else(|| ApiError::not_found("flow run", id))
}

pub async fn get(state: &AppState, scope: &Scope, id: &str) -> Resp {
    let run = load_run(state, scope, id)?;
    Ok(json_response(StatusCode::OK, &run_with_steps(state, run)?))
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct RetryRequest {
    strategy: RetryStrategy,
}

#[derive(serde::Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
enum RetryStrategy {
    FromFailedStep,
    OnLatestVersion,
}

/// Asks the run's shard worker to start a queued run, through JetStream like a webhook.
pub(crate) async fn start_on_shard(state: &AppState, run: &FlowRun) -> Result<(), ApiError> {
    let msg_id = format!("start-{}-{}", run.id, troupe_store::ids::now_micros());
    let message = ShardMessage::StartRun { run_id: run.id.clone() };
    let post = ShardPost { shard: run.shard, msg_id: &msg_id, message: &message, reply_to: None };
    publish_to_shard(&state.nats, &state.js, &state.store, post)
        .await
        .map_err(|e| ApiError::unavailable(format!("could not queue the run: {e}")))
}

/// `POST /flow-runs/{id}/retry`: `FROM_FAILED_STEP` continues the run, skipping the steps that
/// succeeded; `ON_LATEST_VERSION` runs it again from its trigger output on the published
/// version. Only failed runs can be retried.
pub async fn retry(state: &AppState, scope: &Scope, id: &str, req: Request<Incoming>) -> Resp {
    let body: RetryRequest = read_json(req, state.config.api_body_limit).await?;
    let run = load_run(state, scope, id)?;
    let latest = if body.strategy == RetryStrategy::OnLatestVersion {
        let flow =
            state.store.get_flow(&run.flow_id)?.ok_or_else(|| ApiError::conflict("the run's flow was deleted"))?;
        Some(flow.published_version_id.ok_or_else(|| ApiError::conflict("the flow has no published version"))?)
    } else {
        None
    };
    let run = state.store.transition_run(id, RunStatus::Queued, |stored| {
        if !stored.status().is_failure() {
            let why = format!("only failed runs can be retried; this run is {}", stored.status().as_str());
            return Err(RunConflict::refused(why));
        }
        stored.failed_step = None;
        stored.finish_time = None;
        stored.response = None;
        stored.reply_to = None;
        stored.updated = troupe_store::ids::now_iso();
        if let Some(v) = &latest {
            stored.flow_version_id = v.clone();
            stored.start_time = None;
            stored.steps_count = 0;
        }
        Ok(())
    })?;
    if latest.is_some() {
        state.store.clear_steps(run.shard, &run.id)?;
    }
    state.store.flush().await?;
    start_on_shard(state, &run).await?;
    Ok(json_response(StatusCode::OK, &run))
}

/// `POST /flow-runs/{id}/cancel`: a queued, running or paused run ends as `CANCELED` and never
/// resumes; a running run stops before its next step.
pub async fn cancel(state: &AppState, scope: &Scope, id: &str) -> Resp {
    load_run(state, scope, id)?;
    let run = state.store.transition_run(id, RunStatus::Canceled, |stored| {
        if stored.status().is_terminal() {
            return Err(RunConflict::refused(format!("the run already ended as {}", stored.status().as_str())));
        }
        let now = troupe_store::ids::now_iso();
        stored.finish_time = Some(now.clone());
        stored.updated = now;
        Ok(())
    })?;
    state.store.flush().await?;
    Ok(json_response(StatusCode::OK, &run))
}
