//! `/api/v1/app-connections`, as in Activepieces: upsert by `externalId`, list, get, delete.
//!
//! The value (a secret text, basic auth, custom auth props, or OAuth2 tokens) is encrypted
//! before it reaches the store and is never answered back: every answer is metadata only.

use crate::error::{json_response, ApiError};
use crate::http::{query_limit, query_one, query_pairs, read_json, Scope};
use crate::AppState;
use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use serde::Deserialize;
use serde_json::{json, Value};
use troupe_store::connection::{Connection, ConnectionType};
use troupe_store::ids::{new_id, now_iso, now_micros};

type Resp = Result<Response<Full<Bytes>>, ApiError>;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(super) struct Upsert {
    external_id: String,
    display_name: String,
    piece_name: String,
    project_id: Option<String>,
    #[serde(rename = "type")]
    pub(super) kind: ConnectionType,
    pub(super) value: Value,
    /// Accepted for compatibility with Activepieces clients; Troupe's connections are per project.
    #[serde(default)]
    #[allow(dead_code)]
    scope: Option<String>,
    #[serde(default)]
    #[allow(dead_code)]
    metadata: Option<Value>,
    /// The piece version whose `auth.validate` checks the value (newest installed if absent).
    #[serde(default)]
    piece_version: Option<String>,
    /// Activepieces' clients name the project in a list.
    #[serde(default)]
    project_ids: Option<Vec<String>>,
}

pub async fn upsert(state: &AppState, scope: &Scope, req: Request<Incoming>) -> Resp {
    let body: Upsert = read_json(req, state.config.api_body_limit).await?;
    let project_id = body
        .project_id
        .clone()
        .or_else(|| body.project_ids.as_ref().and_then(|p| p.first().cloned()))
        .or_else(|| scope.project.clone())
        .unwrap_or_else(|| state.default_project.clone());
    if !scope.allows(&project_id) || !state.store.project_exists(&project_id)? {
        return Err(ApiError::not_found("project", &project_id));
    }
    if body.external_id.trim().is_empty() {
        return Err(ApiError::bad_request("externalId is required"));
    }
    if let Some(t) = body.value.get("type").and_then(Value::as_str) {
        if t != body.kind.as_str() {
            return Err(ApiError::bad_request(format!(
                "value.type {t:?} does not match type {:?}",
                body.kind.as_str()
            )));
        }
    }
    let mut body = body;
    if body.kind == ConnectionType::OAuth2
        && body.value.get("code").is_some()
        && body.value.get("access_token").is_none()
    {
        body.value = exchange_code(state, &body.piece_name, body.piece_version.as_deref(), &body.value).await?;
    }
    body.kind.check_value(&body.value).map_err(|e| ApiError::bad_request(e.to_string()))?;
    let mut typed = body.value.clone();
    if let Some(m) = typed.as_object_mut() {
        m.insert("type".into(), body.kind.as_str().into());
    }
    super::pieces::validate_auth(state, &body.piece_name, body.piece_version.as_deref(), &typed).await?;
    let now = now_iso();
    let conn = Connection {
        id: new_id(),
        created: now.clone(),
        updated: now,
        external_id: body.external_id,
        display_name: body.display_name,
        piece_name: body.piece_name,
        project_id,
        kind: body.kind,
        status: "ACTIVE".into(),
        created_micros: now_micros(),
        sealed_value: String::new(),
        piece_version: body.piece_version.clone().unwrap_or_default(),
    };
    let stored = state.store.upsert_connection(conn, &body.value)?;
    crate::audit::connection(state, scope, "connection.upserted", &stored)?;
    state.store.flush().await?;
    Ok(json_response(StatusCode::CREATED, &stored.public()))
}

pub async fn list(state: &AppState, scope: &Scope, req: Request<Incoming>) -> Resp {
    let q = query_pairs(&req)?;
    let project = scope.list_filter(query_one(&q, "projectId"))?;
    let page = state.store.list_connections(project.as_deref(), query_limit(&q)?, query_one(&q, "cursor"))?;
    let data: Vec<Value> = page.data.iter().map(Connection::public).collect();
    Ok(json_response(StatusCode::OK, &json!({"data": data, "next": page.next, "previous": page.previous})))
}

fn load(state: &AppState, scope: &Scope, id: &str) -> Result<Connection, ApiError> {
    state
        .store
        .get_connection(id)?
        .filter(|c| scope.allows(&c.project_id))
        .ok_or_else(|| ApiError::not_found("app connection", id))
}

pub async fn get(state: &AppState, scope: &Scope, id: &str) -> Resp {
    Ok(json_response(StatusCode::OK, &load(state, scope, id)?.public()))
}

pub async fn delete(state: &AppState, scope: &Scope, id: &str) -> Resp {
    let conn = load(state, scope, id)?;
    state.store.delete_connection(&conn)?;
    crate::audit::connection(state, scope, "connection.deleted", &conn)?;
    state.store.flush().await?;
    Ok(Response::builder().status(StatusCode::NO_CONTENT).body(Full::new(Bytes::new())).expect("valid response"))
}

