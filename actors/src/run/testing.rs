//! Testing one step of a draft, as Activepieces' "test step": the step runs alone, its
//! templates resolved against the sample data of the trigger and the other steps (what their
//! own tests gave), with the step's retry and continue-on-failure settings, under the flow
//! timeout. Nothing is journaled and no run is made; what it took and gave comes back for the
//! caller to keep as the step's sample data.

use super::interpreter::{Exec, Halt};
use crate::context::EngineCtx;
use futures::FutureExt;
use serde_json::{Map, Value};
use std::panic::AssertUnwindSafe;
use troupe_store::flow::{Action, FlowVersion};
use troupe_store::run::{FlowRun, RunEnvironment, StepStatus};

/// What a tested step took and gave.
#[derive(Debug, Clone, PartialEq)]
pub struct StepTested {
    pub success: bool,
    /// Its resolved input.
    pub input: Value,
    /// Its output; when it failed, the error message.
    pub output: Value,
    /// What it logged (code steps).
    pub logs: String,
}

/// Why a step could not be tested at all.
#[derive(Debug, thiserror::Error)]
pub enum TestError {
    #[error("step {0:?} does not exist in this flow version")]
    UnknownStep(String),
    #[error("{0:?} is the trigger; test it with POST /api/v1/test-trigger")]
    Trigger(String),
}

/// Tests `step_name` of `version` (a draft, usually) for `project_id`, with `sample`: the
/// sample data of the trigger and steps, by name.
pub async fn test_step(
    engine: &EngineCtx,
    version: &FlowVersion,
    project_id: &str,
    step_name: &str,
    sample: Map<String, Value>,
) -> Result<StepTested, TestError> {
    if version.trigger.name == step_name {
        return Err(TestError::Trigger(step_name.to_string()));
    }
    let step = version
        .actions()
        .into_iter()
        .find(|a| a.name == step_name)
        .ok_or_else(|| TestError::UnknownStep(step_name.to_string()))?;
    // the step alone: what follows it, or runs inside it, is not part of its test
    let alone = Action { next_action: None, first_loop_action: None, children: None, skip: None, ..step.clone() };
    let id = troupe_store::ids::new_id();
    let mut run = FlowRun::queued(id, project_id.to_string(), version.flow_id.clone(), version.id.clone(), 0);
    run.environment = RunEnvironment::Testing;
    run.flow_display_name = version.display_name.clone();
    let trigger_output = sample.get(&version.trigger.name).cloned().unwrap_or_default();
    let mut exec =
        Exec::new(engine, run, &version.trigger.name, Some(trigger_output), Vec::new(), engine.config.flow_timeout);
    exec.testing = true;
    exec.nested = troupe_store::migrate::nested_outputs(version.schema_version.as_deref());
    for (name, data) in sample {
        if name != version.trigger.name {
            exec.outputs.insert(name, data);
        }
    }
    let halt = match AssertUnwindSafe(exec.chain(Some(&alone), &[])).catch_unwind().await {
        Ok(Ok(())) | Ok(Err(Halt::Stop | Halt::Pause(_) | Halt::Ended)) => None,
        Ok(Err(Halt::Fail(_, failed))) => Some(failed.message),
        Err(panic) => Some(super::outcome::panic_message(&panic)),
    };
    let record = exec.records.iter().rev().find(|r| r.step_name == step_name && r.loop_path.is_empty());
    let mut tested = match record {
        Some(r) if r.status == StepStatus::Failed => StepTested {
            success: false,
            input: r.input.clone(),
            output: Value::String(r.error_message.clone().unwrap_or_default()),
            logs: r.logs.clone().unwrap_or_default(),
        },
        Some(r) => StepTested {
            success: halt.is_none(),
            input: r.input.clone(),
            output: r.output.clone(),
            logs: r.logs.clone().unwrap_or_default(),
        },
        None => StepTested {
            success: halt.is_none(),
            input: Value::Null,
            output: halt.clone().map(Value::String).unwrap_or_default(),
            logs: String::new(),
        },
    };
    if let (Some(message), true) = (halt, tested.success) {
        tested.success = false;
        tested.output = Value::String(message);
    }
    if !exec.secrets.is_empty() {
        exec.secrets.redact(&mut tested.output);
        exec.secrets.redact_str(&mut tested.logs);
    }
    Ok(tested)
}
