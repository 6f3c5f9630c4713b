//! The sled-backed store. One [`Store`] per process; cheap to clone.
//!
//! Records are JSON. Writes are applied at once and made durable by [`Store::flush`], which
//! callers await before they acknowledge a message or answer a client (sled groups
//! concurrent flushes into one fsync).

use crate::connection::Connection;
use crate::flow::{Flow, FlowStatus, FlowVersion};
use crate::names::{meta, trees};
use crate::replication::Replication;
use crate::run::{FlowRun, PauseMetadata, Resume, ResumeBy, RunStatus, StepRecord};
use crate::timer::Timer;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};
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
    Flush(String),
    #[error("{0} does not exist")]
    NotFound(String),
    #[error(transparent)]
    Key(#[from] crate::connection::KeyError),
    #[error("connections need an encryption key; the store was opened without one")]
    Locked,
}

pub type Result<T> = std::result::Result<T, StoreError>;

/// Group commit: one thread runs sled's blocking `flush` for every waiter at once.
///
/// sled 0.34's `flush_async` deadlocks when many callers flush concurrently (all its IO
/// threads end up waiting on each other; seen here under webhook load), so Troupe never
/// calls it. A caller takes a ticket; the flusher thread reads the newest ticket, flushes,
/// and publishes that ticket as done. A flush that starts after a ticket covers its writes.
struct GroupCommit {
    requested: std::sync::Mutex<u64>,
    wake: std::sync::Condvar,
    done: tokio::sync::watch::Sender<std::result::Result<u64, String>>,
}

impl GroupCommit {
    fn start(db: sled::Db) -> std::sync::Arc<GroupCommit> {
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
                    let result = db.flush().map(|_| target).map_err(|e| e.to_string());
                    if result.is_ok() {
                        flushed = target;
                    }
                    let _previous = gc.done.send_replace(result);
                }
            })
            .expect("spawn the flush thread");
        gc
    }

    async fn flush(&self) -> Result<()> {
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
                Err(e) => return Err(StoreError::Flush(e.clone())),
                Ok(_) => {}
            }
            if rx.changed().await.is_err() {
                return Err(StoreError::Flush("the flush thread stopped".into()));
            }
        }
    }
}

/// How long a flush waits for JetStream to acknowledge the replicated writes.
const REPLICATION_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

type Repl = Arc<std::sync::OnceLock<Arc<Replication>>>;

/// A sled tree whose writes are replicated once the store joins a cluster. Reads go to sled
/// (through `Deref`); `insert`, `remove` and `compare_and_swap` also queue the write for
/// JetStream.
#[derive(Clone)]
struct RTree {
    tree: sled::Tree,
    name: &'static str,
    replication: Repl,
}

impl std::ops::Deref for RTree {
    type Target = sled::Tree;

    fn deref(&self) -> &sled::Tree {
        &self.tree
    }
}

impl RTree {
    fn insert<K: AsRef<[u8]>, V: Into<sled::IVec>>(&self, key: K, value: V) -> sled::Result<Option<sled::IVec>> {
        let value = value.into();
        let old = self.tree.insert(key.as_ref(), value.clone())?;
        if let Some(r) = self.replication.get() {
            r.record(self.name, key.as_ref(), Some(value));
        }
        Ok(old)
    }

    fn remove<K: AsRef<[u8]>>(&self, key: K) -> sled::Result<Option<sled::IVec>> {
        let old = self.tree.remove(key.as_ref())?;
        if let Some(r) = self.replication.get() {
            r.record(self.name, key.as_ref(), None);
        }
        Ok(old)
    }

    fn compare_and_swap<K: AsRef<[u8]>, OV: AsRef<[u8]>, NV: Into<sled::IVec>>(
        &self,
        key: K,
        old: Option<OV>,
        new: Option<NV>,
    ) -> sled::Result<std::result::Result<(), sled::CompareAndSwapError>> {
        let new: Option<sled::IVec> = new.map(Into::into);
        let result = self.tree.compare_and_swap(key.as_ref(), old, new.clone())?;
        if let (Ok(()), Some(r)) = (&result, self.replication.get()) {
            r.record(self.name, key.as_ref(), new);
        }
        Ok(result)
    }
}

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
    connections: RTree,
    connection_names: RTree,
    connection_order: RTree,
    cipher: std::sync::Arc<std::sync::OnceLock<crate::connection::Cipher>>,
    replication: Repl,
}

