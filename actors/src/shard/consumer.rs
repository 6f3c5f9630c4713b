//! A shard's consumer task: pulls batches from `ap.webhook.<shard>`, records each message's
//! run in sled (none twice for one webhook id), flushes once per batch (group commit), acks,
//! and hands the new runs to the ShardActor ([`Dispatch`]). Also the orphan sweep, which takes
//! over messages a broken consumer state would never deliver.

use super::{ShardActor, VersionCache};
use crate::context::EngineCtx;
use crate::messages::Dispatch;
use crate::metric_definitions::RUNS_CREATED;
use async_nats::jetstream::{self, consumer::pull, stream::Stream};
use futures::StreamExt;
use std::sync::Arc;
use std::time::Duration;
use troupe_store::db::RunCreation;
use troupe_store::ids::new_ordered_id;
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

/// The consumer side of one shard: what it needs to turn messages into runs.
#[derive(Clone)]
pub(super) struct Intake {
    pub ctx: Arc<EngineCtx>,
    pub versions: Arc<VersionCache>,
    pub shard: u16,
}

/// Where a webhook goes: its flow, the version that runs it, and what run creation needs of
/// that version. Looked up once per message.
struct Target {
    flow: troupe_store::flow::Flow,
    version_id: String,
    meta: Arc<super::VersionMeta>,
}

fn target(intake: &Intake, msg: &WebhookMessage) -> Option<Target> {
    let store = &intake.ctx.store;
    let flow = store.get_flow(&msg.flow_id).ok()??;
    let version_id = msg.version_id.clone().or_else(|| flow.published_version_id.clone())?;
    let meta = intake.versions.get(store, &version_id, msg.version_id.is_none())?;
    Some(Target { flow, version_id, meta })
}

/// Builds the run a webhook asks for and its trigger record.
fn run_for(intake: &Intake, msg: &WebhookMessage, target: &Target, reply_to: Option<String>) -> (FlowRun, StepRecord) {
    let Target { flow, version_id, meta } = target;
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
    let mut run =
        FlowRun::queued(new_ordered_id(), flow.project_id.clone(), flow.id.clone(), version_id.clone(), intake.shard);
    run.flow_display_name = meta.display_name.clone();
    if msg.version_id.is_some() {
        run.environment = RunEnvironment::Testing;
    }
    run.webhook_id = Some(msg.webhook_id.clone());
    run.reply_to = reply_to;
    run.steps_count = 1;
    (run, trigger)
}

