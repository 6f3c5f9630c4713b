//! Edits of a draft flow version: the structural half of Activepieces' flow operations.
//!
//! These functions only reshape the tree of steps. Loading, locking, validating and saving
//! happen in the caller, which owns the version lifecycle.

use crate::flow::{Action, ActionType, FlowVersion, Trigger};
use serde::Deserialize;
use serde_json::{Map, Value};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EditError {
    #[error("step {0:?} does not exist in this flow")]
    UnknownStep(String),
    #[error("a step named {0:?} already exists in this flow")]
    DuplicateStep(String),
    #[error("step {step:?} is {kind}, so nothing can be added {location}")]
    WrongParent { step: String, kind: &'static str, location: &'static str },
    #[error("step {step:?} has no branch {index}")]
    NoSuchBranch { step: String, index: usize },
    #[error("the trigger cannot be deleted")]
    TriggerNotDeletable,
    #[error("note {0:?} does not exist in this flow")]
    UnknownNote(String),
    #[error("a note must be an object")]
    NoteNotAnObject,
}

mod edits;
pub use edits::*;

#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum StepLocation {
    #[default]
    After,
    InsideLoop,
    InsideBranch,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImportFlowRequest {
    pub display_name: String,
    pub trigger: Trigger,
    #[serde(default)]
    pub schema_version: Option<String>,
    #[serde(default)]
    pub notes: Option<Value>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AddActionRequest {
    pub parent_step: String,
    #[serde(default)]
    pub step_location_relative_to_parent: StepLocation,
    #[serde(default)]
    pub branch_index: Option<usize>,
    pub action: Action,
}

#[derive(Debug, Deserialize)]
pub struct DeleteActionRequest {
    pub names: Vec<String>,
}

pub fn import_flow(version: &mut FlowVersion, req: ImportFlowRequest) {
    version.display_name = req.display_name;
    version.trigger = req.trigger;
    version.schema_version = req.schema_version;
    if let Some(notes) = req.notes {
        version.extra.insert("notes".into(), notes);
    }
}

/// Replaces the trigger, keeping the steps that follow it.
pub fn update_trigger(version: &mut FlowVersion, mut trigger: Trigger) {
    trigger.next_action = version.trigger.next_action.take();
    version.trigger = trigger;
}

fn find_mut<'a>(slot: &'a mut Option<Box<Action>>, name: &str) -> Option<&'a mut Action> {
    let a = slot.as_deref_mut()?;
    if a.name == name {
        return Some(a);
    }
    if let Some(found) = find_mut(&mut a.first_loop_action, name) {
        return Some(found);
    }
    if let Some(children) = a.children.as_mut() {
        for child in children.iter_mut() {
            if let Some(found) = find_mut(child, name) {
                return Some(found);
            }
        }
    }
    find_mut(&mut a.next_action, name)
}

/// The settings of the trigger or step named `name`.
pub fn settings_mut<'a>(version: &'a mut FlowVersion, name: &str) -> Result<&'a mut crate::flow::Settings, EditError> {
    if version.trigger.name == name {
        return Ok(&mut version.trigger.settings);
    }
    find_mut(&mut version.trigger.next_action, name)
        .map(|a| &mut a.settings)
        .ok_or_else(|| EditError::UnknownStep(name.to_string()))
}

/// Sets fields of a step's `settings.sampleData` (Activepieces' `SampleDataSettings`:
/// `sampleDataFileId`, `sampleDataInputFileId`, `lastTestDate`); a `null` removes one.
pub fn set_sample_data(version: &mut FlowVersion, name: &str, fields: Map<String, Value>) -> Result<(), EditError> {
    let settings = settings_mut(version, name)?;
    let entry = settings.extra.entry("sampleData".to_string()).or_insert_with(|| Value::Object(Map::new()));
    if !entry.is_object() {
        *entry = Value::Object(Map::new());
    }
    let sample = entry.as_object_mut().expect("made an object");
    for (k, v) in fields {
        if v.is_null() {
            sample.remove(&k);
        } else {
            sample.insert(k, v);
        }
    }
    Ok(())
}

fn kind_name(kind: ActionType) -> &'static str {
    match kind {
        ActionType::Code => "a code step",
        ActionType::Piece => "a piece step",
        ActionType::LoopOnItems => "a loop",
        ActionType::Router => "a router",
    }
}

/// Inserts `new` into `slot`, pushing what was there to after it.
fn insert_at(slot: &mut Option<Box<Action>>, mut new: Action) {
    new.next_action = slot.take();
    *slot = Some(Box::new(new));
}

