//! RunActor: one per running run. It executes the run's steps through the interpreter
//! ([`interpreter::Exec`]), records the outcome ([`outcome`]) and tells the ShardActor that
//! started it that its project slot is free ([`RunEnded`]).
//!
//! A restarted run reads its journal first and skips the steps that already succeeded: steps
//! are at-least-once (the step in flight at a crash runs again), runs exactly-once.

pub(crate) mod interpreter;
pub mod outcome;
pub mod secrets;
pub mod testing;

use crate::context::EngineCtx;
use crate::messages::RunEnded;
use crate::metric_definitions::{LIVE_ACTORS, RUNS_STARTED};
use actix::{Actor, ActorContext, ActorFutureExt, AsyncContext, Context, Recipient, WrapFuture};
use futures::FutureExt;
use interpreter::{Exec, Halt};
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tracing::Instrument;
use troupe_store::flow::FlowVersion;
use troupe_store::ids::now_iso;
use troupe_store::run::{FailedStep, FlowRun, PseudoStep, RunConflict, RunStatus};

pub struct RunActor {
    ctx: Arc<EngineCtx>,
    version: Option<Arc<FlowVersion>>,
    run: Option<FlowRun>,
    ended: Recipient<RunEnded>,
}

impl RunActor {
    pub fn new(
        ctx: Arc<EngineCtx>,
        version: Option<Arc<FlowVersion>>,
        run: FlowRun,
        ended: Recipient<RunEnded>,
    ) -> RunActor {
        RunActor { ctx, version, run: Some(run), ended }
    }
}

impl Actor for RunActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        let engine = self.ctx.clone();
        let version = self.version.clone();
        let run = self.run.take().expect("started once");
        let ended = self.ended.clone();
        let fut = async move {
            let project = run.project_id.clone();
            let run_id = run.id.clone();
            // a run dispatched twice is executed by the first actor only; both give back the
            // project slot they were handed
            if engine.executing.insert(run_id.clone(), run.shard).is_none() {
                LIVE_ACTORS.with_label_values(&["run"]).set(engine.executing.len() as i64);
                let span = tracing::info_span!("run", run_id = %run.id, flow_id = %run.flow_id);
                execute_run(&engine, version, run).instrument(span).await;
                engine.executing.remove(&run_id);
                LIVE_ACTORS.with_label_values(&["run"]).set(engine.executing.len() as i64);
            }
            ended.do_send(RunEnded { project });
        };
        ctx.spawn(fut.into_actor(self).map(|_, _, ctx| ctx.stop()));
    }
}

/// Runs a run to its end (or its pause), whatever happens inside: never panics out.
async fn execute_run(engine: &EngineCtx, version: Option<Arc<FlowVersion>>, mut run: FlowRun) {
    let run_id = run.id.clone();
    if run.status().is_terminal() || !engine.owns(run.shard) {
        return;
    }
    let Some(version) = version else {
        let msg = format!("flow version {} no longer exists", run.flow_version_id);
        let failed = FailedStep::pseudo(PseudoStep::Trigger, msg);
        outcome::finalize(engine, run, RunStatus::InternalError, Some(failed), false).await;
        return;
    };
    let started = engine.store.update_run(&run_id, |stored| {
        match stored.status() {
            RunStatus::Queued => stored.transition(RunStatus::Running)?,
            // recovered after a crash or handed out again by the sweeper
            RunStatus::Running => {}
            other => return Err(RunConflict::refused(format!("the run is {}", other.as_str()))),
        }
        let now = now_iso();
        stored.start_time.get_or_insert_with(|| now.clone());
        stored.running_since = Some(now.clone());
        stored.updated = now;
        Ok(())
    });
    match started {
        Ok(r) => {
            RUNS_STARTED.inc();
            run = r
        }
        Err(e) => {
            tracing::info!(run_id, error = %e, "run not started");
            return;
        }
    }
    // a run this process just created has only its trigger record: no need to read it back
    let fresh = engine.fresh.take(&run.id);
    let journal = match fresh {
        Some(_) => Vec::new(),
        None => engine.store.run_steps(run.shard, &run.id).unwrap_or_default(),
    };
    let stretch_start = Instant::now();
    let active_left = engine.config.flow_timeout.saturating_sub(Duration::from_millis(run.active_ms));
    let mut exec = Exec::new(engine, run, &version.trigger.name, fresh, journal, active_left);
    exec.nested = troupe_store::migrate::nested_outputs(version.schema_version.as_deref());
    let result = AssertUnwindSafe(exec.chain(version.trigger.next_action.as_deref(), &[])).catch_unwind().await;
    let (status, failed_step) = match result {
        Ok(Err(Halt::Pause(pause))) => {
            let elapsed = stretch_start.elapsed().as_millis() as u64;
            let replied = exec.replied;
            return outcome::pause_run(engine, exec.run, *pause, elapsed, replied).await;
        }
        Ok(Err(Halt::Ended)) => {
            tracing::info!(run_id = exec.run.id, "run was ended from outside; stopping");
            return;
        }
        Ok(Ok(())) | Ok(Err(Halt::Stop)) => (RunStatus::Succeeded, None),
        Ok(Err(Halt::Fail(status, mut step))) => {
            exec.secrets.redact_str(&mut step.message);
            (status, Some(step))
        }
        Err(panic) => {
            let msg = outcome::panic_message(&panic);
            (RunStatus::InternalError, Some(FailedStep::pseudo(PseudoStep::Engine, msg)))
        }
    };
    let replied = exec.replied;
    let mut run = exec.run;
    run.active_ms += stretch_start.elapsed().as_millis() as u64;
    outcome::finalize(engine, run, status, failed_step, replied).await;
}

#[cfg(test)]
mod tests;
