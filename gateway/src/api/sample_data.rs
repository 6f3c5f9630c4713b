//! Sample data, test step and test trigger, as Activepieces' builder uses them:
//! - `GET /api/v1/sample-data?flowId&flowVersionId&stepName&type` and `POST /api/v1/sample-data`
//!   (the seed's Get and Save Sample Data): a step's sample data, which its settings point to
//!   (`settings.sampleData.sampleDataFileId`, `sampleDataInputFileId`, `lastTestDate`);
//! - `POST /api/v1/step-run` (also `/sample-data/test-step`) `{flowVersionId, stepName}`: the
//!   step runs alone with the sample data of the others, and what it took and gave becomes its
//!   sample data (Activepieces' `StepRunResponse`);
//! - `POST /api/v1/test-trigger` `{flowId, flowVersionId, testStrategy}`: `TEST_FUNCTION` runs
//!   the trigger's `test` hook, `SIMULATION` waits for a webhook to `/webhooks/{flowId}/test`;
//!   either way each item is kept as a trigger event (`GET /api/v1/trigger-events`) and the
//!   first becomes the trigger's sample data. No run is made.

use crate::error::{json_response, ApiError};
use crate::http::{query_limit, query_one, query_pairs, read_json, Scope};
use crate::AppState;
use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use serde::Deserialize;
use serde_json::{json, Map, Value};
use troupe_store::db::{SampleDataFile, TriggerEvent};
use troupe_store::flow::{Flow, FlowVersion, VersionState};
use troupe_store::flow_ops;
use troupe_store::ids::{new_id, new_ordered_id, now_iso};

type Resp = Result<Response<Full<Bytes>>, ApiError>;

/// `INPUT` or `OUTPUT` (Activepieces' `SampleDataFileType`).
fn file_kind(kind: Option<&str>) -> Result<&'static str, ApiError> {
    match kind.unwrap_or("OUTPUT") {
        "OUTPUT" => Ok("OUTPUT"),
        "INPUT" => Ok("INPUT"),
        other => Err(ApiError::bad_request(format!("type {other:?} must be INPUT or OUTPUT"))),
    }
}

/// The settings key under `sampleData` that points to a file of `kind`.
fn file_key(kind: &str) -> &'static str {
    if kind == "INPUT" {
        "sampleDataInputFileId"
    } else {
        "sampleDataFileId"
    }
}

/// A version of a flow the caller may see.
fn load_version(state: &AppState, flow: &Flow, version_id: Option<&str>) -> Result<FlowVersion, ApiError> {
    let id = version_id.unwrap_or(&flow.latest_version_id);
    state.store.get_version(id)?.filter(|v| v.flow_id == flow.id).ok_or_else(|| ApiError::not_found("flow version", id))
}

/// The sample data `version`'s step `name` points to, if any.
fn sample_of(state: &AppState, version: &FlowVersion, name: &str, kind: &str) -> Result<Option<Value>, ApiError> {
    let settings = if version.trigger.name == name {
        &version.trigger.settings
    } else {
        match version.actions().into_iter().find(|a| a.name == name) {
            Some(a) => &a.settings,
            None => return Err(ApiError::bad_request(format!("step {name:?} does not exist in this flow version"))),
        }
    };
    let Some(id) = settings.extra.get("sampleData").and_then(|s| s[file_key(kind)].as_str()) else {
        return Ok(None);
    };
    Ok(state.store.get_sample_data(id)?.map(|f| f.data))
}

