//! What every actor of the engine shares, and nothing that knows an actor: the store, NATS,
//! the HTTP client and the sandbox, which shards this process owns, the runs it executes now,
//! the per-project limiter and the trigger outputs of runs it just created.
//!
//! Actors find each other through messages (`crate::messages`) and the registries beside
//! them (`flow::FlowRegistry`, `shard::Shards`), never through this context.

use async_nats::jetstream;
use dashmap::DashMap;
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use troupe_pieces::egress::Egress;
use troupe_store::{Config, Store};

/// Why the engine could not start or take a shard.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("engine: opening stream {stream}: {message}")]
    Stream { stream: &'static str, message: String },
    #[error("engine: creating the consumer of shard {shard}: {message}")]
    Consumer { shard: u16, message: String },
    #[error("engine: {0}")]
    Leases(#[from] troupe_store::lease::LeaseError),
}

/// What every actor of the engine shares.
pub struct EngineCtx {
    pub config: Config,
    pub store: Store,
    pub nats: async_nats::Client,
    pub js: jetstream::Context,
    /// The way out for steps' HTTP requests, under the SSRF policy.
    pub egress: Arc<Egress>,
    pub limiter: ProjectLimiter,
    /// Runs a RunActor of this process is executing now, with their shards.
    pub executing: DashMap<String, u16>,
    /// The shards this process owns now (all of them outside a cluster).
    owned: Vec<AtomicBool>,
    /// Paused runs per shard, as the sweepers last counted them.
    pub paused_per_shard: DashMap<u16, usize>,
    /// Code steps and template expressions.
    pub code: Arc<crate::code::CodeRunner>,
    /// Installed npm pieces, and those loaded in the sandbox.
    pub npm: Arc<crate::npm::NpmPieces>,
    /// Trigger outputs of runs this process just created, until they start: a new run's
    /// journal is its trigger record only, so it need not be read back from sled.
    pub fresh: FreshRuns,
    /// Owns the background tasks: shard consumers, the lease keeper and its fence.
    pub tasks: troupe_store::tasks::Tasks,
}

impl EngineCtx {
    /// A context that owns no shard yet.
    pub fn new(
        config: Config,
        store: Store,
        nats: async_nats::Client,
        code: Arc<crate::code::CodeRunner>,
        egress: Arc<Egress>,
        npm: Arc<crate::npm::NpmPieces>,
    ) -> Result<EngineCtx, EngineError> {
        Ok(EngineCtx {
            limiter: ProjectLimiter::new(config.max_concurrent_jobs_per_project),
            owned: (0..config.shards).map(|_| AtomicBool::new(false)).collect(),
            js: jetstream::new(nats.clone()),
            config,
            store,
            nats,
            egress,
            executing: DashMap::new(),
            paused_per_shard: DashMap::new(),
            code,
            npm,
            fresh: FreshRuns::default(),
            tasks: troupe_store::tasks::Tasks::default(),
        })
    }

    /// The owner of this engine's background tasks (the process's, when it is given one).
    pub fn with_tasks(mut self, tasks: troupe_store::tasks::Tasks) -> EngineCtx {
        self.tasks = tasks;
        self
    }

    /// True while this process owns `shard`: runs of a shard it lost stop at their next step.
    pub fn owns(&self, shard: u16) -> bool {
        self.owned.get(shard as usize).is_some_and(|o| o.load(Ordering::SeqCst))
    }

    /// Records that this process took or lost `shard` (`shard::Shards`, and the cluster's
    /// fence); returns whether it owned it before.
    pub(crate) fn set_owned(&self, shard: u16, owned: bool) -> bool {
        self.owned.get(shard as usize).is_some_and(|o| o.swap(owned, Ordering::SeqCst))
    }
}

/// The trigger outputs of new runs, small ones only, a bounded number of them.
#[derive(Default)]
pub struct FreshRuns(DashMap<String, (Instant, serde_json::Value)>);

impl FreshRuns {
    /// Runs remembered at most (entries of runs that never start are purged when it is full).
    const MAX: usize = 4096;
    /// Largest webhook message whose trigger output is remembered.
    const MAX_BYTES: usize = 16 * 1024;
    const STALE: Duration = Duration::from_secs(60);

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
        self.0.insert(run_id.to_string(), (Instant::now(), trigger_output.clone()));
    }

    /// The trigger output of a run created here and not started before.
    pub fn take(&self, run_id: &str) -> Option<serde_json::Value> {
        self.0.remove(run_id).map(|(_, (_, v))| v)
    }
}

/// `AP_MAX_CONCURRENT_JOBS_PER_PROJECT`: runs beyond it wait, in arrival order.
pub struct ProjectLimiter {
    max: usize,
    projects: Mutex<HashMap<String, Slots>>,
    /// Every queued run id, so the sweeper's lookups stay O(1) under a large backlog.
    queued: Mutex<HashSet<String>>,
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
