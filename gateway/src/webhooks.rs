//! Webhook ingress: `/api/v1/webhooks/{flowId}` with `/sync`, `/draft`, `/draft/sync`.
//!
//! An async webhook is answered 200 only after JetStream has acknowledged it; if NATS cannot
//! take it, 503 with `Retry-After`. A sync webhook then waits on a core-NATS inbox for the
//! run's response, and answers 202 with the run's location when that takes too long.

use crate::error::{json_response, ApiError};
use crate::AppState;
use base64::Engine as _;
use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use serde_json::{json, Map, Value};
use troupe_store::flow::FlowStatus;
use troupe_store::ids::{new_ordered_id, now_iso, shard_for_flow};
use troupe_store::message::{ShardMessage, WebhookMessage, WebhookResponse};
use troupe_store::publish::{publish_to_shard, PublishError, ShardPost};

type Resp = Result<Response<Full<Bytes>>, ApiError>;

/// The trigger output Activepieces gives a webhook: `{method, headers, body, queryParams}`.
pub(crate) fn trigger_payload(req: &hyper::http::request::Parts, body: &[u8]) -> Value {
    let mut headers = Map::new();
    for (k, v) in &req.headers {
        headers.insert(k.as_str().to_string(), Value::String(String::from_utf8_lossy(v.as_bytes()).into_owned()));
    }
    let query: Vec<(String, String)> =
        serde_urlencoded::from_str(req.uri.query().unwrap_or_default()).unwrap_or_default();
    let query: Map<String, Value> = query.into_iter().map(|(k, v)| (k, Value::String(v))).collect();
    let content_type = req
        .headers
        .get(hyper::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_ascii_lowercase();
    json!({
        "method": req.method.as_str(),
        "headers": headers,
        "body": parse_body(&content_type, body),
        "queryParams": query,
    })
}

/// JSON and form bodies become objects, text stays text, anything else is base64. A body
/// that claims JSON but does not parse is kept as text: the webhook is never lost.
fn parse_body(content_type: &str, body: &[u8]) -> Value {
    if body.is_empty() {
        return json!({});
    }
    if content_type.contains("json") {
        if let Ok(v) = serde_json::from_slice(body) {
            return v;
        }
    }
    if content_type.starts_with("application/x-www-form-urlencoded") {
        if let Ok(pairs) = serde_urlencoded::from_bytes::<Vec<(String, String)>>(body) {
            return Value::Object(pairs.into_iter().map(|(k, v)| (k, Value::String(v))).collect());
        }
    }
    let is_text = content_type.starts_with("text/")
        || content_type.contains("xml")
        || content_type.contains("json")
        || content_type.is_empty();
    match std::str::from_utf8(body) {
        Ok(s) if is_text => Value::String(s.to_string()),
        _ => Value::String(base64::engine::general_purpose::STANDARD.encode(body)),
    }
}

pub async fn handle(state: &AppState, req: Request<Incoming>, flow_id: &str, rest: &[&str]) -> Resp {
    if rest == ["test"] {
        return crate::api::sample_data::webhook_test(state, req, flow_id).await;
    }
    let (draft, sync) = match rest {
        [] => (false, false),
        ["sync"] => (false, true),
        ["draft"] => (true, false),
        ["draft", "sync"] => (true, true),
        _ => {
            return Err(ApiError::new(
                StatusCode::NOT_FOUND,
                "NOT_FOUND",
                "unknown webhook path; use /webhooks/{flowId}[/draft][/sync] or /webhooks/{flowId}/test",
            ))
        }
    };
    let flow = match crate::api::flows::load_flow(state, &crate::http::Scope::troupe(), flow_id) {
        Ok(f) => f,
        Err(e) => {
            crate::http::discard(req.into_body()).await;
            return Err(e);
        }
    };
    let version_id = if draft {
        Some(flow.latest_version_id.clone())
    } else {
        if flow.status != FlowStatus::Enabled || flow.published_version_id.is_none() {
            return Err(ApiError::new(
                StatusCode::NOT_FOUND,
                "FLOW_DISABLED",
                format!("flow {flow_id:?} is not enabled; publish and enable it to receive webhooks"),
            ));
        }
        None
    };
    let (parts, body) = crate::http::read_request(req, state.config.webhook_body_limit).await?;
    let payload = trigger_payload(&parts, &body);
    let answering = version_id.as_deref().or(flow.published_version_id.as_deref()).unwrap_or_default().to_string();
    if let Some(resp) = crate::handshake::answer(state, &flow, &answering, draft, &payload).await? {
        return Ok(resp);
    }
    crate::handshake::authenticate(state, &answering, draft, &payload)?;
    let webhook_id = new_ordered_id();
    let msg = WebhookMessage {
        webhook_id: webhook_id.clone(),
        flow_id: flow_id.to_string(),
        version_id,
        payload,
        received_at: now_iso(),
    };
    let inbox = sync.then(|| state.replies.register());
    let post = ShardPost {
        shard: shard_for_flow(flow_id, state.config.shards),
        msg_id: &webhook_id,
        message: &ShardMessage::Webhook(msg),
        reply_to: inbox.as_ref().map(|w| w.subject.as_str()),
    };
    let publish_timer = crate::metric_definitions::PUBLISH_LATENCY.start_timer();
    match publish_to_shard(&state.nats, &state.js, &state.store, post).await {
        Ok(()) => publish_timer.observe_duration(),
        Err(PublishError::TooLarge { bytes, max }) => {
            return Err(ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "PAYLOAD_TOO_LARGE",
                format!("the webhook ({bytes} bytes with its envelope) is larger than the NATS server's max_payload ({max} bytes)"),
            ))
        }
        Err(e) => {
            return Err(ApiError::unavailable(format!("the webhook was not accepted by the queue, retry later: {e}")))
        }
    }
    crate::metric_definitions::WEBHOOKS_ACCEPTED.inc();
    let Some(mut waiter) = inbox else {
        let mut resp = json_response(StatusCode::OK, &json!({}));
        resp.headers_mut().insert("x-webhook-id", webhook_id.parse().expect("ascii id"));
        return Ok(resp);
    };
    let webhook_run = || -> Result<Option<troupe_store::run::FlowRun>, ApiError> {
        match state.store.run_for_webhook(&webhook_id)? {
            Some(id) => Ok(state.store.get_run(&id)?),
            None => Ok(None),
        }
    };
    let mut resp = wait_for_reply(state, &mut waiter, webhook_run).await?;
    resp.headers_mut().insert("x-webhook-id", webhook_id.parse().expect("ascii id"));
    Ok(resp)
}

