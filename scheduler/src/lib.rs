//! Durable timers: delays, schedule and polling triggers, paused-run expiry and retention
//! clean-up. Timers live in sled (indexed by due time) and fire by publishing to JetStream, so
//! a timer that came due while the process was down fires once after start.
//!
//! It knows the store and NATS, not the engine: resuming a run is a compare-and-swap on the
//! run header plus a `StartRun` message to the run's shard.

pub mod metric_definitions;
pub mod polling;
pub mod rss;
pub mod schedule;

use async_nats::jetstream;
use polling::PollState;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;
use troupe_store::flow::{Flow, FlowStatus, TriggerType};
use troupe_store::ids::{now_iso, shard_for_flow};
use troupe_store::message::{ShardMessage, WebhookMessage};
use troupe_store::names;
use troupe_store::publish::{publish_to_shard, PublishError, ShardPost};
use troupe_store::run::{FailedStep, PseudoStep, ResumeBy, RunConflict, RunStatus};
use troupe_store::timer::{flow_owner, Timer, TimerKind, SYSTEM_OWNER};
use troupe_store::{Config, Store, StoreError};

/// How often due timers are looked for: delays resume well within 1 s of their time.
pub const TICK: Duration = Duration::from_millis(100);
/// Most timers fired in one pass.
const BATCH: usize = 1000;
/// Passes between two samples of the pending-timer gauge (about 5 s).
const PENDING_SAMPLE_EVERY: u64 = 50;
const RETENTION_EVERY: Duration = Duration::from_secs(3600);

/// Runs the polling triggers of npm pieces (implemented by the engine, which has the sandbox):
/// `onEnable` on the first poll after a flow is enabled, `run` on every later one.
pub trait PieceTriggers: Send + Sync {
    /// The strategy (`POLLING`, `WEBHOOK`, `APP_WEBHOOK`) of `piece`'s `trigger` when it is an
    /// installed npm piece's trigger this runner runs; `None` otherwise.
    fn trigger_type(&self, store: &Store, piece: &str, version: Option<&str>, trigger: &str) -> Option<String>;

    /// The cron expression of the trigger's `renewConfiguration` when its strategy is `CRON`:
    /// when `onRenew` runs while the flow is enabled.
    fn renew_cron(&self, _store: &Store, _piece: &str, _version: Option<&str>, _trigger: &str) -> Option<String> {
        None
    }

    /// Whether it is an npm piece's polling trigger.
    fn is_polling(&self, store: &Store, piece: &str, version: Option<&str>, trigger: &str) -> bool {
        self.trigger_type(store, piece, version, trigger).as_deref() == Some("POLLING")
    }

    /// Calls the trigger's hook for the flow's published `version`. The items (`run`'s
    /// answer) each become a run; `writes` are what the hook put in its store, applied by the
    /// scheduler once the items are durably published, so that a crash in between makes the
    /// next poll find the same items again (and their message ids dedupe them).
    fn poll<'a>(
        &'a self,
        flow: &'a Flow,
        version: &'a troupe_store::flow::FlowVersion,
        enable: bool,
    ) -> futures::future::BoxFuture<'a, Result<Polled, PollFailed>>;

    /// Calls `hook` (`onEnable`, `onDisable`) of the trigger of the flow's `version`, its store
    /// writes made at once.
    fn call_hook<'a>(
        &'a self,
        flow: &'a Flow,
        version: &'a troupe_store::flow::FlowVersion,
        hook: &'a str,
    ) -> futures::future::BoxFuture<'a, Result<(), PollFailed>>;
}

/// What a polling trigger's hook gave.
#[derive(Default)]
pub struct Polled {
    pub items: Vec<Value>,
    /// The hook's answer as it gave it.
    pub output: Value,
    /// Store entries the hook wrote (`None`: deleted), by entry key.
    pub writes: Vec<(String, Option<Value>)>,
    /// The app webhook listeners the hook asked for (`context.app.createListeners`).
    pub listeners: Vec<Value>,
    /// The schedule the hook asked for (`context.setSchedule`): `{cronExpression, timezone}`.
    pub schedule: Value,
}

/// Why a polling trigger's hook failed: the message the flow is disabled with after
/// `AP_TRIGGER_FAILURE_THRESHOLD` failures in a row.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct PollFailed(pub String);