/// A page of a list, as Activepieces answers: `{data, next, previous}`.
#[derive(Debug, Serialize)]
pub struct Page<T> {
    pub data: Vec<T>,
    pub next: Option<String>,
    pub previous: Option<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Project {
    pub id: String,
    pub created: String,
    pub display_name: String,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApiKeyRecord {
    pub id: String,
    pub created: String,
    pub display_name: String,
    /// The one project this key may see; none for an admin key (`AP_API_KEY`, the first-start
    /// key), which sees every project and manages keys and projects.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project_id: Option<String>,
}

/// What happened when a webhook asked for a run.
#[derive(Debug, PartialEq, Eq)]
pub enum RunCreation {
    Created,
    /// This webhook already made a run (a redelivery): its id.
    Existing(String),
}

#[derive(Default, Debug, Clone)]
pub struct FlowFilter {
    pub project_id: Option<String>,
    pub folder_id: Option<String>,
    pub status: Option<FlowStatus>,
}

#[derive(Default, Debug, Clone)]
pub struct RunFilter {
    pub project_id: Option<String>,
    pub flow_ids: Vec<String>,
    pub statuses: Vec<RunStatus>,
    pub created_after: Option<String>,
    pub created_before: Option<String>,
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

fn connection_name_key(project: &str, external_id: &str) -> Vec<u8> {
    let mut k = project.as_bytes().to_vec();
    k.push(0);
    k.extend_from_slice(external_id.as_bytes());
    k
}

fn shard_run_key(shard: u16, run_id: &str) -> Vec<u8> {
    let mut k = shard.to_be_bytes().to_vec();
    k.extend_from_slice(run_id.as_bytes());
    k
}

/// `owner ‖ 0 ‖ timer id`; with an empty id, the prefix of all of an owner's timers.
fn timer_owner_key(owner: &str, timer_id: &str) -> Vec<u8> {
    let mut k = owner.as_bytes().to_vec();
    k.push(0);
    k.extend_from_slice(timer_id.as_bytes());
    k
}

/// Hashes an API key for storage; the key itself is never stored.
pub fn hash_api_key(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
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
            connections: t(trees::CONNECTIONS)?,
            connection_names: t(trees::CONNECTION_NAMES)?,
            connection_order: t(trees::CONNECTION_ORDER)?,
            cipher: Default::default(),
            replication,
            group_commit: GroupCommit::start(db),
        })
    }

    /// Makes every write so far durable: on disk (concurrent callers share one fsync) and, in a
    /// cluster, acknowledged by JetStream.
    pub async fn flush(&self) -> Result<()> {
        self.group_commit.flush().await?;
        if let Some(r) = self.replication.get() {
            r.wait_acked(REPLICATION_WAIT).await.map_err(StoreError::Flush)?;
        }
        Ok(())
    }

    /// Joins a cluster: from now on every write of a replicated tree is published to the
    /// `AP_STATE` stream, and the other processes' writes are applied here. Call once, before
    /// anything is written, from inside a tokio runtime.
    pub fn replicate(&self, js: async_nats::jetstream::Context, origin: String) -> Arc<Replication> {
        let trees = self.replicated_trees().into_iter().map(|t| (t.name, t.tree.clone())).collect();
        let r = Replication::start(js, origin, trees, self.meta.clone());
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

    /// Sets the default project (in a cluster, the one the cluster agreed on).
    pub fn set_default_project(&self, id: &str) -> Result<()> {
        if !self.projects.contains_key(id.as_bytes())? {
            let project =
                Project { id: id.to_string(), created: crate::ids::now_iso(), display_name: "Default project".into() };
            self.projects.insert(project.id.as_bytes(), to_json(&project))?;
        }
        self.meta.insert(meta::DEFAULT_PROJECT, id.as_bytes())?;
        Ok(())
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
            &self.connections,
            &self.connection_names,
            &self.connection_order,
        ]
    }

    // ---- projects -------------------------------------------------------------------

    /// The default project, created on first start.
    pub fn ensure_default_project(&self) -> Result<String> {
        if let Some(id) = self.meta.get(meta::DEFAULT_PROJECT)? {
            return Ok(String::from_utf8_lossy(&id).into_owned());
        }
        let project = Project {
            id: crate::ids::new_id(),
            created: crate::ids::now_iso(),
            display_name: "Default Project".into(),
        };
        self.projects.insert(project.id.as_bytes(), to_json(&project))?;
        self.meta.insert(meta::DEFAULT_PROJECT, project.id.as_bytes())?;
        Ok(project.id)
    }