/// The piece's `OAUTH2` auth prop (its `authUrl`, `tokenUrl`, `scope`, `pkce`, `extra`).
fn oauth2_auth(state: &AppState, piece: &str, version: Option<&str>) -> Result<Value, ApiError> {
    let record = troupe_actors::npm::NpmPieces::resolve_installed(&state.store, piece, version)?.ok_or_else(|| {
        ApiError::bad_request(format!("piece {piece:?} is not installed; its OAuth2 settings come from it"))
    })?;
    let auth = record.metadata.map(|m| m["auth"].clone()).unwrap_or_default();
    let found = match auth {
        Value::Array(list) => list.into_iter().find(|a| a["type"] == "OAUTH2"),
        a if a["type"] == "OAUTH2" => Some(a),
        _ => None,
    };
    found.ok_or_else(|| ApiError::bad_request(format!("piece {piece:?} has no OAuth2 auth")))
}

/// An OAuth2 upsert that carries an authorization `code`: the code is exchanged at the
/// piece's `tokenUrl` (or the value's `token_url`), and the tokens are what is stored.
async fn exchange_code(state: &AppState, piece: &str, version: Option<&str>, value: &Value) -> Result<Value, ApiError> {
    let token_url = match value["token_url"].as_str() {
        Some(u) => u.to_string(),
        None => oauth2_auth(state, piece, version)?["tokenUrl"].as_str().unwrap_or_default().to_string(),
    };
    let fields = value.as_object().cloned().unwrap_or_default();
    troupe_pieces::oauth2::exchange_code(&state.egress, &token_url, &fields)
        .await
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "OAUTH2_EXCHANGE_FAILED", e.to_string()))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct AuthorizationUrlRequest {
    piece_name: String,
    #[serde(default)]
    piece_version: Option<String>,
    client_id: String,
    redirect_url: String,
    #[serde(default)]
    #[allow(dead_code)]
    project_id: Option<String>,
}

/// `POST /app-connections/oauth2/authorization-url`: where to send the user to authorize the
/// piece's OAuth2 app (`authUrl` with client, redirect, scope, state and, when the piece asks,
/// a PKCE challenge); the answer's `codeVerifier` goes back with the code on upsert.
pub async fn authorization_url(state: &AppState, req: Request<Incoming>) -> Resp {
    let body: AuthorizationUrlRequest = read_json(req, state.config.api_body_limit).await?;
    let auth = oauth2_auth(state, &body.piece_name, body.piece_version.as_deref())?;
    let csrf = new_id();
    let (url, verifier) = troupe_pieces::oauth2::authorization_url(&auth, &body.client_id, &body.redirect_url, &csrf);
    Ok(json_response(StatusCode::OK, &json!({"authorizationUrl": url, "codeVerifier": verifier, "state": csrf})))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Rename {
    display_name: String,
}

/// `POST /app-connections/{id}`: renames a connection (its `displayName`), as Activepieces.
pub async fn rename(state: &AppState, scope: &Scope, id: &str, req: Request<Incoming>) -> Resp {
    let body: Rename = read_json(req, state.config.api_body_limit).await?;
    let conn = load(state, scope, id)?;
    if body.display_name.trim().is_empty() {
        return Err(ApiError::bad_request("displayName is required"));
    }
    let value = state.store.connection_value(&conn)?;
    let renamed = Connection { display_name: body.display_name, updated: now_iso(), ..conn };
    let stored = state.store.upsert_connection(renamed, &value)?;
    crate::audit::connection(state, scope, "connection.upserted", &stored)?;
    state.store.flush().await?;
    Ok(json_response(StatusCode::OK, &stored.public()))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Replace {
    source_app_connection_id: String,
    target_app_connection_id: String,
}

/// `POST /app-connections/replace`: every flow draft of the project that names the source
/// connection (`{{connections['source']}}`) names the target instead, and the source is
/// deleted. Published versions are immutable here (caches rely on it): a flow takes the
/// target when its draft is published again.
pub async fn replace(state: &AppState, scope: &Scope, req: Request<Incoming>) -> Resp {
    let body: Replace = read_json(req, state.config.api_body_limit).await?;
    let source = load(state, scope, &body.source_app_connection_id)?;
    let target = load(state, scope, &body.target_app_connection_id)?;
    if source.project_id != target.project_id {
        return Err(ApiError::bad_request("the two connections are in different projects"));
    }
    let (from, to) = (source.external_id.clone(), target.external_id.clone());
    let patterns = [
        (format!("connections['{from}']"), format!("connections['{to}']")),
        (format!("connections[\"{from}\"]"), format!("connections[\"{to}\"]")),
        (format!("connections.{from}}}"), format!("connections.{to}}}")),
    ];
    let mut changed = 0;
    let mut cursor: Option<String> = None;
    loop {
        let page = state.store.list_flows(
            &troupe_store::db::FlowFilter { project_id: Some(source.project_id.clone()), ..Default::default() },
            100,
            cursor.as_deref(),
        )?;
        for flow in &page.data {
            {
                let Some(version) = state.store.get_version(&flow.latest_version_id)? else { continue };
                if version.state != troupe_store::flow::VersionState::Draft {
                    continue;
                }
                let mut text = serde_json::to_string(&version).expect("serializes");
                let before = text.clone();
                for (a, b) in &patterns {
                    text = text.replace(a.as_str(), b.as_str());
                }
                if text != before {
                    let version = serde_json::from_str(&text).map_err(|e| ApiError::internal(e.to_string()))?;
                    state.store.put_version(&version)?;
                    changed += 1;
                }
            }
        }
        match page.next {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    state.store.delete_connection(&source)?;
    crate::audit::connection(state, scope, "connection.deleted", &source)?;
    state.store.flush().await?;
    Ok(json_response(StatusCode::OK, &json!({"replacedVersions": changed, "connection": target.public()})))
}
