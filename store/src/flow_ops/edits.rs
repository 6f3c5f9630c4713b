//! The rest of Activepieces' step operations: moving, duplicating and skipping steps, router
//! branches (add, delete, duplicate, move), and notes; each as Activepieces' shared package
//! does it.

use super::{add_action, find_mut, AddActionRequest, EditError, StepLocation};
use crate::flow::{visit_actions, Action, ActionType, BranchCondition, BranchType, FlowVersion, RouterBranch};
use serde::Deserialize;
use serde_json::{json, Map, Value};

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MoveActionRequest {
    pub name: String,
    pub new_parent_step: String,
    #[serde(default)]
    pub step_location_relative_to_new_parent: StepLocation,
    #[serde(default)]
    pub branch_index: Option<usize>,
}

/// Takes the step `name` out of the tree; what followed it takes its place.
fn take(slot: &mut Option<Box<Action>>, name: &str) -> Option<Action> {
    if slot.as_ref().is_some_and(|a| a.name == name) {
        let mut removed = slot.take().expect("checked above");
        *slot = removed.next_action.take();
        return Some(*removed);
    }
    let a = slot.as_deref_mut()?;
    if let Some(found) = take(&mut a.first_loop_action, name) {
        return Some(found);
    }
    for child in a.children.iter_mut().flatten() {
        if let Some(found) = take(child, name) {
            return Some(found);
        }
    }
    take(&mut a.next_action, name)
}

/// `MOVE_ACTION`: the step (with what is inside it) goes after, or inside, `newParentStep`;
/// what followed it stays where it was.
pub fn move_action(version: &mut FlowVersion, req: MoveActionRequest) -> Result<(), EditError> {
    let exists = |v: &FlowVersion, n: &str| v.trigger.name == n || v.actions().iter().any(|a| a.name == n);
    if !exists(version, &req.new_parent_step) {
        return Err(EditError::UnknownStep(req.new_parent_step));
    }
    let mut edited = version.clone();
    let step =
        take(&mut edited.trigger.next_action, &req.name).ok_or_else(|| EditError::UnknownStep(req.name.clone()))?;
    if !exists(&edited, &req.new_parent_step) {
        // the new parent was inside the step being moved
        return Err(EditError::WrongParent {
            step: req.new_parent_step,
            kind: "inside the step being moved",
            location: "as its parent",
        });
    }
    add_action(
        &mut edited,
        AddActionRequest {
            parent_step: req.new_parent_step,
            step_location_relative_to_parent: req.step_location_relative_to_new_parent,
            branch_index: req.branch_index,
            action: step,
        },
    )?;
    *version = edited;
    Ok(())
}

/// `step_N` names not used in `version`, one per name in `old`, in order.
fn new_names(version: &FlowVersion, old: &[String]) -> Vec<(String, String)> {
    let mut used: Vec<String> = version.actions().iter().map(|a| a.name.clone()).collect();
    used.push(version.trigger.name.clone());
    old.iter()
        .map(|o| {
            let mut i = 1;
            while used.contains(&format!("step_{i}")) {
                i += 1;
            }
            let name = format!("step_{i}");
            used.push(name.clone());
            (o.clone(), name)
        })
        .collect()
}

