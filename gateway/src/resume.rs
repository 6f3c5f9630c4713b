//! Resuming paused runs over HTTP: any method on
//! `/api/v1/flow-runs/{runId}/requests/{requestId}` (and `/sync`), and the approval links
//! `/api/v1/flow-runs/{runId}/resume?action=...`. Like webhooks, these need no API key: the
//! unguessable ids are the credential.
//!
//! The resume is a compare-and-swap on the run header: of two racing resumes exactly one
//! wins; the other, like a resume of a finished run, gets 409.

use crate::error::{json_response, ApiError};
use crate::http::read_request;
use crate::webhooks::{trigger_payload, wait_for_reply};
use crate::AppState;
use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use serde_json::json;
use troupe_store::run::ResumeBy;

type Resp = Result<Response<Full<Bytes>>, ApiError>;

pub async fn handle(state: &AppState, req: Request<Incoming>, run_id: &str, by: ResumeBy<'_>, sync: bool) -> Resp {
    let (parts, body) = read_request(req, state.config.webhook_body_limit).await?;
    let payload = trigger_payload(&parts, &body);
    if state.store.get_run(run_id)?.is_none() {
        return Err(ApiError::not_found("flow run", run_id));
    }
    let inbox = sync.then(|| state.replies.register());
    let reply_to = inbox.as_ref().map(|w| w.subject.clone());
    let run = state.store.resume_run(run_id, by, payload, reply_to)?;
    state.store.flush().await?;
    // The resume is durable in sled already; if the queue refuses, the shard sweeper picks
    // the queued run up, so this is not an error for the caller.
    if let Err(e) = crate::api::runs::start_on_shard(state, &run).await {
        tracing::warn!(run_id, error = %e.message, "StartRun not acknowledged; the sweeper will start the run");
    }
    match inbox {
        None => Ok(json_response(StatusCode::OK, &json!({"runId": run.id, "status": run.status().as_str()}))),
        Some(mut waiter) => wait_for_reply(state, &mut waiter, || Ok(state.store.get_run(run_id)?)).await,
    }
}
