//! The JetStream streams Troupe creates at start, with explicit limits.

use crate::names::subjects;
use async_nats::jetstream::{self, stream};
use std::time::Duration;

/// How long JetStream remembers message ids for de-duplication.
pub const DUPLICATE_WINDOW: Duration = Duration::from_secs(2 * 60);
/// Webhooks not consumed within this age are dropped by JetStream (workers consume in ms).
pub const WEBHOOK_MAX_AGE: Duration = Duration::from_secs(7 * 24 * 3600);
pub const EVENT_MAX_AGE: Duration = Duration::from_secs(24 * 3600);
pub const EVENT_MAX_BYTES: i64 = 256 * 1024 * 1024;
/// A single webhook message: the 5 MB body limit plus headers and envelope.
pub const MAX_MESSAGE_SIZE: i32 = 8 * 1024 * 1024;

pub fn webhook_stream(max_bytes: i64) -> stream::Config {
    stream::Config {
        name: subjects::WEBHOOK_STREAM.into(),
        subjects: vec![subjects::WEBHOOK_WILDCARD.into()],
        retention: stream::RetentionPolicy::WorkQueue,
        storage: stream::StorageType::File,
        max_bytes,
        max_age: WEBHOOK_MAX_AGE,
        max_message_size: MAX_MESSAGE_SIZE,
        duplicate_window: DUPLICATE_WINDOW,
        discard: stream::DiscardPolicy::New,
        ..Default::default()
    }
}

pub fn event_stream() -> stream::Config {
    stream::Config {
        name: subjects::EVENT_STREAM.into(),
        subjects: vec![subjects::EVENT_WILDCARD.into()],
        retention: stream::RetentionPolicy::Limits,
        storage: stream::StorageType::File,
        max_bytes: EVENT_MAX_BYTES,
        max_age: EVENT_MAX_AGE,
        duplicate_window: DUPLICATE_WINDOW,
        discard: stream::DiscardPolicy::Old,
        ..Default::default()
    }
}

/// The least a stream's byte limit is cut to when JetStream cannot reserve more.
pub const MIN_STREAM_BYTES: i64 = 4 * 1024 * 1024;

/// Creates the streams, or brings their limits up to date. In a cluster, also the stream of
/// replicated state; `replicas` copies of each (JetStream clustering).
///
/// A byte limit is a reservation: nats-server refuses a stream whose `max_bytes` does not fit
/// in what is left of its `max_file_store` (by default 75% of the disk's free space when it
/// started). Rather than refusing to start on a small disk, the limit is halved until it fits
/// (never below [`MIN_STREAM_BYTES`]) and a warning says what was asked and what was kept.
/// Returns the byte limit each stream got, by name.
pub async fn ensure_streams(
    js: &jetstream::Context,
    webhook_max_bytes: i64,
    replicas: usize,
    cluster: bool,
) -> Result<Vec<(String, i64)>, async_nats::Error> {
    let mut configs = vec![webhook_stream(webhook_max_bytes), event_stream()];
    if cluster {
        configs.push(crate::replication::state_stream(replicas));
    }
    let mut kept = Vec::with_capacity(configs.len());
    for mut cfg in configs {
        cfg.num_replicas = replicas.max(1);
        let asked = cfg.max_bytes;
        let exists = js.get_stream(&cfg.name).await.is_ok();
        loop {
            let result = match exists {
                true => js.update_stream(cfg.clone()).await.map(drop),
                false => js.create_stream(cfg.clone()).await.map(drop),
            };
            match result {
                Ok(()) => break,
                Err(e) if storage_exceeded(&e) && cfg.max_bytes / 2 >= MIN_STREAM_BYTES => {
                    cfg.max_bytes /= 2;
                }
                Err(e) if storage_exceeded(&e) => {
                    return Err(format!(
                        "JetStream has no room for stream {} (not even {} bytes): free disk space \
                         for nats-server's store_dir or raise its max_file_store",
                        cfg.name, cfg.max_bytes
                    )
                    .into())
                }
                Err(e) => return Err(e.into()),
            }
        }
        if cfg.max_bytes != asked {
            tracing::warn!(
                stream = %cfg.name,
                asked,
                kept = cfg.max_bytes,
                "JetStream cannot reserve the stream's byte limit (its max_file_store is too small, by default \
                 75% of the free disk); the limit is lowered to what fits"
            );
        }
        kept.push((cfg.name.clone(), cfg.max_bytes));
    }
    Ok(kept)
}

/// JetStream's refusals for want of storage: a single server's (10047), and a cluster's when no
/// peer has the room (10005, "no suitable peers for placement, insufficient storage").
fn storage_exceeded(e: &jetstream::context::CreateStreamError) -> bool {
    use jetstream::ErrorCode;
    match e.kind() {
        jetstream::context::CreateStreamErrorKind::JetStream(err) => {
            err.error_code() == ErrorCode::STORAGE_RESOURCES_EXCEEDED
                || (err.error_code() == ErrorCode::CLUSTER_NO_PEERS && err.to_string().contains("insufficient storage"))
        }
        _ => false,
    }
}
