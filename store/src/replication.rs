//! The replicated state of a cluster: every write to a replicated sled tree is also published
//! to the JetStream stream `AP_STATE` (one subject per key, last value kept, like a KV bucket),
//! and every process applies the others' writes to its own sled. JetStream is the replicated
//! log; sled is each process's materialised copy and cache.
//!
//! - A write is applied to the local tree at once and queued for publishing; [`Store::flush`]
//!   returns only when everything written before it is flushed to disk *and* acknowledged by
//!   JetStream, so an acked webhook or an answered client is durable in the cluster.
//! - The applier skips this process's own writes (they are already applied) and a foreign write
//!   to a key this process wrote later (last writer in stream order wins on every process).
//! - A process's position (the stream sequence it has applied or written through) travels in the
//!   `Troupe-State-Rev` header of the messages it publishes; the consumer of such a message
//!   waits until it has applied that far, so a worker never misses the flow a webhook names.
//!
//! [`Store::flush`]: crate::Store::flush

use crate::metric_definitions::{STATE_APPLIED_SEQUENCE, STATE_CONSUMER_STARTS, STATE_LAG, STATE_WRITES};
use crate::names::subjects;
use async_nats::jetstream::{self, consumer::pull, consumer::DeliverPolicy, stream};
use futures::StreamExt;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, watch};

/// How long a removal marker stays in the stream; a process that was away longer than this
/// rebuilds its copy from scratch.
pub const TOMBSTONE_TTL: Duration = Duration::from_secs(24 * 3600);
/// Most writes published before their acks are awaited.
const PUBLISH_BATCH: usize = 512;
/// The applier records its position in sled every this many messages (and when idle).
const POSITION_EVERY: u64 = 256;
/// Longest wait for the ack of an own write before a foreign write of the same key is judged.
const PENDING_WAIT: Duration = Duration::from_secs(2);
/// A consumer silent this long while the stream has more is recreated.
const STALL_AFTER: Duration = Duration::from_secs(3);

