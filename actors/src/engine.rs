//! The engine's shared context, its start and stop, and per-project concurrency.
//!
//! Actors run on the actix `System` the binary starts on a tokio runtime; consumer loops are
//! tokio tasks that hand runs to the actors through their `Addr`.

use crate::flow_actor::{FlowActor, StartRun};
use crate::shard::{ShardActor, StopShard};
use actix::{Actor, Addr};
use async_nats::jetstream;
use dashmap::DashMap;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use troupe_store::names::subjects;
use troupe_store::{Config, Store};

#[derive(Debug, thiserror::Error)]
#[error("engine: {0}")]
pub struct EngineError(String);

impl EngineError {
    pub fn new(message: impl Into<String>) -> EngineError {
        EngineError(message.into())
    }
}

/// What every actor of the engine shares.
pub struct EngineCtx {
    pub config: Config,
    pub store: Store,
    pub nats: async_nats::Client,
    pub js: jetstream::Context,
    pub http: reqwest::Client,
    pub limiter: ProjectLimiter,
    pub flows: DashMap<String, Addr<FlowActor>>,
    /// Runs a RunActor of this process is executing now, with their shards.
    pub executing: DashMap<String, u16>,
    /// The shards this process owns now (all of them outside a cluster).
    pub owned: Vec<std::sync::atomic::AtomicBool>,
    /// Paused runs per shard, as the sweepers last counted them.
    pub paused_per_shard: DashMap<u16, usize>,
    /// What run creation needs of each published (immutable) version.
    pub version_meta: DashMap<String, Arc<crate::shard::VersionMeta>>,
    /// Code steps and template expressions.
    pub code: Arc<crate::code::CodeRunner>,
    /// Trigger outputs of runs this process just created, until they start: a new run's
    /// journal is its trigger record only, so it need not be read back from sled.
    pub fresh: FreshRuns,
}

/// The trigger outputs of new runs, small ones only, a bounded number of them.
#[derive(Default)]
pub struct FreshRuns(DashMap<String, (std::time::Instant, serde_json::Value)>);

impl FreshRuns {
    /// Runs remembered at most (entries of runs that never start are purged when it is full).
    const MAX: usize = 4096;
    /// Largest webhook message whose trigger output is remembered.
    const MAX_BYTES: usize = 16 * 1024;
    const STALE: std::time::Duration = std::time::Duration::from_secs(60);

    /// Keeps a new run's trigger output, if its message (`message_bytes`) was small.
    pub fn remember(&self, run_id: &str, trigger_output: &serde_json::Value, message_bytes: usize) {
        if message_bytes > Self::MAX_BYTES {
            return;
        }
        if self.0.len() >= Self::MAX {
            self.0.retain(|_, (at, _)| at.elapsed() < Self::STALE);
            if self.0.len() >= Self::MAX {
                return;
            }
        }
        self.0.insert(run_id.to_string(), (std::time::Instant::now(), trigger_output.clone()));
    }

    /// The trigger output of a run created here and not started before.
    pub fn take(&self, run_id: &str) -> Option<serde_json::Value> {
        self.0.remove(run_id).map(|(_, (_, v))| v)
    }
}

/// How long a graceful stop waits for runs in flight before it leaves them to recovery.
pub const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(20);

impl EngineCtx {
    /// True while this process owns `shard`: runs of a shard it lost stop at their next step.
    pub fn owns(&self, shard: u16) -> bool {
        self.owned.get(shard as usize).is_some_and(|o| o.load(std::sync::atomic::Ordering::SeqCst))
    }
}

/// The shard actors of this process, started and stopped as ownership changes.
pub struct Shards {
    ctx: Arc<EngineCtx>,
    stream: async_nats::jetstream::stream::Stream,
    actors: std::sync::Mutex<HashMap<u16, Addr<ShardActor>>>,
}

