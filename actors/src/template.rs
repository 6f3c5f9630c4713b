//! Templates, resolved as the Activepieces engine resolves them.
//!
//! A string may hold `{{ ... }}` tokens. A token that is a plain path
//! (`trigger.body.x`, `step_1['body']['items'][0]`) is resolved natively against the run's
//! outputs. Anything else is a JavaScript expression (`step_1.items.length + 1`), evaluated in
//! the code sandbox with the trigger and steps as names: the caller evaluates
//! [`expressions`] first and hands the results to [`resolve`]. A string that is exactly one
//! token keeps the value's type; tokens inside text are interpolated, non-strings JSON-encoded.

use serde_json::{Map, Value};
use std::collections::HashMap;

/// Results of the expressions of a value, by expression text.
pub type Evaluations = HashMap<String, troupe_sandbox::Evaluated>;

/// One step of a path: `.name` / `['name']`, or `[3]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Segment {
    Key(String),
    Index(usize),
}

/// A parsed plain path: a root name (the trigger or a step) and what follows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Path {
    pub root: String,
    pub segments: Vec<Segment>,
}

/// A piece of a template string.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Part<'a> {
    Text(&'a str),
    /// The text between `{{` and `}}`, trimmed.
    Token(&'a str),
}

/// Splits a string into literal text and `{{ }}` tokens. An unclosed `{{` is literal text.
pub fn split(s: &str) -> Vec<Part<'_>> {
    let mut parts = Vec::new();
    let mut rest = s;
    while let Some(start) = rest.find("{{") {
        let Some(len) = rest[start + 2..].find("}}") else {
            break;
        };
        if start > 0 {
            parts.push(Part::Text(&rest[..start]));
        }
        parts.push(Part::Token(rest[start + 2..start + 2 + len].trim()));
        rest = &rest[start + 2 + len + 2..];
    }
    if !rest.is_empty() {
        parts.push(Part::Text(rest));
    }
    parts
}

fn is_ident_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_' || c == '$'
}

fn is_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '$'
}

/// Parses a token as a plain path, or `None` when it is an expression.
pub fn parse_path(token: &str) -> Option<Path> {
    let s = token.trim();
    let mut chars = s.char_indices().peekable();
    let (_, first) = chars.next()?;
    if !is_ident_start(first) {
        return None;
    }
    let mut end = first.len_utf8();
    while let Some(&(i, c)) = chars.peek() {
        if !is_ident(c) {
            break;
        }
        end = i + c.len_utf8();
        chars.next();
    }
    let root = s[..end].to_string();
    let mut segments = Vec::new();
    let mut rest = &s[end..];
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix('.') {
            let len = after.find(|c: char| !is_ident(c)).unwrap_or(after.len());
            if len == 0 || !after.starts_with(is_ident_start) && !after.starts_with(|c: char| c.is_ascii_digit()) {
                return None;
            }
            segments.push(Segment::Key(after[..len].to_string()));
            rest = &after[len..];
        } else if let Some(after) = rest.strip_prefix('[') {
            let close = after.find(']')?;
            let inner = after[..close].trim();
            let seg = if let Some(q) = inner
                .strip_prefix('\'')
                .and_then(|x| x.strip_suffix('\''))
                .or_else(|| inner.strip_prefix('"').and_then(|x| x.strip_suffix('"')))
            {
                if q.contains(['\'', '"', '\\']) {
                    return None;
                }
                Segment::Key(q.to_string())
            } else {
                Segment::Index(inner.parse().ok()?)
            };
            segments.push(seg);
            rest = &after[close + 1..];
        } else {
            return None;
        }
    }
    Some(Path { root, segments })
}

/// Looks a path up in the run's outputs; `None` when any part is missing.
pub fn lookup<'a>(outputs: &'a Map<String, Value>, path: &Path) -> Option<&'a Value> {
    let mut cur = outputs.get(&path.root)?;
    for seg in &path.segments {
        cur = match (seg, cur) {
            (Segment::Key(k), Value::Object(m)) => m.get(k)?,
            (Segment::Key(k), Value::Array(a)) => a.get(k.parse::<usize>().ok()?)?,
            (Segment::Index(i), Value::Array(a)) => a.get(*i)?,
            (Segment::Index(i), Value::Object(m)) => m.get(&i.to_string())?,
            _ => return None,
        };
    }
    Some(cur)
}

/// An expression that threw, or that was not evaluated.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("template {{{{{expression}}}}} failed: {message}")]
pub struct TemplateError {
    pub expression: String,
    pub message: String,
}

/// The distinct expressions (tokens that are not plain paths) in the strings of `value`.
pub fn expressions(value: &Value) -> Vec<String> {
    let mut all = Vec::new();
    tokens(value, &mut all);
    let mut out: Vec<String> = Vec::new();
    for t in all {
        if parse_path(&t).is_none() && !out.contains(&t) {
            out.push(t);
        }
    }
    out
}

