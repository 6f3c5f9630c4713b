//! Runs: a header that moves through [`RunStatus`] by one checked function, and a journal of
//! self-contained step records.

use serde::{Deserialize, Serialize};
use serde_json::Value;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RunStatus {
    Queued,
    Running,
    Paused,
    Succeeded,
    Failed,
    Timeout,
    Canceled,
    QuotaExceeded,
    MemoryLimitExceeded,
    /// The run's journal grew past `AP_MAX_FLOW_RUN_LOG_SIZE_MB`.
    LogSizeExceeded,
    InternalError,
}

impl RunStatus {
    pub fn is_terminal(self) -> bool {
        !matches!(self, RunStatus::Queued | RunStatus::Running | RunStatus::Paused)
    }

    pub fn is_failure(self) -> bool {
        matches!(
            self,
            RunStatus::Failed
                | RunStatus::Timeout
                | RunStatus::QuotaExceeded
                | RunStatus::MemoryLimitExceeded
                | RunStatus::LogSizeExceeded
                | RunStatus::InternalError
        )
    }

    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Queued => "QUEUED",
            RunStatus::Running => "RUNNING",
            RunStatus::Paused => "PAUSED",
            RunStatus::Succeeded => "SUCCEEDED",
            RunStatus::Failed => "FAILED",
            RunStatus::Timeout => "TIMEOUT",
            RunStatus::Canceled => "CANCELED",
            RunStatus::QuotaExceeded => "QUOTA_EXCEEDED",
            RunStatus::MemoryLimitExceeded => "MEMORY_LIMIT_EXCEEDED",
            RunStatus::LogSizeExceeded => "LOG_SIZE_EXCEEDED",
            RunStatus::InternalError => "INTERNAL_ERROR",
        }
    }

    pub fn parse(s: &str) -> Option<RunStatus> {
        serde_json::from_value(Value::String(s.to_string())).ok()
    }

    /// The transition table. A run starts queued or running, may pause and resume, and may be
    /// canceled until it ends. Terminal statuses are final, except that a failed run may be
    /// queued again by a retry. [`FlowRun::transition`] is the only way a status changes.
    pub fn transition(self, to: RunStatus) -> Result<RunStatus, InvalidTransition> {
        use RunStatus::*;
        let ok = match (self, to) {
            (from, Queued) if from.is_failure() => true,
            (from, _) if from.is_terminal() => false,
            (Queued, Running) | (Running, Paused) | (Paused, Running) | (Paused, Queued) => true,
            (Queued | Running | Paused, t) if t.is_terminal() => true,
            _ => false,
        };
        if ok {
            Ok(to)
        } else {
            Err(InvalidTransition { from: self, to })
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("a run cannot go from {} to {}", from.as_str(), to.as_str())]
pub struct InvalidTransition {
    pub from: RunStatus,
    pub to: RunStatus,
}

/// Why a change of a stored run was refused (see `Store::update_run`).
#[derive(Debug, thiserror::Error)]
pub enum RunConflict {
    #[error(transparent)]
    Transition(#[from] InvalidTransition),
    /// The run is not in a state the change applies to; the message says why.
    #[error("{0}")]
    Refused(String),
}

impl RunConflict {
    pub fn refused(why: impl Into<String>) -> RunConflict {
        RunConflict::Refused(why.into())
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RunEnvironment {
    Production,
    Testing,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FailedStep {
    pub name: String,
    pub display_name: String,
    pub message: String,
}

/// What ended a run when no step of the flow did: the run's failed step names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PseudoStep {
    /// The run's trigger or version (the version no longer exists).
    Trigger,
    /// The engine itself (a panic).
    Engine,
    /// The shard's sweeper (a run past its time).
    Sweeper,
    /// A pause that lasted past `AP_PAUSED_FLOW_TIMEOUT_DAYS`.
    Pause,
}

impl FailedStep {
    /// The failed step of a run that `who` ended.
    pub fn pseudo(who: PseudoStep, message: impl Into<String>) -> FailedStep {
        let (name, display_name) = match who {
            PseudoStep::Trigger => ("trigger", "Trigger"),
            PseudoStep::Engine => ("engine", "Engine"),
            PseudoStep::Sweeper => ("sweeper", "Sweeper"),
            PseudoStep::Pause => ("pause", "Pause"),
        };
        FailedStep { name: name.into(), display_name: display_name.into(), message: message.into() }
    }
}

/// The run header, in the shape of Activepieces' `FlowRun` (without `steps`, which come from
/// the journal).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FlowRun {
    pub id: String,
    pub created: String,
    pub updated: String,
    pub project_id: String,
    pub flow_id: String,
    pub flow_version_id: String,
    pub flow_display_name: String,
    /// Changed only through [`FlowRun::transition`].
    status: RunStatus,
    pub environment: RunEnvironment,
    #[serde(default)]
    pub start_time: Option<String>,
    #[serde(default)]
    pub finish_time: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed_step: Option<FailedStep>,
    /// The webhook (JetStream message id) that made this run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook_id: Option<String>,
    /// The trigger output the run started from. Stored once, as the journal's first record
    /// (seq 0), not in the header that is rewritten as the run moves; filled in for the API.
    #[serde(default, skip_serializing_if = "Value::is_null")]
    pub trigger_output: Value,
    /// Core-NATS subject of a sync webhook waiting for this run's response.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_to: Option<String>,
    /// The response a `return_response` step set, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response: Option<Value>,
    pub shard: u16,
    /// Microseconds since the epoch at creation: orders runs and pages.
    pub created_micros: u64,
    #[serde(default)]
    pub steps_count: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<u64>,
    /// Why and how the run waits, while it is `PAUSED`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pause: Option<PauseMetadata>,
    /// The resume that requeued a paused run; its step consumes it on the next execution.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resume: Option<Resume>,
    /// Active milliseconds spent before the current running stretch (paused time excluded).
    #[serde(default)]
    pub active_ms: u64,
    /// When the current running stretch began (set at every start, resume and recovery).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub running_since: Option<String>,
    /// When the run was archived (`POST /flow-runs/archive`); archived runs leave the lists
    /// unless `includeArchived`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub archived_at: Option<String>,
    /// Activepieces' run tags.
    #[serde(default)]
    pub tags: Vec<String>,
    /// The run that started this one (subflows), and whether this one failing fails it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_run_id: Option<String>,
    #[serde(default = "yes")]
    pub fail_parent_on_failure: bool,
}

fn yes() -> bool {
    true
}

impl FlowRun {
    /// A new `QUEUED` run of `flow_version_id`, created now; the other fields are empty.
    pub fn queued(id: String, project_id: String, flow_id: String, flow_version_id: String, shard: u16) -> FlowRun {
        let now = crate::ids::now_iso();
        FlowRun {
            id,
            created: now.clone(),
            updated: now,
            project_id,
            flow_id,
            flow_version_id,
            flow_display_name: String::new(),
            status: RunStatus::Queued,
            environment: RunEnvironment::Production,
            start_time: None,
            finish_time: None,
            failed_step: None,
            webhook_id: None,
            trigger_output: Value::Null,
            reply_to: None,
            response: None,
            shard,
            created_micros: crate::ids::now_micros(),
            steps_count: 0,
            duration_ms: None,
            pause: None,
            resume: None,
            active_ms: 0,
            running_since: None,
            archived_at: None,
            tags: Vec::new(),
            parent_run_id: None,
            fail_parent_on_failure: true,
        }
    }

    pub fn status(&self) -> RunStatus {
        self.status
    }

    /// Moves the run to `to`, if the transition table allows it: the one way a status changes.
    pub fn transition(&mut self, to: RunStatus) -> Result<(), InvalidTransition> {
        self.status = self.status.transition(to)?;
        Ok(())
    }

    /// Takes every field of `other` but keeps this run's status (a stored header brought up to
    /// date with an actor's copy, before the status moves through [`FlowRun::transition`]).
    pub fn update_from(&mut self, other: FlowRun) {
        *self = FlowRun { status: self.status, ..other };
    }
}

/// Activepieces' pause metadata, plus where in the flow the run paused.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(tag = "type", rename_all = "SCREAMING_SNAKE_CASE")]
pub enum PauseMetadata {
    #[serde(rename_all = "camelCase")]
    Delay {
        resume_date_time: String,
        step_name: String,
        #[serde(default)]
        loop_path: Vec<(String, usize)>,
    },
    #[serde(rename_all = "camelCase")]
    Webhook {
        request_id: String,
        /// What the waiting sync webhook is answered with when the run pauses.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        response: Option<Value>,
        step_name: String,
        #[serde(default)]
        loop_path: Vec<(String, usize)>,
    },
}

impl PauseMetadata {
    pub fn step(&self) -> (&str, &[(String, usize)]) {
        match self {
            PauseMetadata::Delay { step_name, loop_path, .. } | PauseMetadata::Webhook { step_name, loop_path, .. } => {
                (step_name, loop_path)
            }
        }
    }
}

/// A resume waiting to be consumed by the paused step: the request (or timer) payload.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Resume {
    pub step_name: String,
    #[serde(default)]
    pub loop_path: Vec<(String, usize)>,
    pub payload: Value,
}

/// Who asks a paused run to continue.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResumeBy<'a> {
    /// The timer of a `DELAY` pause.
    Timer,
    /// An HTTP request naming the pause's request id.
    Request(&'a str),
    /// An HTTP request to the run's resume link, whatever its `WEBHOOK` pause (approval links).
    AnyWebhook,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum StepStatus {
    Succeeded,
    Failed,
    Paused,
    Running,
    Stopped,
}

/// One journal record: what one execution of one step took and gave. Self-contained, so a
/// run is rebuilt by reading its records in order.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StepRecord {
    pub seq: u32,
    pub step_name: String,
    /// `"PIECE"`, `"CODE"`, `"LOOP_ON_ITEMS"`, `"ROUTER"`, or the trigger's type.
    #[serde(rename = "type")]
    pub kind: String,
    /// Enclosing loop iterations, outermost first: `[["loop_1", 0]]`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub loop_path: Vec<(String, usize)>,
    pub status: StepStatus,
    pub input: Value,
    #[serde(default)]
    pub output: Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_message: Option<String>,
    /// Milliseconds.
    pub duration: u64,
    #[serde(default)]
    pub attempts: u32,
    /// What a code step logged (console, stderr), bounded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logs: Option<String>,
}

/// The run's steps in Activepieces' shape: `{stepName: {type, status, input, output,
/// duration, errorMessage}}`, loop bodies under `output.iterations[i]` of their loop.
/// When a step ran more than once (a retried or recovered step), the last record wins.
pub fn steps_object(records: &[StepRecord]) -> Value {
    let mut root = serde_json::Map::new();
    for r in records {
        let mut entry = serde_json::json!({
            "type": r.kind, "status": r.status, "input": r.input, "output": r.output, "duration": r.duration,
        });
        if let Some(e) = &r.error_message {
            entry["errorMessage"] = Value::String(e.clone());
        }
        if let Some(logs) = &r.logs {
            entry["logs"] = Value::String(logs.clone());
        }
        let mut map = &mut root;
        for (loop_name, index) in &r.loop_path {
            let loop_entry = map.entry(loop_name.clone()).or_insert_with(
                || serde_json::json!({"type": "LOOP_ON_ITEMS", "status": "RUNNING", "input": {}, "output": {}}),
            );
            if !loop_entry["output"].is_object() {
                loop_entry["output"] = serde_json::json!({});
            }
            let iterations = loop_entry["output"]
                .as_object_mut()
                .expect("set above")
                .entry("iterations")
                .or_insert_with(|| Value::Array(vec![]));
            if !iterations.is_array() {
                *iterations = Value::Array(vec![]);
            }
            let arr = iterations.as_array_mut().expect("set above");
            while arr.len() <= *index {
                arr.push(serde_json::json!({}));
            }
            map = arr[*index].as_object_mut().expect("iterations are objects");
        }
        // A loop's own record must not wipe the iterations journaled before it.
        if let Some(Value::Array(its)) = map.get(&r.step_name).map(|e| e["output"]["iterations"].clone()) {
            if entry["output"].is_object() {
                entry["output"]["iterations"] = Value::Array(its);
            }
        }
        map.insert(r.step_name.clone(), entry);
    }
    Value::Object(root)
}

#[cfg(test)]
mod tests {
    use super::RunStatus::*;

    #[test]
    fn terminal_statuses_are_final() {
        assert!(Succeeded.transition(Running).is_err());
        assert!(Canceled.transition(Running).is_err());
        assert!(Failed.transition(Succeeded).is_err());
        assert!(Canceled.transition(Queued).is_err(), "a canceled run never resumes");
        assert!(Succeeded.transition(Queued).is_err(), "only failures are retried");
        assert!(Timeout.transition(Queued).is_ok());
    }

    #[test]
    fn a_run_can_queue_run_pause_and_finish() {
        assert!(Queued.transition(Running).is_ok());
        assert!(Running.transition(Paused).is_ok());
        assert!(Paused.transition(Running).is_ok());
        assert!(Running.transition(Succeeded).is_ok());
        assert!(Paused.transition(Canceled).is_ok());
        assert!(Running.transition(Queued).is_err());
    }

    #[test]
    fn loop_records_fold_into_iterations_and_the_last_record_wins() {
        use super::{steps_object, StepRecord, StepStatus};
        let rec = |seq, name: &str, path: Vec<(String, usize)>, out: serde_json::Value| StepRecord {
            seq,
            step_name: name.into(),
            kind: "PIECE".into(),
            loop_path: path,
            status: StepStatus::Succeeded,
            input: serde_json::json!({}),
            output: out,
            error_message: None,
            duration: 1,
            attempts: 1,
            logs: None,
        };
        let l = |i| vec![("loop_1".to_string(), i)];
        let steps = steps_object(&[
            rec(0, "step_2", l(0), serde_json::json!(1)),
            rec(1, "step_2", l(1), serde_json::json!(2)),
            rec(2, "loop_1", vec![], serde_json::json!({"item": 2, "index": 2})),
            rec(3, "after", vec![], serde_json::json!("old")),
            rec(4, "after", vec![], serde_json::json!("new")),
        ]);
        assert_eq!(steps["loop_1"]["output"]["iterations"][1]["step_2"]["output"], 2);
        assert_eq!(steps["loop_1"]["output"]["item"], 2);
        assert_eq!(steps["after"]["output"], "new");
    }
}