impl Shards {
    /// Starts consuming `shard`. Must be called on the actix arbiter.
    pub async fn start(&self, shard: u16) -> Result<(), EngineError> {
        if self.actors.lock().expect("shards lock").contains_key(&shard) {
            return Ok(());
        }
        let consumer = crate::shard::shard_consumer(&self.stream, shard)
            .await
            .map_err(|e| EngineError(format!("creating the consumer of shard {shard}: {e}")))?;
        self.ctx.owned[shard as usize].store(true, std::sync::atomic::Ordering::SeqCst);
        let addr = ShardActor::new(shard, self.ctx.clone(), consumer).start();
        crate::metric_definitions::SHARD_OWNED.with_label_values(&[&shard.to_string()]).set(1);
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
    pub async fn stop(&self, shard: u16, drain: std::time::Duration) {
        self.ctx.owned[shard as usize].store(false, std::sync::atomic::Ordering::SeqCst);
        crate::metric_definitions::SHARD_OWNED.with_label_values(&[&shard.to_string()]).set(0);
        // its new owner reports the lag now
        crate::metric_definitions::CONSUMER_LAG.with_label_values(&[&shard.to_string()]).set(0.0);
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
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
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
        crate::metric_definitions::OWNED_SHARDS.set(n as i64);
        crate::metric_definitions::LIVE_ACTORS.with_label_values(&["shard"]).set(n as i64);
    }
}

pub struct Engine {
    ctx: Arc<EngineCtx>,
    shards: Arc<Shards>,
    leases: Option<crate::cluster::LeaseKeeper>,
}

impl Engine {
    /// Starts the engine. Outside a cluster (`node` is `None`) this process owns every shard;
    /// in a cluster it takes its fair share through leases. Call from inside the actix `System`.
    pub async fn start(
        config: Config,
        store: Store,
        nats: async_nats::Client,
        code: Arc<crate::code::CodeRunner>,
        node: Option<String>,
    ) -> Result<Engine, EngineError> {
        let js = jetstream::new(nats.clone());
        let http = reqwest::Client::builder()
            .timeout(config.flow_timeout)
            .build()
            .map_err(|e| EngineError(format!("building the HTTP client: {e}")))?;
        let config_shards = config.shards;
        let ctx = Arc::new(EngineCtx {
            limiter: ProjectLimiter::new(config.max_concurrent_jobs_per_project),
            config,
            store,
            nats,
            js,
            http,
            flows: DashMap::new(),
            executing: DashMap::new(),
            owned: (0..config_shards).map(|_| std::sync::atomic::AtomicBool::new(false)).collect(),
            paused_per_shard: DashMap::new(),
            version_meta: DashMap::new(),
            fresh: FreshRuns::default(),
            code,
        });
        let stream = ctx
            .js
            .get_stream(subjects::WEBHOOK_STREAM)
            .await
            .map_err(|e| EngineError(format!("opening stream {}: {e}", subjects::WEBHOOK_STREAM)))?;
        crate::metric_definitions::register_shards(ctx.config.shards);
        let shards = Arc::new(Shards { ctx: ctx.clone(), stream, actors: Default::default() });
        let leases = match node {
            None => {
                for shard in 0..ctx.config.shards {
                    shards.start(shard).await?;
                }
                None
            }
            Some(node) => Some(crate::cluster::LeaseKeeper::start(ctx.clone(), shards.clone(), node).await?),
        };
        Ok(Engine { ctx, shards, leases })
    }

    /// The shards this process owns now.
    pub fn owned_shards(&self) -> Vec<u16> {
        self.shards.owned()
    }

