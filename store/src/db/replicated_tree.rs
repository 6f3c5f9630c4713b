//! The sled tree that replicates its writes: every table of [`Store`](super::Store) but `meta`
//! goes through it, so no write can skip the cluster by going to sled directly.

use crate::replication::Replication;
use std::sync::Arc;

/// The cluster's replication, set once when the store joins one.
pub(super) type Repl = Arc<std::sync::OnceLock<Arc<Replication>>>;

/// A sled tree whose writes are replicated once the store joins a cluster. Reads go to sled
/// (through `Deref`); `insert`, `remove` and `compare_and_swap` also queue the write for
/// JetStream.
#[derive(Clone)]
pub(super) struct RTree {
    pub(super) tree: sled::Tree,
    pub(super) name: &'static str,
    pub(super) replication: Repl,
}

impl std::ops::Deref for RTree {
    type Target = sled::Tree;

    fn deref(&self) -> &sled::Tree {
        &self.tree
    }
}

impl RTree {
    pub(super) fn insert<K: AsRef<[u8]>, V: Into<sled::IVec>>(
        &self,
        key: K,
        value: V,
    ) -> sled::Result<Option<sled::IVec>> {
        let value = value.into();
        let old = self.tree.insert(key.as_ref(), value.clone())?;
        if let Some(r) = self.replication.get() {
            r.record(self.name, key.as_ref(), Some(value));
        }
        Ok(old)
    }

    pub(super) fn remove<K: AsRef<[u8]>>(&self, key: K) -> sled::Result<Option<sled::IVec>> {
        let old = self.tree.remove(key.as_ref())?;
        if let Some(r) = self.replication.get() {
            r.record(self.name, key.as_ref(), None);
        }
        Ok(old)
    }

    pub(super) fn compare_and_swap<K: AsRef<[u8]>, OV: AsRef<[u8]>, NV: Into<sled::IVec>>(
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
