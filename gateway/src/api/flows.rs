//! `/api/v1/flows`: create, list, get, delete, and the flow operations.

use crate::error::{json_response, ApiError};
use crate::http::{query_limit, query_one, query_pairs, read_json, Scope};
use crate::AppState;
use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use serde::Deserialize;
use serde_json::{json, Value};
use troupe_actors::validate::validate;
use troupe_store::db::FlowFilter;
use troupe_store::flow::{Flow, FlowStatus, FlowVersion, PopulatedFlow, VersionState};
use troupe_store::flow_ops::{self, AddActionRequest, DeleteActionRequest, ImportFlowRequest};
use troupe_store::ids::{new_id, now_iso, now_micros};

type Resp = Result<Response<Full<Bytes>>, ApiError>;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CreateFlowRequest {
    display_name: String,
    #[serde(default)]
    project_id: Option<String>,
    #[serde(default)]
    folder_id: Option<String>,
}

fn populated(state: &AppState, flow: Flow) -> Result<PopulatedFlow, ApiError> {
    let version = state
        .store
        .get_version(&flow.latest_version_id)?
        .ok_or_else(|| ApiError::internal(format!("flow {} has lost its version", flow.id)))?;
    Ok(PopulatedFlow { flow, version })
}

pub async fn create(state: &AppState, scope: &Scope, req: Request<Incoming>) -> Resp {
    let body: CreateFlowRequest = read_json(req, state.config.api_body_limit).await?;
    let project_id = body.project_id.or_else(|| scope.project.clone()).unwrap_or_else(|| state.default_project.clone());
    if !scope.allows(&project_id) || !state.store.project_exists(&project_id)? {
        return Err(ApiError::not_found("project", &project_id));
    }
    let now = now_iso();
    let flow_id = new_id();
    let version = FlowVersion {
        id: new_id(),
        created: now.clone(),
        updated: now.clone(),
        flow_id: flow_id.clone(),
        display_name: body.display_name,
        trigger: flow_ops::empty_trigger(),
        updated_by: None,
        valid: false,
        schema_version: None,
        state: VersionState::Draft,
        extra: Default::default(),
    };
    let flow = Flow {
        id: flow_id,
        created: now.clone(),
        updated: now,
        project_id,
        folder_id: body.folder_id,
        status: FlowStatus::Disabled,
        published_version_id: None,
        external_id: None,
        latest_version_id: version.id.clone(),
        disabled_reason: None,
    };
    state.store.insert_new_flow(&flow, &version, now_micros())?;
    state.store.flush().await?;
    Ok(json_response(StatusCode::CREATED, &populated(state, flow)?))
}

pub async fn list(state: &AppState, scope: &Scope, req: Request<Incoming>) -> Resp {
    let q = query_pairs(&req)?;
    let status = match query_one(&q, "status") {
        None => None,
        Some(s) => Some(
            serde_json::from_value::<FlowStatus>(Value::String(s.into()))
                .map_err(|_| ApiError::bad_request(format!("status {s:?} must be ENABLED or DISABLED")))?,
        ),
    };
    let filter = FlowFilter {
        project_id: scope.list_filter(query_one(&q, "projectId"))?,
        folder_id: query_one(&q, "folderId").map(String::from),
        status,
    };
    let page = state.store.list_flows(&filter, query_limit(&q)?, query_one(&q, "cursor"))?;
    let data = page.data.into_iter().map(|f| populated(state, f)).collect::<Result<Vec<_>, _>>()?;
    Ok(json_response(StatusCode::OK, &json!({"data": data, "next": page.next, "previous": page.previous})))
}

pub fn load_flow(state: &AppState, scope: &Scope, id: &str) -> Result<Flow, ApiError> {
    match state.store.get_flow(id)? {
        Some(f) if scope.allows(&f.project_id) => Ok(f),
        Some(_) => Err(ApiError::not_found("flow", id)),
        None if scope.project.is_none() && state.store.flow_was_deleted(id)? => {
            Err(ApiError::new(StatusCode::GONE, "GONE", format!("flow {id:?} was deleted")))
        }
        None => Err(ApiError::not_found("flow", id)),
    }
}

pub async fn get(state: &AppState, scope: &Scope, id: &str) -> Resp {
    let flow = load_flow(state, scope, id)?;
    Ok(json_response(StatusCode::OK, &populated(state, flow)?))
}

