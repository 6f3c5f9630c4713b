//! Validation of a flow version against what Troupe can run. Every problem names the step
//! and the field, so the user knows what to fix. A draft may be invalid; publishing needs
//! none of these problems.

use crate::pieces::catalog;
use crate::template;
use serde::Serialize;
use serde_json::Value;
use std::collections::HashSet;
use troupe_store::flow::{Action, ActionType, BranchType, FlowVersion, TriggerType};

#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct Problem {
    pub step: String,
    pub field: String,
    pub message: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "step {:?} field {:?}: {}", self.step, self.field, self.message)
    }
}

/// The router operators Activepieces defines.
pub const OPERATORS: &[&str] = &[
    "TEXT_CONTAINS",
    "TEXT_DOES_NOT_CONTAIN",
    "TEXT_EXACTLY_MATCHES",
    "TEXT_DOES_NOT_EXACTLY_MATCH",
    "TEXT_START_WITH",
    "TEXT_DOES_NOT_START_WITH",
    "TEXT_ENDS_WITH",
    "TEXT_DOES_NOT_END_WITH",
    "NUMBER_IS_GREATER_THAN",
    "NUMBER_IS_LESS_THAN",
    "NUMBER_IS_EQUAL_TO",
    "BOOLEAN_IS_TRUE",
    "BOOLEAN_IS_FALSE",
    "DATE_IS_BEFORE",
    "DATE_IS_EQUAL",
    "DATE_IS_AFTER",
    "LIST_CONTAINS",
    "LIST_DOES_NOT_CONTAIN",
    "LIST_IS_EMPTY",
    "LIST_IS_NOT_EMPTY",
    "EXISTS",
    "DOES_NOT_EXIST",
];

struct Checker<'a> {
    problems: Vec<Problem>,
    seen: HashSet<String>,
    /// Whether a piece is checked here, as a native piece; the others are npm pieces, which
    /// the caller checks against their installed metadata.
    native: &'a dyn Fn(&str) -> bool,
}

/// The template root under which connections are found: `{{connections['name']}}`.
pub const CONNECTIONS: &str = "connections";

/// The connections the steps of `version` refer to, by name.
pub fn connection_names(version: &FlowVersion) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let trigger = (&version.trigger.name, &version.trigger.settings);
    for (step, settings) in
        std::iter::once(trigger).chain(version.actions().into_iter().map(|a| (&a.name, &a.settings)))
    {
        let mut tokens = Vec::new();
        if let Some(input) = &settings.input {
            template::tokens(&Value::Object(input.clone()), &mut tokens);
        }
        for t in tokens {
            if let Some(p) = template::parse_path(&t).filter(|p| p.root == CONNECTIONS) {
                if let Some(template::Segment::Key(name)) = p.segments.first() {
                    out.push((step.clone(), name.clone()));
                }
            }
        }
    }
    out
}

