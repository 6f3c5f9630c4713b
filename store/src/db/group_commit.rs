//! Group commit of the local disk: many writers' flushes become one fsync.
//!
//! Kept apart from [`Store`](super::Store) because it owns a thread and its own locking, and
//! because sled's own async flush must never be used (see [`GroupCommit`]).

use super::{FlushError, Result, StoreError};

/// Group commit: one thread runs sled's blocking `flush` for every waiter at once.
///
/// sled 0.34's `flush_async` deadlocks when many callers flush concurrently (all its IO
/// threads end up waiting on each other; seen here under webhook load), so Troupe never
/// calls it. A caller takes a ticket; the flusher thread reads the newest ticket, flushes,
/// and publishes that ticket as done. A flush that starts after a ticket covers its writes.
pub(super) struct GroupCommit {
    requested: std::sync::Mutex<u64>,
    wake: std::sync::Condvar,
    /// The newest ticket flushed, or the error of the last attempt (shared by its waiters).
    done: tokio::sync::watch::Sender<std::result::Result<u64, std::sync::Arc<sled::Error>>>,
}

impl GroupCommit {
    pub(super) fn start(db: sled::Db) -> std::sync::Arc<GroupCommit> {
        let (done, _) = tokio::sync::watch::channel(Ok(0));
        let gc = std::sync::Arc::new(GroupCommit {
            requested: std::sync::Mutex::new(0),
            wake: std::sync::Condvar::new(),
            done,
        });
        let weak = std::sync::Arc::downgrade(&gc);
        std::thread::Builder::new()
            .name("troupe-sled-flush".into())
            .spawn(move || {
                let mut flushed = 0u64;
                loop {
                    let Some(gc) = weak.upgrade() else { return };
                    let target = {
                        let mut req = gc.requested.lock().expect("flush lock");
                        while *req == flushed {
                            let (r, timeout) =
                                gc.wake.wait_timeout(req, std::time::Duration::from_millis(200)).expect("flush lock");
                            req = r;
                            if timeout.timed_out() && *req == flushed {
                                break;
                            }
                        }
                        *req
                    };
                    if target == flushed {
                        continue; // idle: loop to notice when the store is dropped
                    }
                    let result = db.flush().map(|_| target).map_err(std::sync::Arc::new);
                    if result.is_ok() {
                        flushed = target;
                    }
                    let _previous = gc.done.send_replace(result);
                }
            })
            .expect("spawn the flush thread");
        gc
    }

    pub(super) async fn flush(&self) -> Result<()> {
        let ticket = {
            let mut req = self.requested.lock().expect("flush lock");
            *req += 1;
            *req
        };
        self.wake.notify_one();
        let mut rx = self.done.subscribe();
        loop {
            match &*rx.borrow_and_update() {
                Ok(done) if *done >= ticket => return Ok(()),
                Err(e) => return Err(StoreError::Flush(FlushError::Disk(e.clone()))),
                Ok(_) => {}
            }
            if rx.changed().await.is_err() {
                return Err(StoreError::Flush(FlushError::FlusherStopped));
            }
        }
    }
}