/// Registers (or removes) the flow's schedule or polling timers after a change.
fn sync_triggers(state: &AppState, flow_id: &str, flow: Option<&Flow>) -> Result<(), ApiError> {
    troupe_scheduler::sync_flow_triggers(&state.store, flow_id, flow, &troupe_scheduler::SystemClock).map_err(|e| {
        match e {
            troupe_scheduler::ScheduleError::Invalid(m) => ApiError::bad_request(format!("step \"trigger\": {m}")),
            troupe_scheduler::ScheduleError::Store(e) => e.into(),
        }
    })
}

/// Validation of the version plus what only the scheduler knows (schedule inputs).
fn problems_of(state: &AppState, version: &FlowVersion) -> Vec<troupe_actors::validate::Problem> {
    let mut problems = validate(version);
    let project = state.store.get_flow(&version.flow_id).ok().flatten().map(|f| f.project_id);
    for (step, name) in troupe_actors::validate::connection_names(version) {
        let exists =
            project.as_deref().is_some_and(|p| state.store.connection_by_name(p, &name).ok().flatten().is_some());
        if !exists {
            problems.push(troupe_actors::validate::Problem {
                step,
                field: "settings.input".into(),
                message: format!(
                    "connection {name:?} does not exist in this project; create it with POST /api/v1/app-connections"
                ),
            });
        }
    }
    for action in version.actions() {
        if let Some(id) = &action.settings.wasm_module {
            if problems.iter().all(|p| p.step != action.name) && !state.store.has_wasm_module(id) {
                problems.push(troupe_actors::validate::Problem {
                    step: action.name.clone(),
                    field: "settings.wasmModule".into(),
                    message: format!("no WASI module with id {id}; upload it with POST /api/v1/wasm-modules first"),
                });
            }
        }
    }
    let t = &version.trigger;
    if let (Some(piece), Some(trigger)) = (&t.settings.piece_name, &t.settings.trigger_name) {
        if let Err(m) = troupe_scheduler::check_trigger(piece, trigger, &t.settings.input.clone().unwrap_or_default()) {
            problems.push(troupe_actors::validate::Problem {
                step: t.name.clone(),
                field: "settings.input".into(),
                message: m.to_string(),
            });
        }
    }
    problems
}

pub async fn delete(state: &AppState, scope: &Scope, id: &str) -> Resp {
    load_flow(state, scope, id)?;
    state.store.delete_flow(id)?;
    sync_triggers(state, id, None)?;
    state.store.flush().await?;
    Ok(Response::builder().status(StatusCode::NO_CONTENT).body(Full::new(Bytes::new())).expect("valid"))
}

#[derive(Deserialize)]
struct OperationEnvelope {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    request: Value,
}

fn parse<T: serde::de::DeserializeOwned>(kind: &str, request: Value) -> Result<T, ApiError> {
    serde_json::from_value(request).map_err(|e| ApiError::bad_request(format!("{kind} request: {e}")))
}

/// The draft to edit: the newest version if it is a draft, else a new draft copied from it.
fn draft_for_edit(state: &AppState, flow: &mut Flow) -> Result<FlowVersion, ApiError> {
    let latest = state
        .store
        .get_version(&flow.latest_version_id)?
        .ok_or_else(|| ApiError::internal("flow has lost its version"))?;
    if latest.state == VersionState::Draft {
        return Ok(latest);
    }
    Ok(new_draft_from(flow, latest))
}

fn new_draft_from(flow: &mut Flow, source: FlowVersion) -> FlowVersion {
    let now = now_iso();
    let draft = FlowVersion { id: new_id(), created: now.clone(), updated: now, state: VersionState::Draft, ..source };
    flow.latest_version_id = draft.id.clone();
    draft
}

const OPERATIONS: &str = "IMPORT_FLOW, UPDATE_TRIGGER, ADD_ACTION, UPDATE_ACTION, DELETE_ACTION, LOCK_AND_PUBLISH, CHANGE_STATUS, CHANGE_NAME, USE_AS_DRAFT";

