//! Router conditions: the Activepieces operators for text, number, boolean, date, list and
//! existence, evaluated on resolved values.

use serde_json::Value;

fn as_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

fn as_number(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok(),
        Value::Bool(b) => Some(f64::from(u8::from(*b))),
        _ => None,
    }
}

fn as_date(v: &Value) -> Option<chrono::DateTime<chrono::Utc>> {
    match v {
        Value::Number(n) => chrono::DateTime::from_timestamp_millis(n.as_i64()?),
        Value::String(s) => {
            let s = s.trim();
            chrono::DateTime::parse_from_rfc3339(s)
                .map(|d| d.with_timezone(&chrono::Utc))
                .ok()
                .or_else(|| {
                    chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d")
                        .ok()
                        .map(|d| d.and_hms_opt(0, 0, 0).expect("midnight").and_utc())
                })
                .or_else(|| chrono::DateTime::parse_from_rfc2822(s).map(|d| d.with_timezone(&chrono::Utc)).ok())
        }
        _ => None,
    }
}

fn as_list(v: &Value) -> Option<Vec<Value>> {
    match v {
        Value::Array(a) => Some(a.clone()),
        Value::String(s) => match serde_json::from_str(s) {
            Ok(Value::Array(a)) => Some(a),
            _ => None,
        },
        _ => None,
    }
}

fn truthy(v: &Value) -> bool {
    match v {
        Value::Bool(b) => *b,
        Value::String(s) => s.eq_ignore_ascii_case("true"),
        Value::Number(n) => n.as_f64().is_some_and(|x| x != 0.0),
        _ => false,
    }
}

/// Evaluates one condition. Unknown operators are refused at validation, so here they are false.
pub fn evaluate(operator: &str, first: &Value, second: &Value, case_sensitive: bool) -> bool {
    let fold = |s: String| if case_sensitive { s } else { s.to_lowercase() };
    let (a, b) = (fold(as_text(first)), fold(as_text(second)));
    match operator {
        "TEXT_CONTAINS" => a.contains(&b),
        "TEXT_DOES_NOT_CONTAIN" => !a.contains(&b),
        "TEXT_EXACTLY_MATCHES" => a == b,
        "TEXT_DOES_NOT_EXACTLY_MATCH" => a != b,
        "TEXT_START_WITH" => a.starts_with(&b),
        "TEXT_DOES_NOT_START_WITH" => !a.starts_with(&b),
        "TEXT_ENDS_WITH" => a.ends_with(&b),
        "TEXT_DOES_NOT_END_WITH" => !a.ends_with(&b),
        "NUMBER_IS_GREATER_THAN" | "NUMBER_IS_LESS_THAN" | "NUMBER_IS_EQUAL_TO" => {
            match (as_number(first), as_number(second)) {
                (Some(x), Some(y)) => match operator {
                    "NUMBER_IS_GREATER_THAN" => x > y,
                    "NUMBER_IS_LESS_THAN" => x < y,
                    _ => x == y,
                },
                _ => false,
            }
        }
        "BOOLEAN_IS_TRUE" => truthy(first),
        "BOOLEAN_IS_FALSE" => !truthy(first),
        "DATE_IS_BEFORE" | "DATE_IS_EQUAL" | "DATE_IS_AFTER" => match (as_date(first), as_date(second)) {
            (Some(x), Some(y)) => match operator {
                "DATE_IS_BEFORE" => x < y,
                "DATE_IS_AFTER" => x > y,
                _ => x == y,
            },
            _ => false,
        },
        "LIST_CONTAINS" | "LIST_DOES_NOT_CONTAIN" => {
            let contains = as_list(first).is_some_and(|l| l.iter().any(|item| fold(as_text(item)) == b));
            (operator == "LIST_CONTAINS") == contains
        }
        "LIST_IS_EMPTY" => as_list(first).is_none_or(|l| l.is_empty()),
        "LIST_IS_NOT_EMPTY" => as_list(first).is_some_and(|l| !l.is_empty()),
        "EXISTS" => !matches!(first, Value::Null) && first != &Value::String(String::new()),
        "DOES_NOT_EXIST" => matches!(first, Value::Null) || first == &Value::String(String::new()),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::evaluate;
    use serde_json::json;

    #[test]
    fn operators_of_each_kind() {
        assert!(evaluate("TEXT_CONTAINS", &json!("Hello World"), &json!("world"), false));
        assert!(!evaluate("TEXT_CONTAINS", &json!("Hello World"), &json!("world"), true));
        assert!(evaluate("NUMBER_IS_GREATER_THAN", &json!("10"), &json!(9), false));
        assert!(evaluate("BOOLEAN_IS_TRUE", &json!(true), &json!(null), false));
        assert!(evaluate("DATE_IS_BEFORE", &json!("2024-01-01"), &json!("2024-02-01T00:00:00Z"), false));
        assert!(evaluate("LIST_CONTAINS", &json!(["a", "B"]), &json!("b"), false));
        assert!(evaluate("LIST_IS_EMPTY", &json!([]), &json!(null), false));
        assert!(evaluate("EXISTS", &json!(0), &json!(null), false));
        assert!(evaluate("DOES_NOT_EXIST", &json!(null), &json!(null), false));
    }
}
