//! Run headers, the webhook → run mapping that makes a redelivered webhook find its run, the
//! set of active runs that recovery scans, and retention.
//!
//! [`Store::update_run`] is the compare-and-swap that changes a header without losing a racing
//! write; in every write, membership of the active set follows the status.

use super::page::{paginate, Page};
use super::{from_json, order_key, shard_run_key, to_json, Result, Store, StoreError};
use crate::run::{FlowRun, RunConflict, RunStatus, StepRecord};

/// What happened when a webhook asked for a run.
#[derive(Debug, PartialEq, Eq)]
pub enum RunCreation {
    Created,
    /// This webhook already made a run (a redelivery): its id.
    Existing(String),
}

#[derive(Default, Debug, Clone)]
pub struct RunFilter {
    pub project_id: Option<String>,
    pub flow_ids: Vec<String>,
    pub statuses: Vec<RunStatus>,
    pub created_after: Option<String>,
    pub created_before: Option<String>,
    /// Runs with any of these tags.
    pub tags: Vec<String>,
    /// Runs whose failed step has this name.
    pub failed_step_name: Option<String>,
    /// Runs whose failure message contains this.
    pub failed_step_message: Option<String>,
    /// Only these runs.
    pub flow_run_ids: Vec<String>,
    /// Archived runs too.
    pub include_archived: bool,
}

impl RunFilter {
    /// Whether `run` passes the filter.
    pub fn keeps(&self, run: &FlowRun) -> bool {
        let failed = run.failed_step.as_ref();
        self.project_id.as_ref().is_none_or(|p| *p == run.project_id)
            && (self.flow_ids.is_empty() || self.flow_ids.contains(&run.flow_id))
            && (self.statuses.is_empty() || self.statuses.contains(&run.status()))
            && self.created_after.as_ref().is_none_or(|t| run.created >= *t)
            && self.created_before.as_ref().is_none_or(|t| run.created <= *t)
            && (self.tags.is_empty() || run.tags.iter().any(|t| self.tags.contains(t)))
            && self.failed_step_name.as_ref().is_none_or(|n| failed.is_some_and(|f| f.name == *n))
            && self.failed_step_message.as_ref().is_none_or(|m| failed.is_some_and(|f| f.message.contains(m.as_str())))
            && (self.flow_run_ids.is_empty() || self.flow_run_ids.contains(&run.id))
            && (self.include_archived || run.archived_at.is_none())
    }
}

impl Store {
    /// Records a new run made by a webhook, unless that webhook already made one.
    ///
    /// The webhook → run mapping is written first. sled keeps a prefix of writes across a
    /// crash, so a run record never exists without its mapping; a mapping whose run was lost
    /// gets its run recreated under the same id (`run.id` is updated).
    ///
    /// Two creations for one webhook (its consumer and the orphan sweep) take turns: otherwise
    /// the second could find the mapping before the first wrote its header, and record the run
    /// again.
    pub fn create_run(&self, run: &mut FlowRun, trigger: &StepRecord) -> Result<RunCreation> {
        let _turn = run.webhook_id.as_ref().map(|w| {
            let stripe = w.bytes().fold(0usize, |h, b| h.wrapping_mul(31).wrapping_add(b as usize));
            self.creating[stripe % self.creating.len()].lock().unwrap_or_else(|e| e.into_inner())
        });
        if let Some(webhook_id) = &run.webhook_id {
            let prev = self.webhook_runs.compare_and_swap(
                webhook_id.as_bytes(),
                None as Option<&[u8]>,
                Some(run.id.as_bytes()),
            )?;
            if let Err(existing) = prev {
                let id = existing.current.map(|v| String::from_utf8_lossy(&v).into_owned()).unwrap_or_default();
                if let Some(stored) = self.get_run(&id)? {
                    // a run recorded before this order of writes may have lost its place in the
                    // active set in a crash: put it back, so that recovery and the sweeper see it
                    let key = shard_run_key(stored.shard, &stored.id);
                    if !stored.status().is_terminal() && !self.active_runs.contains_key(&key)? {
                        self.active_runs.insert(key, &[])?;
                    }
                    // a crash between the header and its place in the listing (the message was
                    // not acked, so it comes back here): list it, finished or not
                    let order = order_key(stored.created_micros, &stored.id);
                    if !self.run_order.contains_key(&order)? {
                        self.run_order.insert(order, &[])?;
                    }
                    return Ok(RunCreation::Existing(id));
                }
                run.id = id;
            }
        }
        // The trigger record and the run's place among the active runs before its header: sled
        // keeps a prefix of writes across a crash, so a header never exists without its input,
        // nor an unfinished run that the recovery and the sweeper cannot find. (A place whose
        // header was lost is skipped by `active_runs`.)
        self.journal_step(run.shard, &run.id, trigger)?;
        if !run.status().is_terminal() {
            self.active_runs.insert(shard_run_key(run.shard, &run.id), &[])?;
        }
        self.runs.insert(run.id.as_bytes(), to_json(run))?;
        self.run_order.insert(order_key(run.created_micros, &run.id), &[])?;
        self.audit_run(run, "flow.run.started")?;
        Ok(RunCreation::Created)
    }

