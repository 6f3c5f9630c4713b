//! `@activepieces/piece-http`: `send_request`, `parse_url` and the old `return_response`.
//!
//! `send_request` as today's piece: `Accept: application/json`, auth, a JSON (or CSV)
//! content type when there is a body, the user's headers last; `body_type` json, raw (url-
//! encoded when the content type says so) or form_data (rows of text and file fields, sent
//! multipart); no body on GET and HEAD; `followRedirects` (3xx answered as they are when off;
//! on when unset, as steps saved before the prop); `response_is_binary` (base64);
//! `use_proxy`; `failureMode` (up to 3 attempts, at once: `retry_all`, `retry_5xx`,
//! `continue_all`, `continue_4xx`, else the step fails) with the failure output
//! `{response: {status, body}, request: {body}}`, which is also the thrown message. A step
//! with the old `failsafe` keeps that version's behaviour: `{status, headers, body}` for any
//! status. It has side effects: a step in flight when a worker dies is sent again once.

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
        "parse_url" => parse_url(input),
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

/// What a `send_request` step sends, built once and sent up to three times.
struct Outgoing {
    method: reqwest::Method,
    url: String,
    query: Vec<(String, String)>,
    /// In order; a later header replaces an earlier one of the same name (any case).
    headers: Vec<(String, String)>,
    body: Option<Vec<u8>>,
    /// The request body as the failure output shows it.
    shown_body: Value,
    timeout: Option<Duration>,
}

fn set_header(headers: &mut Vec<(String, String)>, name: &str, value: String) {
    headers.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
    headers.push((name.to_string(), value));
}

/// A `fileFieldValue` (or any file input): a `data:` URL, or `{filename, base64 | data}`.
fn file_of(v: &Value) -> Option<(String, Vec<u8>)> {
    use base64::Engine as _;
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.decode(s.trim()).ok();
    match v {
        Value::String(s) => {
            let rest = s.strip_prefix("data:")?;
            let (meta, data) = rest.split_once(',')?;
            let bytes = if meta.ends_with(";base64") { b64(data)? } else { data.as_bytes().to_vec() };
            Some(("file".into(), bytes))
        }
        Value::Object(m) => {
            let name = m.get("filename").and_then(Value::as_str).unwrap_or("file").to_string();
            let data = m.get("base64").or_else(|| m.get("data")).and_then(Value::as_str)?;
            Some((name, b64(data).unwrap_or_else(|| data.as_bytes().to_vec())))
        }
        _ => None,
    }
}

