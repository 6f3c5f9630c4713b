//! The engine's start and stop: the one place that wires the shared context, the shard actors
//! and, in a cluster, the lease keeper.
//!
//! Actors run on the actix `System` the binary starts on a tokio runtime; consumer loops are
//! tokio tasks that hand runs to the actors through their `Addr`.

use crate::cluster::LeaseKeeper;
use crate::context::EngineCtx;
use crate::shard::Shards;
use std::sync::Arc;

pub use crate::context::EngineError;

/// How long a graceful stop waits for runs in flight before it leaves them to recovery.
pub const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(20);

pub struct Engine {
    ctx: Arc<EngineCtx>,
    shards: Arc<Shards>,
    leases: Option<LeaseKeeper>,
}

impl Engine {
    /// Starts the engine on `ctx` (its tasks are `ctx.tasks`). Outside a cluster (`node` is
    /// `None`) this process owns every shard; in a cluster it takes its fair share through
    /// leases. Call from inside the actix `System`.
    pub async fn start(ctx: EngineCtx, node: Option<String>) -> Result<Engine, EngineError> {
        let ctx = Arc::new(ctx);
        let shards = Arc::new(Shards::new(ctx.clone()).await?);
        let leases = match node {
            None => {
                for shard in 0..ctx.config.shards {
                    shards.start(shard).await?;
                }
                None
            }
            Some(node) => Some(LeaseKeeper::start(ctx.clone(), shards.clone(), node).await?),
        };
        Ok(Engine { ctx, shards, leases })
    }

    /// The shards this process owns now.
    pub fn owned_shards(&self) -> Vec<u16> {
        self.shards.owned()
    }

    /// Stops consuming, then lets the runs in flight finish for up to [`SHUTDOWN_GRACE`].
    /// Runs still going after that stay `RUNNING` in the journal and are recovered at the next
    /// start; unacked messages are redelivered.
    pub async fn stop(self) {
        self.shards.stop_consuming().await;
        let deadline = tokio::time::Instant::now() + SHUTDOWN_GRACE;
        while !self.ctx.executing.is_empty() && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        let left = self.ctx.executing.len();
        if left > 0 {
            tracing::warn!(left, "runs still executing at shutdown; they will be recovered at next start");
        }
        if let Some(leases) = self.leases {
            // hands the shards back now, so that the others need not wait for their expiry
            leases.stop().await;
        }
        let _ = self.ctx.store.flush().await;
    }
}
