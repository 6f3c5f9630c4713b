//! Polling triggers: the Activepieces dedupe strategies over a piece's items, with the state
//! kept in the flow's store.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// One item a polling piece found, newest first in the list it returns.
#[derive(Debug, Clone, PartialEq)]
pub struct PollItem {
    pub id: String,
    /// Milliseconds since the epoch, for `TIMEBASED`.
    pub epoch_ms: Option<i64>,
    pub data: Value,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum DedupeStrategy {
    Timebased,
    LastItem,
}

/// What a trigger remembers between polls.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PollState {
    #[serde(default)]
    pub last_item_id: Option<String>,
    #[serde(default)]
    pub last_epoch_ms: Option<i64>,
    /// False until the first poll, which only records where the feed stands.
    #[serde(default)]
    pub primed: bool,
    #[serde(default)]
    pub consecutive_failures: u32,
    /// The schedule an npm trigger's `onEnable` asked for (`context.setSchedule`): its cron
    /// expression and time zone, polled on instead of `AP_TRIGGER_DEFAULT_POLL_INTERVAL`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cron: Option<(String, String)>,
}

/// The items that are new since `state`, oldest first (the order their runs start), and the
/// state to keep. The first poll primes the state and reports nothing, as Activepieces'
/// `onEnable` does.
pub fn new_items(strategy: DedupeStrategy, state: &PollState, items: Vec<PollItem>) -> (Vec<PollItem>, PollState) {
    let mut next = state.clone();
    next.primed = true;
    next.consecutive_failures = 0;
    let fresh: Vec<PollItem> = match strategy {
        DedupeStrategy::LastItem => {
            if let Some(first) = items.first() {
                next.last_item_id = Some(first.id.clone());
            }
            match &state.last_item_id {
                Some(last) => items.into_iter().take_while(|i| &i.id != last).collect(),
                None => items,
            }
        }
        DedupeStrategy::Timebased => {
            let newest = items.iter().filter_map(|i| i.epoch_ms).max();
            if let Some(n) = newest {
                next.last_epoch_ms = Some(next.last_epoch_ms.map_or(n, |l| l.max(n)));
            }
            match state.last_epoch_ms {
                Some(last) => items.into_iter().filter(|i| i.epoch_ms.is_some_and(|e| e > last)).collect(),
                None => items,
            }
        }
    };
    if !state.primed {
        return (Vec::new(), next);
    }
    let mut fresh = fresh;
    fresh.reverse();
    (fresh, next)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn item(id: &str, epoch: i64) -> PollItem {
        PollItem { id: id.into(), epoch_ms: Some(epoch), data: json!({"id": id}) }
    }

    #[test]
    fn last_item_reports_what_came_before_the_remembered_item() {
        let (none, s1) = new_items(DedupeStrategy::LastItem, &PollState::default(), vec![item("b", 2), item("a", 1)]);
        assert!(none.is_empty(), "the first poll only primes");
        let (fresh, s2) = new_items(DedupeStrategy::LastItem, &s1, vec![item("d", 4), item("c", 3), item("b", 2)]);
        assert_eq!(fresh.iter().map(|i| i.id.as_str()).collect::<Vec<_>>(), ["c", "d"]);
        let (again, _) = new_items(DedupeStrategy::LastItem, &s2, vec![item("d", 4), item("c", 3)]);
        assert!(again.is_empty());
    }

    #[test]
    fn timebased_reports_items_newer_than_the_last_seen_time() {
        let (_, s1) = new_items(DedupeStrategy::Timebased, &PollState::default(), vec![item("a", 10)]);
        let (fresh, s2) = new_items(DedupeStrategy::Timebased, &s1, vec![item("x", 5), item("b", 20), item("c", 15)]);
        assert_eq!(fresh.iter().map(|i| i.id.as_str()).collect::<Vec<_>>(), ["c", "b"]);
        assert_eq!(s2.last_epoch_ms, Some(20));
    }
}