/// What went wrong replicating the state.
#[derive(Debug, thiserror::Error)]
pub enum ReplicationError {
    #[error("the state publisher stopped")]
    PublisherStopped,
    #[error("JetStream did not acknowledge the replicated state within {} s", .within.as_secs())]
    NotAcknowledged { within: Duration },
    /// The applier did not reach the stream's last sequence in time.
    #[error("state not applied through {last} within {} s (at {applied})", .within.as_secs())]
    Behind { last: u64, within: Duration, applied: u64 },
    #[error(transparent)]
    StreamUnavailable(#[from] jetstream::context::GetStreamError),
    #[error(transparent)]
    StreamInfo(#[from] jetstream::context::RequestError),
    #[error(transparent)]
    Consumer(#[from] jetstream::stream::ConsumerError),
    #[error(transparent)]
    Messages(#[from] jetstream::consumer::StreamError),
    /// Clearing the local copy before rebuilding it failed.
    #[error(transparent)]
    LocalCopy(#[from] sled::Error),
}

/// Why one replicated write was not published.
#[derive(Debug, thiserror::Error)]
enum PublishError {
    /// Larger than the server's `max_payload`: no retry can publish it.
    #[error("too large for NATS max_payload: {0}")]
    TooLarge(jetstream::context::PublishError),
    #[error(transparent)]
    Nats(jetstream::context::PublishError),
}

/// The stream: one subject per key of a replicated tree, the last message of each kept.
pub fn state_stream(replicas: usize) -> stream::Config {
    stream::Config {
        name: subjects::STATE_STREAM.into(),
        subjects: vec![subjects::STATE_WILDCARD.into()],
        retention: stream::RetentionPolicy::Limits,
        storage: stream::StorageType::File,
        max_messages_per_subject: 1,
        max_message_size: crate::streams::MAX_MESSAGE_SIZE,
        allow_message_ttl: true,
        num_replicas: replicas.max(1),
        ..Default::default()
    }
}

/// The subject of one key: `ap.state.<tree>.k<hex key>`.
pub fn subject_of(tree: &str, key: &[u8]) -> String {
    format!("{}.{tree}.k{}", subjects::STATE_PREFIX, hex::encode(key))
}

/// The tree and key a subject names.
pub fn parse_subject(subject: &str) -> Option<(&str, Vec<u8>)> {
    let rest = subject.strip_prefix(subjects::STATE_PREFIX)?.strip_prefix('.')?;
    let (tree, key) = rest.split_once('.')?;
    Some((tree, hex::decode(key.strip_prefix('k')?).ok()?))
}

struct Op {
    ticket: u64,
    subject: String,
    value: Option<sled::IVec>,
}

/// Own writes by subject: how many are still unacked, and the stream sequence of the newest.
#[derive(Default)]
struct Own {
    pending: u32,
    seq: u64,
}

pub struct Replication {
    origin: String,
    queue: mpsc::UnboundedSender<Op>,
    enqueued: AtomicU64,
    acked: watch::Sender<u64>,
    applied: watch::Sender<u64>,
    own_max_seq: AtomicU64,
    own: Mutex<HashMap<String, Own>>,
    /// Woken at every ack of an own write.
    acks: tokio::sync::Notify,
}

impl Replication {
    /// Starts the publisher and the applier. `trees` are the local copies the applier writes.
    pub(crate) fn start(
        js: jetstream::Context,
        origin: String,
        trees: HashMap<&'static str, sled::Tree>,
        meta: sled::Tree,
        tasks: &crate::tasks::Tasks,
    ) -> Arc<Replication> {
        let (tx, rx) = mpsc::unbounded_channel();
        let start: u64 = meta
            .get(crate::names::meta::STATE_APPLIED)
            .ok()
            .flatten()
            .and_then(|v| <[u8; 8]>::try_from(v.as_ref()).ok())
            .map(u64::from_be_bytes)
            .unwrap_or(0);
        let repl = Arc::new(Replication {
            origin,
            queue: tx,
            enqueued: AtomicU64::new(0),
            acked: watch::channel(0).0,
            applied: watch::channel(start).0,
            own_max_seq: AtomicU64::new(0),
            own: Mutex::default(),
            acks: tokio::sync::Notify::new(),
        });
        // the publisher owns the queue of writes not yet in JetStream: a panic loses them, so
        // the process stops (and its next start applies the stream again); the applier starts
        // again from the position it reached
        let weak = Arc::downgrade(&repl);
        let publisher_js = js.clone();
        tasks.essential("replication publisher", move |mut stop| async move {
            tokio::select! {
                _ = publish_loop(weak, publisher_js, rx) => {}
                _ = stop.wait() => {}
            }
        });
        let weak = Arc::downgrade(&repl);
        tasks.restart("replication applier", move |mut stop| {
            let start = weak.upgrade().map_or(start, |r| *r.applied.borrow());
            let applier = apply_loop(weak.clone(), js.clone(), trees.clone(), meta.clone(), start);
            async move {
                tokio::select! {
                    _ = applier => {}
                    _ = stop.wait() => {}
                }
            }
        });
        repl
    }

    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// Queues a write (a value, or a removal) of a replicated tree.
    pub(crate) fn record(&self, tree: &str, key: &[u8], value: Option<sled::IVec>) {
        let subject = subject_of(tree, key);
        self.own.lock().expect("own lock").entry(subject.clone()).or_default().pending += 1;
        // tickets are taken in queue order: the publisher sees them ascending
        let ticket = self.enqueued.fetch_add(1, Ordering::SeqCst) + 1;
        let _ = self.queue.send(Op { ticket, subject, value });
    }

    /// Waits until every write queued so far is acknowledged by JetStream.
    pub(crate) async fn wait_acked(&self, within: Duration) -> Result<(), ReplicationError> {
        let ticket = self.enqueued.load(Ordering::SeqCst);
        let mut rx = self.acked.subscribe();
        let acked = async {
            tokio::select! {
                r = rx.wait_for(|a| *a >= ticket) => r.is_ok(),
                // the publisher is gone (it panicked): what it had not published never will be
                _ = self.queue.closed() => *self.acked.borrow() >= ticket,
            }
        };
        let result = tokio::time::timeout(within, acked).await;
        match result {
            Ok(true) => Ok(()),
            Ok(false) => Err(ReplicationError::PublisherStopped),
            Err(_) => Err(ReplicationError::NotAcknowledged { within }),
        }
    }

    /// Writes queued and not yet acknowledged by JetStream.
    pub fn backlog(&self) -> u64 {
        self.enqueued.load(Ordering::SeqCst).saturating_sub(*self.acked.borrow())
    }

    /// Waits until at most `max` writes wait for JetStream; false after `within`.
    pub async fn wait_backlog(&self, max: u64, within: Duration) -> bool {
        if self.backlog() <= max {
            return true;
        }
        let mut rx = self.acked.subscribe();
        let enqueued = &self.enqueued;
        let drained = rx.wait_for(|acked| enqueued.load(Ordering::SeqCst).saturating_sub(*acked) <= max);
        tokio::time::timeout(within, drained).await.is_ok_and(|r| r.is_ok())
    }

    /// The stream sequence this process has applied or written through.
    pub fn position(&self) -> u64 {
        (*self.applied.borrow()).max(self.own_max_seq.load(Ordering::SeqCst))
    }

    /// The stream sequence applied so far.
    pub fn applied(&self) -> u64 {
        *self.applied.borrow()
    }

    /// Waits until the applier has reached `seq`; false after `within`.
    pub async fn wait_applied(&self, seq: u64, within: Duration) -> bool {
        // not `position()`: this process's own later writes say nothing of others' earlier ones
        if seq <= self.applied() {
            return true;
        }
        let mut rx = self.applied.subscribe();
        let reached = tokio::time::timeout(within, rx.wait_for(|a| *a >= seq)).await.is_ok_and(|r| r.is_ok());
        reached
    }

    /// Waits until everything in the stream now is applied here (before taking a shard over).
    pub async fn catch_up(&self, js: &jetstream::Context, within: Duration) -> Result<(), ReplicationError> {
        let mut stream = js.get_stream(subjects::STATE_STREAM).await?;
        let last = stream.info().await?.state.last_sequence;
        if self.wait_applied(last, within).await {
            Ok(())
        } else {
            Err(ReplicationError::Behind { last, within, applied: self.applied() })
        }
    }

    /// True when a foreign write with this sequence must be skipped: this process wrote the
    /// key later. While a write of the key is still being published its sequence is unknown:
    /// wait for the ack (they come in milliseconds), up to [`PENDING_WAIT`], then skip.
    async fn own_is_newer(&self, subject: &str, seq: u64) -> bool {
        let deadline = tokio::time::Instant::now() + PENDING_WAIT;
        loop {
            let acked = self.acks.notified();
            tokio::pin!(acked);
            acked.as_mut().enable();
            match self.own.lock().expect("own lock").get(subject) {
                None => return false,
                Some(o) if o.pending == 0 => return o.seq > seq,
                Some(_) => {}
            }
            if tokio::time::timeout_at(deadline, acked).await.is_err() {
                return true;
            }
        }
    }

    fn acked_one(&self, subject: &str, seq: u64) {
        let mut own = self.own.lock().expect("own lock");
        if let Some(o) = own.get_mut(subject) {
            o.pending = o.pending.saturating_sub(1);
            o.seq = o.seq.max(seq);
        }
        self.own_max_seq.fetch_max(seq, Ordering::SeqCst);
        drop(own);
        self.acks.notify_waiters();
    }

    /// Forgets own writes the applier has passed: no foreign write can be older than them.
    fn prune(&self) {
        let applied = self.applied();
        self.own.lock().expect("own lock").retain(|_, o| o.pending > 0 || o.seq > applied);
    }
}

async fn publish_one(
    js: &jetstream::Context,
    origin: &str,
    op: &Op,
) -> Result<jetstream::context::PublishAckFuture, PublishError> {
    let mut headers = async_nats::HeaderMap::new();
    headers.insert(subjects::STATE_ORIGIN_HEADER, origin);
    let payload = match &op.value {
        Some(v) => bytes::Bytes::copy_from_slice(v),
        None => {
            headers.insert(subjects::STATE_OP_HEADER, subjects::STATE_OP_REMOVE);
            headers.insert(subjects::TTL_HEADER, format!("{}s", TOMBSTONE_TTL.as_secs()).as_str());
            bytes::Bytes::new()
        }
    };
    js.publish_with_headers(op.subject.clone(), headers, payload).await.map_err(|e| {
        if matches!(e.kind(), jetstream::context::PublishErrorKind::MaxPayloadExceeded) {
            PublishError::TooLarge(e)
        } else {
            PublishError::Nats(e)
        }
    })
}

/// Publishes queued writes in order, a batch at a time, and advances `acked`. A failed
/// publish or ack republishes the rest of the batch in order (never one write after a newer
/// one of the same key); a write larger than the server's `max_payload` is logged and skipped.
async fn publish_loop(repl: std::sync::Weak<Replication>, js: jetstream::Context, mut rx: mpsc::UnboundedReceiver<Op>) {
    let mut batch = Vec::with_capacity(PUBLISH_BATCH);
    while rx.recv_many(&mut batch, PUBLISH_BATCH).await > 0 {
        let Some(r) = repl.upgrade() else { return };
        let mut from = 0;
        while from < batch.len() {
            let mut acks = Vec::with_capacity(batch.len() - from);
            let mut error = None;
            for (i, op) in batch.iter().enumerate().skip(from) {
                match publish_one(&js, &r.origin, op).await {
                    Ok(ack) => acks.push((i, Some(ack))),
                    Err(e @ PublishError::TooLarge(_)) => {
                        tracing::error!(subject = op.subject, error = %e, "a replicated write was not published");
                        acks.push((i, None));
                    }
                    Err(e) => {
                        error = Some(e);
                        break;
                    }
                }
            }
            for (i, ack) in acks {
                let seq = match ack {
                    None => 0,
                    Some(ack) => match ack.await {
                        Ok(a) => a.sequence,
                        Err(e) => {
                            error = Some(PublishError::Nats(e));
                            break;
                        }
                    },
                };
                STATE_WRITES.with_label_values(&["published"]).inc();
                r.acked_one(&batch[i].subject, seq);
                let _ = r.acked.send_replace(batch[i].ticket);
                from = i + 1;
            }
            if let Some(e) = error {
                STATE_WRITES.with_label_values(&["retried"]).inc();
                tracing::warn!(error = %e, "publishing replicated state failed; retrying in order");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
        batch.clear();
    }
}

/// An ordered consumer of the state stream from just after `start` (the last value of every key
/// when `start` is 0). When the stream's history no longer reaches back to `start` (this process
/// was away longer than tombstones live), the local copy is cleared and rebuilt from scratch.
async fn subscribe(
    js: &jetstream::Context,
    trees: &HashMap<&'static str, sled::Tree>,
    start: &mut u64,
) -> Result<pull::Ordered, ReplicationError> {
    let mut stream = js.get_stream(subjects::STATE_STREAM).await?;
    let first = stream.info().await?.state.first_sequence;
    if *start > 0 && first > *start + 1 {
        tracing::warn!(applied = *start, first, "state history moved on; rebuilding the local copy");
        for t in trees.values() {
            t.clear()?;
        }
        *start = 0;
    }
    let deliver_policy = match *start {
        0 => DeliverPolicy::LastPerSubject,
        s => DeliverPolicy::ByStartSequence { start_sequence: s + 1 },
    };
    let config =
        pull::OrderedConfig { filter_subject: subjects::STATE_WILDCARD.into(), deliver_policy, ..Default::default() };
    let consumer = stream.create_consumer(config).await?;
    Ok(consumer.messages().await?)
}

async fn apply_loop(
    repl: std::sync::Weak<Replication>,
    js: jetstream::Context,
    trees: HashMap<&'static str, sled::Tree>,
    meta: sled::Tree,
    mut start: u64,
) {
    let mut last_prune = tokio::time::Instant::now();
    loop {
        let mut messages = match subscribe(&js, &trees, &mut start).await {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(error = %e, "state stream unavailable; retrying");
                tokio::time::sleep(Duration::from_millis(500)).await;
                continue;
            }
        };
        let mut since_saved = 0u64;
        STATE_CONSUMER_STARTS.inc();
        loop {
            let item = match tokio::time::timeout(STALL_AFTER, messages.next()).await {
                Ok(Some(item)) => item,
                Ok(None) => break,
                // quiet: fine when there is nothing new; a stalled consumer (a NATS node went
                // away mid-delivery) when the stream has moved on
                Err(_) => {
                    let last = js.get_stream(subjects::STATE_STREAM).await.ok();
                    let last = match last {
                        Some(mut s) => s.info().await.map(|i| i.state.last_sequence).unwrap_or(0),
                        None => 0,
                    };
                    STATE_LAG.set(last.saturating_sub(start) as i64);
                    if last > start {
                        tracing::warn!(applied = start, last, "state consumer stalled; recreating it");
                        break;
                    }
                    continue;
                }
            };
            let Some(r) = repl.upgrade() else { return };
            let msg = match item {
                Ok(m) => m,
                Err(e) => {
                    tracing::warn!(error = %e, "state consumer error");
                    break;
                }
            };
            let (seq, pending) = match msg.info() {
                Ok(i) => (i.stream_sequence, i.pending),
                Err(_) => continue,
            };
            let header = |name: &str| msg.headers.as_ref().and_then(|h| h.get(name)).map(|v| v.as_str().to_string());
            let mine = header(subjects::STATE_ORIGIN_HEADER).as_deref() == Some(r.origin.as_str());
            let skipped = !mine && r.own_is_newer(&msg.subject, seq).await;
            if skipped {
                STATE_WRITES.with_label_values(&["skipped"]).inc();
            }
            if !mine && !skipped {
                STATE_WRITES.with_label_values(&["applied"]).inc();
                match parse_subject(&msg.subject).and_then(|(t, k)| Some((trees.get(t)?, k))) {
                    Some((tree, key)) => {
                        let result = if header(subjects::STATE_OP_HEADER).as_deref() == Some(subjects::STATE_OP_REMOVE)
                        {
                            tree.remove(key).map(|_| ())
                        } else {
                            tree.insert(key, msg.payload.as_ref()).map(|_| ())
                        };
                        if let Err(e) = result {
                            tracing::error!(error = %e, "applying replicated state failed");
                        }
                    }
                    None => tracing::debug!(subject = %msg.subject, "state message of an unknown tree; skipped"),
                }
            }
            start = seq;
            since_saved += 1;
            if since_saved >= POSITION_EVERY || pending == 0 {
                let _ = meta.insert(crate::names::meta::STATE_APPLIED, &seq.to_be_bytes());
                since_saved = 0;
            }
            let _ = r.applied.send_replace(seq);
            STATE_APPLIED_SEQUENCE.set(seq as i64);
            if pending == 0 {
                STATE_LAG.set(0);
            }
            if last_prune.elapsed() > Duration::from_secs(5) {
                r.prune();
                last_prune = tokio::time::Instant::now();
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