/// Where "now" comes from, so tests can move time.
pub trait Clock: Send + Sync {
    fn now(&self) -> chrono::DateTime<chrono::Utc>;
}

pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> chrono::DateTime<chrono::Utc> {
        chrono::Utc::now()
    }
}

fn ms(t: chrono::DateTime<chrono::Utc>) -> u64 {
    t.timestamp_millis().max(0) as u64
}

#[derive(Debug, thiserror::Error)]
pub enum ScheduleError {
    #[error(transparent)]
    Invalid(#[from] schedule::InvalidSchedule),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// (Re)registers the timers of a flow's trigger: a schedule tick or a poll when the flow is
/// enabled with a schedule or polling trigger, nothing otherwise. Call after publishing,
/// enabling, disabling or deleting a flow (pass `None` for a deleted flow).
pub fn sync_flow_triggers(
    store: &Store,
    flow_id: &str,
    flow: Option<&Flow>,
    clock: &dyn Clock,
    npm: Option<&dyn PieceTriggers>,
) -> Result<(), ScheduleError> {
    store.remove_timers_of(&flow_owner(flow_id))?;
    let Some(flow) = flow.filter(|f| f.status == FlowStatus::Enabled) else { return Ok(()) };
    let Some(version_id) = &flow.published_version_id else { return Ok(()) };
    let Some(version) = store.get_version(version_id)? else { return Ok(()) };
    let t = &version.trigger;
    if t.kind != TriggerType::Piece {
        return Ok(());
    }
    let input = t.settings.input.clone().unwrap_or_default();
    let owner = flow_owner(flow_id);
    let kind_for = |flow_id: &str| (flow_id.to_string(), version_id.clone());
    match (t.settings.piece_name.as_deref(), t.settings.trigger_name.as_deref()) {
        (Some(schedule::PIECE), Some(name)) => {
            let s = schedule::schedule_for(name, &input).map_err(ScheduleError::Invalid)?;
            let next = s.next_after(clock.now()).map_err(ScheduleError::Invalid)?;
            let (flow_id, version_id) = kind_for(flow_id);
            store.add_timer(&Timer::new(owner, ms(next), TimerKind::ScheduleTick { flow_id, version_id }))?;
        }
        (Some(rss::PIECE), Some(rss::TRIGGER))
            if npm.is_none_or(|n| !n.is_polling(store, rss::PIECE, None, rss::TRIGGER)) =>
        {
            // poll at once: the first poll primes the state (as Activepieces' onEnable)
            store.entry_delete(&names::entries::poll_state(flow_id))?;
            let (flow_id, version_id) = kind_for(flow_id);
            store.add_timer(&Timer::new(owner, ms(clock.now()), TimerKind::Poll { flow_id, version_id }))?;
        }
        (Some(piece), Some(trigger))
            if npm.is_some_and(|n| n.is_polling(store, piece, t.settings.piece_version.as_deref(), trigger)) =>
        {
            // at once: the first poll runs the trigger's onEnable
            store.entry_delete(&names::entries::poll_state(flow_id))?;
            let (flow_id, version_id) = kind_for(flow_id);
            store.add_timer(&Timer::new(owner, ms(clock.now()), TimerKind::Poll { flow_id, version_id }))?;
        }
        (Some(piece), Some(trigger)) => {
            let version = t.settings.piece_version.as_deref();
            if let Some(cron) = npm.and_then(|n| n.renew_cron(store, piece, version, trigger)) {
                let next = renewal(&cron, clock.now()).map_err(ScheduleError::Invalid)?;
                let (flow_id, version_id) = kind_for(flow_id);
                store.add_timer(&Timer::new(owner, ms(next), TimerKind::Renew { flow_id, version_id }))?;
            }
        }
        _ => {}
    }
    Ok(())
}

/// The next renewal of a webhook trigger after `now` (its cron in UTC, as Activepieces).
fn renewal(
    cron: &str,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<chrono::DateTime<chrono::Utc>, schedule::InvalidSchedule> {
    schedule::Schedule { cron: cron.to_string(), timezone: chrono_tz::UTC }.next_after(now)
}

/// Checks that a schedule trigger's inputs make a schedule (for validation at publish).
pub fn check_trigger(
    piece: &str,
    trigger: &str,
    input: &serde_json::Map<String, Value>,
) -> Result<(), schedule::InvalidSchedule> {
    if piece == schedule::PIECE {
        schedule::schedule_for(trigger, input).map(|_| ())
    } else {
        Ok(())
    }
}

pub struct Scheduler {
    task: troupe_store::tasks::Task,
}

struct Ctx {
    config: Config,
    store: Store,
    js: jetstream::Context,
    /// The client `js` was made from.
    nats: async_nats::Client,
    egress: Arc<troupe_pieces::egress::Egress>,
    clock: Arc<dyn Clock>,
    npm: Option<Arc<dyn PieceTriggers>>,
}

impl Scheduler {
    /// Starts firing timers. With `leader`, only while it is true (in a cluster, the holder of
    /// the scheduler lease fires; the other APP replicas stand by).
    // the process's wiring, called once from `troupe serve` and from tests
    #[allow(clippy::too_many_arguments)]
    pub fn start(
        config: Config,
        store: Store,
        js: jetstream::Context,
        clock: Arc<dyn Clock>,
        egress: Arc<troupe_pieces::egress::Egress>,
        npm: Option<Arc<dyn PieceTriggers>>,
        leader: Option<Arc<std::sync::atomic::AtomicBool>>,
        tasks: &troupe_store::tasks::Tasks,
    ) -> Scheduler {
        // retention runs at every start, then hourly
        let _ = store.remove_timers_of(SYSTEM_OWNER);
        let _ = store.add_timer(&Timer::new(SYSTEM_OWNER, ms(clock.now()), TimerKind::Retention));
        let ctx = Arc::new(Ctx { config, store, nats: js.client(), js, egress, clock, npm });
        // what it fires is read from the timers tree at every pass: after a panic it starts again
        let task = tasks.restart("scheduler", move |mut stop| {
            let (ctx, leader) = (ctx.clone(), leader.clone());
            async move {
                let mut passes = 0u64;
                loop {
                    // counting timers walks the whole tree: sample it, not every 100 ms pass
                    if passes.is_multiple_of(PENDING_SAMPLE_EVERY) {
                        metric_definitions::PENDING_TIMERS.set(ctx.store.pending_timers() as i64);
                    }
                    passes += 1;
                    let leading = leader.as_ref().is_none_or(|l| l.load(std::sync::atomic::Ordering::SeqCst));
                    let fired = if leading { fire_due(&ctx).await } else { 0 };
                    if fired < BATCH {
                        tokio::select! {
                            _ = tokio::time::sleep(TICK) => {}
                            _ = stop.wait() => return,
                        }
                    } else if stop.is_set() {
                        return;
                    }
                }
            }
        });
        Scheduler { task }
    }

    pub async fn stop(self) {
        self.task.stop().await;
    }
}

/// Fires the timers that are due; returns how many.
async fn fire_due(ctx: &Ctx) -> usize {
    let now = ms(ctx.clock.now());
    let due = match ctx.store.due_timers(now, BATCH) {
        Ok(d) => d,
        Err(e) => {
            tracing::error!(error = %e, "reading due timers");
            return 0;
        }
    };
    let n = due.len();
    // Delay ends are batched: every due resume is swapped in, one flush covers them all, and
    // their StartRun messages go out together. Other timers fire one by one.
    let mut fired = Vec::with_capacity(n);
    let mut starts = Vec::new();
    for timer in due {
        let result = match &timer.kind {
            TimerKind::ResumeRun { run_id } => match ctx.store.resume_run(run_id, ResumeBy::Timer, json!({}), None) {
                Ok(run) => {
                    starts.push((
                        run.shard,
                        format!("resume-{}-{}", run.id, timer.id),
                        ShardMessage::StartRun { run_id: run.id },
                    ));
                    Ok(())
                }
                // canceled, already resumed, deleted: nothing to do
                Err(StoreError::Conflict(_) | StoreError::NotFound(_)) => Ok(()),
                Err(e) => Err(FireError::Store(e)),
            },
            _ => fire(ctx, &timer).await,
        };
        match result {
            Ok(()) => fired.push(timer),
            // left in place: fired again on the next pass
            Err(e) => tracing::warn!(timer = timer.id, error = %e, "timer could not fire; will retry"),
        }
    }
    if n == 0 {
        return 0;
    }
    if let Err(e) = ctx.store.flush().await {
        tracing::error!(error = %e, "flushing resumed runs");
        return 0;
    }
    let publishes = starts.iter().map(|(shard, id, msg)| publish(ctx, *shard, id, msg));
    for (result, (_, id, _)) in futures::future::join_all(publishes).await.into_iter().zip(&starts) {
        // the resume is durable: if StartRun is lost, the shard sweeper starts the queued run
        if let Err(e) = result {
            tracing::warn!(msg = id, error = %e, "StartRun not published; the sweeper will start the run");
        }
    }
    let now = ms(ctx.clock.now());
    for timer in fired {
        metric_definitions::FIRE_LAG.observe(now.saturating_sub(timer.due_ms) as f64 / 1000.0);
        let kind = match timer.kind {
            TimerKind::ResumeRun { .. } => "resume_run",
            TimerKind::ExpirePause { .. } => "expire_pause",
            TimerKind::ScheduleTick { .. } => "schedule_tick",
            TimerKind::Poll { .. } => "poll",
            TimerKind::Renew { .. } => "renew",
            TimerKind::Retention => "retention",
        };
        metric_definitions::FIRED.with_label_values(&[kind]).inc();
        if let Err(e) = ctx.store.remove_timer(&timer) {
            tracing::error!(error = %e, "removing a fired timer");
        }
    }
    if let Err(e) = ctx.store.flush().await {
        tracing::error!(error = %e, "flushing after timers");
    }
    n
}

/// Why a timer could not fire (it stays, and fires again on the next pass).
#[derive(Debug, thiserror::Error)]
enum FireError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Publish(#[from] PublishError),
    #[error("the flow's schedule: {0}")]
    Schedule(#[from] schedule::InvalidSchedule),
}

async fn publish(ctx: &Ctx, shard: u16, msg_id: &str, message: &ShardMessage) -> Result<(), PublishError> {
    publish_to_shard(&ctx.nats, &ctx.js, &ctx.store, ShardPost { shard, msg_id, message, reply_to: None }).await
}

async fn fire(ctx: &Ctx, timer: &Timer) -> Result<(), FireError> {
    match &timer.kind {
        TimerKind::ResumeRun { .. } => unreachable!("resumes are fired in batches by fire_due"),
        TimerKind::ExpirePause { run_id } => {
            let days = ctx.config.paused_flow_timeout_days;
            let ended = ctx.store.transition_run(run_id, RunStatus::Timeout, |run| {
                if run.status() != RunStatus::Paused {
                    return Err(RunConflict::refused("not paused"));
                }
                run.finish_time = Some(now_iso());
                run.pause = None;
                let why = format!("the run stayed paused longer than AP_PAUSED_FLOW_TIMEOUT_DAYS ({days} days)");
                run.failed_step = Some(FailedStep::pseudo(PseudoStep::Pause, why));
                Ok(())
            });
            match ended {
                Ok(_) | Err(StoreError::Conflict(_) | StoreError::NotFound(_)) => Ok(()),
                Err(e) => Err(e.into()),
            }
        }
        TimerKind::ScheduleTick { flow_id, version_id } => schedule_tick(ctx, timer, flow_id, version_id).await,
        TimerKind::Poll { flow_id, version_id } => poll(ctx, flow_id, version_id).await,
        TimerKind::Renew { flow_id, version_id } => renew(ctx, flow_id, version_id).await,
        TimerKind::Retention => {
            let cutoff = ctx.clock.now() - chrono::Duration::days(ctx.config.execution_data_retention_days as i64);
            let mut total = 0;
            loop {
                let n = ctx.store.delete_runs_before(cutoff.timestamp_micros().max(0) as u64, 1000)?;
                total += n;
                if n < 1000 {
                    break;
                }
            }
            if total > 0 {
                tracing::info!(deleted = total, "retention removed old runs");
            }
            let next = ctx.clock.now() + chrono::Duration::from_std(RETENTION_EVERY).expect("fits");
            Ok(ctx.store.add_timer(&Timer::new(SYSTEM_OWNER, ms(next), TimerKind::Retention))?)
        }
    }
}

/// The flow's current published version, if it is still `version_id` and enabled.
fn live_flow(ctx: &Ctx, flow_id: &str, version_id: &str) -> Option<(Flow, troupe_store::flow::FlowVersion)> {
    let flow = ctx.store.get_flow(flow_id).ok()??;
    if flow.status != FlowStatus::Enabled || flow.published_version_id.as_deref() != Some(version_id) {
        return None;
    }
    let version = ctx.store.get_version(version_id).ok()??;
    Some((flow, version))
}

fn trigger_message(flow_id: &str, webhook_id: String, payload: Value) -> ShardMessage {
    ShardMessage::Webhook(WebhookMessage {
        webhook_id,
        flow_id: flow_id.to_string(),
        version_id: None,
        payload,
        received_at: now_iso(),
    })
}

async fn schedule_tick(ctx: &Ctx, timer: &Timer, flow_id: &str, version_id: &str) -> Result<(), FireError> {
    let Some((_, version)) = live_flow(ctx, flow_id, version_id) else { return Ok(()) };
    let t = &version.trigger;
    let s = schedule::schedule_for(
        t.settings.trigger_name.as_deref().unwrap_or_default(),
        &t.settings.input.clone().unwrap_or_default(),
    )?;
    // next tick from now: a process that was down for several ticks fires once, not a burst
    let now = ctx.clock.now();
    let after = now.max(chrono::DateTime::from_timestamp_millis(timer.due_ms as i64).unwrap_or(now));
    let next = s.next_after(after)?;
    let next_timer = Timer::new(
        flow_owner(flow_id),
        ms(next),
        TimerKind::ScheduleTick { flow_id: flow_id.into(), version_id: version_id.into() },
    );
    ctx.store.add_timer(&next_timer)?;
    // the tick's id is its due time: firing it twice makes one run
    let webhook_id = format!("tick-{flow_id}-{}", timer.due_ms);
    let shard = shard_for_flow(flow_id, ctx.config.shards);
    Ok(publish(ctx, shard, &webhook_id, &trigger_message(flow_id, webhook_id.clone(), json!({}))).await?)
}

/// A poll of an npm piece's polling trigger: `onEnable` the first time, `run` after; each
/// item one run, with a message id made of its content (a poll repeated after a crash makes
/// no second run of an item), the hook's store writes applied after the items are published.
async fn poll_npm(
    ctx: &Ctx,
    npm: &dyn PieceTriggers,
    flow: &Flow,
    version: &troupe_store::flow::FlowVersion,
    state: &PollState,
) -> Result<Result<PollState, PollFailed>, FireError> {
    let polled = match npm.poll(flow, version, !state.primed).await {
        Ok(p) => p,
        Err(e) => return Ok(Err(e)),
    };
    let shard = shard_for_flow(&flow.id, ctx.config.shards);
    for item in polled.items {
        let content = serde_json::to_vec(&item).expect("serializes");
        let webhook_id = poll_webhook_id(&flow.id, &content);
        publish(ctx, shard, &webhook_id, &trigger_message(&flow.id, webhook_id.clone(), item)).await?;
    }
    for (k, v) in polled.writes {
        match v {
            Some(v) => ctx.store.entry_put(&k, &v)?,
            None => ctx.store.entry_delete(&k)?,
        }
    }
    let cron = match polled.schedule["cronExpression"].as_str() {
        Some(cron) if !state.primed => {
            let timezone = polled.schedule["timezone"].as_str().unwrap_or("UTC").to_string();
            Some((cron.to_string(), timezone))
        }
        _ => state.cron.clone(),
    };
    Ok(Ok(PollState { primed: true, consecutive_failures: 0, cron, ..state.clone() }))
}

/// A poll of the native rss trigger: the feed's new items, each one run.
async fn poll_rss(
    ctx: &Ctx,
    flow_id: &str,
    input: &serde_json::Map<String, Value>,
    state: &PollState,
) -> Result<Result<PollState, PollFailed>, FireError> {
    let items = match rss::items(&ctx.egress, input).await {
        Ok(items) => items,
        Err(e) => return Ok(Err(PollFailed(e.to_string()))),
    };
    let (fresh, new_state) = polling::new_items(rss::STRATEGY, state, items);
    let shard = shard_for_flow(flow_id, ctx.config.shards);
    for item in fresh {
        let webhook_id = poll_webhook_id(flow_id, item.id.as_bytes());
        publish(ctx, shard, &webhook_id, &trigger_message(flow_id, webhook_id.clone(), item.data)).await?;
    }
    Ok(Ok(new_state))
}

/// The message id of a polled item: the same item polled twice makes one run.
fn poll_webhook_id(flow_id: &str, identity: &[u8]) -> String {
    use sha2::Digest;
    format!("poll-{flow_id}-{}", hex::encode(&sha2::Sha256::digest(identity)[..12]))
}

/// A webhook trigger's renewal: `onRenew` (a failure is logged; the webhook may still
/// work, and the next renewal tries again), then the next one.
async fn renew(ctx: &Ctx, flow_id: &str, version_id: &str) -> Result<(), FireError> {
    let Some((flow, version)) = live_flow(ctx, flow_id, version_id) else { return Ok(()) };
    let Some(npm) = ctx.npm.clone() else { return Ok(()) };
    let t = &version.trigger;
    let (piece, trigger) =
        (t.settings.piece_name.as_deref().unwrap_or_default(), t.settings.trigger_name.as_deref().unwrap_or_default());
    let Some(cron) = npm.renew_cron(&ctx.store, piece, t.settings.piece_version.as_deref(), trigger) else {
        return Ok(());
    };
    match npm.call_hook(&flow, &version, "onRenew").await {
        Ok(()) => tracing::info!(flow_id, "webhook trigger renewed"),
        Err(e) => tracing::warn!(flow_id, error = %e, "the webhook trigger's onRenew failed"),
    }
    let next = renewal(&cron, ctx.clock.now())?;
    let timer = Timer::new(
        flow_owner(flow_id),
        ms(next),
        TimerKind::Renew { flow_id: flow_id.into(), version_id: version_id.into() },
    );
    Ok(ctx.store.add_timer(&timer)?)
}

async fn poll(ctx: &Ctx, flow_id: &str, version_id: &str) -> Result<(), FireError> {
    let Some((mut flow, version)) = live_flow(ctx, flow_id, version_id) else { return Ok(()) };
    let input = version.trigger.settings.input.clone().unwrap_or_default();
    let key = names::entries::poll_state(flow_id);
    let state: PollState =
        ctx.store.entry_get(&key).ok().flatten().and_then(|v| serde_json::from_value(v).ok()).unwrap_or_default();

    let polled = if version.trigger.settings.piece_name.as_deref() == Some(rss::PIECE) {
        poll_rss(ctx, flow_id, &input, &state).await?
    } else {
        let Some(npm) = ctx.npm.clone() else { return Ok(()) };
        poll_npm(ctx, npm.as_ref(), &flow, &version, &state).await?
    };
    let new_state = match polled {
        Ok(new_state) => new_state,
        Err(e) => {
            let failures = state.consecutive_failures + 1;
            tracing::warn!(flow_id, failures, error = %e, "polling failed");
            if failures >= ctx.config.trigger_failure_threshold {
                flow.status = FlowStatus::Disabled;
                flow.disabled_reason = Some(format!("the trigger failed {failures} times in a row; last error: {e}"));
                flow.updated = now_iso();
                ctx.store.put_flow(&flow)?;
                ctx.store.remove_timers_of(&flow_owner(flow_id))?;
                return Ok(());
            }
            PollState { consecutive_failures: failures, ..state }
        }
    };
    // the next poll: on the schedule the trigger asked for, else every default interval
    let now = ctx.clock.now();
    let every = now + chrono::Duration::from_std(ctx.config.trigger_default_poll_interval).expect("fits");
    let next = match &new_state.cron {
        Some((cron, timezone)) => {
            let asked = timezone
                .parse()
                .map_err(|_| schedule::InvalidSchedule::UnknownTimezone(timezone.clone()))
                .and_then(|timezone| schedule::Schedule { cron: cron.clone(), timezone }.next_after(now));
            asked.unwrap_or_else(|e| {
                tracing::warn!(flow_id, error = %e, "the trigger's schedule is unusable; polling at the default interval");
                every
            })
        }
        None => every,
    };
    let next_timer = Timer::new(
        flow_owner(flow_id),
        ms(next),
        TimerKind::Poll { flow_id: flow_id.into(), version_id: version_id.into() },
    );
    ctx.store.entry_put(&key, &serde_json::to_value(&new_state).expect("serializes"))?;
    Ok(ctx.store.add_timer(&next_timer)?)
}
