//! Key/value store entries (the Activepieces store piece); `entry_update` is the atomic
//! read-modify-write that counters and lists need.

use super::{from_json, to_json, Result, Store, StoreError};
use serde_json::Value;

/// Why an [`Store::entry_update`] closure declined to write the entry (`key "n" is not a
/// string`): a message for the user, given back as [`StoreError::Conflict`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct EntryRefused(pub String);

impl From<String> for EntryRefused {
    fn from(message: String) -> EntryRefused {
        EntryRefused(message)
    }
}

impl Store {
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

    /// Atomically replaces the value under `key` with `f(old)`; if `f` refuses, nothing is
    /// written and the refusal comes back as [`StoreError::Conflict`].
    pub fn entry_update(
        &self,
        key: &str,
        mut f: impl FnMut(Option<Value>) -> std::result::Result<Value, EntryRefused>,
    ) -> Result<Value> {
        loop {
            let old = self.entries.get(key.as_bytes())?;
            let old_value = old.as_ref().map(|b| from_json::<Value>(b)).transpose()?;
            let new = f(old_value).map_err(|refused| StoreError::Conflict(refused.0))?;
            let swapped = self.entries.compare_and_swap(key.as_bytes(), old, Some(to_json(&new)))?;
            if swapped.is_ok() {
                return Ok(new);
            }
        }
    }
}
