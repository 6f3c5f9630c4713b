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

/// Creates the streams, or brings their limits up to date. In a cluster, also the stream of
/// replicated state; `replicas` copies of each (JetStream clustering).
pub async fn ensure_streams(
    js: &jetstream::Context,
    webhook_max_bytes: i64,
    replicas: usize,
    cluster: bool,
) -> Result<(), async_nats::Error> {
    let mut configs = vec![webhook_stream(webhook_max_bytes), event_stream()];
    if cluster {
        configs.push(crate::replication::state_stream(replicas));
    }
    for mut cfg in configs {
        cfg.num_replicas = replicas.max(1);
        match js.get_stream(&cfg.name).await {
            Ok(_) => {
                js.update_stream(cfg).await?;
            }
            Err(_) => {
                js.create_stream(cfg).await?;
            }
        }
    }
    Ok(())
}
