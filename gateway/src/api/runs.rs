//! `/api/v1/flow-runs`: list and get, each run with its journaled steps.

use crate::error::{json_response, ApiError};
use crate::http::{query_all, query_limit, query_one, query_pairs};
use crate::AppState;
use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use serde_json::{json, Value};
use troupe_store::db::RunFilter;
use troupe_store::run::{steps_object, FlowRun, RunStatus};

type Resp = Result<Response<Full<Bytes>>, ApiError>;

pub async fn list(state: &AppState, req: Request<Incoming>) -> Resp {
    let q = query_pairs(&req)?;
    let statuses = query_all(&q, "status")
        .into_iter()
        .map(|s| RunStatus::parse(s).ok_or_else(|| ApiError::bad_request(format!("unknown run status {s:?}"))))
        .collect::<Result<Vec<_>, _>>()?;
    let filter = RunFilter {
        project_id: query_one(&q, "projectId").map(String::from),
        flow_ids: query_all(&q, "flowId").into_iter().map(String::from).collect(),
        statuses,
        created_after: query_one(&q, "createdAfter").map(String::from),
        created_before: query_one(&q, "createdBefore").map(String::from),
    };
    let page = state.store.list_runs(&filter, query_limit(&q)?, query_one(&q, "cursor"))?;
    Ok(json_response(StatusCode::OK, &json!({"data": page.data, "next": page.next, "previous": page.previous})))
}

pub fn run_with_steps(state: &AppState, run: FlowRun) -> Result<Value, ApiError> {
    let steps = state.store.run_steps(run.shard, &run.id)?;
    let mut body = serde_json::to_value(&run).expect("serializes");
    body["steps"] = steps_object(&steps);
    Ok(body)
}

pub async fn get(state: &AppState, id: &str) -> Resp {
    let run = state.store.get_run(id)?.ok_or_else(|| ApiError::not_found("flow run", id))?;
    Ok(json_response(StatusCode::OK, &run_with_steps(state, run)?))
}
