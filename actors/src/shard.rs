//! ShardActor: one per owned shard. Its consumer task pulls webhooks from
//! `ap.webhook.<shard>`, records each as a run in sled, flushes, and only then acks; a
//! redelivered message finds its run and makes no second one. At start it recovers the
//! shard's unfinished runs from the journal.

use crate::engine::{start_run, EngineCtx};
use crate::metric_definitions::RUNS_CREATED;
use actix::{Actor, AsyncContext, Context, Handler, Message};
use async_nats::jetstream::{self, consumer::pull, stream::Stream};
use futures::StreamExt;
use std::sync::Arc;
use std::time::Duration;
use troupe_store::db::RunCreation;
use troupe_store::ids::{new_ordered_id, now_iso, now_micros};
use troupe_store::message::{ShardMessage, WebhookMessage};
use troupe_store::names::subjects;
use troupe_store::run::{FlowRun, RunEnvironment, RunStatus, StepRecord, StepStatus};

/// How many messages one consumer batch may hold; one sled flush covers the batch.
const BATCH: usize = 512;
/// A message delivered but not acked (the worker died) is redelivered after this long.
/// Redelivery is harmless (the run is found by its webhook id), so keep it short.
pub const ACK_WAIT: Duration = Duration::from_secs(10);
/// When a message whose replicated state had not arrived is delivered again.
const REDELIVER_BEHIND: Duration = Duration::from_secs(1);
/// Deliveries of such a message that wait for its state; the last one goes on without it.
const BEHIND_DELIVERIES: i64 = 4;
/// Longest wait for the replicated state a message was stamped with.
const STAMP_WAIT: Duration = Duration::from_secs(5);
/// How often each shard samples its consumer lag.
pub const LAG_EVERY: Duration = Duration::from_secs(2);
/// How often each shard sweeps its unfinished runs.
pub const SWEEP_EVERY: Duration = Duration::from_secs(10);
/// Slack past the flow timeout before the sweeper ends a run, and the age after which a
/// queued run that is nowhere is handed out again.
pub const SWEEP_MARGIN: Duration = Duration::from_secs(60);

pub async fn shard_consumer(
    stream: &Stream,
    shard: u16,
) -> Result<jetstream::consumer::Consumer<pull::Config>, async_nats::Error> {
    let name = subjects::shard_consumer(shard);
    let config = pull::Config {
        durable_name: Some(name.clone()),
        filter_subject: subjects::webhook(shard),
        ack_policy: jetstream::consumer::AckPolicy::Explicit,
        ack_wait: ACK_WAIT,
        max_ack_pending: 20_000,
        ..Default::default()
    };
    Ok(stream.get_or_create_consumer(&name, config).await?)
}

#[derive(Message)]
#[rtype(result = "()")]
pub struct StopShard;

/// Runs the consumer task made durable; the actor decides when they start.
#[derive(Message)]
#[rtype(result = "()")]
struct Dispatch {
    runs: Vec<(String, String, String)>,
}

pub struct ShardActor {
    shard: u16,
    ctx: Arc<EngineCtx>,
    consumer: jetstream::consumer::Consumer<pull::Config>,
    task: Option<tokio::task::JoinHandle<()>>,
    /// The first stream sequence the last orphan sweep saw undelivered (0: none).
    orphan_suspect: Arc<std::sync::atomic::AtomicU64>,
}

impl ShardActor {
    pub fn new(shard: u16, ctx: Arc<EngineCtx>, consumer: jetstream::consumer::Consumer<pull::Config>) -> ShardActor {
        ShardActor { shard, ctx, consumer, task: None, orphan_suspect: Default::default() }
    }

    fn dispatch(&self, project: &str, flow_id: &str, run_id: &str) {
        if self.ctx.limiter.try_acquire(project, flow_id, run_id) {
            start_run(&self.ctx, flow_id, run_id);
        }
    }
}