pub async fn operate(state: &AppState, scope: &Scope, id: &str, req: Request<Incoming>) -> Resp {
    let op: OperationEnvelope = read_json(req, state.config.api_body_limit).await?;
    let mut flow = load_flow(state, scope, id)?;
    let edit_error = |e: flow_ops::EditError| ApiError::bad_request(e.to_string());
    let kind = op.kind.as_str();
    let mut edited: Option<FlowVersion> = None;
    match kind {
        "IMPORT_FLOW" | "UPDATE_TRIGGER" | "ADD_ACTION" | "UPDATE_ACTION" | "DELETE_ACTION" | "CHANGE_NAME" => {
            let mut draft = draft_for_edit(state, &mut flow)?;
            match kind {
                "IMPORT_FLOW" => flow_ops::import_flow(&mut draft, parse::<ImportFlowRequest>(kind, op.request)?),
                "UPDATE_TRIGGER" => flow_ops::update_trigger(&mut draft, parse(kind, op.request)?),
                "ADD_ACTION" => flow_ops::add_action(&mut draft, parse::<AddActionRequest>(kind, op.request)?)
                    .map_err(edit_error)?,
                "UPDATE_ACTION" => flow_ops::update_action(&mut draft, parse(kind, op.request)?).map_err(edit_error)?,
                "DELETE_ACTION" => {
                    let r: DeleteActionRequest = parse(kind, op.request)?;
                    flow_ops::delete_actions(&mut draft, &r.names).map_err(edit_error)?
                }
                _ => {
                    #[derive(Deserialize)]
                    #[serde(rename_all = "camelCase")]
                    struct ChangeName {
                        display_name: String,
                    }
                    draft.display_name = parse::<ChangeName>(kind, op.request)?.display_name;
                }
            }
            draft.valid = problems_of(state, &draft).is_empty();
            draft.updated = now_iso();
            edited = Some(draft);
        }
        "LOCK_AND_PUBLISH" => {
            #[derive(Deserialize, Default)]
            struct Publish {
                #[serde(default)]
                status: Option<FlowStatus>,
            }
            let req: Publish = if op.request.is_null() { Publish::default() } else { parse(kind, op.request)? };
            let mut version = state
                .store
                .get_version(&flow.latest_version_id)?
                .ok_or_else(|| ApiError::internal("flow has lost its version"))?;
            let problems = problems_of(state, &version);
            if !problems.is_empty() {
                let list = problems.iter().map(|p| p.to_string()).collect::<Vec<_>>().join("; ");
                return Err(ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "INVALID_FLOW",
                    format!("the flow cannot be published: {list}"),
                )
                .with("problems", serde_json::to_value(&problems).expect("serializes")));
            }
            version.state = VersionState::Locked;
            version.valid = true;
            version.updated = now_iso();
            flow.published_version_id = Some(version.id.clone());
            flow.status = req.status.unwrap_or(FlowStatus::Enabled);
            flow.disabled_reason = None;
            edited = Some(version);
        }
        "CHANGE_STATUS" => {
            #[derive(Deserialize)]
            struct ChangeStatus {
                status: FlowStatus,
            }
            let status = parse::<ChangeStatus>(kind, op.request)?.status;
            if status == FlowStatus::Enabled && flow.published_version_id.is_none() {
                return Err(ApiError::bad_request(
                    "the flow has no published version; publish it (LOCK_AND_PUBLISH) before enabling it",
                ));
            }
            flow.status = status;
            flow.disabled_reason = None;
        }
        "USE_AS_DRAFT" => {
            #[derive(Deserialize)]
            #[serde(rename_all = "camelCase")]
            struct UseAsDraft {
                version_id: String,
            }
            let version_id = parse::<UseAsDraft>(kind, op.request)?.version_id;
            let source = state
                .store
                .get_version(&version_id)?
                .filter(|v| v.flow_id == flow.id)
                .ok_or_else(|| ApiError::not_found("flow version", &version_id))?;
            let mut draft = new_draft_from(&mut flow, source);
            draft.valid = problems_of(state, &draft).is_empty();
            edited = Some(draft);
        }
        other => {
            return Err(ApiError::bad_request(format!(
                "unsupported operation type {other:?}; supported: {OPERATIONS}"
            )));
        }
    }
    if let Some(v) = &edited {
        state.store.put_version(v)?;
    }
    flow.updated = now_iso();
    state.store.put_flow(&flow)?;
    if matches!(kind, "LOCK_AND_PUBLISH" | "CHANGE_STATUS") {
        sync_triggers(state, &flow.id, Some(&flow))?;
    }
    state.store.flush().await?;
    Ok(json_response(StatusCode::OK, &populated(state, flow)?))
}
