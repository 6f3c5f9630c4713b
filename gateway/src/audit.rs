//! Audit events of the API (Activepieces' audit log): flows created, updated, published,
//! activated, deactivated and deleted; folders created, updated and deleted; connections
//! upserted and deleted. Each names the principal, the object and the outcome, in
//! Activepieces' event shapes, and is written with the change (the same flush makes both
//! durable). Run events are the store's (`flow.run.started`, `flow.run.finished`).

use crate::error::ApiError;
use crate::http::Scope;
use crate::AppState;
use serde_json::{json, Value};
use troupe_store::connection::Connection;
use troupe_store::db::audit::event;
use troupe_store::db::Folder;
use troupe_store::flow::{Flow, FlowVersion};

/// Who asked, as an audit event names them.
pub fn principal(scope: &Scope) -> Value {
    match &scope.principal {
        Some(p) => p.clone(),
        None => json!({"type": "TROUPE"}),
    }
}

fn project(state: &AppState, id: &str) -> Result<Value, ApiError> {
    Ok(match state.store.get_project(id)? {
        Some(p) => json!({"displayName": p.display_name, "externalId": p.external_id}),
        None => json!({"displayName": id, "externalId": null}),
    })
}

/// Appends `action` on `project_id`'s object: `data` names the project (`data.project`, which
/// also gives the event its `projectDisplayName`).
fn append(state: &AppState, scope: &Scope, action: &str, project_id: &str, data: Value) -> Result<(), ApiError> {
    let mut e = event(action, Some(project_id), Some(&principal(scope)), data);
    e["projectDisplayName"] = e["data"]["project"]["displayName"].clone();
    state.store.append_audit(e)?;
    Ok(())
}

/// `flow.created`, `flow.updated` (with the operation), `flow.published`, `flow.activated`,
/// `flow.deactivated` or `flow.deleted`.
pub fn flow(
    state: &AppState,
    scope: &Scope,
    action: &str,
    flow: &Flow,
    version: &FlowVersion,
    request: Option<Value>,
) -> Result<(), ApiError> {
    let mut data = json!({
        "flow": {"id": flow.id, "externalId": flow.external_id.clone().unwrap_or_else(|| flow.id.clone()),
            "created": flow.created, "updated": flow.updated},
        "flowVersion": {"id": version.id, "displayName": version.display_name, "flowId": version.flow_id,
            "created": version.created, "updated": version.updated},
        "project": project(state, &flow.project_id)?,
    });
    if let Some(request) = request {
        data["request"] = request;
    }
    append(state, scope, action, &flow.project_id, data)
}

/// `folder.created`, `folder.updated` or `folder.deleted`.
pub fn folder(state: &AppState, scope: &Scope, action: &str, folder: &Folder) -> Result<(), ApiError> {
    let data = json!({
        "folder": {"id": folder.id, "displayName": folder.display_name, "created": folder.created, "updated": folder.updated},
        "project": {"displayName": project(state, &folder.project_id)?["displayName"]},
    });
    append(state, scope, action, &folder.project_id, data)
}

/// `connection.upserted` or `connection.deleted`: the connection's metadata, never its value.
pub fn connection(state: &AppState, scope: &Scope, action: &str, conn: &Connection) -> Result<(), ApiError> {
    let data = json!({
        "connection": {"id": conn.id, "displayName": conn.display_name, "externalId": conn.external_id,
            "pieceName": conn.piece_name, "status": conn.status, "type": conn.kind.as_str(),
            "created": conn.created, "updated": conn.updated},
        "project": {"displayName": project(state, &conn.project_id)?["displayName"]},
    });
    append(state, scope, action, &conn.project_id, data)
}

/// `GET /api/v1/audit-events`: newest first, seek-paged (`limit`, `cursor`), filtered by
/// `action` and `projectId` (each may repeat), `userId`, `createdBefore`, `createdAfter`.
/// A project's admin (a user, a key) sees its projects' events only.
pub async fn list(
    state: &AppState,
    scope: &Scope,
    req: hyper::Request<hyper::body::Incoming>,
) -> Result<hyper::Response<http_body_util::Full<bytes::Bytes>>, ApiError> {
    use crate::http::{query_all, query_limit, query_one, query_pairs};
    let q = query_pairs(&req)?;
    let mut project_ids: Vec<String> = query_all(&q, "projectId").into_iter().map(String::from).collect();
    if let Some(mine) = scope.projects() {
        // a project's admin sees its projects' events only
        if let Some(other) = project_ids.iter().find(|p| !mine.contains(p)) {
            return Err(ApiError::not_found("project", other));
        }
        if project_ids.is_empty() {
            if mine.is_empty() {
                return Ok(crate::error::json_response(
                    hyper::StatusCode::OK,
                    &json!({"data": [], "next": null, "previous": null}),
                ));
            }
            project_ids = mine;
        }
    }
    let filter = troupe_store::db::audit::AuditFilter {
        actions: query_all(&q, "action").into_iter().map(String::from).collect(),
        project_ids,
        user_id: query_one(&q, "userId").map(String::from),
        created_before: query_one(&q, "createdBefore").map(String::from),
        created_after: query_one(&q, "createdAfter").map(String::from),
    };
    let page = state.store.list_audit(&filter, query_limit(&q)?, query_one(&q, "cursor"))?;
    Ok(crate::error::json_response(hyper::StatusCode::OK, &page))
}