/// Keeps `data` as the `kind` sample data of `version`'s step `name` (the file it already
/// points to when that file is this version's, else a new one) and points the step to it.
/// The caller saves the version.
pub fn keep(
    state: &AppState,
    version: &mut FlowVersion,
    project_id: &str,
    name: &str,
    kind: &str,
    data: Value,
) -> Result<SampleDataFile, ApiError> {
    let edit = |e: flow_ops::EditError| ApiError::bad_request(e.to_string());
    let current = flow_ops::settings_mut(version, name)
        .map_err(edit)?
        .extra
        .get("sampleData")
        .and_then(|s| s[file_key(kind)].as_str())
        .map(str::to_string);
    let reuse = match current {
        Some(id) => state.store.get_sample_data(&id)?.filter(|f| f.flow_version_id == version.id).map(|f| f.id),
        None => None,
    };
    let file = SampleDataFile {
        id: reuse.unwrap_or_else(new_id),
        project_id: project_id.to_string(),
        flow_id: version.flow_id.clone(),
        flow_version_id: version.id.clone(),
        step_name: name.to_string(),
        kind: kind.to_string(),
        data,
        created: now_iso(),
    };
    state.store.put_sample_data(&file)?;
    let mut fields = Map::new();
    fields.insert(file_key(kind).into(), Value::String(file.id.clone()));
    fields.insert("lastTestDate".into(), Value::String(now_iso()));
    flow_ops::set_sample_data(version, name, fields).map_err(edit)?;
    version.updated = now_iso();
    Ok(file)
}