    pub fn create_project(&self, display_name: &str) -> Result<Project> {
        let project =
            Project { id: crate::ids::new_id(), created: crate::ids::now_iso(), display_name: display_name.into() };
        self.projects.insert(project.id.as_bytes(), to_json(&project))?;
        Ok(project)
    }

    pub fn get_project(&self, id: &str) -> Result<Option<Project>> {
        self.projects.get(id.as_bytes())?.map(|v| from_json(&v)).transpose()
    }

    pub fn list_projects(&self) -> Result<Vec<Project>> {
        self.projects.iter().values().map(|v| from_json(&v?)).collect()
    }

    pub fn project_exists(&self, id: &str) -> Result<bool> {
        Ok(self.projects.contains_key(id.as_bytes())?)
    }

    // ---- connections ----------------------------------------------------------------

    /// Installs the encryption key. The first key ever used is remembered through a sealed
    /// check value, so that a different key later fails here rather than at the first run.
    pub fn unlock(&self, key: &str) -> Result<()> {
        const CHECK: &[u8] = b"troupe encryption key check";
        let cipher = crate::connection::Cipher::from_key(key)?;
        match self.meta.get(b"encryption_check")? {
            Some(sealed) => {
                let plain = cipher.open(&String::from_utf8_lossy(&sealed))?;
                if plain != CHECK {
                    return Err(crate::connection::KeyError::Wrong.into());
                }
            }
            None => {
                self.meta.insert(b"encryption_check", cipher.seal(CHECK).as_bytes())?;
            }
        }
        let _ = self.cipher.set(cipher);
        Ok(())
    }

    fn cipher(&self) -> Result<&crate::connection::Cipher> {
        self.cipher.get().ok_or(StoreError::Locked)
    }

    /// Creates or replaces the connection `external_id` of `project` (its id stays).
    pub fn upsert_connection(&self, mut conn: Connection, value: &serde_json::Value) -> Result<Connection> {
        let name_key = connection_name_key(&conn.project_id, &conn.external_id);
        conn.sealed_value = self.cipher()?.seal(&to_json(value));
        if let Some(existing) =
            self.connection_names.get(&name_key)?.and_then(|id| self.get_connection_raw(&id).ok()?)
        {
            conn.id = existing.id;
            conn.created = existing.created;
            conn.created_micros = existing.created_micros;
        } else {
            self.connection_order.insert(order_key(conn.created_micros, &conn.id), &[])?;
            self.connection_names.insert(name_key, conn.id.as_bytes())?;
        }
        self.connections.insert(conn.id.as_bytes(), to_json(&conn))?;
        Ok(conn)
    }

    fn get_connection_raw(&self, id: &[u8]) -> Result<Option<Connection>> {
        self.connections.get(id)?.map(|v| from_json(&v)).transpose()
    }

    pub fn get_connection(&self, id: &str) -> Result<Option<Connection>> {
        self.get_connection_raw(id.as_bytes())
    }

    pub fn connection_by_name(&self, project: &str, external_id: &str) -> Result<Option<Connection>> {
        match self.connection_names.get(connection_name_key(project, external_id))? {
            Some(id) => self.get_connection_raw(&id),
            None => Ok(None),
        }
    }

    /// The decrypted value of a connection.
    pub fn connection_value(&self, conn: &Connection) -> Result<serde_json::Value> {
        from_json(&self.cipher()?.open(&conn.sealed_value)?)
    }

    pub fn delete_connection(&self, conn: &Connection) -> Result<()> {
        self.connections.remove(conn.id.as_bytes())?;
        self.connection_names.remove(connection_name_key(&conn.project_id, &conn.external_id))?;
        self.connection_order.remove(order_key(conn.created_micros, &conn.id))?;
        Ok(())
    }

    pub fn list_connections(
        &self,
        project: Option<&str>,
        limit: usize,
        cursor: Option<&str>,
    ) -> Result<Page<Connection>> {
        paginate(&self.connection_order, limit, cursor, |id| {
            Ok(self.get_connection(id)?.filter(|c| project.is_none_or(|p| p == c.project_id)))
        })
    }

    // ---- API keys -------------------------------------------------------------------

    pub fn add_api_key(&self, key: &str, display_name: &str) -> Result<()> {
        let rec = ApiKeyRecord {
            id: crate::ids::new_id(),
            created: crate::ids::now_iso(),
            display_name: display_name.into(),
            project_id: None,
        };
        self.api_keys.insert(hash_api_key(key).as_bytes(), to_json(&rec))?;
        Ok(())
    }

