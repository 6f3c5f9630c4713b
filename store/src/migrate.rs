//! Activepieces' flow schema migrations, applied to an imported flow (`IMPORT_FLOW`) before it
//! is parsed, as Activepieces applies them: a flow without `schemaVersion` is older than every
//! migration, and each migration runs when the flow is at its version and moves it to the
//! next (`docs/compatibility.md` lists them, and what Troupe does with each).
//!
//! Two template dialects exist. Up to schema 21 a step's output is `{{step_1.x}}`; from 22
//! (Activepieces' "step output nesting") it is `{{step_1['output'].x}}`. Activepieces rewrites
//! the text of every template when it migrates 21 to 22; Troupe instead keeps the text and
//! resolves each version in its own dialect ([`nested_outputs`]), which gives the same values
//! without parsing JavaScript. So an old flow migrates to 21 and stays there, and a flow at
//! 22 or later migrates to [`LATEST`].

use serde_json::{json, Map, Value};

/// The newest schema version Troupe knows (Activepieces' repository at the time of writing).
pub const LATEST: &str = "28";

/// The schema version an old-dialect flow is migrated to.
pub const FLAT_DIALECT: &str = "21";

/// Whether a version at `schema_version` writes step outputs as `step_1['output']`.
pub fn nested_outputs(schema_version: Option<&str>) -> bool {
    schema_version.and_then(|v| v.trim().parse::<u32>().ok()).is_some_and(|v| v >= 22)
}

/// Migrates an `IMPORT_FLOW` request (`{displayName, trigger, schemaVersion, notes}`) in place.
pub fn migrate_import(request: &mut Value) {
    let Some(req) = request.as_object_mut() else { return };
    let mut version: Option<u32> = match req.get("schemaVersion") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => s.trim().parse().ok(),
        Some(Value::Number(n)) => n.as_u64().map(|n| n as u32),
        Some(_) => None,
    };
    let start = version;
    let trigger = req.entry("trigger").or_insert(Value::Null);
    // v0: BRANCH steps become routers (a flow without schemaVersion)
    if version.is_none() {
        walk(trigger, &mut branch_to_router);
        version = Some(1);
    }
    let mut at = version.unwrap_or(0);
    while at < LATEST.parse::<u32>().expect("a number") {
        match at {
            // v5: the http piece's return_response became the webhook piece's
            5 => walk(trigger, &mut http_response_to_webhook),
            // v6: inputUiInfo becomes propertySettings and the sample data settings
            6 => walk(trigger, &mut input_ui_info),
            // v17: every step gets lastUpdatedDate
            17 => walk(trigger, &mut |step| {
                // read through the Value (a missing key is null), never a Map's index (it panics)
                let date = step["settings"]["sampleData"]["lastTestDate"]
                    .as_str()
                    .map(str::to_string)
                    .unwrap_or_else(crate::ids::now_iso);
                if let Some(s) = step.as_object_mut() {
                    s.entry("lastUpdatedDate").or_insert(Value::String(date));
                }
            }),
            // v19 (ranges resolved to exact versions) is not applied here: Troupe resolves a
            // range against the registry when it installs and locks it at publish, which gives
            // what Activepieces' lookup gives; stripping the `~` would pin an older version
            // v21: the dialect changes (see the module's doc): an old flow stays at 21
            21 if start.is_none_or(|s| s <= 21) => break,
            24 => pin(trigger, "@activepieces/piece-openai", &["0.10.0"], "0.10.1"),
            25 => {
                let old: Vec<String> = (11..=20).map(|p| format!("0.11.{p}")).collect();
                let old: Vec<&str> = old.iter().map(String::as_str).collect();
                pin(trigger, "@activepieces/piece-http", &old, "0.11.21");
            }
            27 => {
                let http = ["0.8.4", "0.8.6", "0.8.7", "0.11.0", "0.11.1", "0.11.2", "0.11.4", "0.11.5", "0.11.6"];
                let http: Vec<&str> = http.into_iter().chain(["0.11.7", "0.11.8", "0.11.9", "0.11.10"]).collect();
                pin(trigger, "@activepieces/piece-http", &http, "0.11.21");
                let slack = ["0.15.0", "0.16.0", "0.16.1", "0.16.2", "0.16.3", "0.16.4"];
                pin(trigger, "@activepieces/piece-slack", &slack, "0.17.9");
            }
            _ => {}
        }
        at += 1;
    }
    req.entry("notes").and_modify(|n| {
        if n.is_null() {
            *n = json!([]);
        }
    });
    req.insert("schemaVersion".into(), Value::String(at.to_string()));
}

/// Calls `f` on the trigger and every step, each before what hangs from it (a step `f`
/// rewrote is walked in its new shape).
fn walk(step: &mut Value, f: &mut impl FnMut(&mut Value)) {
    if !step.is_object() {
        return;
    }
    f(step);
    for key in ["firstLoopAction", "onSuccessAction", "onFailureAction", "nextAction"] {
        if let Some(child) = step.get_mut(key) {
            walk(child, f);
        }
    }
    if let Some(Value::Array(children)) = step.get_mut("children") {
        for child in children {
            walk(child, f);
        }
    }
}

