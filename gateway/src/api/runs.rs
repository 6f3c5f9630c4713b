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

pub(super) fn statuses(list: Vec<&str>) -> Result<Vec<RunStatus>, ApiError> {
    list.into_iter()
        .map(|s| RunStatus::parse(s).ok_or_else(|| ApiError::bad_request(format!("unknown run status {s:?}"))))
        .collect()
}

pub async fn list(state: &AppState, scope: &Scope, req: Request<Incoming>) -> Resp {
    let q = query_pairs(&req)?;
    let strings = |k: &str| query_all(&q, k).into_iter().map(String::from).collect::<Vec<_>>();
    let filter = RunFilter {
        project_id: scope.list_filter(query_one(&q, "projectId"))?,
        flow_ids: strings("flowId"),
        statuses: statuses(query_all(&q, "status"))?,
        created_after: query_one(&q, "createdAfter").map(String::from),
        created_before: query_one(&q, "createdBefore").map(String::from),
        tags: strings("tags"),
        failed_step_name: query_one(&q, "failedStepName").map(String::from),
        failed_step_message: query_one(&q, "failedStepMessage").map(String::from),
        flow_run_ids: strings("flowRunIds"),
        include_archived: query_one(&q, "includeArchived") == Some("true"),
    };
    let mut page = state.store.list_runs(&filter, query_limit(&q)?, query_one(&q, "cursor"))?;
    for run in &mut page.data {
        run.trigger_output = state.store.trigger_output(run.shard, &run.id)?;
    }
    Ok(json_response(StatusCode::OK, &json!({"data": page.data, "next": page.next, "previous": page.previous})))
}

/// The body of the bulk operations (Activepieces' `BulkActionOnRunsRequestBody` and its
/// kin): the runs named, or every run the filters select, less the excluded.
#[derive(serde::Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub(super) struct Bulk {
    #[serde(default)]
    project_id: Option<String>,
    #[serde(default)]
    flow_run_ids: Option<Vec<String>>,
    #[serde(default)]
    exclude_flow_run_ids: Vec<String>,
    #[serde(default)]
    pub(super) status: Vec<String>,
    #[serde(default)]
    flow_id: Vec<String>,
    #[serde(default)]
    created_after: Option<String>,
    #[serde(default)]
    created_before: Option<String>,
    #[serde(default)]
    failed_step_name: Option<String>,
    #[serde(default)]
    failed_step_message: Option<String>,
    #[serde(default)]
    strategy: Option<RetryStrategy>,
}

/// The runs a bulk operation applies to.
fn bulk_runs(state: &AppState, scope: &Scope, bulk: &Bulk) -> Result<Vec<FlowRun>, ApiError> {
    let filter = RunFilter {
        project_id: scope.list_filter(bulk.project_id.as_deref())?,
        flow_ids: bulk.flow_id.clone(),
        statuses: statuses(bulk.status.iter().map(String::as_str).collect())?,
        created_after: bulk.created_after.clone(),
        created_before: bulk.created_before.clone(),
        failed_step_name: bulk.failed_step_name.clone(),
        failed_step_message: bulk.failed_step_message.clone(),
        flow_run_ids: bulk.flow_run_ids.clone().unwrap_or_default(),
        include_archived: true,
        ..RunFilter::default()
    };
    let mut runs = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let page = state.store.list_runs(&filter, 1000, cursor.as_deref())?;
        runs.extend(page.data.into_iter().filter(|r| !bulk.exclude_flow_run_ids.contains(&r.id)));
        match page.next {
            Some(next) => cursor = Some(next),
            None => return Ok(runs),
        }
    }
}

/// `POST /flow-runs/cancel`: the queued and paused runs selected end `CANCELED`.
pub async fn bulk_cancel(state: &AppState, scope: &Scope, req: Request<Incoming>) -> Resp {
    let bulk: Bulk = read_json(req, state.config.api_body_limit).await?;
    let mut canceled = Vec::new();
    for run in bulk_runs(state, scope, &bulk)? {
        if matches!(run.status(), RunStatus::Queued | RunStatus::Paused) {
            if let Ok(r) = cancel_run(state, &run.id) {
                canceled.push(r);
            }
        }
    }
    state.store.flush().await?;
    Ok(json_response(StatusCode::OK, &canceled))
}