fn is_word(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// Replaces whole-word `old` by `new` (JavaScript's `\b`), inside `{{ }}` only.
fn rename_in_templates(s: &str, old: &str, new: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(start) = rest.find("{{") {
        let Some(len) = rest[start + 2..].find("}}") else { break };
        out.push_str(&rest[..start + 2]);
        let inner = &rest[start + 2..start + 2 + len];
        let mut i = 0;
        while let Some(pos) = inner[i..].find(old) {
            let at = i + pos;
            let before = inner[..at].chars().next_back();
            let after = inner[at + old.len()..].chars().next();
            out.push_str(&inner[i..at]);
            if before.is_none_or(|c| !is_word(c)) && after.is_none_or(|c| !is_word(c)) {
                out.push_str(new);
            } else {
                out.push_str(old);
            }
            i = at + old.len();
        }
        out.push_str(&inner[i..]);
        out.push_str("}}");
        rest = &rest[start + 2 + len + 2..];
    }
    out.push_str(rest);
    out
}

fn rename_values(v: &mut Value, renames: &[(String, String)]) {
    match v {
        Value::String(s) if s.contains("{{") => {
            for (old, new) in renames {
                *s = rename_in_templates(s, old, new);
            }
        }
        Value::Array(a) => a.iter_mut().for_each(|x| rename_values(x, renames)),
        Value::Object(m) => m.values_mut().for_each(|x| rename_values(x, renames)),
        _ => {}
    }
}

/// A copy of `step` (and of what is inside it) under new names, as Activepieces copies:
/// display names get " Copy", templates naming a copied step name its copy, sample data goes.
fn copy(version: &FlowVersion, step: &Action) -> Action {
    let mut old = Vec::new();
    visit_actions(Some(step), &mut |a| old.push(a.name.clone()));
    let renames = new_names(version, &old);
    let mut copied = step.clone();
    fn each(a: &mut Action, renames: &[(String, String)]) {
        if let Some((_, new)) = renames.iter().find(|(o, _)| *o == a.name) {
            a.name = new.clone();
        }
        a.display_name = Some(format!("{} Copy", a.display_name.as_deref().unwrap_or(&a.name)));
        if let Some(input) = a.settings.input.as_mut() {
            for v in input.values_mut() {
                rename_values(v, renames);
            }
        }
        if a.settings.extra.contains_key("sampleData") {
            a.settings.extra.insert("sampleData".into(), json!({}));
        }
        a.extra.insert("lastUpdatedDate".into(), Value::String(crate::ids::now_iso()));
        for child in [a.first_loop_action.as_deref_mut(), a.next_action.as_deref_mut()].into_iter().flatten() {
            each(child, renames);
        }
        for child in a.children.iter_mut().flatten().flatten() {
            each(child, renames);
        }
    }
    each(&mut copied, &renames);
    copied
}

/// `DUPLICATE_ACTION`: a copy of the step (and of what is inside it) right after it.
pub fn duplicate_action(version: &mut FlowVersion, name: &str) -> Result<(), EditError> {
    let step = version.actions().into_iter().find(|a| a.name == name).cloned();
    let mut step = step.ok_or_else(|| EditError::UnknownStep(name.to_string()))?;
    step.next_action = None;
    let copied = copy(version, &step);
    add_action(
        version,
        AddActionRequest {
            parent_step: name.to_string(),
            step_location_relative_to_parent: StepLocation::After,
            branch_index: None,
            action: copied,
        },
    )
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SkipActionRequest {
    pub names: Vec<String>,
    pub skip: bool,
}

/// `SET_SKIP_ACTION`.
pub fn set_skip(version: &mut FlowVersion, req: SkipActionRequest) -> Result<(), EditError> {
    for name in &req.names {
        let step =
            find_mut(&mut version.trigger.next_action, name).ok_or_else(|| EditError::UnknownStep(name.clone()))?;
        step.skip = Some(req.skip);
    }
    Ok(())
}

/// The router `name`.
fn router<'a>(version: &'a mut FlowVersion, name: &str) -> Result<&'a mut Action, EditError> {
    let step =
        find_mut(&mut version.trigger.next_action, name).ok_or_else(|| EditError::UnknownStep(name.to_string()))?;
    if step.kind != ActionType::Router {
        return Err(EditError::WrongParent {
            step: name.to_string(),
            kind: "not a router",
            location: "as a branch's router",
        });
    }
    let n = step.settings.branches.as_ref().map_or(0, Vec::len);
    step.children.get_or_insert_with(Vec::new).resize(n, None);
    Ok(step)
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AddBranchRequest {
    pub step_name: String,
    pub branch_index: usize,
    pub branch_name: String,
    #[serde(default)]
    pub conditions: Option<Vec<Vec<BranchCondition>>>,
}

/// `ADD_BRANCH`: a condition branch at `branchIndex` (one empty condition unless given).
pub fn add_branch(version: &mut FlowVersion, req: AddBranchRequest) -> Result<(), EditError> {
    let step = router(version, &req.step_name)?;
    let branches = step.settings.branches.get_or_insert_with(Vec::new);
    if req.branch_index > branches.len() {
        return Err(EditError::NoSuchBranch { step: req.step_name, index: req.branch_index });
    }
    let empty: BranchCondition = serde_json::from_value(
        json!({"firstValue": "", "secondValue": "", "operator": "TEXT_CONTAINS", "caseSensitive": false}),
    )
    .expect("a condition");
    branches.insert(
        req.branch_index,
        RouterBranch {
            branch_name: req.branch_name,
            branch_type: BranchType::Condition,
            conditions: Some(req.conditions.unwrap_or_else(|| vec![vec![empty]])),
            extra: Map::new(),
        },
    );
    step.children.get_or_insert_with(Vec::new).insert(req.branch_index, None);
    Ok(())
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BranchRequest {
    pub step_name: String,
    pub branch_index: usize,
}

fn check_index(step: &Action, index: usize) -> Result<(), EditError> {
    if index < step.settings.branches.as_ref().map_or(0, Vec::len) {
        Ok(())
    } else {
        Err(EditError::NoSuchBranch { step: step.name.clone(), index })
    }
}

/// `DELETE_BRANCH`: the branch and the steps inside it.
pub fn delete_branch(version: &mut FlowVersion, req: BranchRequest) -> Result<(), EditError> {
    let step = router(version, &req.step_name)?;
    check_index(step, req.branch_index)?;
    step.settings.branches.as_mut().expect("checked").remove(req.branch_index);
    step.children.as_mut().expect("made by router").remove(req.branch_index);
    Ok(())
}

/// `DUPLICATE_BRANCH`: a copy of the branch (" Copy", its conditions when it has them) and of
/// its steps, right after it.
pub fn duplicate_branch(version: &mut FlowVersion, req: BranchRequest) -> Result<(), EditError> {
    let (branch, child) = {
        let step = router(version, &req.step_name)?;
        check_index(step, req.branch_index)?;
        let branch = step.settings.branches.as_ref().expect("checked")[req.branch_index].clone();
        (branch, step.children.as_ref().expect("made by router")[req.branch_index].clone())
    };
    let copied = child.map(|c| copy(version, &c));
    let conditions = (branch.branch_type == BranchType::Condition).then_some(branch.conditions).flatten();
    add_branch(
        version,
        AddBranchRequest {
            step_name: req.step_name.clone(),
            branch_index: req.branch_index + 1,
            branch_name: format!("{} Copy", branch.branch_name),
            conditions,
        },
    )?;
    let step = router(version, &req.step_name)?;
    step.children.as_mut().expect("made by router")[req.branch_index + 1] = copied.map(Box::new);
    Ok(())
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MoveBranchRequest {
    pub step_name: String,
    pub source_branch_index: usize,
    pub target_branch_index: usize,
}

/// `MOVE_BRANCH`: as Activepieces, nothing moves when an index is out of range, the two are
/// the same, or either is the fallback branch.
pub fn move_branch(version: &mut FlowVersion, req: MoveBranchRequest) -> Result<(), EditError> {
    let step = router(version, &req.step_name)?;
    let branches = step.settings.branches.as_mut().map(std::mem::take).unwrap_or_default();
    let (from, to) = (req.source_branch_index, req.target_branch_index);
    let movable = from < branches.len()
        && to < branches.len()
        && from != to
        && branches[from].branch_type != BranchType::Fallback
        && branches[to].branch_type != BranchType::Fallback;
    let mut branches = branches;
    if movable {
        let b = branches.remove(from);
        branches.insert(to, b);
        let children = step.children.as_mut().expect("made by router");
        let c = children.remove(from);
        children.insert(to, c);
    }
    step.settings.branches = Some(branches);
    Ok(())
}

/// `ADD_NOTE`, `UPDATE_NOTE`, `DELETE_NOTE` on the version's `notes`.
pub fn edit_notes(version: &mut FlowVersion, kind: &str, request: Value) -> Result<(), EditError> {
    let notes = version.extra.entry("notes".to_string()).or_insert_with(|| json!([]));
    if !notes.is_array() {
        *notes = json!([]);
    }
    let list = notes.as_array_mut().expect("made a list");
    let id = request["id"].as_str().unwrap_or_default().to_string();
    let now = Value::String(crate::ids::now_iso());
    match kind {
        "ADD_NOTE" => {
            let Value::Object(mut note) = request else {
                return Err(EditError::NoteNotAnObject);
            };
            note.insert("createdAt".into(), now.clone());
            note.insert("updatedAt".into(), now);
            list.push(Value::Object(note));
        }
        "UPDATE_NOTE" => {
            let note = list.iter_mut().find(|n| n["id"] == id.as_str()).ok_or(EditError::UnknownNote(id))?;
            if let (Some(n), Some(r)) = (note.as_object_mut(), request.as_object()) {
                for (k, v) in r {
                    n.insert(k.clone(), v.clone());
                }
                n.insert("updatedAt".into(), now);
            }
        }
        _ => {
            let before = list.len();
            list.retain(|n| n["id"] != id.as_str());
            if list.len() == before {
                return Err(EditError::UnknownNote(id));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
