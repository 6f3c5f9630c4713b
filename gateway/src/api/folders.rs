//! `/api/v1/folders` (the seed's Create, Get, List, Update and Delete Folder), shapes as in
//! Activepieces: a folder carries `numberOfFlows` when read.

use crate::error::{json_response, ApiError};
use crate::http::{query_limit, query_one, query_pairs, read_json, Scope};
use crate::AppState;
use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use serde::Deserialize;
use serde_json::{json, Value};
use troupe_store::db::Folder;
use troupe_store::ids::{new_id, now_iso};

type Resp = Result<Response<Full<Bytes>>, ApiError>;

/// A folder the caller may see.
pub fn load(state: &AppState, scope: &Scope, id: &str) -> Result<Folder, ApiError> {
    state.store.get_folder(id)?.filter(|f| scope.allows(&f.project_id)).ok_or_else(|| ApiError::not_found("folder", id))
}

fn dto(folder: &Folder, flows: usize) -> Value {
    let mut v = serde_json::to_value(folder).expect("serializes");
    v["numberOfFlows"] = json!(flows);
    v["numberOfTables"] = json!(0);
    v
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct CreateFolder {
    display_name: String,
    #[serde(default)]
    project_id: Option<String>,
    #[serde(default)]
    external_id: Option<String>,
}

pub async fn create(state: &AppState, scope: &Scope, req: Request<Incoming>) -> Resp {
    let body: CreateFolder = read_json(req, state.config.api_body_limit).await?;
    let project_id = body.project_id.or_else(|| scope.project.clone()).unwrap_or_else(|| state.default_project.clone());
    if !scope.allows(&project_id) || !state.store.project_exists(&project_id)? {
        return Err(ApiError::not_found("project", &project_id));
    }
    let name = body.display_name.trim().to_string();
    if name.is_empty() {
        return Err(ApiError::bad_request("displayName must not be empty"));
    }
    if state.store.list_folders(Some(&project_id))?.iter().any(|f| f.display_name.eq_ignore_ascii_case(&name)) {
        return Err(ApiError::conflict(format!("a folder named {name:?} already exists in this project")));
    }
    let now = now_iso();
    let folder = Folder {
        id: new_id(),
        created: now.clone(),
        updated: now,
        project_id,
        display_name: name,
        display_order: 0,
        external_id: body.external_id,
    };
    state.store.put_folder(&folder)?;
    crate::audit::folder(state, scope, "folder.created", &folder)?;
    state.store.flush().await?;
    Ok(json_response(StatusCode::CREATED, &dto(&folder, 0)))
}

pub async fn list(state: &AppState, scope: &Scope, req: Request<Incoming>) -> Resp {
    let q = query_pairs(&req)?;
    let project = scope.list_filter(query_one(&q, "projectId"))?;
    let counts = state.store.flows_per_folder()?;
    let limit = query_limit(&q)?;
    let data: Vec<Value> = state
        .store
        .list_folders(project.as_deref())?
        .iter()
        .take(limit)
        .map(|f| dto(f, counts.get(&f.id).copied().unwrap_or(0)))
        .collect();
    Ok(json_response(StatusCode::OK, &json!({"data": data, "next": null, "previous": null})))
}

pub async fn get(state: &AppState, scope: &Scope, id: &str) -> Resp {
    let folder = load(state, scope, id)?;
    let flows = state.store.flows_per_folder()?.get(id).copied().unwrap_or(0);
    Ok(json_response(StatusCode::OK, &dto(&folder, flows)))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct UpdateFolder {
    display_name: String,
}

pub async fn update(state: &AppState, scope: &Scope, id: &str, req: Request<Incoming>) -> Resp {
    let mut folder = load(state, scope, id)?;
    let body: UpdateFolder = read_json(req, state.config.api_body_limit).await?;
    let name = body.display_name.trim().to_string();
    if name.is_empty() {
        return Err(ApiError::bad_request("displayName must not be empty"));
    }
    let taken = state.store.list_folders(Some(&folder.project_id))?;
    if taken.iter().any(|f| f.id != folder.id && f.display_name.eq_ignore_ascii_case(&name)) {
        return Err(ApiError::conflict(format!("a folder named {name:?} already exists in this project")));
    }
    folder.display_name = name;
    folder.updated = now_iso();
    state.store.put_folder(&folder)?;
    crate::audit::folder(state, scope, "folder.updated", &folder)?;
    state.store.flush().await?;
    let flows = state.store.flows_per_folder()?.get(id).copied().unwrap_or(0);
    Ok(json_response(StatusCode::OK, &dto(&folder, flows)))
}

pub async fn delete(state: &AppState, scope: &Scope, id: &str) -> Resp {
    let folder = load(state, scope, id)?;
    state.store.delete_folder(id)?;
    crate::audit::folder(state, scope, "folder.deleted", &folder)?;
    state.store.flush().await?;
    Ok(Response::builder().status(StatusCode::NO_CONTENT).body(Full::new(Bytes::new())).expect("valid"))
}
