//! Leases in a JetStream KV bucket: who owns a shard, who runs the scheduler, who is alive.
//!
//! An entry lives for the bucket's max age ([`LEASE_TTL`]) unless its holder rewrites it;
//! taking a lease is a create (fails while someone holds it), renewing is a compare-and-set on
//! the revision. A holder that has not renewed for [`FENCE_AFTER`] stops using the lease by
//! itself, before the server can expire it and hand it to someone else: never two holders.

use crate::names::cluster;
use async_nats::jetstream::{self, kv};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// An entry not renewed for this long disappears, and its lease is free.
pub const LEASE_TTL: Duration = Duration::from_secs(6);
/// How often holders renew and workers look at their share.
pub const TICK: Duration = Duration::from_secs(1);
/// A holder that could not renew for this long stops using its lease (well before the TTL).
pub const FENCE_AFTER: Duration = Duration::from_secs(4);

/// What went wrong with a bucket of leases or cluster-wide values.
#[derive(Debug, thiserror::Error)]
pub enum LeaseError {
    #[error("creating KV bucket {bucket}: {error}")]
    CreateBucket { bucket: String, error: jetstream::context::CreateKeyValueError },
    /// Neither the proposal could be stored nor an agreed value read, after a few attempts.
    #[error("could not agree on {key} through KV bucket {bucket}")]
    NoAgreement { key: String, bucket: &'static str },
}

/// Opens (or creates) the lease bucket.
pub async fn lease_bucket(js: &jetstream::Context, replicas: usize) -> Result<kv::Store, LeaseError> {
    bucket(js, cluster::LEASE_BUCKET, LEASE_TTL, replicas).await
}

/// Opens (or creates) the bucket of values decided once per cluster (no expiry).
pub async fn cluster_bucket(js: &jetstream::Context, replicas: usize) -> Result<kv::Store, LeaseError> {
    bucket(js, cluster::CLUSTER_BUCKET, Duration::ZERO, replicas).await
}

async fn bucket(
    js: &jetstream::Context,
    name: &str,
    max_age: Duration,
    replicas: usize,
) -> Result<kv::Store, LeaseError> {
    if let Ok(kv) = js.get_key_value(name).await {
        return Ok(kv);
    }
    let config = kv::Config {
        bucket: name.into(),
        history: 1,
        max_age,
        storage: jetstream::stream::StorageType::File,
        num_replicas: replicas.max(1),
        ..Default::default()
    };
    js.create_key_value(config).await.map_err(|error| LeaseError::CreateBucket { bucket: name.into(), error })
}

/// The value the cluster agreed on for `key`: this `proposal` if it is the first, else the
/// one stored first.
pub async fn agree(kv: &kv::Store, key: &str, proposal: &str) -> Result<String, LeaseError> {
    for _ in 0..5 {
        if kv.create(key, proposal.to_string().into()).await.is_ok() {
            return Ok(proposal.to_string());
        }
        if let Ok(Some(v)) = kv.get(key).await {
            return Ok(String::from_utf8_lossy(&v).into_owned());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err(LeaseError::NoAgreement { key: key.into(), bucket: cluster::CLUSTER_BUCKET })
}

/// What an attempt to renew a lease found.
#[derive(Debug, PartialEq, Eq)]
pub enum Renewal {
    Renewed(u64),
    /// Someone else holds it, or it expired: stop using it now.
    Lost,
    /// NATS did not answer: keep going until [`FENCE_AFTER`].
    Unknown,
}

/// Takes the lease `key` for `node`: free, or left by this same node in an earlier life.
pub async fn take(kv: &kv::Store, key: &str, node: &str) -> Option<u64> {
    match kv.create(key, node.to_string().into()).await {
        Ok(rev) => Some(rev),
        Err(_) => match kv.entry(key).await {
            Ok(Some(e)) if e.operation == kv::Operation::Put && e.value.as_ref() == node.as_bytes() => {
                kv.update(key, node.to_string().into(), e.revision).await.ok()
            }
            _ => None,
        },
    }
}

/// Renews a held lease; a renewal that takes longer than [`TICK`] counts as unanswered.
pub async fn renew(kv: &kv::Store, key: &str, node: &str, revision: u64) -> Renewal {
    let Ok(result) = tokio::time::timeout(TICK, kv.update(key, node.to_string().into(), revision)).await else {
        return Renewal::Unknown;
    };
    match result {
        Ok(rev) => Renewal::Renewed(rev),
        Err(_) => match kv.entry(key).await {
            Ok(Some(e)) if e.operation == kv::Operation::Put && e.value.as_ref() == node.as_bytes() => Renewal::Unknown,
            Ok(_) => Renewal::Lost,
            Err(_) => Renewal::Unknown,
        },
    }
}

/// Gives a lease back so that others need not wait for it to expire.
pub async fn release(kv: &kv::Store, key: &str, revision: u64) {
    let _ = kv.delete_expect_revision(key, Some(revision)).await;
}

/// Holds one lease for as long as it can (the scheduler's): `held` is true while this node
/// holds it. A task of `tasks`, started again if it panics (not holding the lease meanwhile);
/// when stopped it releases the lease.
pub fn hold(
    kv: kv::Store,
    key: String,
    node: String,
    tasks: &crate::tasks::Tasks,
) -> (Arc<AtomicBool>, crate::tasks::Task) {
    let held = Arc::new(AtomicBool::new(false));
    let flag = held.clone();
    let task = tasks.restart(format!("lease {key}"), move |mut stop| {
        let (kv, key, node, flag) = (kv.clone(), key.clone(), node.clone(), flag.clone());
        // a new start holds nothing until it has taken the lease again
        flag.store(false, Ordering::SeqCst);
        async move {
            let mut lease: Option<(u64, Instant)> = None;
            loop {
                let sent = Instant::now();
                lease = match lease {
                    None => take(&kv, &key, &node).await.map(|rev| {
                        tracing::info!(lease = key, node, "lease taken");
                        (rev, sent)
                    }),
                    Some((rev, renewed)) => match renew(&kv, &key, &node, rev).await {
                        Renewal::Renewed(rev) => Some((rev, sent)),
                        Renewal::Lost => None,
                        Renewal::Unknown if renewed.elapsed() > FENCE_AFTER => None,
                        Renewal::Unknown => Some((rev, renewed)),
                    },
                };
                if lease.is_none() && flag.swap(false, Ordering::SeqCst) {
                    tracing::warn!(lease = key, node, "lease lost");
                }
                flag.store(lease.is_some(), Ordering::SeqCst);
                tokio::select! {
                    _ = tokio::time::sleep(TICK) => {}
                    _ = stop.wait() => {
                        flag.store(false, Ordering::SeqCst);
                        if let Some((rev, _)) = lease {
                            release(&kv, &key, rev).await;
                        }
                        return;
                    }
                }
            }
        }
    });
    (held, task)
}
