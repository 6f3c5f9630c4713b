//! ShardActor: one per owned shard. Its consumer task ([`consumer`]) turns webhooks into
//! durable runs; the actor decides when they start: it takes a project slot for each run (or
//! queues it), hands it to its flow's actor, and when a run it started ends ([`RunEnded`]) gives
//! the slot to the next queued run. At start it recovers the shard's unfinished runs from the
//! journal; every [`SWEEP_EVERY`] its sweeper ends runs past their time and hands out runs no
//! actor executes. [`Shards`] starts and stops the shard actors as ownership changes.

mod consumer;

use crate::context::{EngineCtx, EngineError};
use crate::flow::FlowRegistry;
use crate::messages::{Dispatch, RunEnded, StopShard};
use crate::metric_definitions::{CONSUMER_LAG, LIVE_ACTORS, OWNED_SHARDS, PAUSED_RUNS, SHARD_OWNED};
use actix::{Actor, ActorContext, Addr, AsyncContext, Context, Handler};
use async_nats::jetstream::{self, consumer::pull};
use consumer::Intake;
use dashmap::DashMap;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use troupe_store::ids::now_iso;
use troupe_store::names::subjects;
use troupe_store::run::{FailedStep, FlowRun, PseudoStep, RunStatus};
use troupe_store::Store;

pub use consumer::{shard_consumer, ACK_WAIT};

/// How often each shard samples its consumer lag.
pub const LAG_EVERY: Duration = Duration::from_secs(2);
/// How often each shard sweeps its unfinished runs.
pub const SWEEP_EVERY: Duration = Duration::from_secs(10);
/// Slack past the flow timeout before the sweeper ends a run, and the age after which a
/// queued run that is nowhere is handed out again.
pub const SWEEP_MARGIN: Duration = Duration::from_secs(60);

pub struct ShardActor {
    intake: Intake,
    flows: Arc<FlowRegistry>,
    consumer: jetstream::consumer::Consumer<pull::Config>,
    task: Option<troupe_store::tasks::Task>,
    /// The first stream sequence the last orphan sweep saw undelivered (0: none).
    orphan_suspect: Arc<std::sync::atomic::AtomicU64>,
    /// Runs this actor started that have not ended yet: a stopped shard's actor lives on until
    /// they have, so that their project slots come back.
    in_flight: usize,
    /// Told to stop: it takes no message, starts no sweep, and ends with its last run.
    stopping: bool,
}

impl ShardActor {
    fn new(
        intake: Intake,
        flows: Arc<FlowRegistry>,
        consumer: jetstream::consumer::Consumer<pull::Config>,
    ) -> ShardActor {
        ShardActor {
            intake,
            flows,
            consumer,
            task: None,
            orphan_suspect: Default::default(),
            in_flight: 0,
            stopping: false,
        }
    }

    fn ctx(&self) -> &Arc<EngineCtx> {
        &self.intake.ctx
    }

    fn shard(&self) -> u16 {
        self.intake.shard
    }

    /// Starts the run when its project has a free slot; otherwise it waits in the project's
    /// queue and starts when a run of that project ends.
    fn dispatch(&mut self, ctx: &mut Context<Self>, project: &str, flow_id: &str, run_id: &str) {
        if self.ctx().limiter.try_acquire(project, flow_id, run_id) {
            self.start(ctx, project, flow_id, run_id);
        }
    }

    fn start(&mut self, ctx: &mut Context<Self>, project: &str, flow_id: &str, run_id: &str) {
        self.in_flight += 1;
        self.flows.start_run(flow_id, run_id, project, ctx.address().recipient());
    }

    /// The shard's sweeper: nothing stays `RUNNING` longer than `AP_FLOW_TIMEOUT_SECONDS` +
    /// 60 s, and a run that no actor executes is handed out again.
    fn sweep(&mut self, ctx: &mut Context<Self>) {
        let Ok(runs) = self.ctx().store.active_runs(self.shard()) else { return };
        let now = chrono::Utc::now();
        let age = |t: Option<&str>| {
            t.and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
                .map(|t| (now - t.with_timezone(&chrono::Utc)).to_std().unwrap_or_default())
                .unwrap_or_default()
        };
        let limit = self.ctx().config.flow_timeout + SWEEP_MARGIN;
        let paused = runs.iter().filter(|r| r.status() == RunStatus::Paused).count();
        self.ctx().paused_per_shard.insert(self.shard(), paused);
        PAUSED_RUNS.set(self.ctx().paused_per_shard.iter().map(|e| *e.value()).sum::<usize>() as i64);
        for run in runs {
            let executing = self.ctx().executing.contains_key(&run.id);
            match run.status() {
                RunStatus::Running
                    if Duration::from_millis(run.active_ms) + age(run.running_since.as_deref()) > limit =>
                {
                    self.time_out(&run)
                }
                RunStatus::Running if !executing => {
                    tracing::warn!(run_id = run.id, "running run without an actor; handing it out again");
                    self.dispatch(ctx, &run.project_id, &run.flow_id, &run.id);
                }
                RunStatus::Queued
                    if !executing
                        && age(Some(&run.created)) > SWEEP_MARGIN
                        && !self.ctx().limiter.is_queued(&run.id) =>
                {
                    tracing::warn!(run_id = run.id, "queued run lost its place; handing it out again");
                    self.dispatch(ctx, &run.project_id, &run.flow_id, &run.id);
                }
                _ => {}
            }
        }
    }

