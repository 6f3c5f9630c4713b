//! The one error type of the HTTP surface: a status, a stable code and a message for the user.

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Response, StatusCode};
use serde_json::{json, Value};

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub extra: Option<Box<(&'static str, Value)>>,
    pub retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError { status, code, message: message.into(), extra: None, retry_after: None }
    }

    pub fn not_found(what: &str, id: &str) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "NOT_FOUND", format!("{what} {id:?} does not exist"))
    }

    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "VALIDATION", message)
    }

    pub fn conflict(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::CONFLICT, "CONFLICT", message)
    }

    pub fn unavailable(message: impl Into<String>) -> ApiError {
        ApiError { retry_after: Some(1), ..ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "UNAVAILABLE", message) }
    }

    pub fn internal(message: impl std::fmt::Display) -> ApiError {
        tracing::error!(error = %message, "internal error");
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "INTERNAL_ERROR", message.to_string())
    }

    pub fn with(mut self, key: &'static str, value: Value) -> ApiError {
        self.extra = Some(Box::new((key, value)));
        self
    }

    /// A body that is not valid JSON, or not the expected shape: 400 with line and column.
    pub fn from_json(e: serde_json::Error) -> ApiError {
        let code = if e.is_syntax() || e.is_eof() { "INVALID_JSON" } else { "VALIDATION" };
        ApiError::new(
            StatusCode::BAD_REQUEST,
            code,
            format!("request body: {e} (line {}, column {})", e.line(), e.column()),
        )
    }

    pub fn into_response(self) -> Response<Full<Bytes>> {
        let mut body = json!({"code": self.code, "message": self.message});
        if let Some(extra) = self.extra {
            let (k, v) = *extra;
            body[k] = v;
        }
        let mut resp = json_response(self.status, &body);
        if let Some(secs) = self.retry_after {
            resp.headers_mut().insert("retry-after", secs.into());
        }
        resp
    }
}

impl From<troupe_store::StoreError> for ApiError {
    fn from(e: troupe_store::StoreError) -> ApiError {
        match e {
            troupe_store::StoreError::BadCursor(_) => ApiError::bad_request(e.to_string()),
            troupe_store::StoreError::Conflict(m) => ApiError::conflict(m),
            troupe_store::StoreError::NotFound(m) => ApiError::new(StatusCode::NOT_FOUND, "NOT_FOUND", m),
            other => ApiError::internal(other),
        }
    }
}

pub fn json_response(status: StatusCode, body: &impl serde::Serialize) -> Response<Full<Bytes>> {
    let bytes = serde_json::to_vec(body).expect("responses serialize");
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(bytes)))
        .expect("valid response")
}