/// Resolves every template in `value` (strings, recursively through arrays and objects), as
/// Activepieces' engine does: a path that leads nowhere, or to `null`, is an empty string, and
/// an expression that throws is an empty string too; what threw is in the returned warnings
/// (the run logs them with the step) rather than failing the step.
///
/// With `nested` (flows of schema 22 and later), a step's output is `step_1['output']`, as
/// Activepieces writes templates since its "step output nesting" migration.
pub fn resolve(
    value: &Value,
    outputs: &Map<String, Value>,
    evals: &Evaluations,
    nested: bool,
) -> (Value, Vec<TemplateError>) {
    let mut warnings = Vec::new();
    let resolved = resolve_into(value, &Scope { outputs, nested }, evals, &mut warnings);
    (resolved, warnings)
}

/// Where paths are looked up: the run's outputs, in one of the two dialects.
pub struct Scope<'a> {
    pub outputs: &'a Map<String, Value>,
    pub nested: bool,
}

impl Scope<'_> {
    /// The value a plain path gives, if any.
    fn lookup(&self, path: &Path) -> Option<Value> {
        if !self.nested || path.root == crate::validate::CONNECTIONS {
            return lookup(self.outputs, path).cloned();
        }
        let output = self.outputs.get(&path.root)?;
        match path.segments.split_first() {
            None => Some(serde_json::json!({"output": output})),
            Some((Segment::Key(k), rest)) if k == "output" => {
                let inner = Path { root: path.root.clone(), segments: rest.to_vec() };
                lookup(self.outputs, &inner).cloned()
            }
            Some(_) => None,
        }
    }
}

/// The names expressions see: the outputs, each under `output` in the nested dialect.
pub fn expression_scope(outputs: &Map<String, Value>, nested: bool) -> Value {
    if !nested {
        return Value::Object(outputs.clone());
    }
    Value::Object(
        outputs
            .iter()
            .map(|(k, v)| {
                let v = if k == crate::validate::CONNECTIONS { v.clone() } else { serde_json::json!({"output": v}) };
                (k.clone(), v)
            })
            .collect(),
    )
}

fn resolve_into(value: &Value, scope: &Scope<'_>, evals: &Evaluations, warnings: &mut Vec<TemplateError>) -> Value {
    match value {
        Value::String(s) => resolve_in(s, scope, evals, warnings),
        Value::Array(a) => Value::Array(a.iter().map(|v| resolve_into(v, scope, evals, warnings)).collect()),
        Value::Object(m) => {
            Value::Object(m.iter().map(|(k, v)| (k.clone(), resolve_into(v, scope, evals, warnings))).collect())
        }
        other => other.clone(),
    }
}

