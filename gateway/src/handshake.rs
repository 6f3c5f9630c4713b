//! Webhook handshakes of npm pieces' triggers (`handshakeConfiguration` and `onHandshake`):
//! a service that checks a webhook URL before it sends events (Slack's `url_verification`,
//! and the like) is answered at once by the trigger, and no run is made.

use crate::error::ApiError;
use crate::AppState;
use bytes::Bytes;
use http_body_util::Full;
use hyper::{Response, StatusCode};
use serde_json::{json, Value};
use troupe_store::flow::Flow;

/// The handshake configurations of published versions, by version id (`None`: the trigger
/// has none); published versions never change.
#[derive(Default)]
pub struct Handshakes(dashmap::DashMap<String, Option<Value>>);

/// The trigger's answer when `payload` is a handshake its configuration recognises.
pub async fn answer(
    state: &AppState,
    flow: &Flow,
    version_id: &str,
    draft: bool,
    payload: &Value,
) -> Result<Option<Response<Full<Bytes>>>, ApiError> {
    let config = match state.handshakes.0.get(version_id) {
        Some(c) => c.clone(),
        None => {
            let config = configuration(state, version_id);
            if !draft {
                state.handshakes.0.insert(version_id.to_string(), config.clone());
            }
            config
        }
    };
    let Some(config) = config else { return Ok(None) };
    let param = config["paramName"].as_str().unwrap_or_default();
    let present = match config["strategy"].as_str() {
        Some("HEADER_PRESENT") => payload["headers"].get(param.to_ascii_lowercase()).is_some(),
        Some("QUERY_PRESENT") => payload["queryParams"].get(param).is_some(),
        Some("BODY_PARAM_PRESENT") => payload["body"].get(param).is_some(),
        _ => false,
    };
    if !present {
        return Ok(None);
    }
    let Some(version) = state.store.get_version(version_id)? else { return Ok(None) };
    let out = state.triggers.hook_output(flow, &version, "onHandshake", payload).await.map_err(|e| {
        ApiError::new(StatusCode::BAD_REQUEST, "HANDSHAKE_FAILED", format!("the trigger's onHandshake failed: {e}"))
    })?;
    let status = out["status"].as_u64().and_then(|s| StatusCode::from_u16(s as u16).ok()).unwrap_or(StatusCode::OK);
    let body = out.get("body").cloned().unwrap_or_else(|| json!({}));
    let mut resp = Response::builder().status(status);
    let mut has_type = false;
    for (k, v) in out["headers"].as_object().into_iter().flatten() {
        has_type |= k.eq_ignore_ascii_case("content-type");
        resp = resp.header(k.as_str(), v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string()));
    }
    let bytes = match body {
        Value::String(s) => {
            if !has_type {
                resp = resp.header("content-type", "text/plain");
            }
            s.into_bytes()
        }
        other => {
            if !has_type {
                resp = resp.header("content-type", "application/json");
            }
            other.to_string().into_bytes()
        }
    };
    Ok(Some(resp.body(Full::new(Bytes::from(bytes))).map_err(|e| ApiError::internal(e.to_string()))?))
}

/// The `handshakeConfiguration` of the version's trigger, when it is an npm piece's with a
/// strategy other than `NONE`.
fn configuration(state: &AppState, version_id: &str) -> Option<Value> {
    let version = state.store.get_version(version_id).ok()??;
    let t = &version.trigger;
    let piece = t.settings.piece_name.as_deref()?;
    if troupe_actors::pieces::catalog::piece(piece).is_some() {
        return None;
    }
    let record =
        troupe_actors::npm::NpmPieces::resolve_installed(&state.store, piece, t.settings.piece_version.as_deref())
            .ok()??;
    let config = record.metadata?["triggers"][t.settings.trigger_name.as_deref()?]["handshakeConfiguration"].clone();
    matches!(config["strategy"].as_str(), Some(s) if s != "NONE").then_some(config)
}
