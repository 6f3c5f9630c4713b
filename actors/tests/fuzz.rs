//! Property tests (proptest) of the template resolver: any text resolves to a value (never a
//! panic); text without `{{` is itself; a template of a path that exists gives that value.
//! The JavaScript-expression path too, without the sandbox: any text is split into tokens,
//! each a plain path or an expression (`flattenNestedKeys(..)` among them), and resolves with
//! any results for its expressions; any path that exists in any outputs, written in any of the
//! ways a path is written, resolves to its value in both dialects.
//! Bounded here (`PROPTEST_CASES`, default 256 per property); `just fuzz` runs them longer.

use proptest::prelude::*;
use serde_json::{json, Map, Value};
use troupe_actors::template::{self, Evaluations, Part};

fn outputs() -> Map<String, Value> {
    json!({"trigger": {"body": {"a": [1, {"b": "c"}], "n": 5}}, "step_1": {"x": null}}).as_object().unwrap().clone()
}

/// Template text: `{{ }}` and lone braces, brackets, quotes, JavaScript operators,
/// `flattenNestedKeys(`, names of the outputs, and any other characters (unicode, NUL).
const TEMPLATE: &str = r#"(\{\{|\}\}|\{|\}|\[|\]|'|"|\\|\.|\(|\)|,|\+|-|\*|/|\?\?|\?|:|!|==|<|>|&&|\|\||=>|flattenNestedKeys\(|trigger|step_1|connections|output|body|\$|_|a|0|9|1e3|e| |\t|é|日本|🦀|\x00|\u{301}|[^{}]){0,48}"#;

/// What an expression gave: a list (what `flattenNestedKeys` gives), a value, or what it threw.
fn evaluated() -> impl Strategy<Value = troupe_sandbox::Evaluated> {
    prop_oneof![
        Just(Ok(json!([1, "a", null, {"x": [2]}]))),
        Just(Ok(json!([]))),
        Just(Ok(json!("text"))),
        Just(Ok(json!(5))),
        Just(Ok(Value::Null)),
        Just(Ok(json!({"k": "v"}))),
        Just(Err("x is not defined".into())),
    ]
}

/// A JSON document of outputs, keyed by anything a quoted path may hold.
fn document() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        (-1e9f64..1e9).prop_map(Value::from),
        ".{0,8}".prop_map(Value::from),
    ];
    leaf.prop_recursive(5, 40, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec((r"[a-zA-Z0-9_$ .:/@#\[é日🦀-]{0,6}", inner), 0..4)
                .prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
}

fn is_identifier(k: &str) -> bool {
    let mut chars = k.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == '$')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$')
}

/// A path through `doc` chosen by `choices`, written each step in the way its `u8` says, and
/// the value at its end.
fn walk(doc: &Value, choices: &[(usize, u8)]) -> (String, Value) {
    let mut path = String::new();
    let mut cur = doc;
    for &(pick, style) in choices {
        let pad = if style & 4 == 0 { "" } else { " " };
        match cur {
            Value::Object(m) if !m.is_empty() => {
                let (k, v) = m.iter().nth(pick % m.len()).expect("in range");
                match style % 3 {
                    0 if is_identifier(k) => path.push_str(&format!(".{k}")),
                    1 => path.push_str(&format!("[{pad}\"{k}\"{pad}]")),
                    _ => path.push_str(&format!("[{pad}'{k}'{pad}]")),
                }
                cur = v;
            }
            Value::Array(a) if !a.is_empty() => {
                let i = pick % a.len();
                match style % 3 {
                    0 => path.push_str(&format!(".{i}")),
                    1 => path.push_str(&format!("[{pad}{i}{pad}]")),
                    _ => path.push_str(&format!("['{i}']")),
                }
                cur = &a[i];
            }
            _ => break,
        }
    }
    (path, cur.clone())
}

