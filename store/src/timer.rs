//! Durable timers: what the scheduler fires, and when.

use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "kind", rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TimerKind {
    /// The end of a `DELAY` pause.
    #[serde(rename_all = "camelCase")]
    ResumeRun { run_id: String },
    /// A run paused longer than `AP_PAUSED_FLOW_TIMEOUT_DAYS` ends as `TIMEOUT`.
    #[serde(rename_all = "camelCase")]
    ExpirePause { run_id: String },
    /// The next tick of a flow's schedule trigger.
    #[serde(rename_all = "camelCase")]
    ScheduleTick { flow_id: String, version_id: String },
    /// The next poll of a flow's polling trigger.
    #[serde(rename_all = "camelCase")]
    Poll { flow_id: String, version_id: String },
    /// The next renewal of a flow's webhook trigger (its `renewConfiguration`: `onRenew`).
    #[serde(rename_all = "camelCase")]
    Renew { flow_id: String, version_id: String },
    /// Deletes run data older than `AP_EXECUTION_DATA_RETENTION_DAYS`.
    Retention,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Timer {
    pub id: String,
    /// Milliseconds since the epoch.
    pub due_ms: u64,
    /// Whose timer it is (`flow/<id>`, `run/<id>`, `system`): removed together.
    pub owner: String,
    #[serde(flatten)]
    pub kind: TimerKind,
}

impl Timer {
    pub fn new(owner: impl Into<String>, due_ms: u64, kind: TimerKind) -> Timer {
        Timer { id: crate::ids::new_id(), due_ms, owner: owner.into(), kind }
    }

    pub fn key(&self) -> Vec<u8> {
        let mut k = self.due_ms.to_be_bytes().to_vec();
        k.extend_from_slice(self.id.as_bytes());
        k
    }
}

pub fn flow_owner(flow_id: &str) -> String {
    format!("flow/{flow_id}")
}

pub fn run_owner(run_id: &str) -> String {
    format!("run/{run_id}")
}

pub const SYSTEM_OWNER: &str = "system";
