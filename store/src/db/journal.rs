//! The journal of each run: one self-contained record per step, keyed by shard so that a
//! shard's runs are one range. Record 0 is the trigger output a run starts from.

use super::{from_json, shard_run_key, to_json, Result, Store};
use crate::run::StepRecord;
use serde_json::Value;

impl Store {
    /// Appends one step record to a run's journal; returns its size in bytes.
    pub fn journal_step(&self, shard: u16, run_id: &str, record: &StepRecord) -> Result<usize> {
        let mut key = shard_run_key(shard, run_id);
        key.extend_from_slice(&record.seq.to_be_bytes());
        let bytes = to_json(record);
        let size = bytes.len();
        self.journal.insert(key, bytes)?;
        Ok(size)
    }

    /// The journal of a run, in order.
    pub fn run_steps(&self, shard: u16, run_id: &str) -> Result<Vec<StepRecord>> {
        self.journal.scan_prefix(shard_run_key(shard, run_id)).map(|item| from_json(&item?.1)).collect()
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
}
