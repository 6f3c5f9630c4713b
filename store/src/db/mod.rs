//! The sled-backed store. One [`Store`] per process; cheap to clone.
//!
//! Records are JSON. Writes are applied at once and made durable by [`Store::flush`], which
//! callers await before they acknowledge a message or answer a client (sled groups
//! concurrent flushes into one fsync).
//!
//! Each table (a group of sled trees) has its module, holding its `impl Store` block; this one
//! keeps the store itself: opening, flushing, and joining a cluster.

mod api_keys;
mod app_listeners;
pub mod audit;
mod connections;
mod entries;
mod flows;
mod folders;
mod group_commit;
mod journal;
mod page;
mod pauses;
mod pieces;
mod projects;
mod replicated_tree;
mod runs;
mod sample_data;
mod timers;
pub mod users;
mod wasm_modules;

pub use api_keys::{hash_api_key, ApiKeyRecord};
pub use connections::EngineToken;
pub use entries::EntryRefused;
pub use flows::FlowFilter;
pub use folders::Folder;
pub use page::Page;
pub use projects::Project;
pub use runs::{RunCreation, RunFilter};
pub use sample_data::{SampleDataFile, TriggerEvent};

use crate::names::{meta, trees};
use crate::replication::Replication;
use group_commit::GroupCommit;
use replicated_tree::{RTree, Repl};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::path::Path;
use std::sync::Arc;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("storage error: {0}")]
    Sled(#[from] sled::Error),
    #[error("stored record is corrupt: {0}")]
    Corrupt(#[from] serde_json::Error),
    #[error("invalid pagination cursor {0:?}")]
    BadCursor(String),
    #[error("{0}")]
    Conflict(String),
    #[error("flushing the store to disk failed: {0}")]
    // not a #[source]: the message already ends with the cause
    Flush(FlushError),
    #[error("{0} does not exist")]
    NotFound(String),
    #[error(transparent)]
    Key(#[from] crate::connection::KeyError),
    #[error("connections need an encryption key; the store was opened without one")]
    Locked,
}

/// Why [`Store::flush`] could not make the writes so far durable.
#[derive(Debug, thiserror::Error)]
pub enum FlushError {
    #[error(transparent)]
    Disk(Arc<sled::Error>),
    #[error("the flush thread stopped")]
    FlusherStopped,
    #[error(transparent)]
    Replication(#[from] crate::replication::ReplicationError),
}

pub type Result<T> = std::result::Result<T, StoreError>;

/// How long a flush waits for JetStream to acknowledge the replicated writes.
const REPLICATION_WAIT: std::time::Duration = std::time::Duration::from_secs(10);
/// Replicated writes that may wait for JetStream before new work waits (see [`Store::room`]).
pub const MAX_REPLICATION_BACKLOG: u64 = 50_000;

#[derive(Clone)]
pub struct Store {
    group_commit: std::sync::Arc<GroupCommit>,
    meta: sled::Tree,
    projects: RTree,
    flows: RTree,
    flow_order: RTree,
    deleted_flows: RTree,
    versions: RTree,
    runs: RTree,
    run_order: RTree,
    journal: RTree,
    webhook_runs: RTree,
    active_runs: RTree,
    entries: RTree,
    api_keys: RTree,
    timers: RTree,
    timer_owners: RTree,
    wasm_modules: RTree,
    pieces: RTree,
    piece_blobs: RTree,
    connections: RTree,
    connection_names: RTree,
    connection_order: RTree,
    sample_data: RTree,
    trigger_events: RTree,
    app_listeners: RTree,
    folders: RTree,
    audit_events: RTree,
    audit_order: RTree,
    users: RTree,
    user_emails: RTree,
    sessions: RTree,
    members: RTree,
    members_by_user: RTree,
    invitations: RTree,
    cipher: std::sync::Arc<std::sync::OnceLock<crate::connection::Cipher>>,
    replication: Repl,
    /// Run creations of one webhook, one at a time (striped by webhook id): the consumer and
    /// the orphan sweep may both hold a webhook's message.
    creating: std::sync::Arc<[std::sync::Mutex<()>; 64]>,
}

fn to_json<T: Serialize>(v: &T) -> Vec<u8> {
    serde_json::to_vec(v).expect("records serialize")
}

fn from_json<T: DeserializeOwned>(b: &[u8]) -> Result<T> {
    Ok(serde_json::from_slice(b)?)
}

fn order_key(micros: u64, id: &str) -> Vec<u8> {
    let mut k = micros.to_be_bytes().to_vec();
    k.extend_from_slice(id.as_bytes());
    k
}

fn shard_run_key(shard: u16, run_id: &str) -> Vec<u8> {
    let mut k = shard.to_be_bytes().to_vec();
    k.extend_from_slice(run_id.as_bytes());
    k
}

impl Store {
    pub fn open(path: &Path) -> Result<Store> {
        // The page cache bounds the store's memory; 256 MiB keeps RSS flat under long loads.
        let db = sled::Config::new()
            .path(path)
            .mode(sled::Mode::HighThroughput)
            .cache_capacity(256 * 1024 * 1024)
            .flush_every_ms(Some(200))
            .open()?;
        let replication = Repl::default();
        let t = |name: &'static str| -> sled::Result<RTree> {
            Ok(RTree { tree: db.open_tree(name)?, name, replication: replication.clone() })
        };
        Ok(Store {
            meta: db.open_tree(trees::META)?,
            projects: t(trees::PROJECTS)?,
            flows: t(trees::FLOWS)?,
            flow_order: t(trees::FLOW_ORDER)?,
            deleted_flows: t(trees::DELETED_FLOWS)?,
            versions: t(trees::FLOW_VERSIONS)?,
            runs: t(trees::RUNS)?,
            run_order: t(trees::RUN_ORDER)?,
            journal: t(trees::RUN_JOURNAL)?,
            webhook_runs: t(trees::WEBHOOK_RUNS)?,
            active_runs: t(trees::ACTIVE_RUNS)?,
            entries: t(trees::STORE_ENTRIES)?,
            api_keys: t(trees::API_KEYS)?,
            timers: t(trees::TIMERS)?,
            timer_owners: t(trees::TIMER_OWNERS)?,
            wasm_modules: t(trees::WASM_MODULES)?,
            pieces: t(trees::PIECES)?,
            piece_blobs: t(trees::PIECE_BLOBS)?,
            connections: t(trees::CONNECTIONS)?,
            connection_names: t(trees::CONNECTION_NAMES)?,
            connection_order: t(trees::CONNECTION_ORDER)?,
            sample_data: t(trees::SAMPLE_DATA)?,
            trigger_events: t(trees::TRIGGER_EVENTS)?,
            app_listeners: t(trees::APP_LISTENERS)?,
            folders: t(trees::FOLDERS)?,
            audit_events: t(trees::AUDIT_EVENTS)?,
            audit_order: t(trees::AUDIT_ORDER)?,
            users: t(trees::USERS)?,
            user_emails: t(trees::USER_EMAILS)?,
            sessions: t(trees::SESSIONS)?,
            members: t(trees::MEMBERS)?,
            members_by_user: t(trees::MEMBERS_BY_USER)?,
            invitations: t(trees::INVITATIONS)?,
            cipher: Default::default(),
            replication,
            creating: std::sync::Arc::new(std::array::from_fn(|_| std::sync::Mutex::new(()))),
            group_commit: GroupCommit::start(db),
        })
    }

    /// Makes every write so far durable: on disk (concurrent callers share one fsync) and, in a
    /// cluster, acknowledged by JetStream.
    pub async fn flush(&self) -> Result<()> {
        self.group_commit.flush().await?;
        if let Some(r) = self.replication.get() {
            r.wait_acked(REPLICATION_WAIT).await.map_err(|e| StoreError::Flush(e.into()))?;
        }
        Ok(())
    }

    /// Replicated writes waiting for JetStream's acknowledgement (0 outside a cluster).
    pub fn replication_backlog(&self) -> u64 {
        self.replication.get().map_or(0, |r| r.backlog())
    }

    /// Waits (up to `within`) until the replication backlog is at most
    /// [`MAX_REPLICATION_BACKLOG`]: the push-back of new work (a shard consumer takes no new
    /// webhook meanwhile; the API refuses writes with 503). True when there is room.
    pub async fn room(&self, within: std::time::Duration) -> bool {
        match self.replication.get() {
            Some(r) => r.wait_backlog(MAX_REPLICATION_BACKLOG, within).await,
            None => true,
        }
    }

    /// Joins a cluster: from now on every write of a replicated tree is published to the
    /// `AP_STATE` stream, and the other processes' writes are applied here. Call once, before
    /// anything is written, from inside a tokio runtime.
    /// Its publisher and applier are tasks of `tasks`.
    pub fn replicate(
        &self,
        js: async_nats::jetstream::Context,
        origin: String,
        tasks: &crate::tasks::Tasks,
    ) -> Arc<Replication> {
        let trees = self.replicated_trees().into_iter().map(|t| (t.name, t.tree.clone())).collect();
        let r = Replication::start(js, origin, trees, self.meta.clone(), tasks);
        let _ = self.replication.set(r.clone());
        r
    }

    /// The cluster's replication, when this process is in one.
    pub fn replication(&self) -> Option<&Arc<Replication>> {
        self.replication.get()
    }

    /// Stamps a shard message with this process's state position (in a cluster), so that its
    /// consumer applies the replicated state that far before it handles the message.
    pub fn stamp(&self, headers: &mut async_nats::HeaderMap) {
        if let Some(r) = self.replication.get() {
            headers.insert(crate::names::subjects::STATE_REV_HEADER, r.position().to_string().as_str());
        }
    }

    /// The replicated-state position a message was stamped with (in a cluster; `None` outside
    /// one or without a stamp).
    pub fn stamp_of(&self, headers: Option<&async_nats::HeaderMap>) -> Option<u64> {
        self.replication.get()?;
        headers?.get(crate::names::subjects::STATE_REV_HEADER).and_then(|v| v.as_str().parse().ok())
    }

    /// Waits (up to `within`) until the replicated state through `seq` is applied here, and
    /// returns the position applied then.
    pub async fn wait_for_state(&self, seq: u64, within: std::time::Duration) -> u64 {
        let Some(r) = self.replication.get() else { return u64::MAX };
        if !r.wait_applied(seq, within).await {
            tracing::warn!(seq, applied = r.applied(), "replicated state is behind a message; it is redelivered later");
        }
        r.applied()
    }

    /// This process's stable id (chosen at first start, kept in `meta`).
    pub fn node_id(&self) -> Result<String> {
        if let Some(id) = self.meta.get(meta::NODE_ID)? {
            return Ok(String::from_utf8_lossy(&id).into_owned());
        }
        let id = crate::ids::new_ordered_id().to_lowercase();
        self.meta.insert(meta::NODE_ID, id.as_bytes())?;
        Ok(id)
    }

    fn replicated_trees(&self) -> Vec<&RTree> {
        vec![
            &self.projects,
            &self.flows,
            &self.flow_order,
            &self.deleted_flows,
            &self.versions,
            &self.runs,
            &self.run_order,
            &self.journal,
            &self.webhook_runs,
            &self.active_runs,
            &self.entries,
            &self.api_keys,
            &self.timers,
            &self.timer_owners,
            &self.wasm_modules,
            &self.pieces,
            &self.piece_blobs,
            &self.connections,
            &self.connection_names,
            &self.connection_order,
            &self.sample_data,
            &self.trigger_events,
            &self.app_listeners,
            &self.folders,
            &self.audit_events,
            &self.audit_order,
            &self.users,
            &self.user_emails,
            &self.sessions,
            &self.members,
            &self.members_by_user,
            &self.invitations,
        ]
    }
}

#[cfg(test)]
fn temp_store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    (dir, store)
}
