//! `@activepieces/piece-json`: `convert_json_to_text`, `convert_text_to_json` and
//! `merge_json`, as the package. Its `run_jsonata_query` is not native (docs/compatibility.md).

use super::{catalog, required_text, unknown_action, ActionError, ActionResult};
use serde_json::{Map, Value};
use std::cmp::Ordering;

pub fn execute(action: &str, input: &Map<String, Value>) -> Result<ActionResult, ActionError> {
    let out = match action {
        // JSON.stringify: compact, whole numbers without a fraction
        "convert_json_to_text" => Value::String(js_json(input.get("json").unwrap_or(&Value::Null))),
        "convert_text_to_json" => {
            let text = required_text(input, "text")?;
            serde_json::from_str(&text).map_err(|e| format!("SyntaxError: {e}"))?
        }
        "merge_json" => merge(input)?,
        other => return Err(unknown_action(catalog::JSON, other)),
    };
    Ok(ActionResult::output(out))
}

/// `JSON.stringify(value)`: as serde writes it, but a whole float as an integer.
pub(crate) fn js_json(value: &Value) -> String {
    fn whole(value: &Value) -> Value {
        match value {
            Value::Number(n) if !n.is_i64() && !n.is_u64() => n.as_f64().map_or(Value::Null, super::math::js_number),
            Value::Array(items) => Value::Array(items.iter().map(whole).collect()),
            Value::Object(m) => Value::Object(m.iter().map(|(k, v)| (k.clone(), whole(v))).collect()),
            other => other.clone(),
        }
    }
    whole(value).to_string()
}

const STRATEGIES: &[&str] = &["first", "last", "most_frequent", "min", "max", "concat"];

/// `merge_json`: one object from many, each field by its strategy (`fieldStrategies`, else
/// `defaultStrategy`, else `last`).
fn merge(input: &Map<String, Value>) -> Result<Value, ActionError> {
    let parsed = match input.get("jsonArray") {
        Some(Value::String(s)) => {
            serde_json::from_str(s).map_err(|_| "\"Objects to Merge\" is not valid JSON.".to_string())?
        }
        Some(v) => v.clone(),
        None => Value::Null,
    };
    let Value::Array(items) = parsed else {
        return Err("\"Objects to Merge\" must be an array of JSON objects.".into());
    };
    let items: Vec<Value> = items.into_iter().filter(|v| !v.is_null()).collect();
    if items.iter().any(|v| !v.is_object()) {
        return Err("Every item in \"Objects to Merge\" must be a JSON object.".into());
    }
    let objects: Vec<&Map<String, Value>> = items.iter().filter_map(Value::as_object).collect();
    fn strategy_of(v: Option<&Value>) -> Option<&'static str> {
        let s = v.and_then(Value::as_str)?;
        STRATEGIES.iter().find(|t| **t == s).copied()
    }
    let default = strategy_of(input.get("defaultStrategy")).unwrap_or("last");
    let mut overrides: Map<String, Value> = Map::new();
    for row in input.get("fieldStrategies").and_then(Value::as_array).into_iter().flatten() {
        if let (Some(field), Some(strategy)) =
            (row.get("field").and_then(Value::as_str), strategy_of(row.get("strategy")))
        {
            if !field.is_empty() {
                overrides.insert(field.to_string(), Value::from(strategy));
            }
        }
    }
    let mut fields: Vec<&String> = Vec::new();
    for object in &objects {
        for key in object.keys() {
            if !fields.contains(&key) {
                fields.push(key);
            }
        }
    }
    let mut merged = Map::new();
    for field in fields {
        let values: Vec<&Value> = objects.iter().filter_map(|o| o.get(field)).collect();
        let strategy = overrides.get(field).and_then(Value::as_str).unwrap_or(default);
        let value = match strategy {
            "concat" => Value::Array(
                values
                    .iter()
                    .flat_map(|v| match v {
                        Value::Array(a) => a.clone(),
                        other => vec![(*other).clone()],
                    })
                    .collect(),
            ),
            _ if values.is_empty() => Value::Null,
            "first" => values[0].clone(),
            "most_frequent" => most_frequent(&values).clone(),
            "min" => values
                .iter()
                .copied()
                .reduce(|min, v| if compare(v, min) == Ordering::Less { v } else { min })
                .cloned()
                .unwrap_or_default(),
            "max" => values
                .iter()
                .copied()
                .reduce(|max, v| if compare(v, max) == Ordering::Greater { v } else { max })
                .cloned()
                .unwrap_or_default(),
            _ => values[values.len() - 1].clone(),
        };
        merged.insert(field.clone(), value);
    }
    Ok(Value::Object(merged))
}

/// The value seen most often (by canonical form), the first of them on a tie.
fn most_frequent<'a>(values: &[&'a Value]) -> &'a Value {
    let mut counts: Vec<(String, usize, &Value)> = Vec::new();
    for v in values {
        let key = canonical(v);
        match counts.iter_mut().find(|(k, _, _)| *k == key) {
            Some(entry) => entry.1 += 1,
            None => counts.push((key, 1, v)),
        }
    }
    let mut best: Option<&(String, usize, &Value)> = None;
    for entry in &counts {
        if best.is_none_or(|b| entry.1 > b.1) {
            best = Some(entry);
        }
    }
    best.map_or(&Value::Null, |b| b.2)
}

/// Numbers by value, anything else by its text (a string) or canonical form.
fn compare(a: &Value, b: &Value) -> Ordering {
    if let (Some(x), Some(y)) = (a.as_f64().filter(|_| a.is_number()), b.as_f64().filter(|_| b.is_number())) {
        return x.partial_cmp(&y).unwrap_or(Ordering::Equal);
    }
    let text = |v: &Value| {
        v.as_str()
            .map(|s| s.encode_utf16().collect::<Vec<_>>())
            .unwrap_or_else(|| canonical(v).encode_utf16().collect())
    };
    text(a).cmp(&text(b))
}

/// A value's canonical form: objects with sorted keys, the rest as JSON.
fn canonical(value: &Value) -> String {
    match value {
        Value::Array(items) => format!("[{}]", items.iter().map(canonical).collect::<Vec<_>>().join(",")),
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort_by(|a, b| a.encode_utf16().cmp(b.encode_utf16()));
            let entries: Vec<String> =
                keys.iter().map(|k| format!("{}:{}", Value::from(k.as_str()), canonical(&m[*k]))).collect();
            format!("{{{}}}", entries.join(","))
        }
        other => js_json(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn merges_by_strategy_as_the_package() {
        let input = json!({"jsonArray": [{"t": "Q1", "n": 10, "tags": ["a"]}, null, {"n": 12, "a": "Jane", "tags": "b"}, {"n": 10}],
            "defaultStrategy": "last", "fieldStrategies": [{"field": "n", "strategy": "most_frequent"}, {"field": "tags", "strategy": "concat"}]});
        let out = execute("merge_json", input.as_object().unwrap()).unwrap().output;
        assert_eq!(out, json!({"t": "Q1", "n": 10, "tags": ["a", "b"], "a": "Jane"}));
        let bad = json!({"jsonArray": [1]});
        assert!(execute("merge_json", bad.as_object().unwrap()).err().unwrap().to_string().contains("Every item"));
        assert_eq!(js_json(&json!({"a": 3.0, "b": [1.5]})), r#"{"a":3,"b":[1.5]}"#);
    }
}
