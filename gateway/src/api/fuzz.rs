//! Property tests (proptest) of the API's request bodies: whatever a client sends to the main
//! endpoints (flow create, flow operations, app-connection upsert, folders, the bulk bodies of
//! flow runs, store entries), the body parses into the endpoint's request or is a 400, never a
//! panic; and any sequence of flow operations applies to a draft or is a 400, the draft still
//! reading back as the store writes it. Bounded by `PROPTEST_CASES` (default 256 per
//! property); `just fuzz` runs them longer.

use super::{connections, engine, flows, folders, runs};
use crate::error::ApiError;
use crate::http::parse_json;
use hyper::StatusCode;
use proptest::prelude::*;
use serde_json::{json, Map, Value};
use troupe_store::flow::FlowVersion;

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(256)
}

/// What a field of a request takes, when it is what the endpoint expects.
#[derive(Clone, Copy)]
enum F {
    Text,
    Word(&'static [&'static str]),
    Words(&'static [&'static str]),
    Int,
    Bool,
    /// JSON: one of these texts, or any (none given).
    Json(&'static [&'static str]),
}

type Fields = &'static [(&'static str, F)];

fn text() -> BoxedStrategy<String> {
    prop_oneof![".{0,16}", "[a-z_0-9/ ]{0,8}", Just(String::new())].boxed()
}

/// Numbers: small, huge, negative, fractional (those that are no JSON number become `null`).
fn number() -> BoxedStrategy<Value> {
    prop_oneof![
        (0u64..5).prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        prop::sample::select(vec![json!(u64::MAX), json!(i64::MIN), json!(-1), json!(1.5), json!(1e308), json!(-0.0)]),
    ]
    .boxed()
}

fn known(texts: &[&str]) -> Vec<Value> {
    texts.iter().map(|t| serde_json::from_str(t).expect("a known value is JSON")).collect()
}

/// Any JSON: numbers huge, negative and fractional, strings of any characters, objects keyed
/// by the endpoint's field names or by anything, and the values its fields take.
fn any_json(fields: Fields) -> BoxedStrategy<Value> {
    let names: Vec<&'static str> = fields.iter().map(|(n, _)| *n).collect();
    let mut words = vec!["", "x"];
    let mut values = vec![json!({})];
    for (_, f) in fields {
        match f {
            F::Word(w) | F::Words(w) => words.extend(w.iter()),
            F::Json(j) => values.extend(known(j)),
            _ => {}
        }
    }
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        number(),
        prop::sample::select(words).prop_map(Value::from),
        text().prop_map(Value::from),
        prop::sample::select(values),
    ];
    leaf.prop_recursive(4, 48, 6, move |inner| {
        let key = prop_oneof![3 => prop::sample::select(names.clone()).prop_map(String::from), 1 => text()];
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec((key, inner), 0..6).prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
    .boxed()
}

/// A field's value: mostly what it takes, else any JSON.
fn field(f: F, json: BoxedStrategy<Value>) -> BoxedStrategy<Value> {
    let good = match f {
        F::Text => text().prop_map(Value::from).boxed(),
        F::Word(w) => prop::sample::select(w).prop_map(Value::from).boxed(),
        F::Words(w) => prop::collection::vec(prop::sample::select(w), 0..3).prop_map(|v| json!(v)).boxed(),
        F::Int => prop_oneof![3 => (0u64..4).prop_map(Value::from), 1 => number()].boxed(),
        F::Bool => any::<bool>().prop_map(Value::from).boxed(),
        F::Json([]) => json.clone(),
        F::Json(j) => prop::sample::select(known(j)).boxed(),
    };
    prop_oneof![8 => good, 1 => json].boxed()
}

/// An object of the endpoint's fields, each there or not, and now and then one it does not know.
fn object(fields: Fields) -> BoxedStrategy<Value> {
    let json = any_json(fields);
    let each: Vec<_> = fields
        .iter()
        .map(|(n, f)| prop::option::weighted(0.9, field(*f, json.clone())).prop_map(move |v| (*n, v)))
        .collect();
    let extra = prop::option::weighted(0.15, (text(), json));
    (each, extra)
        .prop_map(|(each, extra)| {
            let mut m: Map<String, Value> = each.into_iter().filter_map(|(n, v)| Some((n.to_string(), v?))).collect();
            if let Some((k, v)) = extra {
                m.insert(k, v);
            }
            Value::Object(m)
        })
        .boxed()
}

/// A request body; shown as text when a property fails.
#[derive(Clone)]
struct Body(Vec<u8>);

impl std::fmt::Debug for Body {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", String::from_utf8_lossy(&self.0))
    }
}