/// A value as text inside a template: strings as they are, `null` nothing, the rest JSON.
fn as_text(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(256)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn any_text_resolves(s in r"(\{\{|\}\}|\[|\]|'|\.|trigger|step_1|body|a|0|9| |[^{}]){0,40}") {
        let evals = Evaluations::new();
        let mut warnings = Vec::new();
        let _ = template::resolve_str(&s, &outputs(), &evals, &mut warnings);
        let _ = template::parse_path(s.trim());
        let (_, _) = template::resolve(&json!({"k": [s.clone()]}), &outputs(), &evals, true);
    }

    #[test]
    fn text_without_templates_is_itself(s in "[^{]{0,40}") {
        let out = template::resolve_str(&s, &outputs(), &Evaluations::new(), &mut Vec::new());
        prop_assert_eq!(out, Value::String(s));
    }

    #[test]
    fn a_path_that_exists_gives_its_value(i in 0usize..2, spaces in " {0,3}") {
        let s = format!("{{{{{spaces}trigger.body.a[{i}]{spaces}}}}}");
        let out = template::resolve_str(&s, &outputs(), &Evaluations::new(), &mut Vec::new());
        prop_assert_eq!(out, outputs()["trigger"]["body"]["a"][i].clone());
    }

    /// Any template text: its tokens are plain paths or expressions, the expressions are
    /// those of the text, and with any results for them it resolves in both dialects (one
    /// token keeps its result's type; with `flattenNestedKeys` the text is a list of texts;
    /// else a text), a warning for each expression that threw and none else.
    #[test]
    fn any_template_with_expressions_resolves(
        s in TEMPLATE,
        results in prop::collection::vec(evaluated(), 1..4),
        nested in any::<bool>(),
    ) {
        let value = json!({"s": s, "k": [s.clone(), {"t": "{{trigger.body.n}}"}]});
        let exprs = template::expressions(&value);
        let parts = template::split(&s);
        let tokens: Vec<&str> = parts.iter().filter_map(|p| if let Part::Token(t) = p { Some(*t) } else { None }).collect();
        for t in &tokens {
            match template::parse_path(t) {
                Some(path) => {
                    prop_assert!(!exprs.iter().any(|e| e == t), "{} is a path and an expression", t);
                    let _ = template::lookup(&outputs(), &path);
                }
                None => prop_assert!(exprs.iter().any(|e| e == t), "{} is not among {:?}", t, exprs),
            }
        }
        prop_assert!(exprs.iter().all(|e| template::parse_path(e).is_none() && tokens.contains(&e.as_str())));
        let evals: Evaluations =
            exprs.iter().enumerate().map(|(i, e)| (e.clone(), results[i % results.len()].clone())).collect();
        let (resolved, warnings) = template::resolve(&value, &outputs(), &evals, nested);
        let threw: Vec<&String> = exprs.iter().filter(|e| evals[*e].is_err()).collect();
        prop_assert!(warnings.iter().all(|w| threw.contains(&&w.expression)), "{:?}", warnings);
        prop_assert_eq!(threw.is_empty(), warnings.is_empty());
        let out = &resolved["s"];
        if !s.contains("{{") {
            prop_assert_eq!(out, &Value::String(s.clone()));
        } else if let [Part::Token(_)] = parts.as_slice() {
        } else if tokens.iter().any(|t| t.starts_with("flattenNestedKeys")) {
            prop_assert!(out.as_array().is_some_and(|a| a.iter().all(Value::is_string)), "{}", out);
        } else {
            prop_assert!(out.is_string(), "{}", out);
        }
        prop_assert_eq!(&resolved["k"][0], out);
        let scope = template::expression_scope(&outputs(), nested);
        prop_assert_eq!(scope.as_object().map(|m| m.len()), Some(outputs().len()));
    }

    /// Any path that exists in any outputs (`.key`, `['key']`, `["key"]`, `[0]`, `.0`,
    /// spaces inside brackets and around the path) is a plain path and gives its value: alone,
    /// inside text, and in the nested dialect under `output`.
    #[test]
    fn any_plain_path_that_exists_gives_its_value(
        docs in prop::collection::btree_map("[a-z_$][a-z0-9_$]{0,5}", document(), 1..4),
        root in any::<usize>(),
        choices in prop::collection::vec((any::<usize>(), any::<u8>()), 0..6),
        spaces in " {0,2}",
        nested_style in any::<bool>(),
    ) {
        let outputs: Map<String, Value> = docs.into_iter().collect();
        let (name, doc) = outputs.iter().nth(root % outputs.len()).expect("in range");
        let (rest, expected) = walk(doc, &choices);
        let path = format!("{name}{rest}");
        let parsed = template::parse_path(&path);
        prop_assert!(parsed.is_some(), "{} is not a path", path);
        prop_assert_eq!(template::lookup(&outputs, &parsed.expect("checked")), Some(&expected));
        let s = format!("{{{{{spaces}{path}{spaces}}}}}");
        prop_assert!(template::expressions(&json!(s)).is_empty());
        let alone = if expected.is_null() { json!("") } else { expected.clone() };
        let evals = Evaluations::new();
        prop_assert_eq!(template::resolve_str(&s, &outputs, &evals, &mut Vec::new()), alone.clone());
        let inside = format!("<{s}>");
        prop_assert_eq!(
            template::resolve_str(&inside, &outputs, &evals, &mut Vec::new()),
            Value::String(format!("<{}>", as_text(&expected)))
        );
        let under = if nested_style { ".output" } else { "['output']" };
        let nested = format!("{{{{{name}{under}{rest}}}}}");
        let (resolved, warnings) = template::resolve(&json!(nested), &outputs, &evals, true);
        prop_assert_eq!(resolved, alone);
        prop_assert!(warnings.is_empty());
    }
}