/// `POST /flow-runs/retry`: the failed runs selected, retried with `strategy`.
pub async fn bulk_retry(state: &AppState, scope: &Scope, req: Request<Incoming>) -> Resp {
    let bulk: Bulk = read_json(req, state.config.api_body_limit).await?;
    let strategy = bulk
        .strategy
        .ok_or_else(|| ApiError::bad_request("strategy is required: FROM_FAILED_STEP or ON_LATEST_VERSION"))?;
    let mut retried = Vec::new();
    for run in bulk_runs(state, scope, &bulk)? {
        if run.status().is_failure() {
            retried.push(retry_run(state, run, strategy).await?);
        }
    }
    Ok(json_response(StatusCode::OK, &retried))
}

/// `POST /flow-runs/archive`: the runs selected leave the lists (`includeArchived` shows them).
pub async fn bulk_archive(state: &AppState, scope: &Scope, req: Request<Incoming>) -> Resp {
    let bulk: Bulk = read_json(req, state.config.api_body_limit).await?;
    let now = troupe_store::ids::now_iso();
    for run in bulk_runs(state, scope, &bulk)? {
        state.store.update_run(&run.id, |stored| {
            stored.archived_at = Some(now.clone());
            Ok(())
        })?;
    }
    state.store.flush().await?;
    Ok(Response::builder().status(StatusCode::NO_CONTENT).body(Full::new(Bytes::new())).expect("valid"))
}

/// `GET /flow-runs/count-by-status`: `{data: [{status, count}]}` over the project's runs.
pub async fn count_by_status(state: &AppState, scope: &Scope, req: Request<Incoming>) -> Resp {
    let q = query_pairs(&req)?;
    let bulk = Bulk {
        project_id: query_one(&q, "projectId").map(String::from),
        created_after: query_one(&q, "createdAfter").map(String::from),
        created_before: query_one(&q, "createdBefore").map(String::from),
        ..Bulk::default()
    };
    let mut counts: std::collections::BTreeMap<&'static str, usize> = std::collections::BTreeMap::new();
    for run in bulk_runs(state, scope, &bulk)? {
        *counts.entry(run.status().as_str()).or_default() += 1;
    }
    let data: Vec<Value> =
        counts.into_iter().map(|(status, count)| json!({"status": status, "count": count})).collect();
    Ok(json_response(StatusCode::OK, &json!({"data": data})))
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
pub(super) struct RetryRequest {
    strategy: RetryStrategy,
}

#[derive(serde::Deserialize, Clone, Copy, PartialEq, Eq, Debug)]
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
    Ok(json_response(StatusCode::OK, &retry_run(state, run, body.strategy).await?))
}

async fn retry_run(state: &AppState, run: FlowRun, strategy: RetryStrategy) -> Result<FlowRun, ApiError> {
    let latest = if strategy == RetryStrategy::OnLatestVersion {
        let flow =
            state.store.get_flow(&run.flow_id)?.ok_or_else(|| ApiError::conflict("the run's flow was deleted"))?;
        Some(flow.published_version_id.ok_or_else(|| ApiError::conflict("the flow has no published version"))?)
    } else {
        None
    };
    let run = state.store.transition_run(&run.id, RunStatus::Queued, |stored| {
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
    Ok(run)
}

/// `POST /flow-runs/{id}/cancel`: a queued, running or paused run ends as `CANCELED` and never
/// resumes; a running run stops before its next step.
pub async fn cancel(state: &AppState, scope: &Scope, id: &str) -> Resp {
    load_run(state, scope, id)?;
    let run = cancel_run(state, id)?;
    state.store.flush().await?;
    Ok(json_response(StatusCode::OK, &run))
}

fn cancel_run(state: &AppState, id: &str) -> Result<FlowRun, ApiError> {
    Ok(state.store.transition_run(id, RunStatus::Canceled, |stored| {
        if stored.status().is_terminal() {
            return Err(RunConflict::refused(format!("the run already ended as {}", stored.status().as_str())));
        }
        let now = troupe_store::ids::now_iso();
        stored.finish_time = Some(now.clone());
        stored.updated = now;
        Ok(())
    })?)
}