    fn time_out(&self, run: &FlowRun) {
        let message = format!(
            "the run was still RUNNING {} s after it started, past AP_FLOW_TIMEOUT_SECONDS + {} s; the sweeper ended it",
            (self.ctx().config.flow_timeout + SWEEP_MARGIN).as_secs(),
            SWEEP_MARGIN.as_secs()
        );
        let ended = self.ctx().store.transition_run(&run.id, RunStatus::Timeout, |stored| {
            stored.finish_time = Some(now_iso());
            stored.failed_step = Some(FailedStep::pseudo(PseudoStep::Sweeper, message.clone()));
            Ok(())
        });
        if let Ok(run) = ended {
            tracing::warn!(run_id = run.id, "sweeper ended a run that ran too long");
            let ctx = self.ctx().clone();
            actix::spawn(async move {
                let _ = ctx.store.flush().await;
                crate::run::outcome::publish_event(&ctx, &run).await;
            });
        }
    }
}

impl ShardActor {
    /// Starts the consumer, a task of the engine's owner: restarted with back-off if it panics
    /// (the shard is never left silent), stopped with the shard.
    fn start_consumer(&mut self, ctx: &mut Context<Self>) {
        let (intake, consumer, addr) = (self.intake.clone(), self.consumer.clone(), ctx.address());
        let shard = self.shard();
        let mut starts = 0u32;
        let task = self.ctx().tasks.restart(format!("shard consumer {shard}"), move |mut stop| {
            starts += 1;
            if starts > 1 {
                crate::metric_definitions::CONSUMER_RESTARTS.with_label_values(&[&shard.to_string()]).inc();
            }
            let consume = consumer::consume(intake.clone(), consumer.clone(), addr.clone());
            async move {
                tokio::select! {
                    _ = consume => {}
                    _ = stop.wait() => {}
                }
            }
        });
        self.task = Some(task);
    }
}

impl Actor for ShardActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        match self.ctx().store.active_runs(self.shard()) {
            Ok(runs) => {
                for run in runs.iter().filter(|r| r.status() != RunStatus::Paused) {
                    tracing::info!(
                        run_id = run.id,
                        flow_id = run.flow_id,
                        status = run.status().as_str(),
                        "recovering run"
                    );
                    self.dispatch(ctx, &run.project_id, &run.flow_id, &run.id);
                }
            }
            Err(e) => {
                tracing::error!(shard = self.shard(), error = %e, "could not read unfinished runs")
            }
        }
        self.start_consumer(ctx);
        ctx.run_interval(SWEEP_EVERY, |act, ctx| {
            if act.stopping {
                return;
            }
            act.sweep(ctx);
            let (intake, consumer) = (act.intake.clone(), act.consumer.clone());
            actix::spawn(consumer::sweep_orphans(intake, consumer, act.orphan_suspect.clone(), ctx.address()));
        });
        // consumer lag, sampled
        let (consumer, shard) = (self.consumer.clone(), self.shard());
        ctx.run_interval(LAG_EVERY, move |act, _| {
            if act.stopping {
                return;
            }
            let consumer = consumer.clone();
            actix::spawn(async move {
                if let Ok(info) = consumer.get_info().await {
                    CONSUMER_LAG
                        .with_label_values(&[&shard.to_string()])
                        .set((info.num_pending + info.num_ack_pending as u64) as f64);
                }
            });
        });
    }

    fn stopped(&mut self, _: &mut Context<Self>) {
        if let Some(t) = self.task.take() {
            t.ask_to_stop();
        }
    }
}

impl Handler<Dispatch> for ShardActor {
    type Result = ();

    fn handle(&mut self, msg: Dispatch, ctx: &mut Context<Self>) {
        for (project, flow, run) in msg.runs {
            self.dispatch(ctx, &project, &flow, &run);
        }
    }
}

impl Handler<RunEnded> for ShardActor {
    type Result = ();

    fn handle(&mut self, msg: RunEnded, ctx: &mut Context<Self>) {
        self.in_flight = self.in_flight.saturating_sub(1);
        if let Some((flow_id, run_id)) = self.ctx().limiter.release(&msg.project) {
            // the next run of the project takes over the slot
            self.start(ctx, &msg.project, &flow_id, &run_id);
        }
        if self.stopping && self.in_flight == 0 {
            ctx.stop();
        }
    }
}

impl Handler<StopShard> for ShardActor {
    type Result = ();

    fn handle(&mut self, _: StopShard, ctx: &mut Context<Self>) {
        if let Some(t) = self.task.take() {
            t.ask_to_stop();
        }
        self.stopping = true;
        if self.in_flight == 0 {
            ctx.stop();
        }
    }
}