impl Actor for ShardActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        match self.ctx.store.active_runs(self.shard) {
            Ok(runs) => {
                for run in runs.iter().filter(|r| r.status != RunStatus::Paused) {
                    tracing::info!(
                        run_id = run.id,
                        flow_id = run.flow_id,
                        status = run.status.as_str(),
                        "recovering run"
                    );
                    self.dispatch(&run.project_id, &run.flow_id, &run.id);
                }
            }
            Err(e) => {
                tracing::error!(shard = self.shard, error = %e, "could not read unfinished runs")
            }
        }
        let task = tokio::spawn(consume(self.shard, self.ctx.clone(), self.consumer.clone(), ctx.address()));
        self.task = Some(task);
        ctx.run_interval(SWEEP_EVERY, |act, ctx| {
            act.sweep();
            let (c, shard, consumer) = (act.ctx.clone(), act.shard, act.consumer.clone());
            actix::spawn(sweep_orphans(c, shard, consumer, act.orphan_suspect.clone(), ctx.address()));
        });
        // consumer lag, sampled
        let (consumer, shard) = (self.consumer.clone(), self.shard);
        ctx.run_interval(LAG_EVERY, move |_, _| {
            let consumer = consumer.clone();
            actix::spawn(async move {
                if let Ok(info) = consumer.get_info().await {
                    crate::metric_definitions::CONSUMER_LAG
                        .with_label_values(&[&shard.to_string()])
                        .set((info.num_pending + info.num_ack_pending as u64) as f64);
                }
            });
        });
    }

    fn stopped(&mut self, _: &mut Context<Self>) {
        if let Some(t) = self.task.take() {
            t.abort();
        }
    }
}

impl ShardActor {
    /// The shard's sweeper: nothing stays `RUNNING` longer than `AP_FLOW_TIMEOUT_SECONDS` +
    /// 60 s, and a run that no actor executes is handed out again.
    fn sweep(&self) {
        let Ok(runs) = self.ctx.store.active_runs(self.shard) else { return };
        let now = chrono::Utc::now();
        let age = |t: Option<&str>| {
            t.and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
                .map(|t| (now - t.with_timezone(&chrono::Utc)).to_std().unwrap_or_default())
                .unwrap_or_default()
        };
        let limit = self.ctx.config.flow_timeout + SWEEP_MARGIN;
        let paused = runs.iter().filter(|r| r.status == RunStatus::Paused).count();
        self.ctx.paused_per_shard.insert(self.shard, paused);
        crate::metric_definitions::PAUSED_RUNS
            .set(self.ctx.paused_per_shard.iter().map(|e| *e.value()).sum::<usize>() as i64);
        for run in runs {
            let executing = self.ctx.executing.contains_key(&run.id);
            match run.status {
                RunStatus::Running
                    if Duration::from_millis(run.active_ms) + age(run.running_since.as_deref()) > limit =>
                {
                    self.time_out(&run)
                }
                RunStatus::Running if !executing => {
                    tracing::warn!(run_id = run.id, "running run without an actor; handing it out again");
                    self.dispatch(&run.project_id, &run.flow_id, &run.id);
                }
                RunStatus::Queued
                    if !executing && age(Some(&run.created)) > SWEEP_MARGIN && !self.ctx.limiter.is_queued(&run.id) =>
                {
                    tracing::warn!(run_id = run.id, "queued run lost its place; handing it out again");
                    self.dispatch(&run.project_id, &run.flow_id, &run.id);
                }
                _ => {}
            }
        }
    }

    fn time_out(&self, run: &FlowRun) {
        let message = format!(
            "the run was still RUNNING {} s after it started, past AP_FLOW_TIMEOUT_SECONDS + {} s; the sweeper ended it",
            (self.ctx.config.flow_timeout + SWEEP_MARGIN).as_secs(),
            SWEEP_MARGIN.as_secs()
        );
        let ended = self.ctx.store.update_run(&run.id, |stored| {
            stored.status = stored.status.transition(RunStatus::Timeout).map_err(|e| e.to_string())?;
            stored.finish_time = Some(now_iso());
            stored.failed_step = Some(troupe_store::run::FailedStep {
                name: "sweeper".into(),
                display_name: "Sweeper".into(),
                message: message.clone(),
            });
            Ok(())
        });
        if let Ok(run) = ended {
            tracing::warn!(run_id = run.id, "sweeper ended a run that ran too long");
            let ctx = self.ctx.clone();
            actix::spawn(async move {
                let _ = ctx.store.flush().await;
                crate::run_actor::publish_event(&ctx, &run).await;
            });
        }
    }
}

