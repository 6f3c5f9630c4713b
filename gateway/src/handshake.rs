//! What a webhook meets before it is accepted: the catch-webhook trigger's own authentication
//! (`authType` basic or header, as `@activepieces/piece-webhook` checks it: a request that
//! fails it makes no run, and is answered 401 here), and the handshakes of npm pieces'
//! triggers (`handshakeConfiguration` and `onHandshake`): a service that checks a webhook URL
//! before it sends events (Slack's `url_verification`, and the like) is answered at once by
//! the trigger, and no run is made.

use crate::error::ApiError;
use crate::AppState;
use bytes::Bytes;
use http_body_util::Full;
use hyper::{Response, StatusCode};
use serde_json::{json, Value};
use troupe_store::flow::Flow;

/// What the webhook gate of a version needs, by version id; published versions never change.
#[derive(Default)]
pub struct Handshakes(dashmap::DashMap<String, Gate>);

#[derive(Clone, Default)]
struct Gate {
    /// The npm trigger's handshake configuration, when it has one.
    handshake: Option<Value>,
    /// The catch-webhook trigger's `authType` and `authFields`, when it asks for one.
    auth: Option<(String, Value)>,
}

/// Checks the catch-webhook trigger's authentication of a webhook to `version_id`: `Err`
/// (401) when the trigger asks for one and `payload`'s headers do not carry it.
pub fn authenticate(state: &AppState, version_id: &str, draft: bool, payload: &Value) -> Result<(), ApiError> {
    let Some((kind, fields)) = gate(state, version_id, draft).auth else { return Ok(()) };
    let headers = &payload["headers"];
    let field = |k: &str| fields[k].as_str().unwrap_or_default().to_string();
    let ok = match kind.as_str() {
        "basic" => headers["authorization"].as_str().is_some_and(|h| {
            let Some(encoded) = h.get(..6).filter(|p| p.eq_ignore_ascii_case("basic ")).map(|_| &h[6..]) else {
                return false;
            };
            use base64::Engine as _;
            let decoded = base64::engine::general_purpose::STANDARD.decode(encoded.trim()).unwrap_or_default();
            let decoded = String::from_utf8_lossy(&decoded);
            let mut parts = decoded.splitn(2, ':');
            parts.next() == Some(field("username").as_str()) && parts.next() == Some(field("password").as_str())
        }),
        "header" => headers[field("headerName").to_ascii_lowercase()].as_str() == Some(field("headerValue").as_str()),
        _ => true,
    };
    if ok {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "UNAUTHORIZED",
            format!("the webhook's {kind} authentication failed"),
        ))
    }
}

fn gate(state: &AppState, version_id: &str, draft: bool) -> Gate {
    if let Some(g) = state.handshakes.0.get(version_id) {
        return g.clone();
    }
    let gate = Gate { handshake: configuration(state, version_id), auth: webhook_auth(state, version_id) };
    if !draft {
        state.handshakes.0.insert(version_id.to_string(), gate.clone());
    }
    gate
}

/// The catch-webhook trigger's `authType` (`basic`, `header`) and `authFields` of a version.
fn webhook_auth(state: &AppState, version_id: &str) -> Option<(String, Value)> {
    let version = state.store.get_version(version_id).ok()??;
    let t = &version.trigger;
    if t.settings.piece_name.as_deref() != Some(troupe_actors::pieces::catalog::WEBHOOK) {
        return None;
    }
    let input = t.settings.input.as_ref()?;
    let kind = input.get("authType")?.as_str()?.to_ascii_lowercase();
    (kind == "basic" || kind == "header").then(|| (kind, input.get("authFields").cloned().unwrap_or_default()))
}

/// The trigger's answer when `payload` is a handshake its configuration recognises.
pub async fn answer(
    state: &AppState,
    flow: &Flow,
    version_id: &str,
    draft: bool,
    payload: &Value,
) -> Result<Option<Response<Full<Bytes>>>, ApiError> {
    let Some(config) = gate(state, version_id, draft).handshake else { return Ok(None) };
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
    let s = &version.trigger.settings;
    let mut trigger = troupe_actors::npm::trigger_metadata(
        &state.store,
        s.piece_name.as_deref()?,
        s.piece_version.as_deref(),
        s.trigger_name.as_deref()?,
    )?;
    let config = trigger["handshakeConfiguration"].take();
    matches!(config["strategy"].as_str(), Some(s) if s != "NONE").then_some(config)
}
