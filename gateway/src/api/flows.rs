//! `/api/v1/flows`: create, list, get, delete, and the flow operations.

use crate::error::{json_response, ApiError};
use crate::http::{query_all, query_limit, query_one, query_pairs, read_json, Scope};
use crate::AppState;
use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use serde::Deserialize;
use serde_json::{json, Map, Value};
use troupe_actors::npm::NpmPieces;
use troupe_actors::validate::{validate, Problem};
use troupe_scheduler::PieceTriggers;
use troupe_store::db::FlowFilter;
use troupe_store::flow::{ActionType, Flow, FlowStatus, FlowVersion, PopulatedFlow, VersionState};
use troupe_store::flow_ops::{self, AddActionRequest, DeleteActionRequest, ImportFlowRequest};
use troupe_store::ids::{new_id, now_iso, now_micros};

type Resp = Result<Response<Full<Bytes>>, ApiError>;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct CreateFlowRequest {
    display_name: String,
    #[serde(default)]
    project_id: Option<String>,
    #[serde(default)]
    folder_id: Option<String>,
    #[serde(default)]
    metadata: Option<Value>,
}

fn populated(state: &AppState, flow: Flow) -> Result<PopulatedFlow, ApiError> {
    let version = state
        .store
        .get_version(&flow.latest_version_id)?
        .ok_or_else(|| ApiError::internal(format!("flow {} has lost its version", flow.id)))?;
    Ok(shaped(flow, version))
}

/// A flow with a version, in Activepieces' shape (`externalId` defaults to the flow's id).
fn shaped(mut flow: Flow, version: FlowVersion) -> PopulatedFlow {
    if flow.external_id.is_none() {
        flow.external_id = Some(flow.id.clone());
    }
    PopulatedFlow { flow, version: with_activepieces_fields(version) }
}

/// A version with the fields Activepieces' clients expect (`connectionIds` from its templates).
fn with_activepieces_fields(version: FlowVersion) -> FlowVersion {
    let mut ids: Vec<String> = Vec::new();
    for (_, name) in troupe_actors::validate::connection_names(&version) {
        if !ids.contains(&name) {
            ids.push(name);
        }
    }
    version.with_activepieces_fields(ids)
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
        metadata: body.metadata,
        owner_id: None,
        time_saved_per_run: None,
        operation_status: "NONE".into(),
    };
    state.store.insert_new_flow(&flow, &version, now_micros())?;
    crate::audit::flow(state, scope, "flow.created", &flow, &version, None)?;
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
    let filter = flow_filter(scope, &q, status)?;
    let page = state.store.list_flows(&filter, query_limit(&q)?, query_one(&q, "cursor"))?;
    let data = page.data.into_iter().map(|f| populated(state, f)).collect::<Result<Vec<_>, _>>()?;
    Ok(json_response(StatusCode::OK, &json!({"data": data, "next": page.next, "previous": page.previous})))
}

/// The filters of a flow list (Activepieces' `ListFlowsRequest`): `projectId`, `folderId`
/// (`NULL`: in no folder), `status`, `name`, `externalIds`, `versionState`.
fn flow_filter(scope: &Scope, q: &[(String, String)], status: Option<FlowStatus>) -> Result<FlowFilter, ApiError> {
    let version_state = match query_one(q, "versionState") {
        None => None,
        Some(s) => Some(
            serde_json::from_value::<VersionState>(Value::String(s.into()))
                .map_err(|_| ApiError::bad_request(format!("versionState {s:?} must be DRAFT or LOCKED")))?,
        ),
    };
    Ok(FlowFilter {
        project_id: scope.list_filter(query_one(q, "projectId"))?,
        folder_id: query_one(q, "folderId").map(String::from),
        status,
        name: query_one(q, "name").filter(|n| !n.is_empty()).map(String::from),
        external_ids: query_all(q, "externalIds").into_iter().map(String::from).collect(),
        version_state,
    })
}

