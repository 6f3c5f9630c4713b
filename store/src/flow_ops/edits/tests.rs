use super::*;

/// trigger → step_1 (router: [A: step_2 → step_3], [Otherwise: -]) → step_4 (loop: step_5)
fn version() -> FlowVersion {
    serde_json::from_value(json!({
        "id": "v", "created": "t", "updated": "t", "flowId": "f", "displayName": "F", "state": "DRAFT",
        "trigger": {"name": "trigger", "type": "EMPTY", "settings": {},
            "nextAction": {"name": "step_1", "type": "ROUTER", "displayName": "Route",
                "settings": {"executionType": "EXECUTE_FIRST_MATCH", "branches": [
                    {"branchName": "A", "branchType": "CONDITION", "conditions": [[{"operator": "TEXT_CONTAINS", "firstValue": "{{trigger.x}}", "secondValue": "a"}]]},
                    {"branchName": "Otherwise", "branchType": "FALLBACK"}]},
                "children": [
                    {"name": "step_2", "type": "PIECE", "displayName": "Two", "settings": {"input": {"v": "{{step_1.branches}}"}, "sampleData": {"sampleDataFileId": "s"}},
                        "nextAction": {"name": "step_3", "type": "PIECE", "displayName": "Three", "settings": {"input": {"from": "{{step_2.id}} and {{step_20.id}}", "plain": "step_2"}}}},
                    null],
                "nextAction": {"name": "step_4", "type": "LOOP_ON_ITEMS", "displayName": "Loop", "settings": {"items": "{{trigger.items}}"},
                    "firstLoopAction": {"name": "step_5", "type": "PIECE", "displayName": "Five", "settings": {"input": {}}}}}}
    }))
    .unwrap()
}

fn tree(v: &FlowVersion) -> Value {
    serde_json::to_value(&v.trigger).unwrap()
}

fn names(v: &FlowVersion) -> Vec<String> {
    v.actions().iter().map(|a| a.name.clone()).collect()
}

#[test]
fn move_action_takes_the_step_with_what_is_inside_it_and_leaves_its_followers() {
    let mut v = version();
    let req = |name: &str, parent: &str, loc: StepLocation, b: Option<usize>| MoveActionRequest {
        name: name.into(),
        new_parent_step: parent.into(),
        step_location_relative_to_new_parent: loc,
        branch_index: b,
    };
    move_action(&mut v, req("step_2", "step_4", StepLocation::InsideLoop, None)).unwrap();
    let t = tree(&v);
    assert_eq!(t["nextAction"]["children"][0]["name"], "step_3", "step_3 took step_2's place");
    assert_eq!(t["nextAction"]["nextAction"]["firstLoopAction"]["name"], "step_2");
    assert_eq!(t["nextAction"]["nextAction"]["firstLoopAction"]["nextAction"]["name"], "step_5");
    // into the fallback branch
    move_action(&mut v, req("step_5", "step_1", StepLocation::InsideBranch, Some(1))).unwrap();
    assert_eq!(tree(&v)["nextAction"]["children"][1]["name"], "step_5");
    // a step cannot move inside itself; nothing changes
    let before = tree(&v);
    let err = move_action(&mut v, req("step_4", "step_2", StepLocation::After, None)).unwrap_err();
    assert!(matches!(err, EditError::WrongParent { .. }), "{err}");
    assert_eq!(tree(&v), before);
    assert!(matches!(
        move_action(&mut v, req("nope", "step_1", StepLocation::After, None)),
        Err(EditError::UnknownStep(_))
    ));
}

#[test]
fn duplicate_action_copies_under_new_names_and_renames_the_templates_inside() {
    let mut v = version();
    duplicate_action(&mut v, "step_1").unwrap();
    assert_eq!(names(&v), ["step_1", "step_2", "step_3", "step_6", "step_7", "step_8", "step_4", "step_5"]);
    let t = tree(&v);
    let copy = &t["nextAction"]["nextAction"];
    assert_eq!((&copy["name"], &copy["displayName"]), (&json!("step_6"), &json!("Route Copy")));
    let copied_3 = &copy["children"][0]["nextAction"];
    assert_eq!(
        copied_3["settings"]["input"]["from"], "{{step_7.id}} and {{step_20.id}}",
        "whole words, in templates only"
    );
    assert_eq!(copied_3["settings"]["input"]["plain"], "step_2");
    assert_eq!(copy["children"][0]["settings"]["sampleData"], json!({}));
    assert_eq!(copy["nextAction"]["name"], "step_4", "the copy comes right after the original");
    assert!(duplicate_action(&mut v, "trigger").is_err());
}