impl Handler<Dispatch> for ShardActor {
    type Result = ();

    fn handle(&mut self, msg: Dispatch, _: &mut Context<Self>) {
        for (project, flow, run) in msg.runs {
            self.dispatch(&project, &flow, &run);
        }
    }
}

impl Handler<StopShard> for ShardActor {
    type Result = ();

    fn handle(&mut self, _: StopShard, ctx: &mut Context<Self>) {
        if let Some(t) = self.task.take() {
            t.abort();
        }
        use actix::ActorContext;
        ctx.stop();
    }
}

/// What a run needs to know of its version at creation.
pub struct VersionMeta {
    display_name: String,
    trigger_name: String,
    trigger_kind: &'static str,
}

fn version_meta(ctx: &EngineCtx, version_id: &str, cacheable: bool) -> Option<Arc<VersionMeta>> {
    if let Some(m) = ctx.version_meta.get(version_id) {
        return Some(m.clone());
    }
    let v = ctx.store.get_version(version_id).ok()??;
    let meta = Arc::new(VersionMeta {
        display_name: v.display_name,
        trigger_name: v.trigger.name,
        trigger_kind: match v.trigger.kind {
            troupe_store::flow::TriggerType::Empty => "EMPTY",
            troupe_store::flow::TriggerType::Piece => "PIECE_TRIGGER",
        },
    });
    // published versions are immutable; drafts change under the same id
    if cacheable {
        ctx.version_meta.insert(version_id.to_string(), meta.clone());
    }
    Some(meta)
}

/// Builds the run a webhook asks for and its trigger record, or `None` when its flow no
/// longer exists.
fn run_for(
    ctx: &EngineCtx,
    shard: u16,
    msg: &WebhookMessage,
    reply_to: Option<String>,
) -> Option<(FlowRun, StepRecord)> {
    let flow = ctx.store.get_flow(&msg.flow_id).ok()??;
    let version_id = msg.version_id.clone().or(flow.published_version_id)?;
    let meta = version_meta(ctx, &version_id, msg.version_id.is_none())?;
    let now = now_iso();
    let trigger = StepRecord {
        seq: 0,
        step_name: meta.trigger_name.clone(),
        kind: meta.trigger_kind.to_string(),
        loop_path: vec![],
        status: StepStatus::Succeeded,
        input: serde_json::Value::Object(Default::default()),
        output: msg.payload.clone(),
        error_message: None,
        duration: 0,
        attempts: 1,
        logs: None,
    };
    let run = FlowRun {
        id: new_ordered_id(),
        created: now.clone(),
        updated: now,
        project_id: flow.project_id,
        flow_id: flow.id,
        flow_version_id: version_id,
        flow_display_name: meta.display_name.clone(),
        status: RunStatus::Queued,
        environment: if msg.version_id.is_some() { RunEnvironment::Testing } else { RunEnvironment::Production },
        start_time: None,
        finish_time: None,
        failed_step: None,
        webhook_id: Some(msg.webhook_id.clone()),
        trigger_output: serde_json::Value::Null,
        reply_to,
        response: None,
        shard,
        created_micros: now_micros(),
        steps_count: 1,
        duration_ms: None,
        pause: None,
        resume: None,
        active_ms: 0,
        running_since: None,
    };
    Some((run, trigger))
}

/// Fault injection for the redelivery drill: with `TROUPE_FAULT_ABORT_BEFORE_ACK=N` the
/// process aborts once N runs are durable, before their messages are acked, so JetStream must
/// redeliver them to the next worker.
fn crash_before_ack_if_asked(created: usize) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static LIMIT: std::sync::OnceLock<Option<usize>> = std::sync::OnceLock::new();
    static SEEN: AtomicUsize = AtomicUsize::new(0);
    let Some(limit) = *LIMIT.get_or_init(|| std::env::var("TROUPE_FAULT_ABORT_BEFORE_ACK").ok()?.parse().ok()) else {
        return;
    };
    if SEEN.fetch_add(created, Ordering::SeqCst) + created >= limit {
        tracing::warn!("TROUPE_FAULT_ABORT_BEFORE_ACK reached: aborting before the ack");
        std::process::abort();
    }
}