/// Text that is not quite JSON, or not JSON at all.
fn odd_text() -> BoxedStrategy<Vec<u8>> {
    let odd = vec![
        String::new(),
        " ".into(),
        "{".into(),
        "nul".into(),
        "1e999".into(),
        "-1e999".into(),
        "18446744073709551616".into(),
        "-9223372036854775809".into(),
        "1e-400".into(),
        "\"\\ud800\"".into(),
        "{\"displayName\":\"a\",\"displayName\":\"b\"}".into(),
        "\u{feff}{}".into(),
        "{} {}".into(),
        format!("{}{}", "[".repeat(200), "]".repeat(200)),
        format!("{}1{}", "{\"a\":".repeat(130), "}".repeat(130)),
    ];
    prop_oneof![prop::sample::select(odd).prop_map(String::into_bytes), prop::collection::vec(any::<u8>(), 0..48),]
        .boxed()
}

/// A request body: mostly an object of the endpoint's fields, else any JSON or odd text.
fn body(fields: Fields) -> BoxedStrategy<Body> {
    let to_vec = |v: Value| serde_json::to_vec(&v).expect("JSON");
    prop_oneof![
        6 => object(fields).prop_map(to_vec),
        2 => any_json(fields).prop_map(to_vec),
        1 => odd_text(),
    ]
    .prop_map(Body)
    .boxed()
}

/// The request, or a 400 (never another status).
fn ok_or_400<T>(r: &Result<T, ApiError>) -> Result<(), TestCaseError> {
    if let Err(e) = r {
        prop_assert_eq!(e.status, StatusCode::BAD_REQUEST, "{}", e.message);
    }
    Ok(())
}

const STEPS: &[&str] = &["step_1", "step_2", "step_3", "step_4", "step_7", "step_8", "step_9", "trigger", ""];
const LOCATIONS: &[&str] = &["AFTER", "AFTER", "INSIDE_LOOP", "INSIDE_BRANCH", "BEFORE"];
/// Routers (and a loop, and a step that does not exist), for the branch operations.
const ROUTERS: &[&str] = &["step_1", "step_1", "step_7", "step_3", "step_6"];
const ACTION_TYPES: &[&str] = &["CODE", "PIECE", "ROUTER", "LOOP_ON_ITEMS", "BRANCH"];
const OPERATIONS: &[&str] = &[
    "IMPORT_FLOW",
    "UPDATE_TRIGGER",
    "ADD_ACTION",
    "UPDATE_ACTION",
    "DELETE_ACTION",
    "MOVE_ACTION",
    "DUPLICATE_ACTION",
    "SET_SKIP_ACTION",
    "ADD_BRANCH",
    "DELETE_BRANCH",
    "DUPLICATE_BRANCH",
    "MOVE_BRANCH",
    "ADD_NOTE",
    "UPDATE_NOTE",
    "DELETE_NOTE",
    "CHANGE_NAME",
    "LOCK_AND_PUBLISH",
    "nope",
];

/// Steps: new ones (a router whose children do not match its branches, a router without them),
/// one whose name is taken, a step inside a step.
const ACTIONS: &[&str] = &[
    r#"{"name": "step_9", "type": "CODE", "settings": {"input": {"a": "{{step_1}}"}}}"#,
    r#"{"name": "step_8", "type": "LOOP_ON_ITEMS", "settings": {"items": "{{trigger}}"}, "firstLoopAction": {"name": "step_9", "type": "CODE", "settings": {}}}"#,
    r#"{"name": "step_7", "type": "ROUTER", "settings": {"branches": [{"branchName": "A", "branchType": "CONDITION", "conditions": [[]]}, {"branchName": "Otherwise", "branchType": "FALLBACK"}]}}"#,
    r#"{"name": "step_7", "type": "ROUTER", "settings": {"branches": [{"branchName": "A", "branchType": "CONDITION", "conditions": [[]]}]}, "children": []}"#,
    r#"{"name": "step_7", "type": "ROUTER", "settings": {}, "children": [null, {"name": "step_9", "type": "CODE", "settings": {}}]}"#,
    r#"{"name": "step_2", "type": "PIECE", "settings": {"pieceName": "@activepieces/piece-http", "actionName": "send_request"}}"#,
];

