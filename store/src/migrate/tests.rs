//! One export per schema version, made by hand from Activepieces' migrations.

use super::*;

fn export(schema: Option<&str>, first: Value) -> Value {
    json!({
        "displayName": "old",
        "schemaVersion": schema,
        "trigger": {"name": "trigger", "type": "PIECE_TRIGGER", "valid": true, "displayName": "Catch Webhook",
            "settings": {"pieceName": "@activepieces/piece-webhook", "pieceVersion": "~0.1.3", "triggerName": "catch_webhook", "input": {}},
            "nextAction": first}
    })
}

fn step(name: &str, piece: &str, version: &str, action: &str, input: Value) -> Value {
    json!({"name": name, "type": "PIECE", "valid": true, "displayName": name,
        "settings": {"pieceName": piece, "pieceVersion": version, "actionName": action, "input": input}})
}

fn migrated(mut v: Value) -> Value {
    migrate_import(&mut v);
    v
}

#[test]
fn every_version_moves_to_21_or_to_the_latest_by_its_dialect() {
    let mut cases: Vec<(Option<String>, &str)> = vec![(None, "21")];
    for v in 1..=28u32 {
        cases.push((Some(v.to_string()), if v <= 21 { "21" } else { LATEST }));
    }
    for (start, end) in cases {
        let out = migrated(export(start.as_deref(), Value::Null));
        assert_eq!(out["schemaVersion"], end, "from {start:?}");
        assert_eq!(nested_outputs(out["schemaVersion"].as_str()), end == LATEST, "from {start:?}");
    }
}

#[test]
fn v0_branches_become_routers_wherever_they_are() {
    let inner_branch = json!({"name": "step_3", "type": "BRANCH", "displayName": "Inner", "valid": true, "skip": true,
        "settings": {"conditions": [[{"operator": "NUMBER_IS_GREATER_THAN", "firstValue": "{{trigger.body.n}}", "secondValue": "1"}]]},
        "onSuccessAction": step("step_4", "@activepieces/piece-data-mapper", "0.3.0", "advanced_mapping", json!({}))});
    let lp = json!({"name": "step_2", "type": "LOOP_ON_ITEMS", "displayName": "Loop", "valid": true,
        "settings": {"items": "{{trigger.body.items}}"}, "firstLoopAction": inner_branch});
    let branch = json!({"name": "step_1", "type": "BRANCH", "displayName": "Check", "valid": true,
        "settings": {"conditions": [[{"operator": "TEXT_CONTAINS", "firstValue": "{{trigger.body.text}}", "secondValue": "a"}]], "inputUiInfo": {}},
        "onSuccessAction": lp, "onFailureAction": null,
        "nextAction": step("step_5", "@activepieces/piece-data-mapper", "~0.3.0", "advanced_mapping", json!({}))});
    let out = migrated(export(None, branch));
    let router = &out["trigger"]["nextAction"];
    assert_eq!(router["type"], "ROUTER");
    assert_eq!(router["settings"]["executionType"], "EXECUTE_FIRST_MATCH");
    assert_eq!(router["settings"]["branches"][0]["branchType"], "CONDITION");
    assert_eq!(router["settings"]["branches"][0]["conditions"][0][0]["operator"], "TEXT_CONTAINS");
    assert_eq!(router["settings"]["branches"][1], json!({"branchName": "Otherwise", "branchType": "FALLBACK"}));
    assert_eq!(router["children"][1], Value::Null, "no failure branch");
    assert!(router.get("onSuccessAction").is_none());
    // the branch inside the loop inside the first branch
    let inner = &router["children"][0]["firstLoopAction"];
    assert_eq!((&inner["type"], &inner["name"]), (&json!("ROUTER"), &json!("step_3")));
    assert!(inner.get("skip").is_none(), "what else the branch had is dropped");
    assert_eq!(inner["children"][0]["name"], "step_4");
    // the chain after the branch goes on; ranges stay for install and publish to resolve
    assert_eq!(router["nextAction"]["settings"]["pieceVersion"], "~0.3.0");
    assert_eq!(out["trigger"]["settings"]["pieceVersion"], "~0.1.3");
    assert_eq!(out["notes"], Value::Null, "notes are only defaulted when present as null");
    // and the result parses as a flow version's trigger
    serde_json::from_value::<crate::flow::Trigger>(out["trigger"].clone()).unwrap();
}