/// What became of one shard message.
enum Handled {
    /// Ack it; with a run to start.
    Done(Option<(String, String, String)>),
    /// Leave it unacked: it comes back.
    Retry,
}

/// Records what one shard message asks for: a run for a webhook (none twice for one webhook
/// id), or the start of a queued run. Durable once the store is flushed.
fn handle(ctx: &EngineCtx, shard: u16, payload: &[u8], headers: Option<&async_nats::HeaderMap>) -> Handled {
    let parsed: WebhookMessage = match serde_json::from_slice(payload) {
        Ok(ShardMessage::Webhook(p)) => p,
        Ok(ShardMessage::StartRun { run_id }) => {
            return match ctx.store.get_run(&run_id) {
                Ok(Some(run)) if run.status == RunStatus::Queued => {
                    RUNS_CREATED.with_label_values(&["start"]).inc();
                    Handled::Done(Some((run.project_id, run.flow_id, run.id)))
                }
                Ok(_) => {
                    tracing::debug!(shard, run_id, "start asked for a run that is not queued");
                    Handled::Done(None)
                }
                Err(e) => {
                    tracing::error!(shard, error = %e, "could not read a run to start");
                    Handled::Retry
                }
            };
        }
        Err(e) => {
            tracing::error!(shard, error = %e, "dropping an unreadable shard message");
            return Handled::Done(None);
        }
    };
    let reply_to = headers.and_then(|h| h.get(subjects::REPLY_HEADER)).map(|v| v.to_string());
    match run_for(ctx, shard, &parsed, reply_to) {
        None => {
            RUNS_CREATED.with_label_values(&["dropped"]).inc();
            tracing::warn!(shard, flow_id = parsed.flow_id, "webhook for a flow that no longer exists; dropped");
            Handled::Done(None)
        }
        Some((mut run, trigger)) => match ctx.store.create_run(&mut run, &trigger) {
            Ok(RunCreation::Created) => {
                RUNS_CREATED.with_label_values(&["created"]).inc();
                ctx.fresh.remember(&run.id, &trigger.output, payload.len());
                Handled::Done(Some((run.project_id, run.flow_id, run.id)))
            }
            Ok(RunCreation::Existing(id)) => {
                RUNS_CREATED.with_label_values(&["redelivered"]).inc();
                tracing::debug!(shard, run_id = id, "redelivered webhook already has its run");
                Handled::Done(None)
            }
            Err(e) => {
                tracing::error!(shard, error = %e, "could not record a run");
                Handled::Retry
            }
        },
    }
}

/// Most messages one orphan sweep takes over.
const ORPHANS_PER_SWEEP: usize = 1000;

/// The orphan sweep. After an unclean stop of nats-server, a durable consumer's state can
/// claim more than it delivered, leaving messages in the work queue that it never hands out
/// (nats-io/nats-server#4736). When the consumer reports nothing pending or in flight while
/// the stream still holds a message on the shard's subject, and the same message is still the
/// first one at the next sweep, the shard takes the messages from the stream itself, records
/// them like the consumer would (the webhook id keeps it to one run), and deletes them.
async fn sweep_orphans(
    ctx: Arc<EngineCtx>,
    shard: u16,
    mut consumer: jetstream::consumer::Consumer<pull::Config>,
    suspect: Arc<std::sync::atomic::AtomicU64>,
    addr: actix::Addr<ShardActor>,
) {
    use std::sync::atomic::Ordering;
    let Ok(info) = consumer.info().await else { return };
    if info.num_pending > 0 || info.num_ack_pending > 0 || !ctx.owns(shard) {
        suspect.store(0, Ordering::SeqCst);
        return;
    }
    let Ok(stream) = ctx.js.get_stream(subjects::WEBHOOK_STREAM).await else { return };
    let subject = subjects::webhook(shard);
    let Ok(first) = stream.get_first_raw_message_by_subject(&subject, 1).await else {
        suspect.store(0, Ordering::SeqCst);
        return;
    };
    if suspect.swap(first.sequence, Ordering::SeqCst) != first.sequence {
        return; // seen once: maybe just published; look again at the next sweep
    }
    tracing::warn!(shard, seq = first.sequence, "messages the consumer does not deliver; taking them from the stream");
    let (mut next, mut taken, mut runs) = (Some(first), Vec::new(), Vec::new());
    while let Some(m) = next.take() {
        match handle(&ctx, shard, &m.payload, Some(&m.headers)) {
            Handled::Done(run) => runs.extend(run),
            Handled::Retry => break,
        }
        taken.push(m.sequence);
        if taken.len() < ORPHANS_PER_SWEEP {
            next = stream.get_first_raw_message_by_subject(&subject, m.sequence + 1).await.ok();
        }
    }
    if ctx.store.flush().await.is_err() {
        return;
    }
    RUNS_CREATED.with_label_values(&["orphan"]).inc_by(taken.len() as u64);
    if !runs.is_empty() {
        addr.do_send(Dispatch { runs });
    }
    for seq in taken {
        let _ = stream.delete_message(seq).await;
    }
    suspect.store(0, Ordering::SeqCst);
}

