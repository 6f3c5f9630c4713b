//! FlowActor: one per active flow. It holds the parsed versions its runs need and starts a
//! RunActor per run; after a quarter of the eviction time without runs it drops those versions,
//! and it stops itself when idle. [`FlowRegistry`] finds or starts the actor of a flow.

use crate::context::EngineCtx;
use crate::messages::{RunEnded, StartRun};
use crate::metric_definitions::LIVE_ACTORS;
use crate::run::RunActor;
use actix::{Actor, ActorContext, Addr, AsyncContext, Context, Handler, Recipient};
use dashmap::DashMap;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use troupe_store::flow::FlowVersion;

/// A flow actor with no run for this long is evicted.
pub const IDLE_EVICTION: Duration = Duration::from_secs(300);

/// The flow actors of this process, by flow id.
pub struct FlowRegistry {
    ctx: Arc<EngineCtx>,
    flows: DashMap<String, Addr<FlowActor>>,
}

impl FlowRegistry {
    pub fn new(ctx: Arc<EngineCtx>) -> Arc<FlowRegistry> {
        Arc::new(FlowRegistry { ctx, flows: DashMap::new() })
    }

    /// The actor of `flow_id`, started when there is none. Must be called on the actix arbiter.
    pub fn actor(self: &Arc<Self>, flow_id: &str) -> Addr<FlowActor> {
        let addr = self
            .flows
            .entry(flow_id.to_string())
            .or_insert_with(|| FlowActor::new(self.clone(), flow_id.to_string()).start())
            .clone();
        LIVE_ACTORS.with_label_values(&["flow"]).set(self.flows.len() as i64);
        addr
    }

    /// Hands a run that holds a slot of `project` to its flow's actor; `ended` hears when the
    /// run is over, or at once if it could not be handed over. Must be called on the actix
    /// arbiter (from an actor or an actix-spawned future).
    pub fn start_run(self: &Arc<Self>, flow_id: &str, run_id: &str, project: &str, ended: Recipient<RunEnded>) {
        let registry = self.clone();
        let (flow_id, run_id, project) = (flow_id.to_string(), run_id.to_string(), project.to_string());
        actix::spawn(async move {
            for _ in 0..3 {
                let addr = registry.actor(&flow_id);
                let msg = StartRun { run_id: run_id.clone(), project: project.clone(), ended: ended.clone() };
                match addr.send(msg).await {
                    Ok(()) => return,
                    // the actor was evicted meanwhile: forget it and make a new one
                    Err(_) => {
                        registry.flows.remove_if(&flow_id, |_, a| !a.connected() || *a == addr);
                    }
                }
            }
            tracing::error!(run_id, flow_id, "could not hand the run to its flow actor");
            ended.do_send(RunEnded { project });
        });
    }

    /// Forgets `addr` as the actor of `flow_id` (it is stopping).
    fn evicted(&self, flow_id: &str, addr: &Addr<FlowActor>) {
        self.flows.remove_if(flow_id, |_, a| a == addr);
        LIVE_ACTORS.with_label_values(&["flow"]).set(self.flows.len() as i64);
    }
}

pub struct FlowActor {
    registry: Arc<FlowRegistry>,
    flow_id: String,
    versions: HashMap<String, Arc<FlowVersion>>,
    last_used: Instant,
}

impl FlowActor {
    fn new(registry: Arc<FlowRegistry>, flow_id: String) -> FlowActor {
        FlowActor { registry, flow_id, versions: HashMap::new(), last_used: Instant::now() }
    }

    fn ctx(&self) -> &Arc<EngineCtx> {
        &self.registry.ctx
    }

    fn version(&mut self, id: &str) -> Option<Arc<FlowVersion>> {
        if let Some(v) = self.versions.get(id) {
            return Some(v.clone());
        }
        let v = Arc::new(self.ctx().store.get_version(id).ok()??);
        self.versions.insert(id.to_string(), v.clone());
        Some(v)
    }
}

impl Actor for FlowActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.run_interval(IDLE_EVICTION / 4, |act, ctx| {
            // an idle actor keeps no parsed versions: ≈ 1.2 KB in all (benches/idle_flow_actor.rs)
            if act.last_used.elapsed() >= IDLE_EVICTION / 4 {
                act.versions = HashMap::new();
            }
            if act.last_used.elapsed() >= IDLE_EVICTION {
                act.registry.evicted(&act.flow_id, &ctx.address());
                ctx.stop();
            }
        });
    }
}

impl Handler<StartRun> for FlowActor {
    type Result = ();

    fn handle(&mut self, msg: StartRun, _: &mut Context<Self>) {
        self.last_used = Instant::now();
        let run = match self.ctx().store.get_run(&msg.run_id) {
            Ok(Some(r)) => r,
            Ok(None) => {
                tracing::error!(run_id = msg.run_id, "run to start does not exist");
                return msg.ended.do_send(RunEnded { project: msg.project });
            }
            Err(e) => {
                tracing::error!(run_id = msg.run_id, error = %e, "reading run");
                return msg.ended.do_send(RunEnded { project: msg.project });
            }
        };
        let version = self.version(&run.flow_version_id);
        RunActor::new(self.ctx().clone(), version, run, msg.ended).start();
    }
}
