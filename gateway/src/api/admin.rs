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

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct CreateProject {
    display_name: String,
}

pub async fn create_project(state: &AppState, scope: &Scope, req: Request<Incoming>) -> Resp {
    scope.require_admin()?;
    let body: CreateProject = read_json(req, state.config.api_body_limit).await?;
    let project = state.store.create_project(&body.display_name)?;
    state.store.flush().await?;
    Ok(json_response(StatusCode::CREATED, &project))
}

pub async fn list_projects(state: &AppState, scope: &Scope) -> Resp {
    let data: Vec<_> = state.store.list_projects()?.into_iter().filter(|p| scope.allows(&p.id)).collect();
    Ok(json_response(StatusCode::OK, &json!({"data": data, "next": null, "previous": null})))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct CreateKey {
    display_name: String,
    project_id: String,
}

pub async fn create_key(state: &AppState, scope: &Scope, req: Request<Incoming>) -> Resp {
    scope.require_admin()?;
    let body: CreateKey = read_json(req, state.config.api_body_limit).await?;
    if !state.store.project_exists(&body.project_id)? {
        return Err(ApiError::not_found("project", &body.project_id));
    }
    let (rec, key) = state.store.create_project_key(&body.project_id, &body.display_name)?;
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
