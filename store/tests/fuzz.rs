//! Property tests (proptest): whatever JSON an import brings, whatever sequence of flow
//! operations a client sends, the store's code answers with a value or an error, never a
//! panic, and the tree of steps stays sound. Bounded here (`PROPTEST_CASES`, default 256 per
//! property); `just fuzz` runs them much longer.

use proptest::prelude::*;
use serde_json::{json, Value};
use troupe_store::flow::FlowVersion;
use troupe_store::flow_ops;

/// Any JSON, with the strings and keys flows are made of more likely than others.
fn any_json() -> impl Strategy<Value = Value> {
    let words = prop::sample::select(vec![
        "BRANCH",
        "ROUTER",
        "PIECE",
        "CODE",
        "LOOP_ON_ITEMS",
        "PIECE_TRIGGER",
        "EMPTY",
        "step_1",
        "step_2",
        "trigger",
        "nextAction",
        "onSuccessAction",
        "children",
        "settings",
        "~0.1.0",
        "{{step_1.x}}",
        "",
    ]);
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        words.clone().prop_map(Value::from),
        ".{0,12}".prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 48, 6, move |inner| {
        let keys = prop::sample::select(vec![
            "name",
            "type",
            "settings",
            "nextAction",
            "onSuccessAction",
            "onFailureAction",
            "children",
            "firstLoopAction",
            "conditions",
            "pieceName",
            "pieceVersion",
            "actionName",
            "input",
            "inputUiInfo",
            "schemaVersion",
            "trigger",
            "displayName",
            "body",
            "x",
        ]);
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(keys, inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().map(|(k, v)| (k.to_string(), v)).collect())),
        ]
    })
}

fn base() -> FlowVersion {
    serde_json::from_value(json!({
        "id": "v", "created": "t", "updated": "t", "flowId": "f", "displayName": "F", "state": "DRAFT",
        "trigger": {"name": "trigger", "type": "EMPTY", "settings": {},
            "nextAction": {"name": "step_1", "type": "ROUTER", "settings": {"executionType": "EXECUTE_FIRST_MATCH", "branches": [
                {"branchName": "A", "branchType": "CONDITION", "conditions": [[]]}, {"branchName": "Otherwise", "branchType": "FALLBACK"}]},
                "children": [{"name": "step_2", "type": "PIECE", "settings": {"input": {"v": "{{step_1}}"}}}, null],
                "nextAction": {"name": "step_3", "type": "LOOP_ON_ITEMS", "settings": {"items": "[]"},
                    "firstLoopAction": {"name": "step_4", "type": "CODE", "settings": {}}}}}
    }))
    .unwrap()
}

/// One flow operation with generated arguments (step names from the flow, and some that are not).
fn operation() -> impl Strategy<Value = (usize, String, String, usize, usize)> {
    let name =
        prop::sample::select(vec!["step_1", "step_2", "step_3", "step_4", "step_9", "trigger"]).prop_map(String::from);
    (0usize..8, name.clone(), name, 0usize..4, 0usize..4)
}

fn apply(v: &mut FlowVersion, (kind, a, b, i, j): (usize, String, String, usize, usize)) {
    use flow_ops::*;
    let location = [StepLocation::After, StepLocation::InsideLoop, StepLocation::InsideBranch][i % 3];
    let _ = match kind {
        0 => move_action(
            v,
            MoveActionRequest {
                name: a,
                new_parent_step: b,
                step_location_relative_to_new_parent: location,
                branch_index: Some(j),
            },
        ),
        1 => duplicate_action(v, &a),
        2 => delete_actions(v, &[a]),
        3 => add_branch(
            v,
            AddBranchRequest { step_name: a, branch_index: i, branch_name: format!("B{j}"), conditions: None },
        ),
        4 => delete_branch(v, BranchRequest { step_name: a, branch_index: i }),
        5 => duplicate_branch(v, BranchRequest { step_name: a, branch_index: i }),
        6 => move_branch(v, MoveBranchRequest { step_name: a, source_branch_index: i, target_branch_index: j }),
        _ => set_skip(v, SkipActionRequest { names: vec![a], skip: j % 2 == 0 }),
    };
}

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(256)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn an_import_of_any_json_migrates_without_panicking(v in any_json(), trigger in any_json()) {
        let mut request = json!({"displayName": "x", "trigger": trigger, "schemaVersion": v});
        troupe_store::migrate::migrate_import(&mut request);
        // and what it gives either parses as an import or is refused with a reason
        let _ = serde_json::from_value::<flow_ops::ImportFlowRequest>(request);
    }

    #[test]
    fn any_sequence_of_operations_keeps_the_tree_sound(ops in prop::collection::vec(operation(), 0..24)) {
        let mut v = base();
        for op in ops {
            apply(&mut v, op);
            let names: Vec<String> = v.actions().iter().map(|a| a.name.clone()).collect();
            let mut unique = names.clone();
            unique.sort();
            unique.dedup();
            prop_assert_eq!(unique.len(), names.len(), "step names stay unique: {:?}", names);
            prop_assert!(!names.contains(&"trigger".to_string()));
            // a router has one child slot per branch
            for a in v.actions() {
                if let (Some(b), Some(c)) = (&a.settings.branches, &a.children) {
                    prop_assert_eq!(b.len(), c.len(), "router {}", a.name);
                }
            }
            // and the version still reads back as it was written
            let text = serde_json::to_string(&v).unwrap();
            prop_assert!(serde_json::from_str::<FlowVersion>(&text).is_ok());
        }
    }
}