/// v0: `BRANCH` with `settings.conditions`, `onSuccessAction`, `onFailureAction` becomes a
/// `ROUTER` with a condition branch and an "Otherwise" fallback.
fn branch_to_router(step: &mut Value) {
    if step["type"] != "BRANCH" {
        return;
    }
    let old = step.as_object_mut().expect("walk gives objects");
    let conditions = old.get("settings").and_then(|s| s.get("conditions")).cloned().unwrap_or_else(|| json!([]));
    let child = |k: &str, old: &mut Map<String, Value>| old.remove(k).filter(|v| !v.is_null()).unwrap_or(Value::Null);
    let (yes, no) = (child("onSuccessAction", old), child("onFailureAction", old));
    let mut router = Map::new();
    for k in ["name", "displayName", "valid", "nextAction"] {
        if let Some(v) = old.remove(k) {
            router.insert(k.into(), v);
        }
    }
    router.insert("type".into(), json!("ROUTER"));
    router.insert(
        "settings".into(),
        json!({
            "branches": [
                {"branchName": "Branch 1", "branchType": "CONDITION", "conditions": conditions},
                {"branchName": "Otherwise", "branchType": "FALLBACK"},
            ],
            "executionType": "EXECUTE_FIRST_MATCH",
            "sampleData": {},
        }),
    );
    router.insert("children".into(), json!([yes, no]));
    *step = Value::Object(router);
}

/// v5: `@activepieces/piece-http`'s `return_response` becomes the webhook piece's.
fn http_response_to_webhook(step: &mut Value) {
    let s = &step["settings"];
    if step["type"] != "PIECE" || s["pieceName"] != "@activepieces/piece-http" || s["actionName"] != "return_response" {
        return;
    }
    let input = s["input"].clone();
    let old_version = s["pieceVersion"].as_str().unwrap_or_default().trim_start_matches(['~', '^']).to_string();
    let numbers: Vec<u64> = old_version.split(['.', '-']).take(3).map(|n| n.parse().unwrap_or(0)).collect();
    let at_least_0_5 = numbers.as_slice() >= [0, 5, 0].as_slice();
    let mut fields = Map::new();
    if let Some(status) = input.get("status").filter(|v| !v.is_null()) {
        fields.insert("status".into(), status.clone());
    }
    if let Some(headers) = input.get("headers").filter(|v| !v.is_null() && *v != &json!({}) && *v != "") {
        fields.insert("headers".into(), headers.clone());
    }
    match input.get("body") {
        Some(Value::Object(b)) if at_least_0_5 && b.contains_key("data") => {
            fields.insert("body".into(), b["data"].clone());
        }
        Some(body @ Value::Object(_)) if !at_least_0_5 => {
            fields.insert("body".into(), body.clone());
        }
        _ => {}
    }
    let response_type = input.get("body_type").filter(|v| v.as_str().is_some_and(|s| !s.is_empty())).cloned();
    let settings = step["settings"].as_object_mut().expect("a piece step has settings");
    settings.insert("pieceName".into(), json!("@activepieces/piece-webhook"));
    settings.insert("pieceVersion".into(), json!("0.1.20"));
    settings.insert("actionName".into(), json!("return_response"));
    settings.insert(
        "input".into(),
        json!({"respond": "stop", "responseType": response_type.unwrap_or(json!("json")), "fields": fields}),
    );
    let manual = json!({"type": "MANUAL"});
    let props = settings.entry("propertySettings").or_insert_with(|| json!({}));
    if let Some(p) = props.as_object_mut() {
        for k in ["respond", "responseType", "fields"] {
            p.insert(k.into(), manual.clone());
        }
    }
}

/// v6: `settings.inputUiInfo` gives way to `propertySettings` (one per input, `DYNAMIC` when
/// it was a customized input) and `sampleDataSettings`.
fn input_ui_info(step: &mut Value) {
    let Some(settings) = step.get_mut("settings").and_then(Value::as_object_mut) else { return };
    let ui = settings.remove("inputUiInfo").unwrap_or(Value::Null);
    let customized = ui.get("customizedInputs").cloned().unwrap_or(Value::Null);
    if let Some(logo) = customized.get("logoUrl").filter(|v| !v.is_null()) {
        settings.insert("customLogoUrl".into(), logo.clone());
    }
    let sample: Map<String, Value> = ["sampleDataFileId", "sampleDataInputFileId", "lastTestDate"]
        .into_iter()
        .filter_map(|k| ui.get(k).filter(|v| !v.is_null()).map(|v| (k.to_string(), v.clone())))
        .collect();
    settings.insert("sampleDataSettings".into(), Value::Object(sample));
    let schema = settings.get("schema").cloned().unwrap_or(Value::Null);
    let inputs: Vec<String> =
        settings.get("input").and_then(Value::as_object).map(|m| m.keys().cloned().collect()).unwrap_or_default();
    let props: Map<String, Value> = inputs
        .into_iter()
        .map(|k| {
            let dynamic = customized.get(&k).is_some_and(|v| v.as_bool().unwrap_or(!v.is_null()));
            let mut p = json!({"type": if dynamic { "DYNAMIC" } else { "MANUAL" }});
            if let Some(s) = schema.get(&k).filter(|v| !v.is_null()) {
                p["schema"] = s.clone();
            }
            (k, p)
        })
        .collect();
    settings.insert("propertySettings".into(), Value::Object(props));
}

/// Pins steps of `piece` at one of `from` to `to`.
fn pin(trigger: &mut Value, piece: &str, from: &[&str], to: &str) {
    walk(trigger, &mut |step| {
        let s = &step["settings"];
        if s["pieceName"] == piece && s["pieceVersion"].as_str().is_some_and(|v| from.contains(&v)) {
            step["settings"]["pieceVersion"] = json!(to);
        }
    });
}

#[cfg(test)]
mod tests;
