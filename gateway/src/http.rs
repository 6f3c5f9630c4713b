//! Request plumbing shared by every route: bodies with limits, JSON, queries, auth.

use crate::error::ApiError;
use crate::AppState;
use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::{Request, StatusCode};
use serde::de::DeserializeOwned;

/// Reads a whole body, refusing more than `limit` bytes with 413.
pub async fn read_body(mut body: Incoming, limit: usize) -> Result<Bytes, ApiError> {
    let mut buf = bytes::BytesMut::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| ApiError::bad_request(format!("could not read the request body: {e}")))?;
        if let Ok(data) = frame.into_data() {
            if buf.len() + data.len() > limit {
                discard(body).await;
                return Err(too_large(limit));
            }
            buf.extend_from_slice(&data);
        }
    }
    Ok(buf.freeze())
}

/// Most bytes read and dropped from a refused body so the client can read its 413 (a
/// "lingering close", as nginx does); past it, or past the deadline, the connection is cut.
const DISCARD_MAX: usize = 64 * 1024 * 1024;
const DISCARD_DEADLINE: std::time::Duration = std::time::Duration::from_secs(5);

/// Reads and drops the rest of a refused body, within bounds.
pub async fn discard(mut body: Incoming) {
    let drain = async {
        let mut seen = 0usize;
        while let Some(Ok(frame)) = body.frame().await {
            if let Ok(data) = frame.into_data() {
                seen += data.len();
                if seen > DISCARD_MAX {
                    return;
                }
            }
        }
    };
    let _ = tokio::time::timeout(DISCARD_DEADLINE, drain).await;
}

pub fn too_large(limit: usize) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "PAYLOAD_TOO_LARGE",
        format!("request body is larger than the limit of {} bytes", limit),
    )
}

/// Refuses early when the declared length is already over the limit.
pub fn check_content_length(req: &Request<Incoming>, limit: usize) -> Result<(), ApiError> {
    let declared = req
        .headers()
        .get(hyper::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    match declared {
        Some(n) if n > limit => Err(too_large(limit)),
        _ => Ok(()),
    }
}

/// The head of a request and its whole body, refusing more than `limit` bytes with 413.
pub async fn read_request(
    req: Request<Incoming>,
    limit: usize,
) -> Result<(hyper::http::request::Parts, Bytes), ApiError> {
    if let Err(e) = check_content_length(&req, limit) {
        discard(req.into_body()).await;
        return Err(e);
    }
    let (parts, body) = req.into_parts();
    Ok((parts, read_body(body, limit).await?))
}

pub async fn read_json<T: DeserializeOwned>(req: Request<Incoming>, limit: usize) -> Result<T, ApiError> {
    if let Err(e) = check_content_length(&req, limit) {
        discard(req.into_body()).await;
        return Err(e);
    }
    let body = read_body(req.into_body(), limit).await?;
    parse_json(&body)
}

/// A whole JSON body as `T`, or a 400 saying why not ([`read_json`] once the body is read).
pub(crate) fn parse_json<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    if body.is_empty() {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "INVALID_JSON",
            "request body is empty; a JSON object is expected",
        ));
    }
    serde_json::from_slice(body).map_err(ApiError::from_json)
}

/// Query parameters in order; a name may repeat (`status=FAILED&status=TIMEOUT`).
pub fn query_pairs(req: &Request<Incoming>) -> Result<Vec<(String, String)>, ApiError> {
    serde_urlencoded::from_str(req.uri().query().unwrap_or_default())
        .map_err(|e| ApiError::bad_request(format!("query string: {e}")))
}

pub fn query_one<'a>(q: &'a [(String, String)], name: &str) -> Option<&'a str> {
    q.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

pub fn query_all<'a>(q: &'a [(String, String)], name: &str) -> Vec<&'a str> {
    q.iter().filter(|(k, _)| k == name).map(|(_, v)| v.as_str()).collect()
}

pub fn query_limit(q: &[(String, String)]) -> Result<usize, ApiError> {
    match query_one(q, "limit") {
        None => Ok(10),
        Some(v) => v
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=1000).contains(n))
            .ok_or_else(|| ApiError::bad_request(format!("limit {v:?} must be a whole number from 1 to 1000"))),
    }
}

/// `Authorization: Bearer <key>` against the stored (hashed) keys.
/// Who is asking: an admin key sees every project, a project key only its own. Objects of
/// other projects answer 404, as if they did not exist, so that ids do not leak.
#[derive(Clone, Debug)]
pub struct Scope {
    pub project: Option<String>,
    /// Who asks, as audit events name them (`{type: API_KEY, id, displayName}`); `None` for
    /// Troupe itself (a webhook finding its flow).
    pub principal: Option<serde_json::Value>,
}

impl Scope {
    /// Troupe itself: every project, no principal.
    pub fn troupe() -> Scope {
        Scope { project: None, principal: None }
    }

    pub fn allows(&self, project: &str) -> bool {
        self.project.as_deref().is_none_or(|p| p == project)
    }

    /// The project a list is about: a project key's own; for an admin, the one asked for (if any).
    pub fn list_filter(&self, asked: Option<&str>) -> Result<Option<String>, ApiError> {
        match (&self.project, asked) {
            (Some(own), Some(other)) if own != other => Err(ApiError::not_found("project", other)),
            (Some(own), _) => Ok(Some(own.clone())),
            (None, asked) => Ok(asked.map(String::from)),
        }
    }

    pub fn require_admin(&self) -> Result<(), ApiError> {
        match self.project {
            None => Ok(()),
            Some(_) => Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "FORBIDDEN",
                "this API key belongs to a project; managing projects and keys needs an admin key",
            )),
        }
    }
}

pub fn authenticate(state: &AppState, req: &Request<Incoming>) -> Result<Scope, ApiError> {
    let unauthorized = |m: &str| ApiError::new(StatusCode::UNAUTHORIZED, "UNAUTHORIZED", m);
    let header = req
        .headers()
        .get(hyper::header::AUTHORIZATION)
        .ok_or_else(|| unauthorized("missing Authorization header; send `Authorization: Bearer <api key>`"))?;
    let key = header
        .to_str()
        .ok()
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .ok_or_else(|| unauthorized("Authorization header must be `Bearer <api key>`"))?;
    match state.store.api_key(key)? {
        Some(rec) => Ok(Scope {
            principal: Some(serde_json::json!({"type": "API_KEY", "id": rec.id, "displayName": rec.display_name})),
            project: rec.project_id,
        }),
        None => Err(unauthorized("invalid API key")),
    }
}