const TRIGGERS: &[&str] = &[
    r#"{"name": "trigger", "type": "EMPTY", "settings": {}}"#,
    r#"{"name": "trigger", "type": "PIECE_TRIGGER", "settings": {"pieceName": "@activepieces/piece-webhook"}, "nextAction": {"name": "step_1", "type": "BRANCH", "settings": {"conditions": [[]]}, "onSuccessAction": {"name": "step_2", "type": "CODE", "settings": {}}}}"#,
    r#"{"name": "trigger", "type": "EMPTY", "settings": {}, "nextAction": {"name": "step_1", "type": "ROUTER", "settings": {"branches": [{"branchName": "A", "branchType": "CONDITION", "conditions": [[]]}]}}}"#,
    r#"{"name": "trigger", "type": "EMPTY", "settings": {}, "nextAction": {"name": "step_1", "type": "ROUTER", "settings": {}, "children": [{"name": "step_2", "type": "CODE", "settings": {}}]}}"#,
    r#"{"name": "trigger", "type": "EMPTY", "settings": {}, "nextAction": {"name": "step_1", "type": "CODE", "settings": {}, "nextAction": {"name": "step_1", "type": "CODE", "settings": {}}}}"#,
];

const SETTINGS: &[&str] = &[
    r#"{}"#,
    r#"{"branches": [{"branchName": "A", "branchType": "CONDITION", "conditions": [[]]}, {"branchName": "Otherwise", "branchType": "FALLBACK"}]}"#,
    r#"{"branches": []}"#,
    r#"{"input": {"a": "{{step_1.x}}"}, "items": "{{trigger}}"}"#,
];

const CONDITIONS: &[&str] = &[
    r#"[[]]"#,
    r#"[]"#,
    r#"[[{"firstValue": "a", "operator": "TEXT_CONTAINS", "secondValue": "b", "caseSensitive": false}]]"#,
];

