//! The Activepieces flow model, lossless.
//!
//! Every struct keeps the fields Troupe reads as typed fields and everything else in an
//! `extra` map, so that a flow exported from Activepieces comes back out unchanged
//! (`inputUiInfo`, `propertySettings`, `sampleData`, `pieceType`, ... are preserved).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

pub type Extra = Map<String, Value>;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum FlowStatus {
    Enabled,
    Disabled,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum VersionState {
    Draft,
    Locked,
}

/// A flow: its identity and which version is live.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Flow {
    pub id: String,
    pub created: String,
    pub updated: String,
    pub project_id: String,
    #[serde(default)]
    pub folder_id: Option<String>,
    pub status: FlowStatus,
    #[serde(default)]
    pub published_version_id: Option<String>,
    #[serde(default)]
    pub external_id: Option<String>,
    /// The newest version: the draft being edited, or the locked version when no edit
    /// has happened since the last publish.
    pub latest_version_id: String,
    /// Why the flow was disabled by Troupe itself (for example a trigger that keeps failing).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disabled_reason: Option<String>,
    /// A client's own data about the flow (`UPDATE_METADATA`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Value>,
    /// `UPDATE_OWNER`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner_id: Option<String>,
    /// Minutes a run saves (`UPDATE_MINUTES_SAVED`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_saved_per_run: Option<f64>,
    /// Activepieces' `operationStatus`: Troupe's operations are synchronous, so always `NONE`.
    #[serde(default = "no_operation")]
    pub operation_status: String,
}

fn no_operation() -> String {
    "NONE".into()
}

