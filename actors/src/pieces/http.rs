//! `@activepieces/piece-http`: `send_request` and `return_response`.
//!
//! `send_request` has side effects: a step in flight when a worker dies is sent again once
//! (at-least-once steps). Its output is `{status, headers, body}`; a status of 400 or more
//! fails the step unless `failsafe` is set, in which case the same shape is the output.

use super::webhook::parse_json_body;
use super::{catalog, required_text, unknown_action, ActionError, ActionResult, Control, PieceCtx};
use serde_json::{json, Map, Value};
use std::time::Duration;

pub async fn execute(
    ctx: &PieceCtx<'_>,
    action: &str,
    input: &Map<String, Value>,
) -> Result<ActionResult, ActionError> {
    match action {
        "send_request" => send_request(ctx, input).await,
        "return_response" => return_response(input),
        other => Err(unknown_action(catalog::HTTP, other)),
    }
}

fn string_map(input: &Map<String, Value>, key: &str) -> Vec<(String, String)> {
    input
        .get(key)
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k.clone(), v.as_str().map(String::from).unwrap_or_else(|| v.to_string())))
                .collect()
        })
        .unwrap_or_default()
}

/// Authentication, from `authType` + `authFields` (as the HTTP piece's props), or from the
/// step's `auth` input (`{{connections['my-api']}}`): a secret text is a bearer token, a basic
/// auth connection a username and password, an OAuth2 connection its access token.
fn authenticate(
    req: reqwest::RequestBuilder,
    input: &Map<String, Value>,
) -> Result<reqwest::RequestBuilder, ActionError> {
    let fields = input.get("authFields").and_then(Value::as_object);
    let field = |k: &str| fields.and_then(|f| f.get(k)).and_then(Value::as_str);
    match input.get("authType").and_then(Value::as_str).unwrap_or("NONE") {
        "BEARER_TOKEN" => {
            return Ok(req.bearer_auth(field("token").ok_or("authFields.token is required for BEARER_TOKEN")?))
        }
        "BASIC" => {
            let user = field("username").ok_or("authFields.username is required for BASIC")?;
            return Ok(req.basic_auth(user, field("password")));
        }
        _ => {}
    }
    Ok(match input.get("auth") {
        None | Some(Value::Null) => req,
        Some(Value::String(token)) => req.bearer_auth(token),
        Some(Value::Object(m)) => match (m.get("username"), m.get("password"), m.get("access_token")) {
            (Some(Value::String(u)), p, _) => req.basic_auth(u, p.and_then(Value::as_str)),
            (_, _, Some(Value::String(t))) => req.bearer_auth(t),
            _ => return Err("auth must be a secret text, a basic auth or an OAuth2 connection".into()),
        },
        Some(_) => return Err("auth must be a connection (`{{connections['name']}}`)".into()),
    })
}

async fn send_request(ctx: &PieceCtx<'_>, input: &Map<String, Value>) -> Result<ActionResult, ActionError> {
    let method = required_text(input, "method")?.to_ascii_uppercase();
    let method = reqwest::Method::from_bytes(method.as_bytes())
        .map_err(|_| format!("method {method:?} is not an HTTP method"))?;
    let url = required_text(input, "url")?;
    let mut req = ctx.engine.egress.client().request(method, &url).query(&string_map(input, "queryParams"));
    for (k, v) in string_map(input, "headers") {
        req = req.header(k, v);
    }
    req = authenticate(req, input)?;
    if let Some(secs) = input.get("timeout").and_then(Value::as_f64).filter(|s| *s > 0.0) {
        req = req.timeout(Duration::from_secs_f64(secs));
    }
    let body_type = input.get("body_type").and_then(Value::as_str).unwrap_or("none");
    let data = input.get("body").and_then(|b| b.get("data")).cloned();
    req = match (body_type, data) {
        ("json", Some(d)) => req.json(&parse_json_body(d)?),
        ("raw", Some(Value::String(s))) => req.body(s),
        ("raw", Some(other)) => req.body(other.to_string()),
        ("form_data", Some(Value::Object(m))) => {
            let pairs: Vec<(String, String)> = m
                .into_iter()
                .map(|(k, v)| (k, v.as_str().map(String::from).unwrap_or_else(|| v.to_string())))
                .collect();
            req.form(&pairs)
        }
        _ => req,
    };
    let failsafe = input.get("failsafe").and_then(Value::as_bool).unwrap_or(false);
    let resp = match ctx.engine.egress.send(req).await {
        Ok(r) => r,
        Err(e) if failsafe => return Ok(ActionResult::output(json!({"error": e.to_string()}))),
        Err(e) => return Err(format!("request to {url} failed: {e}").into()),
    };
    let status = resp.status.as_u16();
    let headers = resp.headers_json();
    let bytes = resp.body;
    let body =
        serde_json::from_slice(&bytes).unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
    let output = json!({"status": status, "headers": headers, "body": body});
    if status >= 400 && !failsafe {
        return Err(format!("request to {url} answered {status}: {}", output["body"]).into());
    }
    Ok(ActionResult::output(output))
}

/// `status`, `headers`, `body_type` json | raw, `body.data`: stops the run with the response.
fn return_response(input: &Map<String, Value>) -> Result<ActionResult, ActionError> {
    let status = input.get("status").and_then(Value::as_u64).unwrap_or(200);
    let headers = input.get("headers").and_then(Value::as_object).cloned().unwrap_or_default();
    let data = input.get("body").and_then(|b| b.get("data")).cloned().unwrap_or(Value::Null);
    let body = match input.get("body_type").and_then(Value::as_str).unwrap_or("json") {
        "json" => parse_json_body(data)?,
        _ => data,
    };
    let response = json!({"status": status, "headers": headers, "body": body});
    Ok(ActionResult { output: response.clone(), control: Control::Stop(response) })
}
