//! The messages that travel through NATS between the gateway and the workers.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// What travels on `ap.webhook.<shard>`: a webhook to turn into a run, or a command about an
/// existing run (a retry) for the shard's worker.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ShardMessage {
    Webhook(WebhookMessage),
    /// Start (or continue) an existing run that is `QUEUED`.
    StartRun {
        run_id: String,
    },
}

/// A webhook, as published on `ap.webhook.<shard>`. Its `webhook_id` is also the JetStream
/// message id, and so the run's idempotency key.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WebhookMessage {
    pub webhook_id: String,
    pub flow_id: String,
    /// Set for draft webhooks: the version to run instead of the published one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version_id: Option<String>,
    /// The trigger output: `{method, headers, body, queryParams}`.
    pub payload: Value,
    pub received_at: String,
}

/// What a sync webhook answers: the `return_response` of the run, or its outcome.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WebhookResponse {
    pub status: u16,
    #[serde(default)]
    pub headers: Map<String, Value>,
    #[serde(default)]
    pub body: Value,
    #[serde(default)]
    pub run_id: String,
}

/// A run event, as published on `ap.event.<shard>` when a run ends.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RunEvent {
    pub run_id: String,
    pub flow_id: String,
    pub project_id: String,
    pub status: crate::run::RunStatus,
    pub finish_time: Option<String>,
}