/// `multipart/form-data` of the form_data rows (`{fieldName, fieldType, textFieldValue,
/// fileFieldValue}`), as the `form-data` package writes it.
fn multipart(rows: &[Value]) -> (String, Vec<u8>) {
    let boundary = format!("--------------------------{}", troupe_store::ids::new_id());
    let mut body = Vec::new();
    for row in rows {
        let name = row["fieldName"].as_str().unwrap_or_default();
        let part = match row["fieldType"].as_str() {
            Some("file") => file_of(&row["fileFieldValue"]).map(|(filename, bytes)| {
                (format!("; filename=\"{filename}\"\r\nContent-Type: application/octet-stream"), bytes)
            }),
            _ => match &row["textFieldValue"] {
                Value::Null => None,
                Value::String(s) if s.is_empty() => None,
                Value::String(s) => Some((String::new(), s.clone().into_bytes())),
                other => Some((String::new(), other.to_string().into_bytes())),
            },
        };
        if let Some((extra, bytes)) = part {
            body.extend(
                format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"{extra}\r\n\r\n").bytes(),
            );
            body.extend(bytes);
            body.extend(b"\r\n");
        }
    }
    body.extend(format!("--{boundary}--\r\n").bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

/// An object's fields as `application/x-www-form-urlencoded`.
fn urlencoded(m: &Map<String, Value>) -> Vec<u8> {
    let pairs: Vec<(String, String)> =
        m.iter().map(|(k, v)| (k.clone(), v.as_str().map(String::from).unwrap_or_else(|| v.to_string()))).collect();
    serde_urlencoded::to_string(&pairs).unwrap_or_default().into_bytes()
}

fn outgoing(input: &Map<String, Value>) -> Result<Outgoing, ActionError> {
    let method = required_text(input, "method")?.to_ascii_uppercase();
    let method = reqwest::Method::from_bytes(method.as_bytes())
        .map_err(|_| format!("method {method:?} is not an HTTP method"))?;
    let url = required_text(input, "url")?;
    let user = string_map(input, "headers");
    let mut headers = vec![("Accept".to_string(), "application/json".to_string())];
    if let Some(auth) = authorization(input)? {
        headers.push(("Authorization".into(), auth));
    }
    let body_type = input.get("body_type").and_then(Value::as_str);
    let data = input.get("body").and_then(|b| b.get("data")).cloned().filter(|d| !d.is_null());
    let user_type = user.iter().rev().find(|(k, _)| k.eq_ignore_ascii_case("content-type")).map(|(_, v)| v.clone());
    let mut body: Option<Vec<u8>> = None;
    let mut form_type = None;
    let mut shown_body = Value::Null;
    match (body_type, data) {
        (Some("none"), _) | (_, None) => {}
        (Some("form_data"), Some(Value::Array(rows))) => {
            let (content_type, bytes) = multipart(&rows);
            form_type = Some(content_type);
            shown_body = Value::Array(rows);
            body = Some(bytes);
        }
        // Troupe's earlier shape: an object of fields, sent url-encoded
        (Some("form_data"), Some(Value::Object(m))) => {
            form_type = Some("application/x-www-form-urlencoded".into());
            body = Some(urlencoded(&m));
            shown_body = Value::Object(m);
        }
        (Some("raw"), Some(d)) => {
            let form = user_type.as_deref().is_some_and(|t| t.contains("application/x-www-form-urlencoded"));
            body = Some(match &d {
                Value::String(s) => s.clone().into_bytes(),
                Value::Object(m) if form => urlencoded(m),
                other => other.to_string().into_bytes(),
            });
            shown_body = d;
        }
        // json, and steps from before body_type: strings go as they are, the rest as JSON
        (_, Some(d)) => {
            body = Some(match &d {
                Value::String(s) => s.clone().into_bytes(),
                other => other.to_string().into_bytes(),
            });
            shown_body = d;
        }
    }
    if body.is_some() {
        let json_or_csv = if user_type.as_deref() == Some("text/csv") { "text/csv" } else { "application/json" };
        headers.push(("Content-Type".into(), json_or_csv.into()));
    }
    for (k, v) in user {
        set_header(&mut headers, &k, v);
    }
    if let Some(t) = form_type {
        set_header(&mut headers, "Content-Type", t);
    }
    if method == reqwest::Method::GET || method == reqwest::Method::HEAD {
        body = None;
    }
    let timeout = input.get("timeout").and_then(Value::as_f64).filter(|s| *s > 0.0).map(Duration::from_secs_f64);
    Ok(Outgoing { method, url, query: string_map(input, "queryParams"), headers, body, shown_body, timeout })
}

/// The `Authorization` header, from `authType` + `authFields` (as the HTTP piece's props), or
/// from the step's `auth` input (`{{connections['my-api']}}`): a secret text is a bearer
/// token, a basic auth connection a username and password, an OAuth2 connection its access
/// token.
fn authorization(input: &Map<String, Value>) -> Result<Option<String>, ActionError> {
    use base64::Engine as _;
    let basic =
        |u: &str, p: &str| format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}")));
    let fields = input.get("authFields").and_then(Value::as_object);
    let field = |k: &str| fields.and_then(|f| f.get(k)).and_then(Value::as_str);
    match input.get("authType").and_then(Value::as_str).unwrap_or("NONE") {
        "BEARER_TOKEN" if fields.is_some() => {
            return Ok(Some(format!(
                "Bearer {}",
                field("token").ok_or("authFields.token is required for BEARER_TOKEN")?
            )))
        }
        "BASIC" if fields.is_some() => {
            let user = field("username").ok_or("authFields.username is required for BASIC")?;
            return Ok(Some(basic(user, field("password").unwrap_or_default())));
        }
        _ => {}
    }
    Ok(match input.get("auth") {
        None | Some(Value::Null) => None,
        Some(Value::String(token)) => Some(format!("Bearer {token}")),
        Some(Value::Object(m)) => match (m.get("username"), m.get("password"), m.get("access_token")) {
            (Some(Value::String(u)), p, _) => Some(basic(u, p.and_then(Value::as_str).unwrap_or_default())),
            (_, _, Some(Value::String(t))) => Some(format!("Bearer {t}")),
            _ => return Err("auth must be a secret text, a basic auth or an OAuth2 connection".into()),
        },
        Some(_) => return Err("auth must be a connection (`{{connections['name']}}`)".into()),
    })
}