impl Checker<'_> {
    fn problem(&mut self, step: &str, field: &str, message: impl Into<String>) {
        self.problems.push(Problem { step: step.into(), field: field.into(), message: message.into() });
    }

    /// Checks the templates in `value` against the steps that run before `step`.
    fn templates(&mut self, step: &str, field: &str, value: &Value, before: &[String]) {
        let mut tokens = Vec::new();
        template::tokens(value, &mut tokens);
        for token in tokens {
            match template::parse_path(&token) {
                // an expression: JavaScript, evaluated in the sandbox at run time
                None => {}
                // a connection: whether it exists in the flow's project is checked at publish
                Some(path)
                    if path.root == CONNECTIONS
                        && !matches!(path.segments.first(), Some(template::Segment::Key(_))) =>
                {
                    self.problem(
                        step,
                        field,
                        format!("template {{{{{token}}}}} must name a connection: {{{{connections['name']}}}}"),
                    );
                }
                Some(path) if path.root == CONNECTIONS => {}
                Some(path) if !before.contains(&path.root) => self.problem(
                    step,
                    field,
                    format!("template {{{{{token}}}}} refers to {:?}, which does not run before this step", path.root),
                ),
                Some(_) => {}
            }
        }
    }

    /// Checks a chain of steps; `before` holds the names a step of the chain may refer to.
    fn chain(&mut self, first: Option<&Action>, before: &mut Vec<String>) {
        let mut cur = first;
        while let Some(a) = cur {
            self.action(a, before);
            before.push(a.name.clone());
            cur = a.next_action.as_deref();
        }
    }

    fn action(&mut self, a: &Action, before: &mut Vec<String>) {
        if !self.seen.insert(a.name.clone()) {
            self.problem(&a.name, "name", "another step has the same name; step names must be unique");
        }
        let s = &a.settings;
        match a.kind {
            ActionType::Piece => {
                let piece = s.piece_name.as_deref().unwrap_or_default();
                let action = s.action_name.as_deref().unwrap_or_default();
                if piece.is_empty() {
                    self.problem(&a.name, "settings.pieceName", "is required");
                } else if !(self.native)(piece) {
                    // an npm piece: its action and props are checked against its metadata
                } else if catalog::piece(piece).is_none() {
                    self.problem(&a.name, "settings.pieceName", format!("piece {piece:?} is not available in Troupe"));
                } else if action.is_empty() {
                    self.problem(&a.name, "settings.actionName", "is required");
                } else if let Some(def) = catalog::action_def(piece, action) {
                    let input = s.input.clone().unwrap_or_default();
                    for req in def.required {
                        // as Activepieces' validation: an empty text is no value
                        if input.get(*req).is_none_or(|v| v.is_null() || v == "") {
                            self.problem(&a.name, &format!("settings.input.{req}"), "is required");
                        }
                    }
                } else {
                    self.problem(
                        &a.name,
                        "settings.actionName",
                        format!("piece {piece:?} has no action {action:?} in Troupe"),
                    );
                }
                if let Some(input) = &s.input {
                    for (k, v) in input {
                        self.templates(&a.name, &format!("settings.input.{k}"), v, before);
                    }
                }
            }
            ActionType::Code => {
                match (&s.wasm_module, &s.source_code) {
                    (Some(id), _) => {
                        if id.len() != 64 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
                            self.problem(
                                &a.name,
                                "settings.wasmModule",
                                "must be a module id (64 hex characters) from POST /api/v1/wasm-modules",
                            );
                        }
                    }
                    (None, None) => self.problem(&a.name, "settings.sourceCode", "is required"),
                    (None, Some(src)) => {
                        if src.code.trim().is_empty() {
                            self.problem(&a.name, "settings.sourceCode.code", "is required");
                        } else if let Err(e) = crate::typescript::strip(&src.code) {
                            self.problem(&a.name, "settings.sourceCode.code", e.to_string());
                        }
                        if let Some(deps) = package_dependencies(&src.package_json) {
                            self.problem(
                                &a.name,
                                "settings.sourceCode.packageJson",
                                format!("npm dependencies are not supported in Troupe code steps ({deps}); remove them from packageJson"),
                            );
                        }
                    }
                }
                if let Some(input) = &s.input {
                    for (k, v) in input {
                        self.templates(&a.name, &format!("settings.input.{k}"), v, before);
                    }
                }
            }
            ActionType::LoopOnItems => {
                match &s.items {
                    None => self.problem(&a.name, "settings.items", "is required"),
                    Some(items) => self.templates(&a.name, "settings.items", items, before),
                }
                let mut inner = before.clone();
                inner.push(a.name.clone());
                let start = inner.len();
                self.chain(a.first_loop_action.as_deref(), &mut inner);
                // After the loop, its body's steps hold their last iteration's output.
                let body: Vec<String> = inner.drain(start..).collect();
                before.extend(body);
            }
            ActionType::Router => {
                let branches = s.branches.as_deref().unwrap_or_default();
                if branches.is_empty() {
                    self.problem(&a.name, "settings.branches", "a router needs at least one branch");
                }
                if s.execution_type.is_none() {
                    self.problem(
                        &a.name,
                        "settings.executionType",
                        "is required (EXECUTE_FIRST_MATCH or EXECUTE_ALL_MATCH)",
                    );
                }
                for (i, b) in branches.iter().enumerate() {
                    if b.branch_type == BranchType::Fallback {
                        continue;
                    }
                    let groups = b.conditions.as_deref().unwrap_or_default();
                    for (g, group) in groups.iter().enumerate() {
                        for (c, cond) in group.iter().enumerate() {
                            let field = format!("settings.branches[{i}].conditions[{g}][{c}]");
                            match cond.operator.as_deref() {
                                Some(op) if OPERATORS.contains(&op) => {}
                                Some(op) => self.problem(
                                    &a.name,
                                    &format!("{field}.operator"),
                                    format!("unknown operator {op:?}"),
                                ),
                                None => self.problem(&a.name, &format!("{field}.operator"), "is required"),
                            }
                            self.templates(&a.name, &format!("{field}.firstValue"), &cond.first_value, before);
                            if let Some(v) = &cond.second_value {
                                self.templates(&a.name, &format!("{field}.secondValue"), v, before);
                            }
                        }
                    }
                }
                let children = a.children.as_deref().unwrap_or_default();
                if children.len() != branches.len() {
                    self.problem(
                        &a.name,
                        "children",
                        format!("has {} entries for {} branches", children.len(), branches.len()),
                    );
                }
                // Steps of a branch may be referred to after the router (they may not have run).
                let mut after = Vec::new();
                for child in children.iter().flatten() {
                    let mut inner = before.clone();
                    inner.push(a.name.clone());
                    let start = inner.len();
                    self.chain(Some(child), &mut inner);
                    after.extend(inner.drain(start..));
                }
                before.extend(after);
            }
        }
    }
}

