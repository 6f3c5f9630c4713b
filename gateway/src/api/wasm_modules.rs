//! `/api/v1/wasm-modules`: WASI modules for CODE steps, stored once by content.
//!
//! `POST` takes the module's bytes as the body (any content type), checks that it is a WASI
//! program the sandbox can run (it compiles it, so a later step starts warm), stores it and
//! answers its id, the sha-256 of the bytes in hex: `201` the first time, `200` after. A CODE
//! step refers to it with `"settings": {"wasmModule": "<id>", "input": {...}}`.

use crate::error::{json_response, ApiError};
use crate::http::read_request;
use crate::AppState;
use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use serde_json::json;
use troupe_sandbox::SandboxError;

type Resp = Result<Response<Full<Bytes>>, ApiError>;

pub async fn upload(state: &AppState, req: Request<Incoming>) -> Resp {
    let limit = (state.config.max_file_size_mb as usize) << 20;
    let (_, body) = read_request(req, limit).await?;
    if body.is_empty() {
        return Err(ApiError::bad_request("the body must be a WebAssembly module (wasm32-wasip1)"));
    }
    let id = troupe_sandbox::module_hash(&body);
    let existed = state.store.has_wasm_module(&id);
    if !existed {
        state.code.add_module(body.to_vec()).await.map_err(|e| match e {
            SandboxError::Invalid(m) | SandboxError::Failed(m) | SandboxError::MemoryLimit(m) => {
                ApiError::bad_request(format!("the module cannot run in the sandbox: {m}"))
            }
            other => ApiError::internal(other),
        })?;
        state.store.put_wasm_module(&id, &body)?;
        state.store.flush().await?;
    }
    let status = if existed { StatusCode::OK } else { StatusCode::CREATED };
    Ok(json_response(status, &json!({"id": id, "size": body.len()})))
}

pub async fn get(state: &AppState, id: &str) -> Resp {
    match state.store.wasm_module(id)? {
        Some(wasm) => Ok(json_response(StatusCode::OK, &json!({"id": id, "size": wasm.len()}))),
        None => Err(ApiError::not_found("wasm module", id)),
    }
}