/// A value as text inside a template: strings as they are, the rest as JSON.
fn text_of(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// [`resolve`] of one string, in the flat dialect.
pub fn resolve_str(
    s: &str,
    outputs: &Map<String, Value>,
    evals: &Evaluations,
    warnings: &mut Vec<TemplateError>,
) -> Value {
    resolve_in(s, &Scope { outputs, nested: false }, evals, warnings)
}

fn resolve_in(s: &str, scope: &Scope<'_>, evals: &Evaluations, warnings: &mut Vec<TemplateError>) -> Value {
    if !s.contains("{{") {
        return Value::String(s.to_string());
    }
    let parts = split(s);
    let mut eval = |token: &str| -> Value {
        let found = match parse_path(token) {
            Some(path) => scope.lookup(&path),
            None => match evals.get(token) {
                Some(Ok(v)) => Some(v.clone()),
                Some(Err(e)) => {
                    warnings.push(TemplateError { expression: token.to_string(), message: e.to_string() });
                    None
                }
                None => {
                    warnings
                        .push(TemplateError { expression: token.to_string(), message: "it was not evaluated".into() });
                    None
                }
            },
        };
        // `result ?? ''`
        found.filter(|v| !v.is_null()).unwrap_or_else(|| Value::String(String::new()))
    };
    if let [Part::Token(t)] = parts.as_slice() {
        return eval(t);
    }
    // with `flattenNestedKeys(..)` among its tokens, text makes one string per element of the
    // longest list its tokens give (a token that is no list repeats in each)
    if parts.iter().any(|p| matches!(p, Part::Token(t) if t.starts_with("flattenNestedKeys"))) {
        let values: Vec<Option<Value>> =
            parts.iter().map(|p| if let Part::Token(t) = p { Some(eval(t)) } else { None }).collect();
        let longest = values.iter().flatten().filter_map(Value::as_array).map(Vec::len).max().unwrap_or(0);
        let rows = (0..longest)
            .map(|i| {
                let mut out = String::new();
                for (part, value) in parts.iter().zip(&values) {
                    match (part, value) {
                        (Part::Text(t), _) => out.push_str(t),
                        (_, Some(Value::Array(a))) => {
                            out.push_str(&a.get(i).filter(|v| !v.is_null()).map(text_of).unwrap_or_default())
                        }
                        (_, Some(v)) => out.push_str(&text_of(v)),
                        (_, None) => {}
                    }
                }
                Value::String(out)
            })
            .collect();
        return Value::Array(rows);
    }
    let mut out = String::with_capacity(s.len());
    for part in parts {
        match part {
            Part::Text(t) => out.push_str(t),
            Part::Token(t) => out.push_str(&text_of(&eval(t))),
        }
    }
    Value::String(out)
}

/// Every token found in the strings of `value`, for validation.
pub fn tokens(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::String(s) if s.contains("{{") => {
            for p in split(s) {
                if let Part::Token(t) = p {
                    out.push(t.to_string());
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|v| tokens(v, out)),
        Value::Object(m) => m.values().for_each(|v| tokens(v, out)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn outputs() -> Map<String, Value> {
        json!({
            "trigger": {"body": {"x": 5, "name": "Ada", "items": [{"id": 1}, {"id": 2}]}},
            "step_1": {"body": {"items": ["a", "b"]}}
        })
        .as_object()
        .unwrap()
        .clone()
    }

    fn resolve_str(s: &str, o: &Map<String, Value>) -> Value {
        super::resolve_str(s, o, &Evaluations::new(), &mut Vec::new())
    }

    #[test]
    fn a_lone_template_keeps_its_type() {
        let o = outputs();
        assert_eq!(resolve_str("{{trigger.body.x}}", &o), json!(5));
        assert_eq!(resolve_str("{{ step_1['body']['items'][0] }}", &o), json!("a"));
        assert_eq!(resolve_str("{{trigger.body.items}}", &o)[1]["id"], json!(2));
    }

    #[test]
    fn what_is_missing_or_null_is_an_empty_string_as_in_activepieces() {
        let mut o = outputs();
        o.insert("step_2".into(), json!({"nothing": null}));
        assert_eq!(resolve_str("{{trigger.body.missing}}", &o), json!(""));
        assert_eq!(resolve_str("{{step_2.nothing}}", &o), json!(""));
        assert_eq!(resolve_str("{{nowhere.at.all}}", &o), json!(""));
        assert_eq!(resolve_str("a{{trigger.body.missing}}b{{step_2.nothing}}c", &o), json!("abc"));
    }

    #[test]
    fn templates_inside_text_are_interpolated() {
        let o = outputs();
        assert_eq!(
            resolve_str("Hi {{trigger.body.name}}, x={{trigger.body.x}} {{step_1.body.items}}", &o),
            json!("Hi Ada, x=5 [\"a\",\"b\"]")
        );
    }

    #[test]
    fn expressions_are_found_and_their_results_used() {
        assert!(parse_path("step_1.items.length + 1").is_none());
        assert!(parse_path("trigger.body.name.toUpperCase()").is_none());
        assert_eq!(parse_path("trigger[\"body\"].x").unwrap().segments.len(), 2);
        let v = json!({"a": "{{ a + b }} and {{trigger.body.x}}", "b": ["{{ a + b }}", "{{ c() }}"]});
        assert_eq!(expressions(&v), vec!["a + b".to_string(), "c()".to_string()]);
        let evals: Evaluations =
            [("a + b".to_string(), Ok(json!(3))), ("c()".to_string(), Err("c is not defined".into()))].into();
        let mut warnings = Vec::new();
        assert_eq!(super::resolve_str("{{ a + b }}", &outputs(), &evals, &mut warnings), json!(3));
        assert_eq!(
            super::resolve_str("x={{ a + b }}/{{trigger.body.x}}", &outputs(), &evals, &mut warnings),
            json!("x=3/5")
        );
        assert!(warnings.is_empty());
        // an expression that throws is an empty string, and a warning
        let (resolved, warnings) = super::resolve(&v, &outputs(), &evals, false);
        assert_eq!(resolved["b"], json!([3, ""]));
        assert_eq!(warnings.len(), 1);
        assert_eq!(warnings[0].to_string(), "template {{c()}} failed: c is not defined");
    }

    #[test]
    fn the_nested_dialect_reads_outputs_under_output() {
        let v = json!({"a": "{{step_1['output'].body.items[1]}}", "b": "{{trigger['output']['body']['x']}}",
            "c": "{{step_1.body}}", "d": "n={{trigger.output.body.x}}"});
        let (resolved, _) = super::resolve(&v, &outputs(), &Evaluations::new(), true);
        assert_eq!(resolved, json!({"a": "b", "b": 5, "c": "", "d": "n=5"}));
        assert_eq!(expression_scope(&outputs(), true)["trigger"]["output"]["body"]["x"], 5);
    }

    #[test]
    fn flatten_nested_keys_in_text_makes_one_string_per_element() {
        let evals: Evaluations =
            [("flattenNestedKeys(trigger, ['body', 'items', 'id'])".to_string(), Ok(json!([1, 2])))].into();
        let s = "id {{flattenNestedKeys(trigger, ['body', 'items', 'id'])}} of {{trigger.body.name}}";
        let resolved = super::resolve_str(s, &outputs(), &evals, &mut Vec::new());
        assert_eq!(resolved, json!(["id 1 of Ada", "id 2 of Ada"]));
    }
}
