//! `@activepieces/piece-text-helper`: `concat`, `replace` (plain text or regex), `split`.

use super::{catalog, required_text, text, unknown_action, ActionError, ActionResult, PieceCtx};
use serde_json::{json, Map, Value};

/// `replace`, as the package runs it: `searchValue` is a JavaScript regular expression
/// (look-around, back-references, `$1`/`$<name>`/`$&` in `replaceValue`), evaluated by the
/// sandbox's JavaScript engine so that its semantics are exactly JavaScript's.
pub async fn replace(ctx: &PieceCtx<'_>, input: &Map<String, Value>) -> Result<ActionResult, ActionError> {
    let scope = json!({
        "text": required_text(input, "text")?,
        "searchValue": required_text(input, "searchValue")?,
        "replaceValue": text(input, "replaceValue").unwrap_or_default(),
        "replaceOnlyFirst": input.get("replaceOnlyFirst").and_then(Value::as_bool).unwrap_or(false),
    });
    const EXPR: &str = "replaceOnlyFirst ? text.replace(RegExp(searchValue), replaceValue || '') \
        : text.replaceAll(RegExp(searchValue, 'g'), replaceValue || '')";
    let deadline = std::time::Instant::now() + ctx.engine.config.flow_timeout;
    let mut results = ctx.engine.code.eval(vec![EXPR.to_string()], scope, deadline).await.map_err(|e| e.to_string())?;
    match results.pop() {
        Some(Ok(v)) => Ok(ActionResult::output(v)),
        Some(Err(e)) => Err(e.to_string().into()),
        None => Err("the replacement was not evaluated".into()),
    }
}

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