    /// A new key for one project; the key itself is returned once and only its hash is kept.
    pub fn create_project_key(&self, project_id: &str, display_name: &str) -> Result<(ApiKeyRecord, String)> {
        let key = format!("sk-{}{}", crate::ids::new_id(), crate::ids::new_id());
        let rec = ApiKeyRecord {
            id: crate::ids::new_id(),
            created: crate::ids::now_iso(),
            display_name: display_name.into(),
            project_id: Some(project_id.into()),
        };
        self.api_keys.insert(hash_api_key(&key).as_bytes(), to_json(&rec))?;
        Ok((rec, key))
    }

    /// The record of a key, when it is valid.
    pub fn api_key(&self, key: &str) -> Result<Option<ApiKeyRecord>> {
        self.api_keys.get(hash_api_key(key).as_bytes())?.map(|v| from_json(&v)).transpose()
    }

    pub fn list_api_keys(&self) -> Result<Vec<ApiKeyRecord>> {
        self.api_keys.iter().values().map(|v| from_json(&v?)).collect()
    }

    /// Revokes the key with this id; false when there is none.
    pub fn revoke_api_key(&self, id: &str) -> Result<bool> {
        for item in self.api_keys.iter() {
            let (hash, v) = item?;
            let rec: ApiKeyRecord = from_json(&v)?;
            if rec.id == id {
                self.api_keys.remove(hash)?;
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Stores a WASI module under its id (the sha-256 of its bytes, hex); idempotent.
    pub fn put_wasm_module(&self, id: &str, wasm: &[u8]) -> Result<()> {
        self.wasm_modules.insert(id.as_bytes(), wasm)?;
        Ok(())
    }

    pub fn wasm_module(&self, id: &str) -> Result<Option<Vec<u8>>> {
        Ok(self.wasm_modules.get(id.as_bytes())?.map(|v| v.to_vec()))
    }

    pub fn has_wasm_module(&self, id: &str) -> bool {
        self.wasm_modules.contains_key(id.as_bytes()).unwrap_or(false)
    }

    pub fn has_api_keys(&self) -> bool {
        !self.api_keys.is_empty()
    }

    // ---- flows and versions ---------------------------------------------------------

    pub fn insert_new_flow(&self, flow: &Flow, version: &FlowVersion, micros: u64) -> Result<()> {
        self.versions.insert(version.id.as_bytes(), to_json(version))?;
        self.flows.insert(flow.id.as_bytes(), to_json(flow))?;
        self.flow_order.insert(order_key(micros, &flow.id), &[])?;
        Ok(())
    }

    pub fn put_flow(&self, flow: &Flow) -> Result<()> {
        self.flows.insert(flow.id.as_bytes(), to_json(flow))?;
        Ok(())
    }

    pub fn get_flow(&self, id: &str) -> Result<Option<Flow>> {
        self.flows.get(id.as_bytes())?.map(|b| from_json(&b)).transpose()
    }

    pub fn flow_was_deleted(&self, id: &str) -> Result<bool> {
        Ok(self.deleted_flows.contains_key(id.as_bytes())?)
    }

    /// Deletes a flow and its versions; its id is remembered so its webhooks answer 410.
    pub fn delete_flow(&self, id: &str) -> Result<Option<Flow>> {
        let Some(flow) = self.get_flow(id)? else {
            return Ok(None);
        };
        for item in self.flow_order.iter() {
            let (k, _) = item?;
            if &k[8..] == id.as_bytes() {
                self.flow_order.remove(k)?;
                break;
            }
        }
        for item in self.versions.iter() {
            let (k, v) = item?;
            let version: FlowVersion = from_json(&v)?;
            if version.flow_id == id {
                self.versions.remove(k)?;
            }
        }
        self.flows.remove(id.as_bytes())?;
        self.deleted_flows.insert(id.as_bytes(), crate::ids::now_iso().as_bytes())?;
        Ok(Some(flow))
    }

    pub fn put_version(&self, version: &FlowVersion) -> Result<()> {
        self.versions.insert(version.id.as_bytes(), to_json(version))?;
        Ok(())
    }

    pub fn get_version(&self, id: &str) -> Result<Option<FlowVersion>> {
        self.versions.get(id.as_bytes())?.map(|b| from_json(&b)).transpose()
    }

    pub fn list_flows(&self, filter: &FlowFilter, limit: usize, cursor: Option<&str>) -> Result<Page<Flow>> {
        paginate(&self.flow_order, limit, cursor, |id| {
            let Some(flow) = self.get_flow(id)? else {
                return Ok(None);
            };
            let keep = filter.project_id.as_ref().is_none_or(|p| *p == flow.project_id)
                && filter.folder_id.as_ref().is_none_or(|f| Some(f) == flow.folder_id.as_ref())
                && filter.status.is_none_or(|s| s == flow.status);
            Ok(keep.then_some(flow))
        })
    }

    // ---- runs -----------------------------------------------------------------------

    /// Records a new run made by a webhook, unless that webhook already made one.
    ///
    /// The webhook → run mapping is written first. sled keeps a prefix of writes across a
    /// crash, so a run record never exists without its mapping; a mapping whose run was lost
    /// gets its run recreated under the same id (`run.id` is updated).
    pub fn create_run(&self, run: &mut FlowRun, trigger: &StepRecord) -> Result<RunCreation> {
        if let Some(webhook_id) = &run.webhook_id {
            let prev = self.webhook_runs.compare_and_swap(
                webhook_id.as_bytes(),
                None as Option<&[u8]>,
                Some(run.id.as_bytes()),
            )?;
            if let Err(existing) = prev {
                let id = existing.current.map(|v| String::from_utf8_lossy(&v).into_owned()).unwrap_or_default();
                if self.runs.contains_key(id.as_bytes())? {
                    return Ok(RunCreation::Existing(id));
                }
                run.id = id;
            }
        }
        // the trigger record before the header: a header never exists without its input
        self.journal_step(run.shard, &run.id, trigger)?;
        self.runs.insert(run.id.as_bytes(), to_json(run))?;
        self.run_order.insert(order_key(run.created_micros, &run.id), &[])?;
        if !run.status.is_terminal() {
            self.active_runs.insert(shard_run_key(run.shard, &run.id), &[])?;
        }
        Ok(RunCreation::Created)
    }

    pub fn run_for_webhook(&self, webhook_id: &str) -> Result<Option<String>> {
        Ok(self.webhook_runs.get(webhook_id.as_bytes())?.map(|v| String::from_utf8_lossy(&v).into_owned()))
    }

    /// Writes the run header; a terminal run leaves the set of active runs.
    pub fn put_run(&self, run: &FlowRun) -> Result<()> {
        self.runs.insert(run.id.as_bytes(), to_json(run))?;
        if run.status.is_terminal() {
            self.active_runs.remove(shard_run_key(run.shard, &run.id))?;
        }
        Ok(())
    }

    /// Changes a run header atomically: `f` edits the stored run, or refuses with a reason
    /// (`StoreError::Conflict`). Membership of the active set follows the new status.
    pub fn update_run(
        &self,
        id: &str,
        mut f: impl FnMut(&mut FlowRun) -> std::result::Result<(), String>,
    ) -> Result<FlowRun> {
        loop {
            let old = self.runs.get(id.as_bytes())?.ok_or_else(|| StoreError::NotFound(format!("flow run {id:?}")))?;
            let mut run: FlowRun = from_json(&old)?;
            let was_terminal = run.status.is_terminal();
            f(&mut run).map_err(StoreError::Conflict)?;
            let swapped = self.runs.compare_and_swap(id.as_bytes(), Some(old), Some(to_json(&run)))?;
            if swapped.is_ok() {
                // the active set changes only when the run starts or stops being terminal
                match (was_terminal, run.status.is_terminal()) {
                    (false, true) => {
                        self.active_runs.remove(shard_run_key(run.shard, &run.id))?;
                    }
                    (true, false) => {
                        self.active_runs.insert(shard_run_key(run.shard, &run.id), &[])?;
                    }
                    _ => {}
                }
                return Ok(run);
            }
        }
    }

    /// Forgets a run's steps but keeps its trigger record, for a retry that starts over.
    pub fn clear_steps(&self, shard: u16, run_id: &str) -> Result<()> {
        let prefix = shard_run_key(shard, run_id);
        for item in self.journal.scan_prefix(&prefix) {
            let (k, _) = item?;
            if k[prefix.len()..] != 0u32.to_be_bytes() {
                self.journal.remove(k)?;
            }
        }
        Ok(())
    }

    /// The trigger output a run started from (its journal's first record).
    pub fn trigger_output(&self, shard: u16, run_id: &str) -> Result<Value> {
        let mut key = shard_run_key(shard, run_id);
        key.extend_from_slice(&0u32.to_be_bytes());
        Ok(match self.journal.get(key)? {
            Some(b) => from_json::<StepRecord>(&b)?.output,
            None => Value::Null,
        })
    }

    pub fn get_run(&self, id: &str) -> Result<Option<FlowRun>> {
        self.runs.get(id.as_bytes())?.map(|b| from_json(&b)).transpose()
    }

    /// Ids of the runs of `shard` that have not reached a terminal status, oldest first.
    pub fn active_runs(&self, shard: u16) -> Result<Vec<FlowRun>> {
        let mut out = Vec::new();
        for item in self.active_runs.scan_prefix(shard.to_be_bytes()) {
            let (k, _) = item?;
            let id = String::from_utf8_lossy(&k[2..]).into_owned();
            if let Some(run) = self.get_run(&id)? {
                out.push(run);
            }
        }
        out.sort_by_key(|r| r.created_micros);
        Ok(out)
    }

    pub fn list_runs(&self, filter: &RunFilter, limit: usize, cursor: Option<&str>) -> Result<Page<FlowRun>> {
        paginate(&self.run_order, limit, cursor, |id| {
            let Some(run) = self.get_run(id)? else {
                return Ok(None);
            };
            let keep = filter.project_id.as_ref().is_none_or(|p| *p == run.project_id)
                && (filter.flow_ids.is_empty() || filter.flow_ids.contains(&run.flow_id))
                && (filter.statuses.is_empty() || filter.statuses.contains(&run.status))
                && filter.created_after.as_ref().is_none_or(|t| run.created >= *t)
                && filter.created_before.as_ref().is_none_or(|t| run.created <= *t);
            Ok(keep.then_some(run))
        })
    }

    /// Appends one step record to a run's journal.
    pub fn journal_step(&self, shard: u16, run_id: &str, record: &StepRecord) -> Result<()> {
        let mut key = shard_run_key(shard, run_id);
        key.extend_from_slice(&record.seq.to_be_bytes());
        self.journal.insert(key, to_json(record))?;
        Ok(())
    }

    /// The journal of a run, in order.
    pub fn run_steps(&self, shard: u16, run_id: &str) -> Result<Vec<StepRecord>> {
        self.journal.scan_prefix(shard_run_key(shard, run_id)).map(|item| from_json(&item?.1)).collect()
    }

    // ---- pauses and resumes ----------------------------------------------------------

    /// Requeues a paused run with `payload` for its paused step, if `by` may resume it.
    /// Compare-and-swap: of two racing resumes exactly one wins; the other gets a conflict.
    pub fn resume_run(
        &self,
        run_id: &str,
        by: ResumeBy<'_>,
        payload: Value,
        reply_to: Option<String>,
    ) -> Result<FlowRun> {
        let run = self.update_run(run_id, |run| {
            if run.status != RunStatus::Paused {
                return Err(match run.status {
                    s if s.is_terminal() => format!("the run already ended as {}", s.as_str()),
                    s => format!("the run is {}, not waiting to be resumed", s.as_str()),
                });
            }
            let pause = run.pause.clone().ok_or("the run has no pause to resume")?;
            let matches = match (&pause, by) {
                (PauseMetadata::Delay { .. }, ResumeBy::Timer) => true,
                (PauseMetadata::Webhook { request_id, .. }, ResumeBy::Request(asked)) => request_id == asked,
                (PauseMetadata::Webhook { .. }, ResumeBy::AnyWebhook) => true,
                _ => false,
            };
            if !matches {
                return Err("this request does not resume the run's current pause (already resumed?)".into());
            }
            let (step, path) = pause.step();
            run.resume =
                Some(Resume { step_name: step.to_string(), loop_path: path.to_vec(), payload: payload.clone() });
            run.pause = None;
            run.status = run.status.transition(RunStatus::Queued).map_err(|e| e.to_string())?;
            run.updated = crate::ids::now_iso();
            if reply_to.is_some() {
                run.reply_to = reply_to.clone();
            }
            Ok(())
        })?;
        self.remove_timers_of(&crate::timer::run_owner(run_id))?;
        Ok(run)
    }

    // ---- timers -----------------------------------------------------------------------

    pub fn add_timer(&self, timer: &Timer) -> Result<()> {
        self.timers.insert(timer.key(), to_json(timer))?;
        self.timer_owners.insert(timer_owner_key(&timer.owner, &timer.id), timer.key())?;
        Ok(())
    }

    pub fn remove_timer(&self, timer: &Timer) -> Result<()> {
        self.timers.remove(timer.key())?;
        self.timer_owners.remove(timer_owner_key(&timer.owner, &timer.id))?;
        Ok(())
    }

    /// Removes every timer of `owner` (a flow's schedule, a run's pause timers).
    pub fn remove_timers_of(&self, owner: &str) -> Result<()> {
        for item in self.timer_owners.scan_prefix(timer_owner_key(owner, "")) {
            let (k, timer_key) = item?;
            self.timers.remove(timer_key)?;
            self.timer_owners.remove(k)?;
        }
        Ok(())
    }

    /// Timers due at or before `now_ms`, earliest first, at most `limit`.
    pub fn due_timers(&self, now_ms: u64, limit: usize) -> Result<Vec<Timer>> {
        let mut end = (now_ms + 1).to_be_bytes().to_vec();
        end.truncate(8);
        self.timers.range(..end).take(limit).map(|item| from_json(&item?.1)).collect()
    }

    /// How many timers wait, due or not. Walks the tree: for sampled gauges only.
    pub fn pending_timers(&self) -> usize {
        self.timers.len()
    }

    /// Deletes ended runs created before `before_micros`, with their journals; returns how many.
    pub fn delete_runs_before(&self, before_micros: u64, limit: usize) -> Result<usize> {
        let mut deleted = 0;
        for item in self.run_order.range(..before_micros.to_be_bytes().to_vec()) {
            if deleted >= limit {
                break;
            }
            let (k, _) = item?;
            let id = String::from_utf8_lossy(&k[8..]).into_owned();
            match self.get_run(&id)? {
                Some(run) if !run.status.is_terminal() => continue,
                Some(run) => {
                    for item in self.journal.scan_prefix(shard_run_key(run.shard, &run.id)) {
                        self.journal.remove(item?.0)?;
                    }
                    if let Some(w) = &run.webhook_id {
                        self.webhook_runs.remove(w.as_bytes())?;
                    }
                    self.runs.remove(id.as_bytes())?;
                }
                None => {}
            }
            self.run_order.remove(k)?;
            deleted += 1;
        }
        Ok(deleted)
    }

    // ---- key/value store entries ------------------------------------------------------

    pub fn entry_get(&self, key: &str) -> Result<Option<Value>> {
        self.entries.get(key.as_bytes())?.map(|b| from_json(&b)).transpose()
    }

    pub fn entry_put(&self, key: &str, value: &Value) -> Result<()> {
        self.entries.insert(key.as_bytes(), to_json(value))?;
        Ok(())
    }

    pub fn entry_delete(&self, key: &str) -> Result<()> {
        self.entries.remove(key.as_bytes())?;
        Ok(())
    }

    /// Atomically replaces the value under `key` with `f(old)`.
    pub fn entry_update(
        &self,
        key: &str,
        mut f: impl FnMut(Option<Value>) -> std::result::Result<Value, String>,
    ) -> Result<Value> {
        loop {
            let old = self.entries.get(key.as_bytes())?;
            let old_value = old.as_ref().map(|b| from_json::<Value>(b)).transpose()?;
            let new = f(old_value).map_err(StoreError::Conflict)?;
            let swapped = self.entries.compare_and_swap(key.as_bytes(), old, Some(to_json(&new)))?;
            if swapped.is_ok() {
                return Ok(new);
            }
        }
    }
}

/// Seek pagination over an order tree keyed `created (u64 be) ‖ id`, newest first.
/// `next` continues to older records, `previous` back to newer ones; a cursor is a
/// position, so records inserted meanwhile never shift a page.
fn paginate<T>(
    order: &sled::Tree,
    limit: usize,
    cursor: Option<&str>,
    mut load: impl FnMut(&str) -> Result<Option<T>>,
) -> Result<Page<T>> {
    let limit = limit.clamp(1, 1000);
    let (backwards, pos) = match cursor {
        None => (false, None),
        Some(c) => {
            let (dir, hexpos) = c.split_once(':').ok_or_else(|| StoreError::BadCursor(c.into()))?;
            let pos = hex::decode(hexpos).map_err(|_| StoreError::BadCursor(c.into()))?;
            match dir {
                "n" => (false, Some(pos)),
                "p" => (true, Some(pos)),
                _ => return Err(StoreError::BadCursor(c.into())),
            }
        }
    };
    let iter: Box<dyn Iterator<Item = sled::Result<(sled::IVec, sled::IVec)>>> = match (&pos, backwards) {
        (None, _) => Box::new(order.iter().rev()),
        (Some(p), false) => Box::new(order.range(..p.clone()).rev()),
        (Some(p), true) => {
            let mut start = p.clone();
            start.push(0);
            Box::new(order.range(start..))
        }
    };
    let mut keys = Vec::new();
    let mut data = Vec::new();
    let mut more = false;
    for item in iter {
        let (k, _) = item?;
        let id = String::from_utf8_lossy(&k[8..]).into_owned();
        if let Some(v) = load(&id)? {
            if data.len() == limit {
                more = true;
                break;
            }
            keys.push(k.to_vec());
            data.push(v);
        }
    }
    if backwards {
        keys.reverse();
        data.reverse();
    }
    let first = keys.first().map(|k| format!("p:{}", hex::encode(k)));
    let last = keys.last().map(|k| format!("n:{}", hex::encode(k)));
    let (next, previous) = if backwards {
        (last, if more { first } else { None })
    } else {
        (if more { last } else { None }, if pos.is_some() { first } else { None })
    };
    Ok(Page { data, next, previous })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        (dir, store)
    }

    #[test]
    fn pages_walk_forward_and_back_and_ignore_new_inserts() {
        let (_d, store) = temp_store();
        let tree = &store.flow_order;
        for i in 0..25u64 {
            tree.insert(order_key(i, &format!("id{i:02}")), &[]).unwrap();
        }
        let load = |id: &str| Ok(Some(id.to_string()));
        let p1 = paginate(tree, 10, None, load).unwrap();
        assert_eq!(p1.data.first().unwrap(), "id24");
        assert!(p1.previous.is_none());
        // a newer record arrives between pages: page 2 does not shift
        tree.insert(order_key(100, "id99"), &[]).unwrap();
        let p2 = paginate(tree, 10, p1.next.as_deref(), load).unwrap();
        assert_eq!(p2.data.first().unwrap(), "id14");
        let p3 = paginate(tree, 10, p2.next.as_deref(), load).unwrap();
        assert_eq!(p3.data.len(), 5);
        assert!(p3.next.is_none());
        let back = paginate(tree, 10, p3.previous.as_deref(), load).unwrap();
        assert_eq!(back.data, p2.data);
    }

    fn trigger_record() -> StepRecord {
        serde_json::from_value(serde_json::json!({
            "seq": 0, "stepName": "trigger", "type": "PIECE_TRIGGER", "status": "SUCCEEDED",
            "input": {}, "output": {"body": 1}, "duration": 0
        }))
        .unwrap()
    }

    fn queued_run(id: &str, shard: u16) -> FlowRun {
        serde_json::from_value(serde_json::json!({
            "id": id, "created": "x", "updated": "x", "projectId": "p", "flowId": "f",
            "flowVersionId": "v", "flowDisplayName": "F", "status": "QUEUED",
            "environment": "PRODUCTION", "webhookId": "w1", "shard": shard, "createdMicros": 1
        }))
        .unwrap()
    }

    #[test]
    fn a_webhook_makes_at_most_one_run() {
        let (_d, store) = temp_store();
        let mut run = queued_run("r1", 3);
        assert_eq!(store.create_run(&mut run, &trigger_record()).unwrap(), RunCreation::Created);
        run.id = "r2".into();
        assert_eq!(store.create_run(&mut run, &trigger_record()).unwrap(), RunCreation::Existing("r1".into()));
        assert_eq!(store.trigger_output(3, "r1").unwrap(), serde_json::json!({"body": 1}));
        assert_eq!(store.active_runs(3).unwrap().len(), 1);
    }

    #[test]
    fn a_mapping_whose_run_was_lost_gets_its_run_back_under_the_same_id() {
        let (_d, store) = temp_store();
        store.webhook_runs.insert("w1", "r1").unwrap();
        let mut run = queued_run("r9", 0);
        assert_eq!(store.create_run(&mut run, &trigger_record()).unwrap(), RunCreation::Created);
        assert_eq!(run.id, "r1");
        assert!(store.get_run("r1").unwrap().is_some());
    }

    #[test]
    fn api_keys_are_stored_hashed() {
        let (_d, store) = temp_store();
        store.add_api_key("sk-secret", "admin").unwrap();
        assert!(store.api_key("sk-secret").unwrap().is_some());
        assert!(store.api_key("sk-other").unwrap().is_none());
        assert!(store.api_keys.get("sk-secret").unwrap().is_none());
    }
}