pub async fn get(state: &AppState, scope: &Scope, req: Request<Incoming>) -> Resp {
    let q = query_pairs(&req)?;
    let need =
        |k: &str| query_one(&q, k).ok_or_else(|| ApiError::bad_request(format!("query parameter {k} is required")));
    let flow = crate::api::flows::load_flow(state, scope, need("flowId")?)?;
    let version = load_version(state, &flow, query_one(&q, "flowVersionId"))?;
    let kind = file_kind(query_one(&q, "type"))?;
    let data = sample_of(state, &version, need("stepName")?, kind)?.unwrap_or_else(|| json!({}));
    Ok(json_response(StatusCode::OK, &data))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SaveRequest {
    flow_id: String,
    #[serde(default)]
    flow_version_id: Option<String>,
    step_name: String,
    #[serde(default)]
    payload: Value,
    #[serde(default, rename = "type")]
    kind: Option<String>,
}

/// The draft version of `flow` whose sample data may change: the one asked for must be it.
fn draft(state: &AppState, flow: &Flow, version_id: Option<&str>) -> Result<FlowVersion, ApiError> {
    let version = load_version(state, flow, version_id)?;
    if version.state != VersionState::Draft {
        return Err(ApiError::conflict(format!(
            "flow version {:?} is locked (published); sample data belongs to the draft {:?}",
            version.id, flow.latest_version_id
        )));
    }
    Ok(version)
}

pub async fn save(state: &AppState, scope: &Scope, req: Request<Incoming>) -> Resp {
    let r: SaveRequest = read_json(req, state.config.api_body_limit).await?;
    let flow = crate::api::flows::load_flow(state, scope, &r.flow_id)?;
    let mut version = draft(state, &flow, r.flow_version_id.as_deref())?;
    let file = keep(state, &mut version, &flow.project_id, &r.step_name, file_kind(r.kind.as_deref())?, r.payload)?;
    state.store.put_version(&version)?;
    state.store.flush().await?;
    Ok(json_response(StatusCode::OK, &json!({"id": file.id, "type": file.file_type(), "size": file.size()})))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct StepRunRequest {
    flow_version_id: String,
    step_name: String,
}

/// The sample data of every step of `version` (and its trigger), by name.
fn all_samples(state: &AppState, version: &FlowVersion) -> Result<Map<String, Value>, ApiError> {
    let mut names = vec![version.trigger.name.clone()];
    names.extend(version.actions().into_iter().map(|a| a.name.clone()));
    let mut out = Map::new();
    for name in names {
        if let Some(data) = sample_of(state, version, &name, "OUTPUT")? {
            out.insert(name, data);
        }
    }
    Ok(out)
}

pub async fn test_step(state: &AppState, scope: &Scope, req: Request<Incoming>) -> Resp {
    let r: StepRunRequest = read_json(req, state.config.api_body_limit).await?;
    let version = state
        .store
        .get_version(&r.flow_version_id)?
        .ok_or_else(|| ApiError::not_found("flow version", &r.flow_version_id))?;
    let flow = crate::api::flows::load_flow(state, scope, &version.flow_id)?;
    let samples = all_samples(state, &version)?;
    let tested =
        troupe_actors::run::testing::test_step(&state.tester, &version, &flow.project_id, &r.step_name, samples)
            .await
            .map_err(|e| ApiError::bad_request(e.to_string()))?;
    let mut body = json!({
        "runId": new_id(),
        "success": tested.success,
        "input": tested.input,
        "output": tested.output,
        "standardError": if tested.success { String::new() } else { tested.output.as_str().unwrap_or_default().to_string() },
        "standardOutput": tested.logs,
    });
    // a draft keeps what its step took and gave; a published version is only tested
    if version.state == VersionState::Draft {
        let mut version = version;
        let project = flow.project_id.clone();
        if tested.success {
            let output = keep(state, &mut version, &project, &r.step_name, "OUTPUT", tested.output.clone())?;
            body["sampleDataFileId"] = json!(output.id);
        }
        let input = keep(state, &mut version, &project, &r.step_name, "INPUT", tested.input.clone())?;
        body["sampleDataInputFileId"] = json!(input.id);
        state.store.put_version(&version)?;
        state.store.flush().await?;
    }
    Ok(json_response(StatusCode::OK, &body))
}

/// Keeps `items` (what a trigger test gave) as trigger events of `flow`, and the first as the
/// sample data of `version`'s trigger (when it is the draft). Returns the events, newest first.
pub async fn keep_trigger_events(
    state: &AppState,
    flow: &Flow,
    mut version: FlowVersion,
    items: Vec<Value>,
) -> Result<Vec<TriggerEvent>, ApiError> {
    let now = now_iso();
    let mut events = Vec::with_capacity(items.len());
    for payload in items.iter().rev() {
        let event = TriggerEvent {
            id: new_ordered_id(),
            created: now.clone(),
            updated: now.clone(),
            project_id: flow.project_id.clone(),
            flow_id: flow.id.clone(),
            source_name: trigger_source(&version),
            payload: payload.clone(),
        };
        state.store.add_trigger_event(&event)?;
        events.push(event);
    }
    events.reverse();
    if let (Some(first), VersionState::Draft) = (items.into_iter().next(), version.state) {
        let trigger = version.trigger.name.clone();
        keep(state, &mut version, &flow.project_id, &trigger, "OUTPUT", first)?;
        state.store.put_version(&version)?;
    }
    state.store.flush().await?;
    Ok(events)
}

/// Activepieces' `sourceName` of a trigger event: `piece@version:trigger`.
fn trigger_source(version: &FlowVersion) -> String {
    let s = &version.trigger.settings;
    format!(
        "{}@{}:{}",
        s.piece_name.as_deref().unwrap_or_default(),
        s.piece_version.as_deref().unwrap_or_default(),
        s.trigger_name.as_deref().unwrap_or_default()
    )
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct TestTriggerRequest {
    flow_id: String,
    #[serde(default)]
    flow_version_id: Option<String>,
    #[serde(default)]
    test_strategy: Option<String>,
}

pub async fn test_trigger(state: &AppState, scope: &Scope, req: Request<Incoming>) -> Resp {
    let r: TestTriggerRequest = read_json(req, state.config.api_body_limit).await?;
    let flow = crate::api::flows::load_flow(state, scope, &r.flow_id)?;
    let version = load_version(state, &flow, r.flow_version_id.as_deref())?;
    let t = &version.trigger;
    let piece = t.settings.piece_name.as_deref().unwrap_or_default();
    let trigger = t.settings.trigger_name.as_deref().unwrap_or_default();
    let npm = troupe_actors::npm::npm_trigger_type(&state.store, piece, t.settings.piece_version.as_deref(), trigger);
    let strategy = r.test_strategy.as_deref().unwrap_or(if npm.is_some() { "TEST_FUNCTION" } else { "SIMULATION" });
    match strategy {
        "SIMULATION" => {
            let now = now_iso();
            let url = format!("{}/api/v1/webhooks/{}/test", state.config.public_url(), flow.id);
            Ok(json_response(
                StatusCode::OK,
                &json!({"id": new_id(), "created": now, "updated": now, "flowId": flow.id,
                    "flowVersionId": version.id, "projectId": flow.project_id, "webhookUrl": url}),
            ))
        }
        "TEST_FUNCTION" => {
            let items = match npm {
                Some(_) => {
                    let polled = state.triggers.hook(&flow, &version, "test", None, false).await.map_err(|e| {
                        ApiError::new(StatusCode::BAD_REQUEST, "TRIGGER_FAILED", format!("the trigger's test failed: {e}"))
                    })?;
                    polled.items
                }
                // the schedule piece's test is one empty event, as Activepieces' sample data
                None if piece == troupe_scheduler::schedule::PIECE => vec![json!({})],
                None => {
                    return Err(ApiError::bad_request(format!(
                        "{piece}'s trigger {trigger:?} has no test function; send a sample request to /api/v1/webhooks/{}/test",
                        flow.id
                    )))
                }
            };
            let events = keep_trigger_events(state, &flow, version, items).await?;
            Ok(json_response(StatusCode::OK, &json!({"data": events, "next": null, "previous": null})))
        }
        other => Err(ApiError::bad_request(format!("testStrategy {other:?} must be SIMULATION or TEST_FUNCTION"))),
    }
}

pub async fn trigger_events(state: &AppState, scope: &Scope, req: Request<Incoming>) -> Resp {
    let q = query_pairs(&req)?;
    let flow_id = query_one(&q, "flowId").ok_or_else(|| ApiError::bad_request("query parameter flowId is required"))?;
    let flow = crate::api::flows::load_flow(state, scope, flow_id)?;
    let events = state.store.trigger_events(&flow.id, query_limit(&q)?)?;
    Ok(json_response(StatusCode::OK, &json!({"data": events, "next": null, "previous": null})))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct MockRequest {
    flow_id: String,
    #[serde(default)]
    mock_data: Value,
}

/// `POST /api/v1/trigger-events`: keeps a client's mock data as a trigger event and the
/// trigger's sample data ("Use Mock Data").
pub async fn save_trigger_event(state: &AppState, scope: &Scope, req: Request<Incoming>) -> Resp {
    let r: MockRequest = read_json(req, state.config.api_body_limit).await?;
    let flow = crate::api::flows::load_flow(state, scope, &r.flow_id)?;
    let version = load_version(state, &flow, None)?;
    let events = keep_trigger_events(state, &flow, version, vec![r.mock_data]).await?;
    Ok(json_response(StatusCode::OK, &events[0]))
}

/// `/api/v1/webhooks/{flowId}/test`: a sample request for the draft's trigger. Its trigger
/// (an npm webhook trigger's `run`, or the catch-webhook's payload itself) turns it into trigger
/// events and the trigger's sample data; no run is made.
pub async fn webhook_test(state: &AppState, req: Request<Incoming>, flow_id: &str) -> Resp {
    let flow = match crate::api::flows::load_flow(state, &Scope::troupe(), flow_id) {
        Ok(f) => f,
        Err(e) => {
            crate::http::discard(req.into_body()).await;
            return Err(e);
        }
    };
    let (parts, body) = crate::http::read_request(req, state.config.webhook_body_limit).await?;
    let payload = crate::webhooks::trigger_payload(&parts, &body);
    let version = load_version(state, &flow, None)?;
    if let Some(resp) = crate::handshake::answer(state, &flow, &version.id, true, &payload).await? {
        return Ok(resp);
    }
    let t = &version.trigger.settings;
    let npm = troupe_actors::npm::npm_trigger_type(
        &state.store,
        t.piece_name.as_deref().unwrap_or_default(),
        t.piece_version.as_deref(),
        t.trigger_name.as_deref().unwrap_or_default(),
    );
    let items = match npm.as_deref() {
        Some("WEBHOOK" | "APP_WEBHOOK") => {
            let polled = state.triggers.hook(&flow, &version, "run", Some(&payload), false).await.map_err(|e| {
                ApiError::new(StatusCode::BAD_REQUEST, "TRIGGER_FAILED", format!("the trigger's run failed: {e}"))
            })?;
            polled.items
        }
        _ => vec![payload],
    };
    keep_trigger_events(state, &flow, version, items).await?;
    Ok(json_response(StatusCode::OK, &json!({})))
}
