//! `@activepieces/piece-text-helper`: `concat`, `replace` (plain text or regex), `split`.

use super::{catalog, required_text, text, unknown_action, ActionError, ActionResult};
use serde_json::{Map, Value};

pub fn execute(action: &str, input: &Map<String, Value>) -> Result<ActionResult, ActionError> {
    let out = match action {
        "concat" => {
            let texts = match input.get("texts") {
                Some(Value::Array(a)) => a.clone(),
                Some(Value::Null) | None => return Err("input \"texts\" is required".into()),
                Some(other) => vec![other.clone()],
            };
            // today's package reads `separator`; exports made before it was renamed carry `seperator`
            let sep = text(input, "separator").or_else(|| text(input, "seperator")).unwrap_or_default();
            let parts: Vec<String> = texts
                .iter()
                .map(|v| match v {
                    Value::String(s) => s.clone(),
                    Value::Null => String::new(),
                    other => other.to_string(),
                })
                .collect();
            Value::String(parts.join(&sep))
        }
        "replace" => {
            let text_in = required_text(input, "text")?;
            let search = required_text(input, "searchValue")?;
            let replacement = text(input, "replaceValue").unwrap_or_default();
            let re = regex::Regex::new(&search)
                .map_err(|e| format!("searchValue {search:?} is not a valid regular expression: {e}"))?;
            let only_first = input.get("replaceOnlyFirst").and_then(Value::as_bool).unwrap_or(false);
            let replaced = if only_first {
                re.replace(&text_in, regex::NoExpand(&replacement))
            } else {
                re.replace_all(&text_in, regex::NoExpand(&replacement))
            };
            Value::String(replaced.into_owned())
        }
        "split" => {
            let text_in = required_text(input, "text")?;
            let delimiter = required_text(input, "delimiter")?;
            Value::Array(text_in.split(delimiter.as_str()).map(|s| Value::String(s.into())).collect())
        }
        other => return Err(unknown_action(catalog::TEXT_HELPER, other)),
    };
    Ok(ActionResult::output(out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn concat_takes_the_separator_by_its_current_name_and_its_old_one() {
        let run = |input: Value| execute("concat", input.as_object().unwrap()).unwrap().output;
        assert_eq!(run(json!({"texts": ["a", "b", 3], "separator": "-"})), json!("a-b-3"));
        assert_eq!(run(json!({"texts": ["a", "b"], "seperator": "+"})), json!("a+b"));
        assert_eq!(run(json!({"texts": ["a", "b"], "separator": "-", "seperator": "+"})), json!("a-b"));
    }
}