    pub fn run_for_webhook(&self, webhook_id: &str) -> Result<Option<String>> {
        Ok(self.webhook_runs.get(webhook_id.as_bytes())?.map(|v| String::from_utf8_lossy(&v).into_owned()))
    }

    /// Writes the run header; a terminal run leaves the set of active runs.
    pub fn put_run(&self, run: &FlowRun) -> Result<()> {
        self.runs.insert(run.id.as_bytes(), to_json(run))?;
        if run.status().is_terminal() && self.active_runs.remove(shard_run_key(run.shard, &run.id))?.is_some() {
            self.audit_run(run, "flow.run.finished")?;
        }
        Ok(())
    }

    /// Moves a stored run to `to` through the transition table, after `edit` has checked and
    /// changed the other fields (it sees the status before the move). A refusal or a forbidden
    /// transition is a `StoreError::Conflict` that says why.
    pub fn transition_run(
        &self,
        id: &str,
        to: RunStatus,
        mut edit: impl FnMut(&mut FlowRun) -> std::result::Result<(), RunConflict>,
    ) -> Result<FlowRun> {
        self.update_run(id, |run| {
            edit(run)?;
            run.transition(to)?;
            Ok(())
        })
    }

    /// Changes a run header atomically: `f` edits the stored run, or refuses with a reason
    /// (`StoreError::Conflict`). Membership of the active set follows the new status.
    pub fn update_run(
        &self,
        id: &str,
        mut f: impl FnMut(&mut FlowRun) -> std::result::Result<(), RunConflict>,
    ) -> Result<FlowRun> {
        loop {
            let old = self.runs.get(id.as_bytes())?.ok_or_else(|| StoreError::NotFound(format!("flow run {id:?}")))?;
            let mut run: FlowRun = from_json(&old)?;
            let was_terminal = run.status().is_terminal();
            f(&mut run).map_err(|e| StoreError::Conflict(e.to_string()))?;
            let swapped = self.runs.compare_and_swap(id.as_bytes(), Some(old), Some(to_json(&run)))?;
            if swapped.is_ok() {
                // the active set changes only when the run starts or stops being terminal
                match (was_terminal, run.status().is_terminal()) {
                    (false, true) => {
                        self.active_runs.remove(shard_run_key(run.shard, &run.id))?;
                        self.audit_run(&run, "flow.run.finished")?;
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
            Ok(filter.keeps(&run).then_some(run))
        })
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
                Some(run) if !run.status().is_terminal() => continue,
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::temp_store;

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
    fn a_run_that_lost_its_active_place_in_a_crash_gets_it_back_at_the_redelivery() {
        let (_d, store) = temp_store();
        let mut run = queued_run("r1", 3);
        store.create_run(&mut run, &trigger_record()).unwrap();
        // what a crash between the header and the active set left before this order of writes
        store.active_runs.remove(shard_run_key(3, "r1")).unwrap();
        assert!(store.active_runs(3).unwrap().is_empty());
        let mut again = queued_run("r2", 3);
        assert_eq!(store.create_run(&mut again, &trigger_record()).unwrap(), RunCreation::Existing("r1".into()));
        assert_eq!(store.active_runs(3).unwrap()[0].id, "r1", "recovery and the sweeper see it again");
    }

    #[test]
    fn a_run_that_lost_its_place_in_the_listing_in_a_crash_is_listed_at_the_redelivery() {
        let (_d, store) = temp_store();
        let mut run = queued_run("r1", 3);
        store.create_run(&mut run, &trigger_record()).unwrap();
        // a crash between the header and the listing: recovery ran the run to its end, and the
        // message, never acked, comes back
        store.run_order.remove(order_key(run.created_micros, "r1")).unwrap();
        store.transition_run("r1", RunStatus::Succeeded, |_| Ok(())).unwrap();
        let listed = |store: &Store| store.list_runs(&RunFilter::default(), 10, None).unwrap().data.len();
        assert_eq!(listed(&store), 0);
        let mut again = queued_run("r2", 3);
        assert_eq!(store.create_run(&mut again, &trigger_record()).unwrap(), RunCreation::Existing("r1".into()));
        assert_eq!(listed(&store), 1, "the run is listed again");
        store.create_run(&mut again, &trigger_record()).unwrap();
        assert_eq!(listed(&store), 1, "and once");
    }

    #[test]
    fn two_creations_of_one_webhook_at_once_make_one_run() {
        let (_d, store) = temp_store();
        for i in 0..300 {
            let webhook = format!("w{i}");
            let created: Vec<RunCreation> = std::thread::scope(|s| {
                let tries: Vec<_> = (0..2)
                    .map(|t| {
                        let (store, webhook) = (&store, webhook.clone());
                        s.spawn(move || {
                            let mut run = queued_run(&format!("r{i}-{t}"), 1);
                            run.webhook_id = Some(webhook);
                            store.create_run(&mut run, &trigger_record()).unwrap()
                        })
                    })
                    .collect();
                tries.into_iter().map(|t| t.join().unwrap()).collect()
            });
            let made = created.iter().filter(|c| **c == RunCreation::Created).count();
            assert_eq!(made, 1, "webhook {i}: {created:?}");
        }
        assert_eq!(store.list_runs(&RunFilter::default(), 1000, None).unwrap().data.len(), 300);
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
    fn a_status_moves_only_through_the_transition_table() {
        let (_d, store) = temp_store();
        let mut run = queued_run("r1", 0);
        store.create_run(&mut run, &trigger_record()).unwrap();
        let done = store.transition_run("r1", RunStatus::Canceled, |_| Ok(())).unwrap();
        assert_eq!(done.status(), RunStatus::Canceled);
        assert!(store.active_runs(0).unwrap().is_empty(), "a terminal run leaves the active set");
        // canceled is final: the refusal names both statuses, and the edit is not kept
        let refused = store.transition_run("r1", RunStatus::Running, |r| {
            r.flow_display_name = "changed".into();
            Ok(())
        });
        let Err(StoreError::Conflict(why)) = refused else { panic!("expected a conflict, got {refused:?}") };
        assert_eq!(why, "a run cannot go from CANCELED to RUNNING");
        assert_eq!(store.get_run("r1").unwrap().unwrap().flow_display_name, "F");
        // an edit's own refusal comes back as it was written
        let refused = store.transition_run("r1", RunStatus::Queued, |_| Err(RunConflict::refused("not now")));
        assert!(matches!(refused, Err(StoreError::Conflict(ref m)) if m == "not now"), "{refused:?}");
    }
}