/// What a run needs to know of its version at creation.
pub struct VersionMeta {
    display_name: String,
    trigger_name: String,
    trigger_kind: &'static str,
    /// The trigger is an npm piece's webhook trigger: a webhook goes through its `run` first.
    npm_webhook: bool,
}

/// [`VersionMeta`] of published versions, shared by the shards of this process.
#[derive(Default)]
pub struct VersionCache(DashMap<String, Arc<VersionMeta>>);

impl VersionCache {
    /// What run creation needs of `version_id`; kept when `cacheable` (published versions are
    /// immutable; drafts change under the same id).
    fn get(&self, store: &Store, version_id: &str, cacheable: bool) -> Option<Arc<VersionMeta>> {
        if let Some(m) = self.0.get(version_id) {
            return Some(m.clone());
        }
        let v = store.get_version(version_id).ok()??;
        let t = &v.trigger;
        let npm_webhook = match (t.settings.piece_name.as_deref(), t.settings.trigger_name.as_deref()) {
            (Some(piece), Some(trigger)) => {
                matches!(
                    crate::npm::npm_trigger_type(store, piece, t.settings.piece_version.as_deref(), trigger).as_deref(),
                    Some("WEBHOOK" | "APP_WEBHOOK")
                )
            }
            _ => false,
        };
        let meta = Arc::new(VersionMeta {
            npm_webhook,
            display_name: v.display_name,
            trigger_name: v.trigger.name,
            trigger_kind: match v.trigger.kind {
                troupe_store::flow::TriggerType::Empty => "EMPTY",
                troupe_store::flow::TriggerType::Piece => "PIECE_TRIGGER",
            },
        });
        if cacheable {
            self.0.insert(version_id.to_string(), meta.clone());
        }
        Some(meta)
    }
}

/// The shard actors of this process, started and stopped as ownership changes.
pub struct Shards {
    ctx: Arc<EngineCtx>,
    flows: Arc<FlowRegistry>,
    versions: Arc<VersionCache>,
    stream: jetstream::stream::Stream,
    actors: std::sync::Mutex<HashMap<u16, Addr<ShardActor>>>,
}

impl Shards {
    /// The shards of this process, none started yet.
    pub async fn new(ctx: Arc<EngineCtx>) -> Result<Shards, EngineError> {
        let stream = ctx
            .js
            .get_stream(subjects::WEBHOOK_STREAM)
            .await
            .map_err(|e| EngineError::Stream { stream: subjects::WEBHOOK_STREAM, message: e.to_string() })?;
        crate::metric_definitions::register_shards(ctx.config.shards);
        Ok(Shards {
            flows: FlowRegistry::new(ctx.clone()),
            ctx,
            versions: Default::default(),
            stream,
            actors: Default::default(),
        })
    }

    /// Starts consuming `shard`. Must be called on the actix arbiter.
    pub async fn start(&self, shard: u16) -> Result<(), EngineError> {
        if self.actors.lock().expect("shards lock").contains_key(&shard) {
            return Ok(());
        }
        let consumer = shard_consumer(&self.stream, shard)
            .await
            .map_err(|e| EngineError::Consumer { shard, message: e.to_string() })?;
        self.ctx.set_owned(shard, true);
        let intake = Intake { ctx: self.ctx.clone(), versions: self.versions.clone(), shard };
        let addr = ShardActor::new(intake, self.flows.clone(), consumer).start();
        SHARD_OWNED.with_label_values(&[&shard.to_string()]).set(1);
        let n = {
            let mut actors = self.actors.lock().expect("shards lock");
            actors.insert(shard, addr);
            actors.len()
        };
        self.counted(n);
        Ok(())
    }

    /// Stops `shard` at once: no new message is taken and its runs stop at their next step
    /// (they stay in the journal for the next owner). Waits up to `drain` for them to stop.
    pub async fn stop(&self, shard: u16, drain: Duration) {
        self.ctx.set_owned(shard, false);
        SHARD_OWNED.with_label_values(&[&shard.to_string()]).set(0);
        // its new owner reports the lag now
        CONSUMER_LAG.with_label_values(&[&shard.to_string()]).set(0.0);
        let (addr, n) = {
            let mut actors = self.actors.lock().expect("shards lock");
            let addr = actors.remove(&shard);
            (addr, actors.len())
        };
        if let Some(addr) = addr {
            let _ = addr.send(StopShard).await;
        }
        self.counted(n);
        let deadline = tokio::time::Instant::now() + drain;
        while self.ctx.executing.iter().any(|e| *e.value() == shard) && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Stops taking messages on every shard; runs in flight go on.
    pub async fn stop_consuming(&self) {
        let actors: Vec<Addr<ShardActor>> = self.actors.lock().expect("shards lock").values().cloned().collect();
        for a in actors {
            let _ = a.send(StopShard).await;
        }
    }

    pub fn owned(&self) -> Vec<u16> {
        let mut v: Vec<u16> = self.actors.lock().expect("shards lock").keys().copied().collect();
        v.sort_unstable();
        v
    }

    fn counted(&self, n: usize) {
        OWNED_SHARDS.set(n as i64);
        LIVE_ACTORS.with_label_values(&["shard"]).set(n as i64);
    }
}
