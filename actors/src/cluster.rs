//! Shard ownership in a cluster: each worker heartbeats `worker.<id>` in the lease bucket,
//! counts the live workers, and holds its fair share of `shard.<n>` leases (16 shards over 3
//! workers: 6, 5, 5). A worker above its share hands shards back (a new worker joined); below
//! it, it takes free ones (a worker left or died). Before it starts a shard it applies the
//! replicated state through the stream's end, so the shard's journals, pauses and runs are
//! there; then the ShardActor recovers the unfinished runs as after a restart.

use crate::context::{EngineCtx, EngineError};
use crate::shard::Shards;
use async_nats::jetstream::kv;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use troupe_store::lease::{self, Renewal, FENCE_AFTER, TICK};
use troupe_store::names::cluster;

/// How long a shard handed back waits for its runs to reach a step boundary. The keeper does
/// not renew its other leases meanwhile, so this and [`CATCH_UP`] stay well under
/// `FENCE_AFTER - TICK`.
const DRAIN: Duration = Duration::from_secs(2);
/// How long a worker waits for the replicated state before it gives taken leases back (and
/// tries again at the next tick).
const CATCH_UP: Duration = Duration::from_secs(2);

/// Fair share of `shards` for the worker at `index` among `workers` (sorted ids).
pub fn fair_share(shards: u16, workers: usize, index: usize) -> usize {
    let (n, shards) = (workers.max(1), shards as usize);
    shards / n + usize::from(index < shards % n)
}

struct Held {
    revision: u64,
    renewed: Instant,
}

struct Keeper {
    ctx: Arc<EngineCtx>,
    shards: Arc<Shards>,
    node: String,
    kv: kv::Store,
    held: BTreeMap<u16, Held>,
    /// When each held lease was last renewed (request sent), for the fence.
    renewed: Arc<std::sync::Mutex<BTreeMap<u16, Instant>>>,
}

pub struct LeaseKeeper {
    keeper: troupe_store::tasks::Task,
    fence: troupe_store::tasks::Task,
}

impl LeaseKeeper {
    /// Starts keeping leases for `node`. Must be called on the actix arbiter (shard actors are
    /// started from its loop). The keeper holds the leases: if it panics, the process stops
    /// (its leases expire and the other workers take its shards); the fence keeps nothing of
    /// its own and starts again.
    pub async fn start(ctx: Arc<EngineCtx>, shards: Arc<Shards>, node: String) -> Result<LeaseKeeper, EngineError> {
        let kv = lease::lease_bucket(&ctx.js, ctx.config.nats_replicas).await?;
        tracing::info!(node, "joining the cluster as a worker");
        let renewed = Arc::new(std::sync::Mutex::new(BTreeMap::new()));
        let weak = Arc::downgrade(&renewed);
        let fence_ctx = ctx.clone();
        let fence = ctx.tasks.restart("lease fence", move |mut stop| {
            let (ctx, renewed) = (fence_ctx.clone(), weak.clone());
            async move {
                tokio::select! {
                    _ = fence(ctx, renewed) => {}
                    _ = stop.wait() => {}
                }
            }
        });
        let mut keeper = Keeper { ctx: ctx.clone(), shards, node, kv, held: BTreeMap::new(), renewed };
        let keeper = ctx.tasks.essential_local("lease keeper", move |mut stop| async move {
            loop {
                keeper.tick().await;
                tokio::select! {
                    _ = tokio::time::sleep(TICK) => {}
                    _ = stop.wait() => break,
                }
            }
            keeper.leave().await;
        });
        Ok(LeaseKeeper { keeper, fence })
    }

    /// Stops keeping leases and hands every shard back.
    pub async fn stop(self) {
        self.keeper.stop().await;
        self.fence.stop().await;
    }
}

/// The fence, on its own clock: whatever the keeper is waiting for, a shard whose lease was not
/// renewed for [`FENCE_AFTER`] stops being owned here (its runs stop at their next step) before
/// the lease can expire on the server. The keeper stops the shard's actor at its next tick, or
/// owns it again if the renewal went through after all.
async fn fence(ctx: Arc<EngineCtx>, renewed: std::sync::Weak<std::sync::Mutex<BTreeMap<u16, Instant>>>) {
    loop {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let Some(renewed) = renewed.upgrade() else { return };
        for (shard, at) in renewed.lock().expect("fence lock").iter() {
            if at.elapsed() > FENCE_AFTER && ctx.set_owned(*shard, false) {
                tracing::warn!(shard, "shard lease not renewed in time; fenced");
            }
        }
    }
}

impl Keeper {
    /// Records the held leases' renewal times for the fence (and owns a shard again whose late
    /// renewal went through).
    fn publish_renewals(&self) {
        let mut renewed = self.renewed.lock().expect("fence lock");
        renewed.clear();
        for (shard, held) in &self.held {
            renewed.insert(*shard, held.renewed);
            if held.renewed.elapsed() <= FENCE_AFTER {
                self.ctx.set_owned(*shard, true);
            }
        }
    }

    async fn tick(&mut self) {
        let _ = tokio::time::timeout(TICK, self.kv.put(cluster::worker(&self.node), bytes::Bytes::new())).await;
        self.renew().await;
        let Some(share) = self.share().await else { return };
        // one at a time: each waits for its runs, and the other leases wait for their renewal
        if self.held.len() > share {
            let shard = *self.held.keys().next_back().expect("non-empty");
            tracing::info!(shard, share, "handing a shard back for balance");
            self.give_back(shard).await;
        }
        if self.held.len() < share {
            self.take(share).await;
        }
    }