/// Names of the dependencies a code step's packageJson declares, if any.
fn package_dependencies(package_json: &str) -> Option<String> {
    if package_json.trim().is_empty() {
        return None;
    }
    let parsed: Value = serde_json::from_str(package_json).ok()?;
    let deps = parsed.get("dependencies")?.as_object()?;
    if deps.is_empty() {
        return None;
    }
    Some(deps.keys().cloned().collect::<Vec<_>>().join(", "))
}

/// Every problem that keeps `version` from being published; empty when it is valid.
/// `native` says which pieces are checked here (the native ones that run); the steps of other
/// pieces get only their templates checked.
pub fn validate(version: &FlowVersion, native: &dyn Fn(&str) -> bool) -> Vec<Problem> {
    let mut c = Checker { problems: Vec::new(), seen: HashSet::new(), native };
    let t = &version.trigger;
    c.seen.insert(t.name.clone());
    match t.kind {
        TriggerType::Empty => c.problem(&t.name, "type", "the flow has no trigger; choose one before publishing"),
        TriggerType::Piece => {
            let piece = t.settings.piece_name.as_deref().unwrap_or_default();
            let trigger = t.settings.trigger_name.as_deref().unwrap_or_default();
            match catalog::piece(piece) {
                // an npm piece's trigger: checked against its metadata by the caller
                None if !native(piece) => {}
                None => c.problem(
                    &t.name,
                    "settings.pieceName",
                    format!("trigger piece {piece:?} is not available in Troupe"),
                ),
                Some(p) if !p.triggers.contains(&trigger) => c.problem(
                    &t.name,
                    "settings.triggerName",
                    format!("piece {piece:?} has no trigger {trigger:?} in Troupe"),
                ),
                Some(_) => {}
            }
        }
    }
    let mut before = vec![t.name.clone()];
    c.chain(t.next_action.as_deref(), &mut before);
    c.problems
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn validate_all(version: &FlowVersion) -> Vec<Problem> {
        validate(version, &|_| true)
    }

    fn version(next: Value) -> FlowVersion {
        serde_json::from_value(json!({
            "id": "v", "created": "t", "updated": "t", "flowId": "f", "displayName": "F", "state": "DRAFT",
            "trigger": {"name": "trigger", "type": "PIECE_TRIGGER", "settings": {
                "pieceName": "@activepieces/piece-webhook", "triggerName": "catch_webhook", "input": {}},
                "nextAction": next}
        }))
        .unwrap()
    }

    fn piece(name: &str, piece: &str, action: &str, input: Value) -> Value {
        json!({"name": name, "type": "PIECE", "settings": {"pieceName": piece, "actionName": action, "input": input}})
    }

    #[test]
    fn a_template_to_a_later_step_names_both() {
        let mut first =
            piece("step_1", catalog::DATA_MAPPER, "advanced_mapping", json!({"mapping": {"a": "{{step_2.x}}"}}));
        first["nextAction"] = piece("step_2", catalog::DATA_MAPPER, "advanced_mapping", json!({"mapping": {}}));
        let problems = validate_all(&version(first));
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(problems[0].step, "step_1");
        assert_eq!(problems[0].field, "settings.input.mapping");
        assert!(problems[0].message.contains("step_2"));
    }

    #[test]
    fn unknown_pieces_duplicates_and_missing_inputs_are_listed() {
        let mut first = piece("step_1", "@activepieces/piece-slack", "send_message", json!({}));
        let mut second = piece("step_1", catalog::STORE, "put", json!({"key": "k"}));
        second["nextAction"] = piece("step_3", catalog::STORE, "frobnicate", json!({}));
        first["nextAction"] = second;
        let problems = validate_all(&version(first));
        let fields: Vec<_> = problems.iter().map(|p| (p.step.as_str(), p.field.as_str())).collect();
        assert_eq!(
            fields,
            [
                ("step_1", "settings.pieceName"),
                ("step_1", "name"),
                ("step_1", "settings.input.value"),
                ("step_3", "settings.actionName")
            ]
        );
    }

    #[test]
    fn code_dependencies_are_refused_and_expressions_accepted() {
        let code = json!({"name": "step_1", "type": "CODE", "settings": {"input": {},
            "sourceCode": {"code": "export const code = async () => 1", "packageJson": "{\"dependencies\":{\"lodash\":\"4\"}}"}}});
        let problems = validate_all(&version(code));
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(problems[0].field, "settings.sourceCode.packageJson");
        assert!(problems[0].message.contains("lodash"));
        let fine = json!({"name": "step_1", "type": "CODE", "settings": {"input": {"n": "{{trigger.body.n}}"},
            "sourceCode": {"code": "export const code = async (inputs) => inputs.n", "packageJson": "{}"}}});
        assert_eq!(validate_all(&version(fine)), vec![]);
        let expr =
            piece("step_1", catalog::DATA_MAPPER, "advanced_mapping", json!({"mapping": "{{ trigger.body.a + 1 }}"}));
        assert_eq!(validate_all(&version(expr)), vec![]);
        let wasm = json!({"name": "step_1", "type": "CODE", "settings": {"input": {}, "wasmModule": "nope"}});
        assert_eq!(validate_all(&version(wasm))[0].field, "settings.wasmModule");
    }

    #[test]
    fn a_loop_body_may_refer_to_its_loop() {
        let mut l = json!({"name": "loop_1", "type": "LOOP_ON_ITEMS", "settings": {"items": "{{trigger.body.items}}"}});
        l["firstLoopAction"] =
            piece("step_2", catalog::DATA_MAPPER, "advanced_mapping", json!({"mapping": {"i": "{{loop_1.item}}"}}));
        assert_eq!(validate_all(&version(l)), vec![]);
    }
}