#[test]
fn branches_are_added_deleted_duplicated_and_moved() {
    let mut v = version();
    add_branch(
        &mut v,
        AddBranchRequest { step_name: "step_1".into(), branch_index: 1, branch_name: "B".into(), conditions: None },
    )
    .unwrap();
    let t = tree(&v);
    let r = &t["nextAction"];
    assert_eq!(r["settings"]["branches"][1]["branchName"], "B");
    assert_eq!(r["settings"]["branches"][1]["conditions"][0][0]["operator"], "TEXT_CONTAINS");
    assert_eq!(r["children"].as_array().unwrap().len(), 3);
    duplicate_branch(&mut v, BranchRequest { step_name: "step_1".into(), branch_index: 0 }).unwrap();
    let t = tree(&v);
    let r = &t["nextAction"];
    assert_eq!(r["settings"]["branches"][1]["branchName"], "A Copy");
    assert_eq!(r["children"][1]["name"], "step_6");
    assert_eq!(r["children"][1]["nextAction"]["settings"]["input"]["from"], "{{step_6.id}} and {{step_20.id}}");
    // A Copy (1) ↔ B (2); the fallback never moves
    move_branch(
        &mut v,
        MoveBranchRequest { step_name: "step_1".into(), source_branch_index: 1, target_branch_index: 2 },
    )
    .unwrap();
    move_branch(
        &mut v,
        MoveBranchRequest { step_name: "step_1".into(), source_branch_index: 0, target_branch_index: 3 },
    )
    .unwrap();
    let branches: Vec<Value> = tree(&v)["nextAction"]["settings"]["branches"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["branchName"].clone())
        .collect();
    assert_eq!(branches, [json!("A"), json!("B"), json!("A Copy"), json!("Otherwise")]);
    assert_eq!(tree(&v)["nextAction"]["children"][2]["name"], "step_6", "the steps move with their branch");
    delete_branch(&mut v, BranchRequest { step_name: "step_1".into(), branch_index: 2 }).unwrap();
    assert!(!names(&v).contains(&"step_6".to_string()), "a deleted branch's steps go with it");
    assert!(matches!(
        delete_branch(&mut v, BranchRequest { step_name: "step_1".into(), branch_index: 9 }),
        Err(EditError::NoSuchBranch { .. })
    ));
    assert!(add_branch(
        &mut v,
        AddBranchRequest { step_name: "step_4".into(), branch_index: 0, branch_name: "x".into(), conditions: None }
    )
    .is_err());
}

#[test]
fn steps_are_skipped_and_notes_kept() {
    let mut v = version();
    set_skip(&mut v, SkipActionRequest { names: vec!["step_2".into(), "step_5".into()], skip: true }).unwrap();
    assert_eq!(tree(&v)["nextAction"]["children"][0]["skip"], true);
    assert!(set_skip(&mut v, SkipActionRequest { names: vec!["nope".into()], skip: true }).is_err());
    let note = json!({"id": "n1", "content": "hi", "color": "blue", "position": {"x": 1, "y": 2}, "size": {"width": 3, "height": 4}});
    edit_notes(&mut v, "ADD_NOTE", note).unwrap();
    edit_notes(&mut v, "UPDATE_NOTE", json!({"id": "n1", "content": "hello"})).unwrap();
    assert_eq!(v.extra["notes"][0]["content"], "hello");
    assert!(v.extra["notes"][0]["createdAt"].is_string());
    edit_notes(&mut v, "DELETE_NOTE", json!({"id": "n1"})).unwrap();
    assert_eq!(v.extra["notes"], json!([]));
    assert!(matches!(edit_notes(&mut v, "DELETE_NOTE", json!({"id": "n1"})), Err(EditError::UnknownNote(_))));
    // found by the API's property tests: a note that is no object was indexed as one (a panic)
    for request in [json!(false), json!([]), json!(null), json!("n1")] {
        assert_eq!(edit_notes(&mut v, "ADD_NOTE", request), Err(EditError::NoteNotAnObject));
    }
    assert_eq!(v.extra["notes"], json!([]));
}