/// The fields of a flow operation's request (`UPDATE_ACTION`'s request is a step).
fn operation_fields(kind: &str) -> Fields {
    match kind {
        "IMPORT_FLOW" => &[
            ("displayName", F::Text),
            ("trigger", F::Json(TRIGGERS)),
            ("schemaVersion", F::Word(&["1", "17", "22", "x"])),
            ("notes", F::Json(&[r#"[{"id": "n2"}]"#, "[]"])),
        ],
        "UPDATE_TRIGGER" => &[
            ("name", F::Word(&["trigger", "step_1"])),
            ("type", F::Word(&["EMPTY", "PIECE_TRIGGER", "WEBHOOK"])),
            ("displayName", F::Text),
            ("settings", F::Json(SETTINGS)),
            ("nextAction", F::Json(ACTIONS)),
        ],
        "ADD_ACTION" => &[
            ("parentStep", F::Word(STEPS)),
            ("stepLocationRelativeToParent", F::Word(LOCATIONS)),
            ("branchIndex", F::Int),
            ("action", F::Json(ACTIONS)),
        ],
        "UPDATE_ACTION" => &[
            ("name", F::Word(STEPS)),
            ("type", F::Word(ACTION_TYPES)),
            ("displayName", F::Text),
            ("valid", F::Bool),
            ("skip", F::Bool),
            ("settings", F::Json(SETTINGS)),
            ("children", F::Json(&["[]", "[null, null, null]"])),
            ("firstLoopAction", F::Json(ACTIONS)),
        ],
        "DELETE_ACTION" => &[("names", F::Words(STEPS))],
        "MOVE_ACTION" => &[
            ("name", F::Word(STEPS)),
            ("newParentStep", F::Word(STEPS)),
            ("stepLocationRelativeToNewParent", F::Word(LOCATIONS)),
            ("branchIndex", F::Int),
        ],
        "DUPLICATE_ACTION" => &[("stepName", F::Word(STEPS))],
        "SET_SKIP_ACTION" => &[("names", F::Words(STEPS)), ("skip", F::Bool)],
        "ADD_BRANCH" => &[
            ("stepName", F::Word(ROUTERS)),
            ("branchIndex", F::Int),
            ("branchName", F::Text),
            ("conditions", F::Json(CONDITIONS)),
        ],
        "DELETE_BRANCH" | "DUPLICATE_BRANCH" => &[("stepName", F::Word(ROUTERS)), ("branchIndex", F::Int)],
        "MOVE_BRANCH" => {
            &[("stepName", F::Word(ROUTERS)), ("sourceBranchIndex", F::Int), ("targetBranchIndex", F::Int)]
        }
        "ADD_NOTE" | "UPDATE_NOTE" | "DELETE_NOTE" => &[
            ("id", F::Word(&["n1", "n2"])),
            ("content", F::Text),
            ("color", F::Text),
            ("position", F::Json(&[r#"{"x": 1, "y": 2}"#])),
        ],
        "CHANGE_NAME" => &[("displayName", F::Text)],
        _ => &[("status", F::Word(&["ENABLED", "DISABLED"]))],
    }
}

/// A draft with a trigger, a router (one branch empty), a loop and a note.
fn draft() -> FlowVersion {
    serde_json::from_value(json!({
        "id": "v", "created": "t", "updated": "t", "flowId": "f", "displayName": "F", "state": "DRAFT",
        "notes": [{"id": "n1", "content": "a"}],
        "trigger": {"name": "trigger", "type": "EMPTY", "settings": {},
            "nextAction": {"name": "step_1", "type": "ROUTER", "settings": {"executionType": "EXECUTE_FIRST_MATCH", "branches": [
                {"branchName": "A", "branchType": "CONDITION", "conditions": [[]]}, {"branchName": "Otherwise", "branchType": "FALLBACK"}]},
                "children": [{"name": "step_2", "type": "PIECE", "settings": {"input": {"v": "{{step_1}}"}}}, null],
                "nextAction": {"name": "step_3", "type": "LOOP_ON_ITEMS", "settings": {"items": "[]"},
                    "firstLoopAction": {"name": "step_4", "type": "CODE", "settings": {}}}}}
    }))
    .expect("a draft")
}

/// A `POST /flows/{id}` body: mostly `{type, request}` with a request of that operation's
/// fields (or of another's), else anything.
fn operation_body() -> BoxedStrategy<Body> {
    let envelope = (prop::sample::select(OPERATIONS), prop::sample::select(OPERATIONS), 0..10u8)
        .prop_flat_map(|(kind, other, pick)| {
            let fields = operation_fields(if pick == 0 { other } else { kind });
            let request =
                prop_oneof![12 => object(fields).prop_map(Some), 1 => any_json(fields).prop_map(Some), 1 => Just(None)];
            (Just(kind), request)
        })
        .prop_map(|(kind, request)| {
            let mut m = Map::new();
            m.insert("type".into(), kind.into());
            if let Some(r) = request {
                m.insert("request".into(), r);
            }
            Body(serde_json::to_vec(&m).expect("JSON"))
        });
    prop_oneof![
        8 => envelope,
        1 => body(&[("type", F::Word(OPERATIONS)), ("request", F::Json(&[]))]),
    ]
    .boxed()
}

const RUN_STATUSES: &[&str] =
    &["FAILED", "SUCCEEDED", "RUNNING", "QUEUED", "PAUSED", "TIMEOUT", "INTERNAL_ERROR", "failed"];

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), failure_persistence: None, ..ProptestConfig::default() })]

    /// `POST /flows`.
    #[test]
    fn any_flow_create_body_parses_or_is_a_400(b in body(&[
        ("displayName", F::Text), ("projectId", F::Text), ("folderId", F::Text), ("metadata", F::Json(&[])),
    ])) {
        ok_or_400(&parse_json::<flows::CreateFlowRequest>(&b.0))?;
    }

    /// `POST /flows/{id}`: the bodies of a client's session of edits, each applied to the draft
    /// as the handler applies it (through the same function), the draft kept when it is refused
    /// and read back through JSON, as the store keeps it, when it is not.
    #[test]
    fn any_flow_operations_apply_or_are_a_400(bodies in prop::collection::vec(operation_body(), 1..5)) {
        let mut draft = draft();
        for b in bodies {
            let op = parse_json::<flows::OperationEnvelope>(&b.0);
            ok_or_400(&op)?;
            let Ok(op) = op else { continue };
            let mut edited = draft.clone();
            let r = flows::apply_edit(&mut edited, &op.kind, op.request);
            ok_or_400(&r)?;
            if r.is_ok() {
                let text = serde_json::to_string(&edited).expect("a version serializes");
                let back = serde_json::from_str::<FlowVersion>(&text);
                prop_assert!(back.is_ok(), "{} does not read back: {:?}", text, back.err());
                draft = back.expect("checked");
            }
        }
    }

    /// `POST /app-connections`, and the checks of the value that do not need the piece.
    #[test]
    fn any_connection_upsert_body_parses_or_is_a_400(b in body(&[
        ("externalId", F::Text), ("displayName", F::Text), ("pieceName", F::Word(&["@activepieces/piece-slack", "x"])),
        ("projectId", F::Text), ("type", F::Word(&["SECRET_TEXT", "BASIC_AUTH", "CUSTOM_AUTH", "OAUTH2", "NO_AUTH", "oauth2"])),
        ("value", F::Json(&[r#"{"secret_text": "s"}"#, r#"{"username": "u", "password": "p"}"#, r#"{"props": {}}"#,
            r#"{"access_token": "t", "type": "OAUTH2"}"#, r#"{"code": "c"}"#, r#"{"secret_text": ""}"#, "[]"])),
        ("scope", F::Word(&["PROJECT", "PLATFORM"])), ("metadata", F::Json(&[])),
        ("pieceVersion", F::Word(&["0.1.0", "~0.1.0", ""])), ("projectIds", F::Words(&["p", ""])),
    ])) {
        let r = parse_json::<connections::Upsert>(&b.0);
        ok_or_400(&r)?;
        if let Ok(u) = r {
            ok_or_400(&u.kind.check_value(&u.value).map_err(|e| ApiError::bad_request(e.to_string())))?;
        }
    }

    /// `POST /folders` and `POST /folders/{id}`.
    #[test]
    fn any_folder_body_parses_or_is_a_400(b in body(&[
        ("displayName", F::Text), ("projectId", F::Text), ("externalId", F::Text),
    ])) {
        ok_or_400(&parse_json::<folders::CreateFolder>(&b.0))?;
        ok_or_400(&parse_json::<folders::UpdateFolder>(&b.0))?;
    }

    /// `POST /flow-runs/{cancel,retry,archive}` (their filters' statuses too) and
    /// `POST /flow-runs/{id}/retry`.
    #[test]
    fn any_flow_runs_bulk_body_parses_or_is_a_400(b in body(&[
        ("projectId", F::Text), ("flowRunIds", F::Words(&["r1", ""])), ("excludeFlowRunIds", F::Words(&["r1"])),
        ("status", F::Words(RUN_STATUSES)), ("flowId", F::Words(&["f"])), ("createdAfter", F::Text),
        ("createdBefore", F::Text), ("failedStepName", F::Word(STEPS)), ("failedStepMessage", F::Text),
        ("strategy", F::Word(&["FROM_FAILED_STEP", "ON_LATEST_VERSION", "from_failed_step"])),
    ])) {
        let r = parse_json::<runs::Bulk>(&b.0);
        ok_or_400(&r)?;
        if let Ok(bulk) = r {
            ok_or_400(&runs::statuses(bulk.status.iter().map(String::as_str).collect()))?;
        }
        ok_or_400(&parse_json::<runs::RetryRequest>(&b.0))?;
    }

    /// `POST /store-entries` (a piece's store), and the entry its key names.
    #[test]
    fn any_store_entry_body_parses_or_is_a_400(b in body(&[
        ("key", F::Word(&["k", "flow_f/k", "flow_", "flow_f/", "/", ""])), ("value", F::Json(&[])),
    ])) {
        let r = parse_json::<engine::Put>(&b.0);
        ok_or_400(&r)?;
        if let Ok(put) = r {
            let token = troupe_store::db::EngineToken {
                project_id: "p".into(), flow_id: "f".into(), run_id: "r".into(), expires: 0,
            };
            let entry = engine::entry_key(&token, &put.key);
            prop_assert!(entry.starts_with("flow/") || entry.starts_with("project/p/"), "{}", entry);
        }
    }
}

/// Found by `any_flow_operations_apply_or_are_a_400`: a note that is no object was indexed as
/// one, and the request panicked.
#[test]
fn a_note_that_is_no_object_is_a_400() {
    for body in [r#"{"type":"ADD_NOTE","request":false}"#, r#"{"type":"ADD_NOTE","request":[]}"#] {
        let op = parse_json::<flows::OperationEnvelope>(body.as_bytes()).expect("an envelope");
        let e = flows::apply_edit(&mut draft(), &op.kind, op.request).expect_err("refused");
        assert_eq!((e.status, e.message.as_str()), (StatusCode::BAD_REQUEST, "a note must be an object"));
    }
}
