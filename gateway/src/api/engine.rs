//! What pieces call back with their context's `server.token` (an engine token, sealed by the
//! run that gave it; see `troupe_store::db::EngineToken`), as Activepieces' engine API
//! answers them: `GET/POST/DELETE /api/v1/store-entries` over the run's project store, with
//! Activepieces' keys (`flow_<flowId>/<key>` for the flow scope, the bare key for the
//! project's) mapped onto the entries the store piece and `context.store` use.

use crate::error::{json_response, ApiError};
use crate::http::{query_one, query_pairs, read_json};
use crate::AppState;
use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use serde_json::{json, Value};
use troupe_store::db::EngineToken;

type Resp = Result<Response<Full<Bytes>>, ApiError>;

/// The engine token of a request, if it carries a valid one.
pub fn token(state: &AppState, req: &Request<Incoming>) -> Result<Option<EngineToken>, ApiError> {
    let Some(bearer) = req
        .headers()
        .get(hyper::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
    else {
        return Ok(None);
    };
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    Ok(state.store.open_engine_token(bearer.trim(), now)?)
}

/// The entry key of an Activepieces store key, for the token's project.
pub(super) fn entry_key(token: &EngineToken, key: &str) -> String {
    match key.strip_prefix("flow_").and_then(|rest| rest.split_once('/')) {
        Some((flow, k)) => format!("flow/{flow}/{k}"),
        None => format!("project/{}/{key}", token.project_id),
    }
}

/// The body of `POST /store-entries`.
#[derive(serde::Deserialize)]
pub(super) struct Put {
    pub(super) key: String,
    #[serde(default)]
    value: Value,
}

pub async fn store_entries(state: &AppState, token: &EngineToken, req: Request<Incoming>) -> Resp {
    let max_key = state.config.store_key_max_chars;
    let check = |key: &str| {
        if key.is_empty() || key.chars().count() > max_key {
            Err(ApiError::bad_request(format!("key must be 1 to {max_key} characters")))
        } else {
            Ok(())
        }
    };
    match *req.method() {
        Method::POST => {
            let put: Put = read_json(req, state.config.api_body_limit).await?;
            check(&put.key)?;
            let size = serde_json::to_vec(&put.value).map(|v| v.len()).unwrap_or(0);
            if size > state.config.store_value_max_bytes {
                return Err(ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "STORAGE_LIMIT",
                    format!("values may have at most {} bytes", state.config.store_value_max_bytes),
                ));
            }
            state.store.entry_put(&entry_key(token, &put.key), &put.value)?;
            state.store.flush().await?;
            Ok(json_response(
                StatusCode::OK,
                &json!({"key": put.key, "value": put.value, "projectId": token.project_id}),
            ))
        }
        Method::GET | Method::DELETE => {
            let q = query_pairs(&req)?;
            let key =
                query_one(&q, "key").ok_or_else(|| ApiError::bad_request("the key query parameter is required"))?;
            check(key)?;
            let entry = entry_key(token, key);
            if req.method() == Method::DELETE {
                state.store.entry_delete(&entry)?;
                state.store.flush().await?;
                return Ok(json_response(StatusCode::OK, &json!({})));
            }
            match state.store.entry_get(&entry)? {
                Some(value) => Ok(json_response(
                    StatusCode::OK,
                    &json!({"key": key, "value": value, "projectId": token.project_id}),
                )),
                None => Err(ApiError::not_found("store entry", key)),
            }
        }
        _ => Err(ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "METHOD_NOT_ALLOWED", "GET, POST or DELETE")),
    }
}
