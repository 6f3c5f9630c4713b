//! The HTTP front door: webhooks, the REST API, health, metrics, and the listener that serves
//! them. The `troupe` binary (the `server/` crate) starts it; this crate does not start NATS,
//! the store, the engine or the scheduler.
//!
//! Handlers translate HTTP to calls on `troupe-store` and messages to the engine; they hold
//! no flow logic of their own beyond the version lifecycle of the flow operations.

pub mod api;
pub mod app_events;
pub mod audit;
pub mod error;
pub mod handshake;
pub mod http;
pub mod metric_definitions;
pub mod replies;
pub mod resume;
pub mod server;
pub mod users;
pub mod webhooks;

use async_nats::jetstream;
use troupe_store::{Config, Store};

/// What every handler can reach.
pub struct AppState {
    pub config: Config,
    pub store: Store,
    pub nats: async_nats::Client,
    pub js: jetstream::Context,
    pub default_project: String,
    /// The code sandbox, for checking uploaded WASI modules.
    pub code: std::sync::Arc<troupe_actors::code::CodeRunner>,
    /// Where sync callers wait for their run's response.
    pub replies: std::sync::Arc<replies::Replies>,
    /// Installed npm pieces, and those loaded in the sandbox.
    pub npm: std::sync::Arc<troupe_actors::npm::NpmPieces>,
    /// The way out for pieces loaded here (to read their metadata).
    pub egress: std::sync::Arc<troupe_pieces::egress::Egress>,
    /// npm pieces' triggers (hooks), which the scheduler also runs.
    pub triggers: std::sync::Arc<troupe_actors::npm::NpmTriggers>,
    /// Webhook handshake configurations of published versions.
    pub handshakes: handshake::Handshakes,
    /// The engine context steps are tested with (`POST /api/v1/step-run`); it owns no shard.
    pub tester: std::sync::Arc<troupe_actors::context::EngineCtx>,
}