/// Waits on a sync caller's inbox for the run's response, up to `AP_WEBHOOK_TIMEOUT_SECONDS`;
/// then answers 202 with the run's id, status and location (`run` finds the run).
pub(crate) async fn wait_for_reply(
    state: &AppState,
    waiter: &mut crate::replies::Waiter,
    run: impl Fn() -> Result<Option<troupe_store::run::FlowRun>, ApiError>,
) -> Resp {
    if let Some(payload) = waiter.wait(state.config.webhook_timeout).await {
        let resp: WebhookResponse = serde_json::from_slice(&payload).map_err(ApiError::internal)?;
        return Ok(sync_response(resp));
    }
    let run = run()?;
    let (run_id, status) = match &run {
        Some(r) => (Value::String(r.id.clone()), Value::String(r.status().as_str().into())),
        None => (Value::Null, Value::String("QUEUED".into())),
    };
    let mut resp = json_response(StatusCode::ACCEPTED, &json!({"runId": run_id, "status": status}));
    if let Some(r) = run {
        resp.headers_mut().insert("location", format!("/api/v1/flow-runs/{}", r.id).parse().expect("ascii"));
    }
    Ok(resp)
}

/// Turns a run's response into HTTP: JSON bodies as JSON, strings as they are.
fn sync_response(resp: WebhookResponse) -> Response<Full<Bytes>> {
    let status = StatusCode::from_u16(resp.status).unwrap_or(StatusCode::OK);
    let mut builder = Response::builder().status(status);
    let mut has_type = false;
    for (k, v) in &resp.headers {
        let v = match v {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        has_type |= k.eq_ignore_ascii_case("content-type");
        if let (Ok(name), Ok(value)) =
            (hyper::header::HeaderName::try_from(k.as_str()), hyper::header::HeaderValue::try_from(v))
        {
            builder = builder.header(name, value);
        }
    }
    let (body, content_type) = match resp.body {
        Value::String(s) => (s.into_bytes(), "text/plain; charset=utf-8"),
        Value::Null => (Vec::new(), "text/plain; charset=utf-8"),
        other => (serde_json::to_vec(&other).expect("serializes"), "application/json"),
    };
    if !has_type {
        builder = builder.header("content-type", content_type);
    }
    builder = builder.header("x-run-id", resp.run_id.as_str());
    builder
        .body(Full::new(Bytes::from(body)))
        .unwrap_or_else(|_| Response::new(Full::new(Bytes::from_static(b"invalid response headers"))))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn cases() -> u32 {
        std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(256)
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: cases(), failure_persistence: None, ..ProptestConfig::default() })]

        /// Whatever a sender puts in a webhook (any bytes, any content type, any headers and
        /// query), it becomes a trigger payload: the webhook is never refused for its body.
        #[test]
        fn any_webhook_becomes_a_payload(
            body in prop::collection::vec(any::<u8>(), 0..256),
            content_type in prop::sample::select(vec![
                "application/json", "application/json; charset=utf-8", "application/x-www-form-urlencoded",
                "text/plain", "text/xml", "application/octet-stream", "multipart/form-data; boundary=x", "", "x/\u{7f}",
            ]),
            header in "[a-z][a-z0-9-]{0,12}",
            value in "[ -~]{0,24}",
            query in "[a-zA-Z0-9=&%+._-]{0,40}",
        ) {
            let mut req = hyper::Request::builder().method("POST").uri(format!("/api/v1/webhooks/f?{query}"));
            if let Ok(v) = hyper::header::HeaderValue::from_str(content_type) {
                req = req.header(hyper::header::CONTENT_TYPE, v);
            }
            if let Ok(v) = hyper::header::HeaderValue::from_str(&value) {
                req = req.header(header.as_str(), v);
            }
            let (parts, ()) = req.body(()).unwrap().into_parts();
            let payload = trigger_payload(&parts, &body);
            prop_assert_eq!(&payload["method"], "POST");
            prop_assert!(payload["headers"].is_object() && payload["queryParams"].is_object());
            // a JSON body labelled JSON comes through as that JSON
            if content_type.starts_with("application/json") {
                if let Ok(v) = serde_json::from_slice::<Value>(&body) {
                    prop_assert_eq!(&payload["body"], &v);
                }
            }
        }
    }
}
