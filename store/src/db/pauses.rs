//! Resuming a paused run: the one place that decides whether a request, a webhook or a timer
//! may wake a run, so that two racing resumes cannot both win.

use super::{Result, Store};
use crate::run::{FlowRun, PauseMetadata, Resume, ResumeBy, RunConflict, RunStatus};
use serde_json::Value;

impl Store {
    /// Requeues a paused run with `payload` for its paused step, if `by` may resume it.
    /// Compare-and-swap: of two racing resumes exactly one wins; the other gets a conflict.
    pub fn resume_run(
        &self,
        run_id: &str,
        by: ResumeBy<'_>,
        payload: Value,
        reply_to: Option<String>,
    ) -> Result<FlowRun> {
        let run = self.transition_run(run_id, RunStatus::Queued, |run| {
            if run.status() != RunStatus::Paused {
                return Err(RunConflict::refused(match run.status() {
                    s if s.is_terminal() => format!("the run already ended as {}", s.as_str()),
                    s => format!("the run is {}, not waiting to be resumed", s.as_str()),
                }));
            }
            let pause = run.pause.clone().ok_or_else(|| RunConflict::refused("the run has no pause to resume"))?;
            let matches = match (&pause, by) {
                (PauseMetadata::Delay { .. }, ResumeBy::Timer) => true,
                (PauseMetadata::Webhook { request_id, .. }, ResumeBy::Request(asked)) => request_id == asked,
                (PauseMetadata::Webhook { .. }, ResumeBy::AnyWebhook) => true,
                _ => false,
            };
            if !matches {
                return Err(RunConflict::refused(
                    "this request does not resume the run's current pause (already resumed?)",
                ));
            }
            let (step, path) = pause.step();
            run.resume =
                Some(Resume { step_name: step.to_string(), loop_path: path.to_vec(), payload: payload.clone() });
            run.pause = None;
            run.updated = crate::ids::now_iso();
            if reply_to.is_some() {
                run.reply_to = reply_to.clone();
            }
            Ok(())
        })?;
        self.remove_timers_of(&crate::timer::run_owner(run_id))?;
        Ok(run)
    }
}