/// `GET /flows/count`: how many flows the filters select (a number, as Activepieces answers).
pub async fn count(state: &AppState, scope: &Scope, req: Request<Incoming>) -> Resp {
    let q = query_pairs(&req)?;
    let filter = flow_filter(scope, &q, None)?;
    Ok(json_response(StatusCode::OK, &state.store.count_flows(&filter)?))
}

/// `GET /flows/{id}/versions`: the flow's versions, newest first, without their steps.
pub async fn versions(state: &AppState, scope: &Scope, id: &str, req: Request<Incoming>) -> Resp {
    let q = query_pairs(&req)?;
    let flow = load_flow(state, scope, id)?;
    let limit = query_limit(&q)?;
    let data: Vec<Value> = state
        .store
        .flow_versions(&flow.id)?
        .into_iter()
        .take(limit)
        .map(|v| {
            let mut m = serde_json::to_value(with_activepieces_fields(v)).expect("serializes");
            if let Some(o) = m.as_object_mut() {
                o.remove("trigger");
            }
            m
        })
        .collect();
    Ok(json_response(StatusCode::OK, &json!({"data": data, "next": null, "previous": null})))
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

pub async fn get(state: &AppState, scope: &Scope, id: &str, req: &Request<Incoming>) -> Resp {
    let flow = load_flow(state, scope, id)?;
    let q = query_pairs(req)?;
    // `?versionId=`: the flow with that version instead of its newest
    if let Some(version_id) = query_one(&q, "versionId") {
        let version = state
            .store
            .get_version(version_id)?
            .filter(|v| v.flow_id == flow.id)
            .ok_or_else(|| ApiError::not_found("flow version", version_id))?;
        return Ok(json_response(StatusCode::OK, &shaped(flow, version)));
    }
    Ok(json_response(StatusCode::OK, &populated(state, flow)?))
}

/// Calls `onDisable` of the npm polling trigger `before` ran (an enabled flow's published
/// version), when that version no longer runs: the flow is disabled, deleted, or published
/// anew. Best effort, as Activepieces: a failing hook is logged, the change goes on.
async fn disable_old_trigger(state: &AppState, before: &Flow, after: Option<&Flow>) {
    let unchanged =
        after.is_some_and(|a| a.status == before.status && a.published_version_id == before.published_version_id);
    if before.status != FlowStatus::Enabled || unchanged {
        return;
    }
    if let Err(e) = state.store.remove_app_listeners(&before.id) {
        tracing::warn!(flow_id = before.id, error = %e, "could not remove the flow's app webhook listeners");
    }
    let Some(version) = before.published_version_id.as_ref().and_then(|v| state.store.get_version(v).ok().flatten())
    else {
        return;
    };
    let t = &version.trigger;
    let (Some(piece), Some(trigger)) = (t.settings.piece_name.as_deref(), t.settings.trigger_name.as_deref()) else {
        return;
    };
    if state.triggers.trigger_type(&state.store, piece, t.settings.piece_version.as_deref(), trigger).is_none() {
        return;
    }
    if let Err(e) = state.triggers.call_hook(before, &version, "onDisable").await {
        tracing::warn!(flow_id = before.id, error = %e, "the trigger's onDisable failed");
    }
}

/// Calls `onEnable` of the npm webhook trigger of `flow`'s published version, when the flow
/// is enabled: the piece registers the flow's webhook URL with its service. (A polling
/// trigger's onEnable is the scheduler's first poll.) A failing hook refuses the change.
async fn enable_webhook_trigger(state: &AppState, before: &Flow, flow: &Flow) -> Result<(), ApiError> {
    let unchanged = flow.status == before.status && flow.published_version_id == before.published_version_id;
    if flow.status != FlowStatus::Enabled || unchanged {
        return Ok(());
    }
    let Some(version) = flow.published_version_id.as_ref().and_then(|v| state.store.get_version(v).ok().flatten())
    else {
        return Ok(());
    };
    let t = &version.trigger;
    let (Some(piece), Some(trigger)) = (t.settings.piece_name.as_deref(), t.settings.trigger_name.as_deref()) else {
        return Ok(());
    };
    let kind = state.triggers.trigger_type(&state.store, piece, t.settings.piece_version.as_deref(), trigger);
    let e = match kind.as_deref() {
        Some("WEBHOOK") => match state.triggers.call_hook(flow, &version, "onEnable").await {
            Ok(()) => return Ok(()),
            Err(e) => e,
        },
        // an app webhook trigger's onEnable says which of the app's events it listens for
        Some("APP_WEBHOOK") => match state.triggers.hook(flow, &version, "onEnable", None, false).await {
            Ok(enabled) => {
                state.store.set_app_listeners(piece, &flow.id, &enabled.listeners)?;
                return Ok(());
            }
            Err(e) => e,
        },
        _ => return Ok(()),
    };
    // the flow stays published but disabled, saying why
    let message = format!("step {:?}: the trigger's onEnable failed: {e}", t.name);
    let mut disabled = flow.clone();
    disabled.status = FlowStatus::Disabled;
    disabled.disabled_reason = Some(message.clone());
    state.store.put_flow(&disabled)?;
    state.store.flush().await?;
    Err(ApiError::new(StatusCode::BAD_REQUEST, "TRIGGER_FAILED", message))
}

/// Registers (or removes) the flow's schedule or polling timers after a change.
fn sync_triggers(state: &AppState, flow_id: &str, flow: Option<&Flow>) -> Result<(), ApiError> {
    let triggers = Some(state.triggers.as_ref() as &dyn PieceTriggers);
    troupe_scheduler::sync_flow_triggers(&state.store, flow_id, flow, &troupe_scheduler::SystemClock, triggers).map_err(
        |e| match e {
            troupe_scheduler::ScheduleError::Invalid(m) => ApiError::bad_request(format!("step \"trigger\": {m}")),
            troupe_scheduler::ScheduleError::Store(e) => e.into(),
        },
    )
}

/// Validation of the version plus what only the scheduler knows (schedule inputs) and what
/// npm pieces' metadata says. With `install`, npm pieces not installed yet are installed
/// from the registry first (import and publish, as Activepieces does).
async fn problems_of(state: &AppState, version: &FlowVersion, install: bool) -> Vec<Problem> {
    let mut problems = validate(version, &|p| troupe_actors::pieces::runs_natively(&state.config, p));
    problems.extend(npm_problems(state, version, install).await);
    let project = state.store.get_flow(&version.flow_id).ok().flatten().map(|f| f.project_id);
    for (step, name) in troupe_actors::validate::connection_names(version) {
        let exists =
            project.as_deref().is_some_and(|p| state.store.connection_by_name(p, &name).ok().flatten().is_some());
        if !exists {
            problems.push(Problem {
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
                problems.push(Problem {
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
            problems.push(Problem { step: t.name.clone(), field: "settings.input".into(), message: m.to_string() });
        }
    }
    problems
}

/// The npm pieces `version`'s steps use, by step: piece name and `pieceVersion`.
fn npm_steps<'a>(state: &AppState, version: &'a FlowVersion) -> Vec<(&'a str, &'a str, Option<&'a str>)> {
    let t = &version.trigger;
    // Troupe's own triggers (webhook, schedule, rss) stay native whatever AP_NATIVE_PIECES says
    let trigger = (t.kind == troupe_store::flow::TriggerType::Piece)
        .then(|| Some((t.name.as_str(), t.settings.piece_name.as_deref()?, t.settings.piece_version.as_deref())))
        .flatten()
        .filter(|(_, piece, _)| troupe_actors::pieces::catalog::piece(piece).is_none());
    trigger
        .into_iter()
        .chain(version.actions().into_iter().filter(|a| a.kind == ActionType::Piece).filter_map(|a| {
            Some((a.name.as_str(), a.settings.piece_name.as_deref()?, a.settings.piece_version.as_deref()))
        }))
        .filter(|(_, piece, _)| !piece.is_empty() && !troupe_actors::pieces::runs_natively(&state.config, piece))
        .collect()
}

/// Problems of the npm pieces' steps: the piece installed (or installable, with `install`),
/// loadable in the sandbox, with the step's action and its required props.
async fn npm_problems(state: &AppState, version: &FlowVersion, install: bool) -> Vec<Problem> {
    let mut problems = Vec::new();
    for (step, piece, spec) in npm_steps(state, version) {
        let problem = |field: &str, message: String| Problem { step: step.into(), field: field.into(), message };
        let record = match NpmPieces::resolve_installed(&state.store, piece, spec) {
            Ok(Some(r)) => r,
            Ok(None) if install => match state.npm.installed.add(piece, &npm_range(spec), None).await {
                Ok(r) if troupe_pieces::resolve::admits_piece_version(spec, &r.version) => r,
                Ok(r) => {
                    problems.push(problem(
                        "settings.pieceVersion",
                        format!("{piece}@{} was installed, but {:?} does not admit it", r.version, spec.unwrap_or("")),
                    ));
                    continue;
                }
                Err(e) => {
                    problems.push(problem(
                        "settings.pieceName",
                        format!("{piece}@{} could not be installed: {e}", spec.unwrap_or("latest")),
                    ));
                    continue;
                }
            },
            Ok(None) => {
                problems.push(problem(
                    "settings.pieceName",
                    format!(
                        "{piece}@{} is not installed; install it with POST /api/v1/pieces (publishing installs it)",
                        spec.unwrap_or("latest")
                    ),
                ));
                continue;
            }
            Err(e) => {
                problems.push(problem("settings.pieceName", e.to_string()));
                continue;
            }
        };
        let metadata = match state.npm.load(&state.store, &state.code, state.egress.clone(), &record).await {
            Ok(loaded) => loaded.metadata.clone(),
            Err(e) => {
                problems.push(problem("settings.pieceName", e.to_string()));
                continue;
            }
        };
        let (settings, kind, name, field) = if step == version.trigger.name {
            let s = &version.trigger.settings;
            (s, "triggers", s.trigger_name.as_deref().unwrap_or_default(), "settings.triggerName")
        } else {
            let a = version.actions().into_iter().find(|a| a.name == step).expect("listed from the version");
            (&a.settings, "actions", a.settings.action_name.as_deref().unwrap_or_default(), "settings.actionName")
        };
        let Some(def) = metadata[kind].get(name) else {
            let known: Vec<&String> = metadata[kind].as_object().map(|m| m.keys().collect()).unwrap_or_default();
            problems.push(problem(
                field,
                format!("{piece}@{} has no {} {name:?}; it has {known:?}", record.version, &kind[..kind.len() - 1]),
            ));
            continue;
        };
        if kind == "triggers" && !matches!(def["type"].as_str(), Some("POLLING" | "WEBHOOK" | "APP_WEBHOOK")) {
            problems.push(problem(
                "settings.triggerName",
                format!(
                    "{piece}'s {name:?} is a {} trigger; Troupe runs polling, webhook and app webhook triggers",
                    def["type"].as_str().unwrap_or("?")
                ),
            ));
            continue;
        }
        let input = settings.input.clone().unwrap_or_default();
        if def["requireAuth"] != false && !metadata["auth"].is_null() && input.get("auth").is_none_or(Value::is_null) {
            problems.push(problem("settings.input.auth", "is required: this piece needs a connection".into()));
        }
        for (name, prop) in def["props"].as_object().into_iter().flatten() {
            let required = prop["required"] == true && prop.get("defaultValue").is_none_or(Value::is_null);
            if required && input.get(name).is_none_or(|v| v.is_null() || v == "") {
                problems.push(problem(&format!("settings.input.{name}"), "is required".into()));
            }
        }
    }
    problems
}

/// An npm range for a step's `pieceVersion` as Activepieces reads it (`^0.3.0` admits up to
/// 1.0.0 there, not npm's 0.4.0).
fn npm_range(spec: Option<&str>) -> String {
    match spec.map(str::trim).filter(|s| !s.is_empty()) {
        None => "latest".into(),
        Some(s) => match s.strip_prefix('^').map(|v| (v, v.split('.').next().and_then(|m| m.parse::<u64>().ok()))) {
            Some((v, Some(major))) => format!(">={v} <{}.0.0", major + 1),
            _ => s.to_string(),
        },
    }
}

/// Publishing locks each npm piece step to the exact installed version it resolves to.
fn lock_piece_versions(state: &AppState, version: &mut FlowVersion) -> Result<(), ApiError> {
    let mut exact = std::collections::HashMap::new();
    for (step, piece, spec) in npm_steps(state, version) {
        if let Some(r) = NpmPieces::resolve_installed(&state.store, piece, spec)? {
            exact.insert(step.to_string(), r.version);
        }
    }
    if exact.is_empty() {
        return Ok(());
    }
    let mut raw = serde_json::to_value(&*version).map_err(|e| ApiError::internal(e.to_string()))?;
    fn walk(v: &mut Value, exact: &std::collections::HashMap<String, String>) {
        match v {
            Value::Object(m) => {
                if let (Some(Value::String(name)), Some(Value::Object(settings))) =
                    (m.get("name").cloned(), m.get_mut("settings"))
                {
                    if let Some(version) = exact.get(&name) {
                        settings.insert("pieceVersion".into(), version.clone().into());
                    }
                }
                m.values_mut().for_each(|c| walk(c, exact));
            }
            Value::Array(a) => a.iter_mut().for_each(|c| walk(c, exact)),
            _ => {}
        }
    }
    walk(&mut raw, &exact);
    *version = serde_json::from_value(raw).map_err(|e| ApiError::internal(e.to_string()))?;
    Ok(())
}

pub async fn delete(state: &AppState, scope: &Scope, id: &str) -> Resp {
    let before = load_flow(state, scope, id)?;
    if let Some(version) = state.store.get_version(&before.latest_version_id)? {
        crate::audit::flow(state, scope, "flow.deleted", &before, &version, None)?;
    }
    remove(state, &before).await?;
    state.store.flush().await?;
    Ok(Response::builder().status(StatusCode::NO_CONTENT).body(Full::new(Bytes::new())).expect("valid"))
}

/// Removes a flow: its trigger disabled, then the flow, its versions and sample data.
pub(crate) async fn remove(state: &AppState, flow: &Flow) -> Result<(), ApiError> {
    disable_old_trigger(state, flow, None).await;
    state.store.delete_flow(&flow.id)?;
    state.store.delete_sample_data_of_flow(&flow.id)?;
    sync_triggers(state, &flow.id, None)?;
    Ok(())
}

#[derive(Deserialize)]
pub(super) struct OperationEnvelope {
    #[serde(rename = "type")]
    pub(super) kind: String,
    #[serde(default)]
    pub(super) request: Value,
}

fn parse<T: serde::de::DeserializeOwned>(kind: &str, request: Value) -> Result<T, ApiError> {
    serde_json::from_value(request).map_err(|e| ApiError::bad_request(format!("{kind} request: {e}")))
}

/// An edit of the draft (the operations from `IMPORT_FLOW` to `DELETE_NOTE`, and
/// `CHANGE_NAME`): its request parsed, then the draft reshaped; a request that does not parse
/// or an edit that does not apply is a 400, and the draft is as it was.
pub(super) fn apply_edit(draft: &mut FlowVersion, kind: &str, request: Value) -> Result<(), ApiError> {
    let edit_error = |e: flow_ops::EditError| ApiError::bad_request(e.to_string());
    match kind {
        "IMPORT_FLOW" => {
            // older exports migrate to Troupe's schema first (BRANCH → ROUTER, …)
            let mut request = request;
            troupe_store::migrate::migrate_import(&mut request);
            flow_ops::import_flow(draft, parse::<ImportFlowRequest>(kind, request)?)
        }
        "UPDATE_TRIGGER" => flow_ops::update_trigger(draft, parse(kind, request)?),
        "ADD_ACTION" => flow_ops::add_action(draft, parse::<AddActionRequest>(kind, request)?).map_err(edit_error)?,
        "UPDATE_ACTION" => flow_ops::update_action(draft, parse(kind, request)?).map_err(edit_error)?,
        "DELETE_ACTION" => {
            let r: DeleteActionRequest = parse(kind, request)?;
            flow_ops::delete_actions(draft, &r.names).map_err(edit_error)?
        }
        "MOVE_ACTION" => flow_ops::move_action(draft, parse(kind, request)?).map_err(edit_error)?,
        "DUPLICATE_ACTION" => {
            #[derive(Deserialize)]
            #[serde(rename_all = "camelCase")]
            struct Duplicate {
                step_name: String,
            }
            let r: Duplicate = parse(kind, request)?;
            flow_ops::duplicate_action(draft, &r.step_name).map_err(edit_error)?
        }
        "SET_SKIP_ACTION" => flow_ops::set_skip(draft, parse(kind, request)?).map_err(edit_error)?,
        "ADD_BRANCH" => flow_ops::add_branch(draft, parse(kind, request)?).map_err(edit_error)?,
        "DELETE_BRANCH" => flow_ops::delete_branch(draft, parse(kind, request)?).map_err(edit_error)?,
        "DUPLICATE_BRANCH" => flow_ops::duplicate_branch(draft, parse(kind, request)?).map_err(edit_error)?,
        "MOVE_BRANCH" => flow_ops::move_branch(draft, parse(kind, request)?).map_err(edit_error)?,
        "ADD_NOTE" | "UPDATE_NOTE" | "DELETE_NOTE" => flow_ops::edit_notes(draft, kind, request).map_err(edit_error)?,
        "CHANGE_NAME" => {
            #[derive(Deserialize)]
            #[serde(rename_all = "camelCase")]
            struct ChangeName {
                display_name: String,
            }
            draft.display_name = parse::<ChangeName>(kind, request)?.display_name;
        }
        other => return Err(ApiError::bad_request(format!("{other:?} is not an edit of the draft"))),
    }
    Ok(())
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

const OPERATIONS: &str = "IMPORT_FLOW, UPDATE_TRIGGER, ADD_ACTION, UPDATE_ACTION, DELETE_ACTION, MOVE_ACTION, DUPLICATE_ACTION, SET_SKIP_ACTION, ADD_BRANCH, DELETE_BRANCH, DUPLICATE_BRANCH, MOVE_BRANCH, ADD_NOTE, UPDATE_NOTE, DELETE_NOTE, LOCK_AND_PUBLISH, LOCK_FLOW, CHANGE_STATUS, CHANGE_NAME, CHANGE_FOLDER, UPDATE_METADATA, UPDATE_OWNER, UPDATE_MINUTES_SAVED, USE_AS_DRAFT, SAVE_SAMPLE_DATA, UPDATE_SAMPLE_DATA_INFO";

pub async fn operate(state: &AppState, scope: &Scope, id: &str, req: Request<Incoming>) -> Resp {
    let op: OperationEnvelope = read_json(req, state.config.api_body_limit).await?;
    let audited_request = json!({"type": op.kind, "request": op.request});
    // publishing and turning a flow on or off is its own permission (an Operator's)
    let permission = match op.kind.as_str() {
        "LOCK_AND_PUBLISH" | "CHANGE_STATUS" => crate::http::Permission::UpdateFlowStatus,
        _ => crate::http::Permission::WriteFlow,
    };
    let scope = &scope.needing(permission)?;
    let mut flow = load_flow(state, scope, id)?;
    let before = flow.clone();
    let edit_error = |e: flow_ops::EditError| ApiError::bad_request(e.to_string());
    let kind = op.kind.as_str();
    let mut edited: Option<FlowVersion> = None;
    match kind {
        "IMPORT_FLOW" | "UPDATE_TRIGGER" | "ADD_ACTION" | "UPDATE_ACTION" | "DELETE_ACTION" | "CHANGE_NAME"
        | "MOVE_ACTION" | "DUPLICATE_ACTION" | "SET_SKIP_ACTION" | "ADD_BRANCH" | "DELETE_BRANCH"
        | "DUPLICATE_BRANCH" | "MOVE_BRANCH" | "ADD_NOTE" | "UPDATE_NOTE" | "DELETE_NOTE" => {
            let mut draft = draft_for_edit(state, &mut flow)?;
            apply_edit(&mut draft, kind, op.request)?;
            let problems = problems_of(state, &draft, kind == "IMPORT_FLOW").await;
            if kind == "IMPORT_FLOW" {
                // a piece that cannot be installed makes the import fail, naming the step
                let install: Vec<&Problem> =
                    problems.iter().filter(|p| p.message.contains("could not be installed")).collect();
                if !install.is_empty() {
                    let list = install.iter().map(|p| p.to_string()).collect::<Vec<_>>().join("; ");
                    return Err(ApiError::new(
                        StatusCode::BAD_REQUEST,
                        "INVALID_FLOW",
                        format!("the flow cannot be imported: {list}"),
                    )
                    .with("problems", serde_json::to_value(&install).expect("serializes")));
                }
            }
            draft.valid = problems.is_empty();
            draft.updated = now_iso();
            edited = Some(draft);
        }
        "SAVE_SAMPLE_DATA" | "UPDATE_SAMPLE_DATA_INFO" => {
            let mut draft = draft_for_edit(state, &mut flow)?;
            if kind == "SAVE_SAMPLE_DATA" {
                #[derive(Deserialize)]
                #[serde(rename_all = "camelCase")]
                struct Save {
                    step_name: String,
                    #[serde(default)]
                    payload: Value,
                    #[serde(default, rename = "type")]
                    kind: Option<String>,
                }
                let r: Save = parse(kind, op.request)?;
                let file_kind = match r.kind.as_deref().unwrap_or("OUTPUT") {
                    k @ ("INPUT" | "OUTPUT") => k,
                    other => return Err(ApiError::bad_request(format!("type {other:?} must be INPUT or OUTPUT"))),
                };
                let project = flow.project_id.clone();
                crate::api::sample_data::keep(state, &mut draft, &project, &r.step_name, file_kind, r.payload)?;
            } else {
                #[derive(Deserialize)]
                #[serde(rename_all = "camelCase")]
                struct Info {
                    step_name: String,
                    #[serde(default)]
                    sample_data_settings: Option<Map<String, Value>>,
                }
                let r: Info = parse(kind, op.request)?;
                let mut fields = Map::new();
                for k in ["sampleDataFileId", "sampleDataInputFileId"] {
                    let v = r.sample_data_settings.as_ref().and_then(|s| s.get(k)).cloned().unwrap_or(Value::Null);
                    fields.insert(k.into(), v);
                }
                flow_ops::set_sample_data(&mut draft, &r.step_name, fields).map_err(edit_error)?;
            }
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
            let problems = problems_of(state, &version, true).await;
            if !problems.is_empty() {
                let list = problems.iter().map(|p| p.to_string()).collect::<Vec<_>>().join("; ");
                return Err(ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "INVALID_FLOW",
                    format!("the flow cannot be published: {list}"),
                )
                .with("problems", serde_json::to_value(&problems).expect("serializes")));
            }
            lock_piece_versions(state, &mut version)?;
            version.state = VersionState::Locked;
            version.valid = true;
            version.updated = now_iso();
            flow.published_version_id = Some(version.id.clone());
            // AP_ENABLE_FLOW_ON_PUBLISH=false publishes without enabling
            let keep = if state.config.enable_flow_on_publish { FlowStatus::Enabled } else { flow.status };
            flow.status = req.status.unwrap_or(keep);
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
        "LOCK_FLOW" => {
            // the draft becomes a locked version without being published
            let mut version = state
                .store
                .get_version(&flow.latest_version_id)?
                .ok_or_else(|| ApiError::internal("flow has lost its version"))?;
            version.state = VersionState::Locked;
            version.updated = now_iso();
            edited = Some(version);
        }
        "CHANGE_FOLDER" => {
            #[derive(Deserialize)]
            #[serde(rename_all = "camelCase")]
            struct ChangeFolder {
                #[serde(default)]
                folder_id: Option<String>,
            }
            let folder = parse::<ChangeFolder>(kind, op.request)?.folder_id;
            if let Some(id) = &folder {
                crate::api::folders::load(state, scope, id)?;
            }
            flow.folder_id = folder;
        }
        "UPDATE_METADATA" => {
            #[derive(Deserialize)]
            struct Metadata {
                #[serde(default)]
                metadata: Option<Value>,
            }
            flow.metadata = parse::<Metadata>(kind, op.request)?.metadata;
        }
        "UPDATE_OWNER" => {
            #[derive(Deserialize)]
            #[serde(rename_all = "camelCase")]
            struct Owner {
                owner_id: String,
            }
            flow.owner_id = Some(parse::<Owner>(kind, op.request)?.owner_id);
        }
        "UPDATE_MINUTES_SAVED" => {
            #[derive(Deserialize)]
            #[serde(rename_all = "camelCase")]
            struct Saved {
                #[serde(default)]
                time_saved_per_run: Option<f64>,
            }
            flow.time_saved_per_run = parse::<Saved>(kind, op.request)?.time_saved_per_run;
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
            draft.valid = problems_of(state, &draft, false).await.is_empty();
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
    let version = match &edited {
        Some(v) => v.clone(),
        None => state
            .store
            .get_version(&flow.latest_version_id)?
            .ok_or_else(|| ApiError::internal("flow has lost its version"))?,
    };
    let mut audited_request = audited_request;
    if kind == "IMPORT_FLOW" {
        // the flow as imported (migrated, in Activepieces' shape), not the export as sent
        let v = serde_json::to_value(with_activepieces_fields(version.clone())).expect("serializes");
        let notes = v.get("notes").cloned().filter(|n| !n.is_null()).unwrap_or_else(|| json!([]));
        audited_request["request"] = json!({"displayName": v["displayName"], "trigger": v["trigger"],
            "schemaVersion": v["schemaVersion"], "notes": notes});
    }
    crate::audit::flow(state, scope, "flow.updated", &flow, &version, Some(audited_request))?;
    if kind == "LOCK_AND_PUBLISH" {
        crate::audit::flow(state, scope, "flow.published", &flow, &version, None)?;
    }
    match (before.status, flow.status) {
        (FlowStatus::Disabled, FlowStatus::Enabled) => {
            crate::audit::flow(state, scope, "flow.activated", &flow, &version, None)?
        }
        (FlowStatus::Enabled, FlowStatus::Disabled) => {
            crate::audit::flow(state, scope, "flow.deactivated", &flow, &version, None)?
        }
        _ => {}
    }
    if matches!(kind, "LOCK_AND_PUBLISH" | "CHANGE_STATUS") {
        disable_old_trigger(state, &before, Some(&flow)).await;
        enable_webhook_trigger(state, &before, &flow).await?;
        sync_triggers(state, &flow.id, Some(&flow))?;
    }
    state.store.flush().await?;
    Ok(json_response(StatusCode::OK, &populated(state, flow)?))
}
