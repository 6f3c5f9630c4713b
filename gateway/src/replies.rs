//! Where sync callers wait for their run's response: one core-NATS subscription per process
//! (`<inbox>.*`) and a waiter per request, instead of a subscription per request (each of
//! those is a SUB and an UNSUB for nats-server, and a change to its subject index).

use bytes::Bytes;
use dashmap::DashMap;
use futures::StreamExt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use tokio::sync::oneshot;

pub struct Replies {
    prefix: String,
    next: AtomicU64,
    waiting: DashMap<u64, oneshot::Sender<Bytes>>,
}

/// One caller's wait; its entry goes when it is dropped (answered or not).
pub struct Waiter {
    replies: Arc<Replies>,
    token: u64,
    pub subject: String,
    rx: oneshot::Receiver<Bytes>,
}

impl Replies {
    /// Subscribes to this process's reply subjects and routes each reply to its waiter: a
    /// task of `tasks`, started again (subscribing again) if it panics; the callers waiting
    /// meanwhile keep their places.
    pub async fn start(
        nats: &async_nats::Client,
        tasks: &troupe_store::tasks::Tasks,
    ) -> Result<Arc<Replies>, async_nats::SubscribeError> {
        let prefix = nats.new_inbox();
        let first = nats.subscribe(format!("{prefix}.*")).await?;
        let replies = Arc::new(Replies { prefix: prefix.clone(), next: AtomicU64::new(1), waiting: DashMap::new() });
        let weak = Arc::downgrade(&replies);
        let (nats, mut first) = (nats.clone(), Some(first));
        tasks.restart("reply listener", move |mut stop| {
            let (nats, subject, weak, first) = (nats.clone(), format!("{prefix}.*"), weak.clone(), first.take());
            async move {
                let mut sub = match first {
                    Some(sub) => sub,
                    None => loop {
                        match nats.subscribe(subject.clone()).await {
                            Ok(sub) => break sub,
                            Err(e) => tracing::warn!(error = %e, "subscribing to sync replies again"),
                        }
                        tokio::select! {
                            _ = tokio::time::sleep(std::time::Duration::from_millis(500)) => {}
                            _ = stop.wait() => return,
                        }
                    },
                };
                loop {
                    let msg = tokio::select! {
                        m = sub.next() => m,
                        _ = stop.wait() => return,
                    };
                    let Some(msg) = msg else { return };
                    let Some(replies) = weak.upgrade() else { return };
                    let token = msg.subject.rsplit('.').next().and_then(|t| t.parse::<u64>().ok());
                    if let Some((_, tx)) = token.and_then(|t| replies.waiting.remove(&t)) {
                        let _ = tx.send(msg.payload);
                    }
                }
            }
        });
        Ok(replies)
    }

    /// A subject to give the run as its reply-to, and the wait on it. Register before
    /// publishing, so an early reply is not missed.
    pub fn register(self: &Arc<Self>) -> Waiter {
        let token = self.next.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        self.waiting.insert(token, tx);
        Waiter { replies: self.clone(), token, subject: format!("{}.{token}", self.prefix), rx }
    }

    /// Callers waiting now.
    #[cfg(test)]
    fn waiting(&self) -> usize {
        self.waiting.len()
    }
}

impl Waiter {
    /// The reply's payload, or `None` when `timeout` passes first.
    pub async fn wait(&mut self, timeout: std::time::Duration) -> Option<Bytes> {
        tokio::time::timeout(timeout, &mut self.rx).await.ok().and_then(Result::ok)
    }
}

impl Drop for Waiter {
    fn drop(&mut self) {
        self.replies.waiting.remove(&self.token);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn each_reply_reaches_its_own_waiter_and_waiters_clean_up() {
        let server = troupe_testkit::NatsServer::start().await;
        let nats = async_nats::connect(&server.url).await.unwrap();
        let tasks = troupe_store::tasks::Tasks::default();
        let replies = Replies::start(&nats, &tasks).await.unwrap();
        let mut a = replies.register();
        let mut b = replies.register();
        assert_ne!(a.subject, b.subject);
        assert_eq!(replies.waiting(), 2);
        nats.publish(b.subject.clone(), "for b".into()).await.unwrap();
        nats.publish(format!("{}.999999", replies.prefix), "for nobody".into()).await.unwrap();
        assert_eq!(b.wait(Duration::from_secs(5)).await.as_deref(), Some(&b"for b"[..]));
        assert_eq!(a.wait(Duration::from_millis(200)).await, None, "a got b's reply");
        drop((a, b));
        assert_eq!(replies.waiting(), 0, "a dropped waiter stays registered");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_listener_that_panicked_subscribes_again_and_waiters_keep_their_places() {
        let server = troupe_testkit::NatsServer::start().await;
        let nats = async_nats::connect(&server.url).await.unwrap();
        let other = async_nats::connect(&server.url).await.unwrap();
        let tasks = troupe_store::tasks::Tasks::default();
        tasks.inject_panic("reply listener");
        let replies = Replies::start(&nats, &tasks).await.unwrap();
        // the listener panics as it starts and comes back after the back-off
        tokio::time::sleep(troupe_store::tasks::RESTART_MIN + Duration::from_millis(300)).await;
        let mut a = replies.register();
        other.publish(a.subject.clone(), "for a".into()).await.unwrap();
        assert_eq!(a.wait(Duration::from_secs(5)).await.as_deref(), Some(&b"for a"[..]));
    }
}