async fn consume(
    shard: u16,
    ctx: Arc<EngineCtx>,
    consumer: jetstream::consumer::Consumer<pull::Config>,
    addr: actix::Addr<ShardActor>,
) {
    loop {
        let messages = match consumer.messages().await {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(shard, error = %e, "consumer unavailable, retrying");
                tokio::time::sleep(Duration::from_millis(500)).await;
                continue;
            }
        };
        let mut batches = messages.ready_chunks(BATCH);
        while let Some(batch) = batches.next().await {
            if !ctx.owns(shard) {
                // fenced (the lease could not be renewed): leave these unacked for the next owner
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
            // in a cluster: what the publishers had written (the flow, a resume) must be here; one
            // wait for the batch's latest stamp, then a message whose state is still behind goes
            // back, to be delivered again shortly
            let stamps: Vec<Option<u64>> =
                batch.iter().map(|m| m.as_ref().ok().and_then(|m| ctx.store.stamp_of(m.headers.as_ref()))).collect();
            let applied = match stamps.iter().flatten().max() {
                Some(&latest) => ctx.store.wait_for_state(latest, STAMP_WAIT).await,
                None => u64::MAX,
            };
            let mut to_ack = Vec::with_capacity(batch.len());
            let mut created = Vec::new();
            for (item, stamp) in batch.into_iter().zip(stamps) {
                let behind = stamp.is_some_and(|s| s > applied);
                let msg = match item {
                    Ok(m) => m,
                    Err(e) => {
                        tracing::warn!(shard, error = %e, "consumer error");
                        continue;
                    }
                };
                // a few times only: state that never comes (a replaced stream) must not stall it
                let delivered = msg.info().map(|i| i.delivered).unwrap_or(1);
                if behind && delivered < BEHIND_DELIVERIES {
                    if let Err(e) = msg.ack_with(jetstream::AckKind::Nak(Some(REDELIVER_BEHIND))).await {
                        tracing::warn!(shard, error = %e, "nak failed; JetStream redelivers after ack_wait");
                    }
                    continue;
                }
                match handle(&ctx, shard, &msg.payload, msg.headers.as_ref()) {
                    Handled::Done(run) => created.extend(run),
                    // not acked: JetStream redelivers it after ack_wait
                    Handled::Retry => continue,
                }
                to_ack.push(msg);
            }
            // Runs start while their records are flushed: if the flush never happens (a crash),
            // the messages are not acked, come back, and make the runs again (steps are
            // at-least-once; a run's end is flushed before anyone hears of it).
            let n_created = created.len();
            if !created.is_empty() {
                addr.do_send(Dispatch { runs: std::mem::take(&mut created) });
            }
            if let Err(e) = ctx.store.flush().await {
                tracing::error!(shard, error = %e, "flushing the store failed; messages stay unacked");
                continue;
            }
            crash_before_ack_if_asked(n_created);
            for m in to_ack {
                if let Err(e) = m.ack().await {
                    tracing::warn!(shard, error = %e, "ack failed; the redelivery will find its run");
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