#[test]
fn v5_the_http_return_response_becomes_the_webhook_pieces() {
    let new_body = step(
        "r",
        "@activepieces/piece-http",
        "~0.5.2",
        "return_response",
        json!({"status": 201, "headers": {"x-a": "1"}, "body_type": "raw", "body": {"data": "hello"}}),
    );
    let out = migrated(export(Some("5"), new_body));
    let s = &out["trigger"]["nextAction"]["settings"];
    assert_eq!((&s["pieceName"], &s["pieceVersion"]), (&json!("@activepieces/piece-webhook"), &json!("0.1.20")));
    assert_eq!(
        s["input"],
        json!({"respond": "stop", "responseType": "raw", "fields": {"status": 201, "headers": {"x-a": "1"}, "body": "hello"}})
    );
    assert_eq!(s["propertySettings"]["fields"]["type"], "MANUAL");
    // before 0.5.0 the body was the whole object
    let old_body = step("r", "@activepieces/piece-http", "0.4.1", "return_response", json!({"body": {"a": 1}}));
    let s = migrated(export(Some("5"), old_body))["trigger"]["nextAction"]["settings"].clone();
    assert_eq!(s["input"], json!({"respond": "stop", "responseType": "json", "fields": {"body": {"a": 1}}}));
    // past v5, an http return_response stays
    let later = step("r", "@activepieces/piece-http", "0.5.2", "return_response", json!({}));
    assert_eq!(
        migrated(export(Some("6"), later))["trigger"]["nextAction"]["settings"]["pieceName"],
        "@activepieces/piece-http"
    );
}

#[test]
fn v6_input_ui_info_becomes_property_and_sample_data_settings() {
    let mut s =
        step("m", "@activepieces/piece-data-mapper", "0.3.0", "advanced_mapping", json!({"mapping": {}, "other": 1}));
    s["settings"]["inputUiInfo"] = json!({"customizedInputs": {"mapping": true, "logoUrl": "https://logo"}, "sampleDataFileId": "f1", "lastTestDate": "2024-01-01"});
    s["settings"]["schema"] = json!({"mapping": {"type": "object"}});
    let out = migrated(export(Some("6"), s));
    let s = &out["trigger"]["nextAction"]["settings"];
    assert!(s.get("inputUiInfo").is_none());
    assert_eq!(s["customLogoUrl"], "https://logo");
    assert_eq!(s["sampleDataSettings"], json!({"sampleDataFileId": "f1", "lastTestDate": "2024-01-01"}));
    assert_eq!(s["propertySettings"]["mapping"], json!({"type": "DYNAMIC", "schema": {"type": "object"}}));
    assert_eq!(s["propertySettings"]["other"], json!({"type": "MANUAL"}));
    // v17 reads settings.sampleData, which v6 did not write: the step is dated now
    assert!(out["trigger"]["nextAction"]["lastUpdatedDate"].as_str().is_some_and(|d| d.starts_with("20")));
}

#[test]
fn v17_dates_every_step() {
    let mut s = step("m", "@activepieces/piece-slack", "^0.17.0", "send_channel_message", json!({}));
    s["settings"]["sampleData"] = json!({"lastTestDate": "2025-05-05T00:00:00.000Z"});
    let out = migrated(export(Some("17"), s.clone()));
    assert!(out["trigger"]["lastUpdatedDate"].is_string());
    assert_eq!(out["trigger"]["nextAction"]["lastUpdatedDate"], "2025-05-05T00:00:00.000Z");
    // from 18 on, steps are not dated again
    assert!(migrated(export(Some("18"), s))["trigger"]["nextAction"].get("lastUpdatedDate").is_none());
}

#[test]
fn nested_dialect_flows_get_the_later_piece_upgrades() {
    let chain = {
        let mut a = step("a", "@activepieces/piece-slack", "0.16.2", "send_channel_message", json!({}));
        let mut b = step("b", "@activepieces/piece-http", "0.11.15", "send_request", json!({}));
        b["nextAction"] = step("c", "@activepieces/piece-openai", "0.10.0", "ask_chatgpt", json!({}));
        a["nextAction"] = b;
        a
    };
    let out = migrated(export(Some("22"), chain.clone()));
    let a = &out["trigger"]["nextAction"];
    assert_eq!(a["settings"]["pieceVersion"], "0.17.9");
    assert_eq!(a["nextAction"]["settings"]["pieceVersion"], "0.11.21");
    assert_eq!(a["nextAction"]["nextAction"]["settings"]["pieceVersion"], "0.10.1");
    // a flat-dialect flow keeps them (Activepieces upgrades them when it imports the flow)
    let out = migrated(export(Some("21"), chain));
    assert_eq!(out["trigger"]["nextAction"]["settings"]["pieceVersion"], "0.16.2");
    // the latest is left alone
    let out = migrated(export(Some(LATEST), step("a", "@activepieces/piece-slack", "0.16.2", "x", json!({}))));
    assert_eq!(out["trigger"]["nextAction"]["settings"]["pieceVersion"], "0.16.2");
}
