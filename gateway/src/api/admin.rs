//! `/api/v1/projects` and `/api/v1/api-keys`: projects, and keys scoped to one project.
//!
//! Only an admin key (`AP_API_KEY`, or the key made at first start) manages them. A project
//! key's value is shown once, when it is created; the store keeps its sha-256 only.

use crate::error::{json_response, ApiError};
use crate::http::{read_json, Scope};
use crate::AppState;
use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use serde::Deserialize;
use serde_json::json;

type Resp = Result<Response<Full<Bytes>>, ApiError>;

/// Unknown fields an Activepieces client sends (`metadata`, `platformId`, …) are accepted.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CreateProject {
    display_name: String,
    #[serde(default)]
    external_id: Option<String>,
}

pub async fn create_project(state: &AppState, scope: &Scope, req: Request<Incoming>) -> Resp {
    scope.require_admin()?;
    let body: CreateProject = read_json(req, state.config.api_body_limit).await?;
    let mut project = state.store.create_project(&body.display_name)?;
    if body.external_id.is_some() {
        project.external_id = body.external_id;
        state.store.put_project(&project)?;
    }
    state.store.flush().await?;
    Ok(json_response(StatusCode::CREATED, &project.activepieces()))
}

fn load_project(state: &AppState, scope: &Scope, id: &str) -> Result<troupe_store::db::Project, ApiError> {
    state.store.get_project(id)?.filter(|p| scope.allows(&p.id)).ok_or_else(|| ApiError::not_found("project", id))
}

pub async fn get_project(state: &AppState, scope: &Scope, id: &str) -> Resp {
    Ok(json_response(StatusCode::OK, &load_project(state, scope, id)?.activepieces()))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct UpdateProject {
    #[serde(default)]
    display_name: Option<String>,
    #[serde(default)]
    external_id: Option<String>,
}

/// `POST /projects/{id}`: its name and external id (a project key may rename its own).
pub async fn update_project(state: &AppState, scope: &Scope, id: &str, req: Request<Incoming>) -> Resp {
    let mut project = load_project(state, scope, id)?;
    let body: UpdateProject = read_json(req, state.config.api_body_limit).await?;
    if let Some(name) = body.display_name.filter(|n| !n.trim().is_empty()) {
        project.display_name = name;
    }
    if body.external_id.is_some() {
        project.external_id = body.external_id;
    }
    project.updated = Some(troupe_store::ids::now_iso());
    state.store.put_project(&project)?;
    state.store.flush().await?;
    Ok(json_response(StatusCode::OK, &project.activepieces()))
}

/// `DELETE /projects/{id}`: an admin deletes a project with what it holds, as Activepieces
/// does: its flows (their triggers disabled first), folders, connections and API keys. The
/// default project stays.
pub async fn delete_project(state: &AppState, scope: &Scope, id: &str) -> Resp {
    scope.require_admin()?;
    load_project(state, scope, id)?;
    if state.store.default_project()?.as_deref() == Some(id) {
        return Err(ApiError::conflict("the default project cannot be deleted"));
    }
    let filter = troupe_store::db::FlowFilter { project_id: Some(id.to_string()), ..Default::default() };
    loop {
        let flows = state.store.list_flows(&filter, 100, None)?.data;
        if flows.is_empty() {
            break;
        }
        for flow in &flows {
            super::flows::remove(state, flow).await?;
        }
    }
    for folder in state.store.list_folders(Some(id))? {
        state.store.delete_folder(&folder.id)?;
    }
    loop {
        let connections = state.store.list_connections(Some(id), 100, None)?.data;
        if connections.is_empty() {
            break;
        }
        for connection in &connections {
            state.store.delete_connection(connection)?;
        }
    }
    for key in state.store.list_api_keys()?.into_iter().filter(|k| k.project_id.as_deref() == Some(id)) {
        state.store.revoke_api_key(&key.id)?;
    }
    state.store.delete_project(id)?;
    state.store.flush().await?;
    Ok(Response::builder().status(StatusCode::NO_CONTENT).body(Full::new(Bytes::new())).expect("valid"))
}

pub async fn list_projects(state: &AppState, scope: &Scope) -> Resp {
    let data: Vec<_> =
        state.store.list_projects()?.into_iter().filter(|p| scope.allows(&p.id)).map(|p| p.activepieces()).collect();
    Ok(json_response(StatusCode::OK, &json!({"data": data, "next": null, "previous": null})))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CreateKey {
    display_name: String,
    project_id: String,
    /// The key's role in its project (`Admin` when not given).
    #[serde(default)]
    role: Option<String>,
}

pub async fn create_key(state: &AppState, scope: &Scope, req: Request<Incoming>) -> Resp {
    scope.require_admin()?;
    let body: CreateKey = read_json(req, state.config.api_body_limit).await?;
    if !state.store.project_exists(&body.project_id)? {
        return Err(ApiError::not_found("project", &body.project_id));
    }
    let role = match body.role.as_deref() {
        None => None,
        Some(r) => Some(
            crate::http::Role::parse(r)
                .ok_or_else(|| ApiError::bad_request(format!("role {r:?} must be Admin, Editor, Operator or Viewer")))?
                .name(),
        ),
    };
    let (rec, key) = state.store.create_project_key(&body.project_id, &body.display_name, role)?;
    state.store.flush().await?;
    let mut out = serde_json::to_value(&rec).expect("serializes");
    out["value"] = json!(key);
    Ok(json_response(StatusCode::CREATED, &out))
}

pub async fn list_keys(state: &AppState, scope: &Scope) -> Resp {
    scope.require_admin()?;
    let data = state.store.list_api_keys()?;
    Ok(json_response(StatusCode::OK, &json!({"data": data, "next": null, "previous": null})))
}

pub async fn revoke_key(state: &AppState, scope: &Scope, id: &str) -> Resp {
    scope.require_admin()?;
    if !state.store.revoke_api_key(id)? {
        return Err(ApiError::not_found("api key", id));
    }
    state.store.flush().await?;
    Ok(Response::builder().status(StatusCode::NO_CONTENT).body(Full::new(Bytes::new())).expect("valid response"))
}