/// The proxy of `use_proxy` and `proxy_settings`.
fn proxy_of(input: &Map<String, Value>) -> Option<String> {
    if input.get("use_proxy").and_then(Value::as_bool) != Some(true) {
        return None;
    }
    let p = input.get("proxy_settings")?;
    let host = p["proxy_host"].as_str().filter(|h| !h.is_empty())?;
    let port =
        p["proxy_port"].as_u64().map(|n| n.to_string()).or_else(|| p["proxy_port"].as_str().map(String::from))?;
    Some(match (p["proxy_username"].as_str(), p["proxy_password"].as_str()) {
        (Some(u), Some(pw)) if !u.is_empty() && !pw.is_empty() => format!("http://{u}:{pw}@{host}:{port}"),
        _ => format!("http://{host}:{port}"),
    })
}

/// What became of one attempt: the output, or the status (0: no response) and the failure
/// output (`{response: {status, body}, request: {body}}`).
type Attempt = Result<Value, (u16, Value)>;

async fn attempt(ctx: &PieceCtx<'_>, out: &Outgoing, follow: bool, binary: bool, proxy: Option<&str>) -> Attempt {
    let mut req = ctx.engine.egress.client().request(out.method.clone(), &out.url).query(&out.query);
    for (k, v) in &out.headers {
        req = req.header(k, v);
    }
    if let Some(b) = &out.body {
        req = req.body(b.clone());
    }
    if let Some(t) = out.timeout {
        req = req.timeout(t);
    }
    let failure = |status: u16, body: Value| {
        (status, json!({"response": {"status": status, "body": body}, "request": {"body": out.shown_body}}))
    };
    let resp = match ctx.engine.egress.send_with(req, follow, proxy).await {
        Ok(r) => r,
        Err(e) => return Err(failure(0, Value::String(e.to_string()))),
    };
    let status = resp.status.as_u16();
    let body = if resp.body.is_empty() {
        Value::Null
    } else if binary {
        use base64::Engine as _;
        Value::String(base64::engine::general_purpose::STANDARD.encode(&resp.body))
    } else {
        serde_json::from_slice(&resp.body)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&resp.body).into_owned()))
    };
    let ok = if follow { (200..300).contains(&status) } else { (200..400).contains(&status) };
    if ok {
        let mut output = json!({"status": status, "headers": resp.headers_json()});
        if !body.is_null() {
            output["body"] = body;
        }
        Ok(output)
    } else {
        Err(failure(status, body))
    }
}