pub fn add_action(version: &mut FlowVersion, req: AddActionRequest) -> Result<(), EditError> {
    let mut names = Vec::new();
    crate::flow::visit_actions(Some(&req.action), &mut |a| names.push(a.name.clone()));
    let existing: Vec<String> = version.actions().iter().map(|a| a.name.clone()).collect();
    for n in &names {
        if existing.contains(n) || *n == version.trigger.name {
            return Err(EditError::DuplicateStep(n.clone()));
        }
    }
    let mut action = req.action;
    action.next_action = None;
    if action.kind == ActionType::Router && action.children.is_none() {
        let n = action.settings.branches.as_ref().map_or(0, Vec::len);
        action.children = Some(vec![None; n]);
    }
    if req.parent_step == version.trigger.name {
        insert_at(&mut version.trigger.next_action, action);
        return Ok(());
    }
    let parent = find_mut(&mut version.trigger.next_action, &req.parent_step)
        .ok_or_else(|| EditError::UnknownStep(req.parent_step.clone()))?;
    match req.step_location_relative_to_parent {
        StepLocation::After => insert_at(&mut parent.next_action, action),
        StepLocation::InsideLoop => {
            if parent.kind != ActionType::LoopOnItems {
                return Err(EditError::WrongParent {
                    step: parent.name.clone(),
                    kind: kind_name(parent.kind),
                    location: "inside a loop",
                });
            }
            insert_at(&mut parent.first_loop_action, action)
        }
        StepLocation::InsideBranch => {
            let index = req.branch_index.unwrap_or(0);
            if parent.kind != ActionType::Router {
                return Err(EditError::WrongParent {
                    step: parent.name.clone(),
                    kind: kind_name(parent.kind),
                    location: "inside a branch",
                });
            }
            let step = parent.name.clone();
            let children = parent.children.get_or_insert_with(Vec::new);
            let slot = children.get_mut(index).ok_or(EditError::NoSuchBranch { step, index })?;
            insert_at(slot, action)
        }
    }
    Ok(())
}

/// Replaces a step's own fields; what hangs from it (next step, loop body, branches) stays.
pub fn update_action(version: &mut FlowVersion, update: Action) -> Result<(), EditError> {
    let target = find_mut(&mut version.trigger.next_action, &update.name)
        .ok_or_else(|| EditError::UnknownStep(update.name.clone()))?;
    target.kind = update.kind;
    target.display_name = update.display_name;
    target.valid = update.valid;
    target.skip = update.skip;
    target.settings = update.settings;
    target.extra = update.extra;
    match target.kind {
        ActionType::LoopOnItems => target.children = None,
        ActionType::Router => {
            target.first_loop_action = None;
            let n = target.settings.branches.as_ref().map_or(0, Vec::len);
            target.children.get_or_insert_with(Vec::new).resize(n, None);
        }
        ActionType::Code | ActionType::Piece => {
            target.first_loop_action = None;
            target.children = None;
        }
    }
    Ok(())
}

fn remove(slot: &mut Option<Box<Action>>, name: &str) -> bool {
    if slot.as_ref().is_some_and(|a| a.name == name) {
        let removed = slot.take().expect("checked above");
        *slot = removed.next_action;
        return true;
    }
    let Some(a) = slot.as_deref_mut() else {
        return false;
    };
    if remove(&mut a.first_loop_action, name) {
        return true;
    }
    if let Some(children) = a.children.as_mut() {
        if children.iter_mut().any(|c| remove(c, name)) {
            return true;
        }
    }
    remove(&mut a.next_action, name)
}

pub fn delete_actions(version: &mut FlowVersion, names: &[String]) -> Result<(), EditError> {
    for name in names {
        if *name == version.trigger.name {
            return Err(EditError::TriggerNotDeletable);
        }
        if !remove(&mut version.trigger.next_action, name) {
            return Err(EditError::UnknownStep(name.clone()));
        }
    }
    Ok(())
}

/// A fresh empty trigger, as Activepieces makes for a new flow.
pub fn empty_trigger() -> Trigger {
    let mut extra = Map::new();
    extra.insert("lastUpdatedDate".into(), Value::String(crate::ids::now_iso()));
    Trigger {
        name: "trigger".into(),
        kind: crate::flow::TriggerType::Empty,
        display_name: Some("Select Trigger".into()),
        valid: Some(false),
        settings: Default::default(),
        next_action: None,
        extra,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn version() -> FlowVersion {
        serde_json::from_value(json!({
            "id": "v", "created": "t", "updated": "t", "flowId": "f", "displayName": "F",
            "state": "DRAFT", "valid": false,
            "trigger": {"name": "trigger", "type": "EMPTY", "settings": {},
                "nextAction": {"name": "step_1", "type": "PIECE", "settings": {},
                    "nextAction": {"name": "step_2", "type": "LOOP_ON_ITEMS", "settings": {"items": "{{trigger.body}}"}}}}
        }))
        .unwrap()
    }

    fn step(name: &str) -> Action {
        serde_json::from_value(json!({"name": name, "type": "PIECE", "settings": {}})).unwrap()
    }

    fn names(v: &FlowVersion) -> Vec<String> {
        v.actions().iter().map(|a| a.name.clone()).collect()
    }

    #[test]
    fn add_after_inside_loop_then_delete() {
        let mut v = version();
        let add = |parent: &str, loc, a| AddActionRequest {
            parent_step: parent.into(),
            step_location_relative_to_parent: loc,
            branch_index: None,
            action: a,
        };
        add_action(&mut v, add("step_1", StepLocation::After, step("step_3"))).unwrap();
        add_action(&mut v, add("step_2", StepLocation::InsideLoop, step("step_4"))).unwrap();
        assert_eq!(names(&v), ["step_1", "step_3", "step_2", "step_4"]);
        assert_eq!(
            add_action(&mut v, add("step_1", StepLocation::InsideLoop, step("step_5"))),
            Err(EditError::WrongParent { step: "step_1".into(), kind: "a piece step", location: "inside a loop" })
        );
        assert_eq!(
            add_action(&mut v, add("trigger", StepLocation::After, step("step_4"))),
            Err(EditError::DuplicateStep("step_4".into()))
        );
        delete_actions(&mut v, &["step_3".into(), "step_4".into()]).unwrap();
        assert_eq!(names(&v), ["step_1", "step_2"]);
    }
}