/// For a webhook to a flow whose trigger is an npm piece's webhook trigger: the webhooks of
/// the runs its `run` hook makes of the payload, one per item, each with a webhook id derived
/// from the original's (a redelivery makes no second run of an item). A hook that fails
/// drops the webhook, logged, as Activepieces does.
async fn expand(intake: &Intake, msg: &WebhookMessage, target: &Target) -> Vec<WebhookMessage> {
    let ctx = &intake.ctx;
    let Some(version) = ctx.store.get_version(&target.version_id).ok().flatten() else { return Vec::new() };
    let triggers = crate::npm::NpmTriggers::of(ctx);
    let items = match triggers.hook(&target.flow, &version, "run", Some(&msg.payload), false).await {
        Ok(polled) => polled.items,
        Err(e) => {
            RUNS_CREATED.with_label_values(&["dropped"]).inc();
            tracing::warn!(flow_id = target.flow.id, webhook_id = msg.webhook_id, error = %e, "the trigger's run failed; webhook dropped");
            Vec::new()
        }
    };
    items
        .into_iter()
        .enumerate()
        .map(|(i, item)| WebhookMessage { webhook_id: format!("{}-{i}", msg.webhook_id), payload: item, ..msg.clone() })
        .collect()
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

/// Fault injection for tests: `TROUPE_FAULT_CONSUMER_PANIC=n` panics the consumer task once,
/// after `n` runs were recorded and before their messages are acked (they come back).
fn panic_if_asked(created: usize) {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    static LIMIT: std::sync::OnceLock<Option<usize>> = std::sync::OnceLock::new();
    static SEEN: AtomicUsize = AtomicUsize::new(0);
    static DONE: AtomicBool = AtomicBool::new(false);
    let Some(limit) = *LIMIT.get_or_init(|| std::env::var("TROUPE_FAULT_CONSUMER_PANIC").ok()?.parse().ok()) else {
        return;
    };
    if SEEN.fetch_add(created, Ordering::SeqCst) + created >= limit && !DONE.swap(true, Ordering::SeqCst) {
        panic!("TROUPE_FAULT_CONSUMER_PANIC reached: the consumer panics");
    }
}

/// What became of one shard message.
enum Handled {
    /// Ack it; with the runs to start.
    Done(Vec<(String, String, String)>),
    /// Leave it unacked: it comes back.
    Retry,
}

/// Records what one shard message asks for: the runs of a webhook (none twice for one
/// webhook id), or the start of a queued run. Durable once the store is flushed.
async fn handle(intake: &Intake, payload: &[u8], headers: Option<&async_nats::HeaderMap>) -> Handled {
    let (ctx, shard) = (&intake.ctx, intake.shard);
    let parsed: WebhookMessage = match serde_json::from_slice(payload) {
        Ok(ShardMessage::Webhook(p)) => p,
        Ok(ShardMessage::StartRun { run_id }) => {
            return match ctx.store.get_run(&run_id) {
                Ok(Some(run)) if run.status() == RunStatus::Queued => {
                    RUNS_CREATED.with_label_values(&["start"]).inc();
                    Handled::Done(vec![(run.project_id, run.flow_id, run.id)])
                }
                Ok(_) => {
                    tracing::debug!(shard, run_id, "start asked for a run that is not queued");
                    Handled::Done(Vec::new())
                }
                Err(e) => {
                    tracing::error!(shard, error = %e, "could not read a run to start");
                    Handled::Retry
                }
            };
        }
        Err(e) => {
            tracing::error!(shard, error = %e, "dropping an unreadable shard message");
            return Handled::Done(Vec::new());
        }
    };
    let reply_to = headers.and_then(|h| h.get(subjects::REPLY_HEADER)).map(|v| v.to_string());
    let Some(target) = target(intake, &parsed) else {
        RUNS_CREATED.with_label_values(&["dropped"]).inc();
        tracing::warn!(shard, flow_id = parsed.flow_id, "webhook for a flow that no longer exists; dropped");
        return Handled::Done(Vec::new());
    };
    // an npm webhook trigger's run turns one webhook into zero or more
    let webhooks = if target.meta.npm_webhook { expand(intake, &parsed, &target).await } else { vec![parsed] };
    let mut started = Vec::with_capacity(webhooks.len());
    for msg in &webhooks {
        let (mut run, trigger) = run_for(intake, msg, &target, reply_to.clone());
        match ctx.store.create_run(&mut run, &trigger) {
            Ok(RunCreation::Created) => {
                RUNS_CREATED.with_label_values(&["created"]).inc();
                ctx.fresh.remember(&run.id, &trigger.output, payload.len());
                started.push((run.project_id, run.flow_id, run.id));
            }
            Ok(RunCreation::Existing(id)) => {
                RUNS_CREATED.with_label_values(&["redelivered"]).inc();
                tracing::debug!(shard, run_id = id, "redelivered webhook already has its run");
            }
            Err(e) => {
                // not acked: JetStream redelivers it (the runs made are kept by webhook id)
                tracing::error!(shard, error = %e, "could not record a run");
                return Handled::Retry;
            }
        }
    }
    Handled::Done(started)
}

/// Most messages one orphan sweep takes over.
const ORPHANS_PER_SWEEP: usize = 1000;

/// The orphan sweep. After an unclean stop of nats-server, a durable consumer's state can
/// claim more than it delivered, leaving messages in the work queue that it never hands out
/// (nats-io/nats-server#4736). When the consumer reports nothing pending or in flight while
/// the stream still holds a message on the shard's subject, and the same message is still the
/// first one at the next sweep, the shard takes the messages from the stream itself, records
/// them like the consumer would (the webhook id keeps it to one run), and deletes them.
pub(super) async fn sweep_orphans(
    intake: Intake,
    mut consumer: jetstream::consumer::Consumer<pull::Config>,
    suspect: Arc<std::sync::atomic::AtomicU64>,
    addr: actix::Addr<ShardActor>,
) {
    use std::sync::atomic::Ordering;
    let (ctx, shard) = (&intake.ctx, intake.shard);
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
        match handle(&intake, &m.payload, Some(&m.headers)).await {
            Handled::Done(started) => runs.extend(started),
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

pub(super) async fn consume(
    intake: Intake,
    consumer: jetstream::consumer::Consumer<pull::Config>,
    addr: actix::Addr<ShardActor>,
) {
    let (ctx, shard) = (&intake.ctx, intake.shard);
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
            // push-back: while JetStream has not acknowledged what this process replicated, new
            // webhooks wait in the stream (a batch held past ack_wait comes back, and is known)
            let mut warned = false;
            while !ctx.store.room(Duration::from_secs(1)).await {
                if !warned {
                    tracing::warn!(
                        shard,
                        backlog = ctx.store.replication_backlog(),
                        "replication is behind; holding new webhooks"
                    );
                    warned = true;
                }
            }
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
                match handle(&intake, &msg.payload, msg.headers.as_ref()).await {
                    Handled::Done(started) => created.extend(started),
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
            panic_if_asked(n_created);
            for m in to_ack {
                if let Err(e) = m.ack().await {
                    tracing::warn!(shard, error = %e, "ack failed; the redelivery will find its run");
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