async fn send_request(ctx: &PieceCtx<'_>, input: &Map<String, Value>) -> Result<ActionResult, ActionError> {
    let out = outgoing(input)?;
    // a step of the piece before failureMode: `failsafe` keeps the run going with the
    // response as the output, whatever its status
    if let Some(failsafe) = input.get("failsafe").and_then(Value::as_bool) {
        return legacy(ctx, &out, failsafe).await;
    }
    // unset: a step saved before the prop existed, which followed redirects
    let follow = input.get("followRedirects").and_then(Value::as_bool).unwrap_or(true);
    let binary = input.get("response_is_binary").and_then(Value::as_bool).unwrap_or(false);
    let proxy = proxy_of(input);
    let mode = input.get("failureMode").and_then(Value::as_str).unwrap_or("continue_none");
    let mut tries = 0;
    loop {
        tries += 1;
        let (status, failure) = match attempt(ctx, &out, follow, binary, proxy.as_deref()).await {
            Ok(output) => return Ok(ActionResult::output(output)),
            Err(f) => f,
        };
        let server = (500..600).contains(&status);
        let client = (400..500).contains(&status);
        let retry = tries < 3
            && match mode {
                "retry_all" => true,
                "retry_5xx" => server,
                "continue_4xx" => !client,
                _ => false,
            };
        if retry {
            continue;
        }
        let carry_on = match mode {
            "continue_all" => true,
            "continue_4xx" => client,
            "retry_5xx" => !server,
            _ => false,
        };
        if carry_on {
            return Ok(ActionResult::output(failure));
        }
        // no response: the transport's own error, as the package rethrows it
        if status == 0 {
            let why = failure["response"]["body"].as_str().unwrap_or_default();
            return Err(format!("request to {} failed: {why}", out.url).into());
        }
        return Err(failure.to_string().into());
    }
}

/// The http piece of `failsafe`'s time: `{status, headers, body}` for any status, a 4xx or 5xx
/// failing the step unless `failsafe`.
async fn legacy(ctx: &PieceCtx<'_>, out: &Outgoing, failsafe: bool) -> Result<ActionResult, ActionError> {
    match attempt(ctx, out, true, false, None).await {
        Ok(output) => Ok(ActionResult::output(output)),
        Err((0, f)) if failsafe => Ok(ActionResult::output(json!({"error": f["response"]["body"]}))),
        Err((0, f)) => {
            Err(format!("request to {} failed: {}", out.url, f["response"]["body"].as_str().unwrap_or_default()).into())
        }
        Err((status, f)) if failsafe || status < 400 => {
            Ok(ActionResult::output(json!({"status": status, "headers": {}, "body": f["response"]["body"]})))
        }
        Err((status, f)) => Err(format!("request to {} answered {status}: {}", out.url, f["response"]["body"]).into()),
    }
}

/// `parse_url`: `{base_url, domain, path, query_parameters, hash}`; query values are lists
/// unless `returnArrays` is off.
fn parse_url(input: &Map<String, Value>) -> Result<ActionResult, ActionError> {
    let raw = required_text(input, "url")?;
    let url = reqwest::Url::parse(&raw)
        .map_err(|e| format!("Failed to parse URL. Please ensure it is a valid, absolute URL. Details: {e}"))?;
    let arrays = input.get("returnArrays").and_then(Value::as_bool).unwrap_or(true);
    let mut query = Map::new();
    for (k, v) in url.query_pairs() {
        let (k, v) = (k.into_owned(), Value::String(v.into_owned()));
        match query.get_mut(&k) {
            Some(Value::Array(list)) if arrays => list.push(v),
            Some(_) => {}
            None => {
                query.insert(k, if arrays { Value::Array(vec![v]) } else { v });
            }
        }
    }
    let host = url.host_str().unwrap_or_default();
    let base = match url.port() {
        Some(p) => format!("{}://{host}:{p}", url.scheme()),
        None => format!("{}://{host}", url.scheme()),
    };
    Ok(ActionResult::output(json!({
        "base_url": base,
        "domain": host,
        "path": url.path(),
        "query_parameters": query,
        "hash": url.fragment().unwrap_or_default(),
    })))
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
