//! App webhooks (`/api/v1/app-events/{piece}`): one URL per app (Slack's Events API sends
//! every workspace's events there), as Activepieces. The piece's `events.verify` checks the
//! request against the app's signing secret (`AP_APP_WEBHOOK_SECRETS`); a request that fails
//! it is refused (401) before anything else runs. `events.parseAndReply` then either answers
//! at once (Slack's `url_verification`) or names the event and the account it belongs to;
//! every enabled flow whose trigger listens for that event of that account gets the request
//! as a webhook, durable in JetStream before the app is answered, and its trigger's `run`
//! turns it into runs.

use crate::error::{json_response, ApiError};
use crate::AppState;
use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use serde_json::{json, Value};
use troupe_store::flow::FlowStatus;
use troupe_store::ids::{now_iso, shard_for_flow};
use troupe_store::message::{ShardMessage, WebhookMessage};
use troupe_store::publish::{publish_to_shard, ShardPost};

type Resp = Result<Response<Full<Bytes>>, ApiError>;

/// The package of an app: `slack` is `@activepieces/piece-slack`, as Activepieces' aliases.
fn piece_of(alias: &str) -> String {
    if alias.starts_with('@') {
        alias.to_string()
    } else {
        format!("@activepieces/piece-{alias}")
    }
}

pub async fn handle(state: &AppState, req: Request<Incoming>, alias: &str) -> Resp {
    let piece = piece_of(alias);
    let Some(secret) =
        state.config.app_webhook_secrets.get(&piece).and_then(|s| s["webhookSecret"].as_str()).map(str::to_string)
    else {
        crate::http::discard(req.into_body()).await;
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
            format!("app events of {piece} are not configured: AP_APP_WEBHOOK_SECRETS has no webhookSecret for it"),
        ));
    };
    let (parts, body) = crate::http::read_request(req, state.config.webhook_body_limit).await?;
    let mut payload = crate::webhooks::trigger_payload(&parts, &body);
    payload["rawBody"] = Value::String(String::from_utf8_lossy(&body).into_owned());
    let (verified, parsed) =
        state.triggers.app_event(&piece, &payload, &secret).await.map_err(|e| {
            ApiError::new(StatusCode::BAD_REQUEST, "APP_EVENT_FAILED", format!("{piece}'s events: {e}"))
        })?;
    if !verified {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "UNAUTHORIZED",
            format!("the request is not signed with {piece}'s app webhook secret"),
        ));
    }
    if let Some(reply) = parsed.get("reply").filter(|r| !r.is_null()) {
        return Ok(reply_of(reply));
    }
    let event = parsed["event"].as_str().unwrap_or_default();
    let identifier = match &parsed["identifierValue"] {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    };
    let mut delivered = 0;
    for flow_id in state.store.app_listeners_for(&piece, event, &identifier)? {
        let enabled = state.store.get_flow(&flow_id)?.is_some_and(|f| f.status == FlowStatus::Enabled);
        if !enabled {
            continue;
        }
        // the same event delivered again (the app retries) is the same message: one run
        let webhook_id = {
            use sha2::Digest;
            let digest = sha2::Sha256::new().chain_update(flow_id.as_bytes()).chain_update(&body).finalize();
            format!("app-{}", hex::encode(&digest[..16]))
        };
        let message = ShardMessage::Webhook(WebhookMessage {
            webhook_id: webhook_id.clone(),
            flow_id: flow_id.clone(),
            version_id: None,
            payload: payload.clone(),
            received_at: now_iso(),
        });
        let post = ShardPost {
            shard: shard_for_flow(&flow_id, state.config.shards),
            msg_id: &webhook_id,
            message: &message,
            reply_to: None,
        };
        publish_to_shard(&state.nats, &state.js, &state.store, post).await.map_err(|e| {
            ApiError::unavailable(format!("the app event was not accepted by the queue, retry later: {e}"))
        })?;
        delivered += 1;
    }
    tracing::debug!(piece, event, delivered, "app event");
    Ok(json_response(StatusCode::OK, &json!({})))
}

/// parseAndReply's `reply`: `{body, headers}` answered 200.
fn reply_of(reply: &Value) -> Response<Full<Bytes>> {
    let mut resp = Response::builder().status(StatusCode::OK);
    let mut has_type = false;
    for (k, v) in reply["headers"].as_object().into_iter().flatten() {
        has_type |= k.eq_ignore_ascii_case("content-type");
        resp = resp.header(k.as_str(), v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string()));
    }
    let body = match &reply["body"] {
        Value::String(s) => {
            if !has_type {
                resp = resp.header("content-type", "text/plain");
            }
            s.clone().into_bytes()
        }
        Value::Null => Vec::new(),
        other => {
            if !has_type {
                resp = resp.header("content-type", "application/json");
            }
            other.to_string().into_bytes()
        }
    };
    resp.body(Full::new(Bytes::from(body)))
        .unwrap_or_else(|_| Response::new(Full::new(Bytes::from_static(b"invalid reply headers"))))
}
