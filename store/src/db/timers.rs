//! The scheduler's timer queue, ordered by due time, and the owner index that removes a flow's
//! or a run's timers together.

use super::{from_json, to_json, Result, Store};
use crate::timer::Timer;

/// `owner ‖ 0 ‖ timer id`; with an empty id, the prefix of all of an owner's timers.
fn timer_owner_key(owner: &str, timer_id: &str) -> Vec<u8> {
    let mut k = owner.as_bytes().to_vec();
    k.push(0);
    k.extend_from_slice(timer_id.as_bytes());
    k
}

impl Store {
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
}
