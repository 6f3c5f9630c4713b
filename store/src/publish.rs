//! Handing a message to a shard: the one way every path (webhooks, retries, resumes, the
//! scheduler's ticks, polls and resumes) publishes on `ap.webhook.<shard>`.
//!
//! A message carries its id (`Nats-Msg-Id`: JetStream drops a second copy, so a retried publish
//! is harmless), this process's replicated-state position (in a cluster the shard's owner
//! applies the state that far before it handles the message) and, for a sync caller, the
//! subject its answer goes to. It must fit the server's `max_payload`, and it counts as
//! published only once JetStream acknowledged it; a stream without a leader for a moment (an
//! election after a NATS node died) or a connection being re-established is retried for up to
//! [`RETRY_BUDGET`].

use crate::message::ShardMessage;
use crate::names::subjects;
use crate::Store;
use async_nats::jetstream;
use bytes::Bytes;
use std::time::Duration;

/// How long a publish may wait for JetStream to come back before it fails.
pub const RETRY_BUDGET: Duration = Duration::from_secs(3);
/// Pause between two attempts.
const RETRY_EVERY: Duration = Duration::from_millis(100);

#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    /// The message with its envelope is larger than the NATS server accepts.
    #[error(
        "the message ({bytes} bytes with its envelope) is larger than the NATS server's max_payload ({max} bytes)"
    )]
    TooLarge { bytes: usize, max: usize },
    /// JetStream did not store the message within the retry budget.
    #[error("{0}")]
    Unavailable(#[from] jetstream::context::PublishError),
}

/// What a message to a shard is made of.
pub struct ShardPost<'a> {
    pub shard: u16,
    /// The JetStream message id: a second message with the same id is dropped.
    pub msg_id: &'a str,
    pub message: &'a ShardMessage,
    /// Where a sync caller waits for the run's answer.
    pub reply_to: Option<&'a str>,
}

/// Publishes `post` on its shard's subject and waits for JetStream's ack (`nats` is the client
/// `js` was made from; it tells the negotiated `max_payload` without a copy of the server info).
pub async fn publish_to_shard(
    nats: &async_nats::Client,
    js: &jetstream::Context,
    store: &Store,
    post: ShardPost<'_>,
) -> Result<(), PublishError> {
    let bytes = Bytes::from(serde_json::to_vec(post.message).expect("a shard message serializes"));
    let max = nats.max_payload();
    if bytes.len() > max {
        return Err(PublishError::TooLarge { bytes: bytes.len(), max });
    }
    let mut headers = async_nats::HeaderMap::new();
    headers.insert(subjects::MSG_ID_HEADER, post.msg_id);
    store.stamp(&mut headers);
    if let Some(reply_to) = post.reply_to {
        headers.insert(subjects::REPLY_HEADER, reply_to);
    }
    let subject = subjects::webhook(post.shard);
    use jetstream::context::PublishErrorKind as K;
    let deadline = tokio::time::Instant::now() + RETRY_BUDGET;
    loop {
        let result = match js.publish_with_headers(subject.clone(), headers.clone(), bytes.clone()).await {
            Ok(ack) => ack.await.map(|_| ()),
            Err(e) => Err(e),
        };
        match result {
            Ok(()) => return Ok(()),
            Err(e)
                if matches!(e.kind(), K::StreamNotFound | K::TimedOut | K::BrokenPipe)
                    && tokio::time::Instant::now() < deadline =>
            {
                tracing::debug!(error = %e, "JetStream refused a publish for now; retrying");
                tokio::time::sleep(RETRY_EVERY).await;
            }
            Err(e) => return Err(e.into()),
        }
    }
}