/// One version of a flow: a trigger and the chain of steps hanging from it.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FlowVersion {
    pub id: String,
    pub created: String,
    pub updated: String,
    pub flow_id: String,
    pub display_name: String,
    pub trigger: Trigger,
    #[serde(default)]
    pub updated_by: Option<String>,
    #[serde(default)]
    pub valid: bool,
    #[serde(default)]
    pub schema_version: Option<String>,
    pub state: VersionState,
    #[serde(flatten)]
    pub extra: Extra,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum TriggerType {
    #[serde(rename = "EMPTY")]
    Empty,
    #[serde(rename = "PIECE_TRIGGER")]
    Piece,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Trigger {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: TriggerType,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub valid: Option<bool>,
    #[serde(default)]
    pub settings: Settings,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_action: Option<Box<Action>>,
    #[serde(flatten)]
    pub extra: Extra,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ActionType {
    Code,
    Piece,
    LoopOnItems,
    Router,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Action {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: ActionType,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub valid: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skip: Option<bool>,
    #[serde(default)]
    pub settings: Settings,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_action: Option<Box<Action>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_loop_action: Option<Box<Action>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub children: Option<Vec<Option<Box<Action>>>>,
    #[serde(flatten)]
    pub extra: Extra,
}

/// The settings of a trigger or step. One struct for every kind: which fields are required
/// depends on the kind and is checked by validation, not by parsing, so that a draft may be
/// incomplete as in Activepieces.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Settings {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input: Option<Map<String, Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub piece_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub piece_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trigger_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_code: Option<SourceCode>,
    /// Troupe's extension for CODE steps: the id (sha-256, hex) of a WASI module uploaded
    /// through `POST /api/v1/wasm-modules`, run in place of `sourceCode`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wasm_module: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_handling_options: Option<ErrorHandlingOptions>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub items: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub branches: Option<Vec<RouterBranch>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub execution_type: Option<RouterExecutionType>,
    #[serde(flatten)]
    pub extra: Extra,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SourceCode {
    #[serde(default)]
    pub code: String,
    #[serde(default)]
    pub package_json: String,
    #[serde(flatten)]
    pub extra: Extra,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ErrorHandlingOptions {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub continue_on_failure: Option<Toggle>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_on_failure: Option<Toggle>,
    #[serde(flatten)]
    pub extra: Extra,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Toggle {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<bool>,
    #[serde(flatten)]
    pub extra: Extra,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RouterExecutionType {
    ExecuteAllMatch,
    ExecuteFirstMatch,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum BranchType {
    Condition,
    Fallback,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RouterBranch {
    pub branch_name: String,
    pub branch_type: BranchType,
    /// OR of ANDs: the branch matches when every condition of any inner list holds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conditions: Option<Vec<Vec<BranchCondition>>>,
    #[serde(flatten)]
    pub extra: Extra,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BranchCondition {
    /// Kept as text so that an unknown operator is a validation error naming the step,
    /// not a parse error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operator: Option<String>,
    #[serde(default)]
    pub first_value: Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub second_value: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub case_sensitive: Option<bool>,
    #[serde(flatten)]
    pub extra: Extra,
}

impl Action {
    pub fn continue_on_failure(&self) -> bool {
        self.settings
            .error_handling_options
            .as_ref()
            .and_then(|o| o.continue_on_failure.as_ref())
            .and_then(|t| t.value)
            .unwrap_or(false)
    }

    pub fn retry_on_failure(&self) -> bool {
        self.settings
            .error_handling_options
            .as_ref()
            .and_then(|o| o.retry_on_failure.as_ref())
            .and_then(|t| t.value)
            .unwrap_or(false)
    }

    pub fn display(&self) -> &str {
        self.display_name.as_deref().unwrap_or(&self.name)
    }

    /// The steps nested directly inside this one (loop body, router branches).
    pub fn nested_chains(&self) -> Vec<&Action> {
        let mut out = Vec::new();
        if let Some(first) = &self.first_loop_action {
            out.push(first.as_ref());
        }
        if let Some(children) = &self.children {
            out.extend(children.iter().flatten().map(|b| b.as_ref()));
        }
        out
    }
}

/// Calls `f` on every action reachable from `first`, depth first, in execution order.
pub fn visit_actions<'a>(first: Option<&'a Action>, f: &mut impl FnMut(&'a Action)) {
    let mut cur = first;
    while let Some(a) = cur {
        f(a);
        for nested in a.nested_chains() {
            visit_actions(Some(nested), f);
        }
        cur = a.next_action.as_deref();
    }
}

impl FlowVersion {
    /// Adds the fields Activepieces' clients expect that Troupe does not keep otherwise:
    /// `notes` (`[]`), `agentIds` (`[]`) and `connectionIds` (the connections its templates
    /// name, which the caller finds).
    pub fn with_activepieces_fields(mut self, connection_ids: Vec<String>) -> FlowVersion {
        if !self.extra.get("notes").is_some_and(Value::is_array) {
            self.extra.insert("notes".into(), Value::Array(Vec::new()));
        }
        self.extra.entry("agentIds".to_string()).or_insert_with(|| Value::Array(Vec::new()));
        self.extra.insert("connectionIds".into(), connection_ids.into_iter().map(Value::String).collect());
        self
    }

    /// Every action of the version, in execution order.
    pub fn actions(&self) -> Vec<&Action> {
        let mut out = Vec::new();
        visit_actions(self.trigger.next_action.as_deref(), &mut |a| out.push(a));
        out
    }
}

/// A flow with its newest version, as `GET /flows/{id}` answers (Activepieces' PopulatedFlow).
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PopulatedFlow {
    #[serde(flatten)]
    pub flow: Flow,
    pub version: FlowVersion,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_fields_survive_a_round_trip() {
        let raw = serde_json::json!({
            "name": "step_1", "type": "PIECE", "displayName": "Send", "valid": true,
            "lastUpdatedDate": "2024-01-01T00:00:00.000Z",
            "settings": {
                "pieceName": "@activepieces/piece-http", "pieceVersion": "~0.1.25",
                "actionName": "send_request", "input": {"url": "https://x"},
                "inputUiInfo": {"customizedInputs": {}}, "propertySettings": {},
                "errorHandlingOptions": {"continueOnFailure": {"value": false}, "retryOnFailure": {"value": true, "hide": false}}
            }
        });
        let a: Action = serde_json::from_value(raw.clone()).unwrap();
        assert!(a.retry_on_failure());
        assert_eq!(serde_json::to_value(&a).unwrap(), raw);
    }
}
