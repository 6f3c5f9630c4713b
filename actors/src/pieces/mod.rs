//! Native core pieces, one module each, and the table of what exists.
//!
//! A piece action takes its resolved input and gives an output, and may ask the run to stop
//! or to respond to a waiting sync webhook. A failed action gives an [`ActionError`], a
//! message for the user.

mod approval;
pub mod catalog;
mod crypto;
mod csv;
mod data_mapper;
mod date;
mod debug;
mod delay;
mod http;
pub(crate) mod json;
mod math;
mod store;
mod text;
mod text_convert;
mod webhook;

use crate::context::EngineCtx;
use serde_json::{Map, Value};
use troupe_store::run::FlowRun;

/// What a step asks of its run besides giving an output.
#[derive(Debug, Clone, PartialEq)]
pub enum Control {
    Continue,
    /// End the run successfully now and answer the sync webhook with this response.
    Stop(Value),
    /// Answer the sync webhook with this response and keep going.
    Respond(Value),
    /// Pause the run here; the step runs again with the resume payload when it resumes.
    Pause(PauseRequest),
}

#[derive(Debug, Clone, PartialEq)]
pub enum PauseRequest {
    /// Until this time.
    Delay { until: chrono::DateTime<chrono::Utc> },
    /// Until a request arrives at the resume URL of `request_id`; `response` answers the
    /// waiting sync webhook now.
    Webhook { request_id: String, response: Option<Value> },
}

/// Why a piece action failed: the message the step fails with, written for the user
/// (`input "url" is required`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ActionError(String);

impl From<String> for ActionError {
    fn from(message: String) -> ActionError {
        ActionError(message)
    }
}

impl From<&str> for ActionError {
    fn from(message: &str) -> ActionError {
        ActionError(message.to_string())
    }
}

impl From<troupe_store::StoreError> for ActionError {
    fn from(e: troupe_store::StoreError) -> ActionError {
        ActionError(e.to_string())
    }
}

pub struct ActionResult {
    pub output: Value,
    pub control: Control,
}

impl ActionResult {
    pub fn output(output: Value) -> ActionResult {
        ActionResult { output, control: Control::Continue }
    }
}

pub struct PieceCtx<'a> {
    pub engine: &'a EngineCtx,
    pub run: &'a FlowRun,
    /// Set when the step runs again after its pause: the resume request (or timer) payload.
    pub resume: Option<&'a Value>,
}

impl PieceCtx<'_> {
    /// Where this Troupe is reachable from outside: `AP_FRONTEND_URL`, else loopback.
    pub fn base_url(&self) -> String {
        self.engine.config.public_url()
    }

    /// The URL that resumes this run's pause `request_id` (Activepieces' `generateResumeUrl`).
    pub fn resume_url(&self, request_id: &str, sync: bool) -> String {
        let sync = if sync { "/sync" } else { "" };
        format!("{}/api/v1/flow-runs/{}/requests/{request_id}{sync}", self.base_url(), self.run.id)
    }
}

/// True when `piece` runs natively here: Troupe has it, and `AP_NATIVE_PIECES` keeps it.
pub fn runs_natively(config: &troupe_store::Config, piece: &str) -> bool {
    (catalog::piece(piece).is_some() || piece == catalog::DEBUG) && config.runs_natively(piece)
}

/// Runs one action of a native piece.
pub async fn execute(
    ctx: &PieceCtx<'_>,
    piece: &str,
    action: &str,
    input: &Map<String, Value>,
) -> Result<ActionResult, ActionError> {
    match piece {
        catalog::WEBHOOK => webhook::execute(ctx, action, input),
        catalog::DELAY => delay::execute(ctx, action, input),
        catalog::APPROVAL => approval::execute(ctx, action),
        catalog::HTTP => http::execute(ctx, action, input).await,
        catalog::STORE => store::execute(ctx, action, input),
        catalog::DATA_MAPPER => data_mapper::execute(action, input),
        catalog::TEXT_HELPER if action == "replace" => text::replace(ctx, input).await,
        catalog::TEXT_HELPER if action == "find" => text::find(ctx, input, false).await,
        catalog::TEXT_HELPER if action == "find_all" => text::find(ctx, input, true).await,
        catalog::TEXT_HELPER => text::execute(action, input),
        catalog::MATH_HELPER => math::execute(action, input),
        catalog::DATE_HELPER => date::execute(action, input),
        catalog::CRYPTO => crypto::execute(action, input),
        catalog::CSV => csv::execute(action, input),
        catalog::JSON => json::execute(action, input),
        catalog::CONNECTIONS => Err("read_connection runs in the interpreter".into()),
        catalog::DEBUG if catalog::debug_pieces_enabled() => debug::execute(ctx, action, input).await,
        other => Err(format!("piece {other:?} is not available in Troupe").into()),
    }
}

/// Text of an input, for props that Activepieces declares as text.
pub(crate) fn text(input: &Map<String, Value>, key: &str) -> Option<String> {
    match input.get(key)? {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

pub(crate) fn required_text(input: &Map<String, Value>, key: &str) -> Result<String, ActionError> {
    text(input, key).ok_or_else(|| format!("input {key:?} is required").into())
}

pub(crate) fn unknown_action(piece: &str, action: &str) -> ActionError {
    format!("piece {piece:?} has no action {action:?} in Troupe").into()
}