    /// Stops consuming, then lets the runs in flight finish for up to [`SHUTDOWN_GRACE`].
    /// Runs still going after that stay `RUNNING` in the journal and are recovered at the next
    /// start; unacked messages are redelivered.
    pub async fn stop(self) {
        self.shards.stop_consuming().await;
        let deadline = tokio::time::Instant::now() + SHUTDOWN_GRACE;
        while !self.ctx.executing.is_empty() && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        let left = self.ctx.executing.len();
        if left > 0 {
            tracing::warn!(left, "runs still executing at shutdown; they will be recovered at next start");
        }
        if let Some(leases) = self.leases {
            // hands the shards back now, so that the others need not wait for their expiry
            leases.stop().await;
        }
        let _ = self.ctx.store.flush().await;
    }
}

/// Hands a run to its flow's actor, creating the actor when needed. Must be called on the
/// actix arbiter (from an actor or an actix-spawned future).
pub fn start_run(ctx: &Arc<EngineCtx>, flow_id: &str, run_id: &str) {
    let ctx = ctx.clone();
    let (flow_id, run_id) = (flow_id.to_string(), run_id.to_string());
    actix::spawn(async move {
        for _ in 0..3 {
            let addr = ctx
                .flows
                .entry(flow_id.clone())
                .or_insert_with(|| FlowActor::new(ctx.clone(), flow_id.clone()).start())
                .clone();
            crate::metric_definitions::LIVE_ACTORS.with_label_values(&["flow"]).set(ctx.flows.len() as i64);
            match addr.send(StartRun { run_id: run_id.clone() }).await {
                Ok(()) => return,
                // the actor was evicted meanwhile: forget it and make a new one
                Err(_) => {
                    ctx.flows.remove_if(&flow_id, |_, a| !a.connected() || *a == addr);
                }
            }
        }
        tracing::error!(run_id, flow_id, "could not hand the run to its flow actor");
    });
}

/// `AP_MAX_CONCURRENT_JOBS_PER_PROJECT`: runs beyond it wait, in arrival order.
pub struct ProjectLimiter {
    max: usize,
    projects: Mutex<HashMap<String, Slots>>,
    /// Every queued run id, so the sweeper's lookups stay O(1) under a large backlog.
    queued: Mutex<std::collections::HashSet<String>>,
}

#[derive(Default)]
struct Slots {
    running: usize,
    queue: VecDeque<(String, String)>,
}

impl ProjectLimiter {
    pub fn new(max: usize) -> ProjectLimiter {
        ProjectLimiter { max: max.max(1), projects: Mutex::new(HashMap::new()), queued: Mutex::default() }
    }

    /// True when the run may start now; otherwise it is queued behind the others.
    pub fn try_acquire(&self, project: &str, flow_id: &str, run_id: &str) -> bool {
        let mut p = self.projects.lock().expect("limiter lock");
        let slots = p.entry(project.to_string()).or_default();
        if slots.running < self.max && slots.queue.is_empty() {
            slots.running += 1;
            true
        } else {
            slots.queue.push_back((flow_id.to_string(), run_id.to_string()));
            self.queued.lock().expect("limiter lock").insert(run_id.to_string());
            false
        }
    }

    /// True when the run waits in a project queue.
    pub fn is_queued(&self, run_id: &str) -> bool {
        self.queued.lock().expect("limiter lock").contains(run_id)
    }

    /// A run of `project` ended: the next queued run, which takes over its slot.
    pub fn release(&self, project: &str) -> Option<(String, String)> {
        let mut p = self.projects.lock().expect("limiter lock");
        let slots = p.get_mut(project)?;
        match slots.queue.pop_front() {
            Some(next) => {
                self.queued.lock().expect("limiter lock").remove(&next.1);
                Some(next)
            }
            None => {
                slots.running = slots.running.saturating_sub(1);
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::ProjectLimiter;

    #[test]
    fn runs_beyond_the_limit_wait_in_order() {
        let l = ProjectLimiter::new(2);
        assert!(l.try_acquire("p", "f", "r1"));
        assert!(l.try_acquire("p", "f", "r2"));
        assert!(!l.try_acquire("p", "f", "r3"));
        assert!(!l.try_acquire("p", "f", "r4"));
        assert!(l.is_queued("r3") && !l.is_queued("r1"));
        assert!(l.try_acquire("q", "f", "other-project"));
        assert_eq!(l.release("p"), Some(("f".into(), "r3".into())));
        assert!(!l.is_queued("r3"));
        assert_eq!(l.release("p"), Some(("f".into(), "r4".into())));
        assert_eq!(l.release("p"), None);
        assert!(l.try_acquire("p", "f", "r5"));
    }
}