    /// Renews every held lease (all at once: a slow NATS must not delay the last ones).
    async fn renew(&mut self) {
        let sent = Instant::now();
        let (kv, node) = (&self.kv, &self.node);
        let results = futures::future::join_all(self.held.iter().map(|(shard, held)| async move {
            (*shard, lease::renew(kv, &cluster::shard_lease(*shard), node, held.revision).await)
        }))
        .await;
        let mut lost = Vec::new();
        for (shard, renewal) in results {
            let held = self.held.get_mut(&shard).expect("held");
            match renewal {
                Renewal::Renewed(rev) => *held = Held { revision: rev, renewed: sent },
                Renewal::Lost => lost.push(shard),
                Renewal::Unknown if held.renewed.elapsed() > FENCE_AFTER => lost.push(shard),
                Renewal::Unknown => {}
            }
        }
        for shard in lost {
            tracing::warn!(shard, node = self.node, "shard lease lost; stopping the shard");
            self.held.remove(&shard);
            self.publish_renewals();
            self.shards.stop(shard, Duration::ZERO).await;
        }
        self.publish_renewals();
    }

    /// This worker's fair share, from the live workers' heartbeats.
    async fn share(&self) -> Option<usize> {
        use futures::StreamExt;
        let keys = tokio::time::timeout(TICK, async {
            let mut keys = self.kv.keys().await.ok()?;
            let mut workers = Vec::new();
            while let Some(k) = keys.next().await {
                if let Some(w) = k.ok()?.strip_prefix(cluster::WORKER_PREFIX) {
                    workers.push(w.to_string());
                }
            }
            Some(workers)
        })
        .await
        .ok()
        .flatten()?;
        let mut workers = keys;
        workers.sort();
        let index = workers.iter().position(|w| *w == self.node)?;
        Some(fair_share(self.ctx.config.shards, workers.len(), index))
    }

    async fn take(&mut self, share: usize) {
        let total = self.ctx.config.shards;
        // start looking at a place of our own, so that workers do not all race for shard 0
        let offset = self.node.bytes().fold(0u32, |h, b| h.wrapping_mul(31).wrapping_add(b as u32)) as u16 % total;
        let mut taken = Vec::new();
        for i in 0..total {
            if self.held.len() + taken.len() >= share {
                break;
            }
            let shard = (offset + i) % total;
            if self.held.contains_key(&shard) {
                continue;
            }
            let sent = Instant::now();
            if let Some(rev) = lease::take(&self.kv, &cluster::shard_lease(shard), &self.node).await {
                taken.push((shard, Held { revision: rev, renewed: sent }));
            }
        }
        if taken.is_empty() {
            return;
        }
        // the previous owner's writes must be here before the shard's runs are recovered
        if let Some(r) = self.ctx.store.replication() {
            if let Err(e) = r.catch_up(&self.ctx.js, CATCH_UP).await {
                // starting now could miss runs the previous owner left: give the leases back
                tracing::warn!(error = %e, "the replicated state did not catch up; not taking shards now");
                for (shard, held) in taken {
                    lease::release(&self.kv, &cluster::shard_lease(shard), held.revision).await;
                }
                return;
            }
        }
        for (shard, held) in taken {
            if held.renewed.elapsed() > FENCE_AFTER {
                // catching up took too long to trust this lease; the next tick takes it again
                continue;
            }
            match self.shards.start(shard).await {
                Ok(()) => {
                    tracing::info!(shard, node = self.node, "shard taken");
                    self.held.insert(shard, held);
                    self.publish_renewals();
                }
                Err(e) => {
                    tracing::error!(shard, error = %e, "could not start a shard; giving its lease back");
                    lease::release(&self.kv, &cluster::shard_lease(shard), held.revision).await;
                }
            }
        }
    }

    /// Stops a shard, makes its state durable in the cluster, and releases its lease.
    async fn give_back(&mut self, shard: u16) {
        let Some(held) = self.held.remove(&shard) else { return };
        self.publish_renewals();
        self.shards.stop(shard, DRAIN).await;
        if let Err(e) = self.ctx.store.flush().await {
            tracing::warn!(shard, error = %e, "flush before handing a shard back failed");
        }
        lease::release(&self.kv, &cluster::shard_lease(shard), held.revision).await;
    }

    async fn leave(&mut self) {
        let shards: Vec<u16> = self.held.keys().copied().collect();
        for shard in shards {
            self.give_back(shard).await;
        }
        let _ = self.kv.delete(cluster::worker(&self.node)).await;
        tracing::info!(node = self.node, "left the cluster");
    }
}

#[cfg(test)]
mod tests {
    use super::fair_share;

    #[test]
    fn shares_add_up_and_differ_by_at_most_one() {
        for workers in 1..=20 {
            let shares: Vec<usize> = (0..workers).map(|i| fair_share(16, workers, i)).collect();
            assert_eq!(shares.iter().sum::<usize>(), 16, "{workers} workers");
            assert!(shares.iter().max().unwrap() - shares.iter().min().unwrap() <= 1);
        }
        assert_eq!(fair_share(16, 3, 0), 6);
        assert_eq!(fair_share(16, 3, 2), 5);
    }
}
