//! `@activepieces/piece-text-helper`: `concat`, `replace` and `find` (JavaScript regular
//! expressions), `split`, `defaultValue`; the conversions are in `text_convert`.

use super::{catalog, required_text, text, text_convert, unknown_action, ActionError, ActionResult, PieceCtx};
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
    javascript(ctx, EXPR, scope).await
}

/// `find` and `find_all`: `text.match(RegExp(expression, flags))`, in the sandbox's JavaScript
/// engine: the match and its groups as a list, or `null`; `find_all` the whole matches, as a
/// list. `ignoreCase` adds the `i` flag.
pub async fn find(ctx: &PieceCtx<'_>, input: &Map<String, Value>, all: bool) -> Result<ActionResult, ActionError> {
    let scope = json!({
        "text": required_text(input, "text")?,
        "expression": required_text(input, "expression")?,
        "ignoreCase": input.get("ignoreCase").and_then(Value::as_bool).unwrap_or(false),
    });
    const FIND: &str = "(() => { let r; try { r = new RegExp(expression, ignoreCase ? 'i' : ''); } \
        catch (e) { throw new Error('Invalid regular expression: ' + expression); } return text.match(r); })()";
    const FIND_ALL: &str = "(() => { let r; try { r = new RegExp(expression, ignoreCase ? 'gi' : 'g'); } \
        catch (e) { throw new Error('Invalid regular expression: ' + expression); } \
        return [...text.matchAll(r)].map((m) => m[0]); })()";
    javascript(ctx, if all { FIND_ALL } else { FIND }, scope).await
}

/// Evaluates `expr` with `scope`'s names in the sandbox; its value is the step's output.
async fn javascript(ctx: &PieceCtx<'_>, expr: &str, scope: Value) -> Result<ActionResult, ActionError> {
    let deadline = std::time::Instant::now() + ctx.engine.config.flow_timeout;
    let mut results = ctx.engine.code.eval(vec![expr.to_string()], scope, deadline).await.map_err(|e| e.to_string())?;
    match results.pop() {
        Some(Ok(v)) => Ok(ActionResult::output(v)),
        Some(Err(e)) => Err(e.to_string().into()),
        None => Err("the expression was not evaluated".into()),
    }
}

pub fn execute(action: &str, input: &Map<String, Value>) -> Result<ActionResult, ActionError> {
    let out = match action {
        "concat" => {
            let texts = match input.get("texts") {
                Some(Value::Array(a)) => a.clone(),
                Some(Value::Null) | None => Vec::new(),
                Some(other) => vec![other.clone()],
            };
            // today's package reads `separator`; exports made before it was renamed carry `seperator`
            let sep = text(input, "separator").or_else(|| text(input, "seperator")).unwrap_or_default();
            // JavaScript's join: nothing is empty, a list its items joined by commas, an object
            // `[object Object]`
            let parts: Vec<String> = texts.iter().map(|v| text_convert::js_string(Some(v))).collect();
            Value::String(parts.join(&sep))
        }
        "split" => {
            let text_in = required_text(input, "text")?;
            let delimiter = required_text(input, "delimiter")?;
            // JavaScript's split: an empty delimiter splits between characters
            if delimiter.is_empty() {
                Value::Array(text_in.chars().map(|c| Value::String(c.to_string())).collect())
            } else {
                Value::Array(text_in.split(delimiter.as_str()).map(|s| Value::String(s.into())).collect())
            }
        }
        // the package's isEmpty: nothing, empty text, an empty list or object
        "defaultValue" => {
            let value = input.get("value").cloned().unwrap_or(Value::Null);
            let empty = match &value {
                Value::Null => true,
                Value::String(s) => s.is_empty(),
                Value::Array(a) => a.is_empty(),
                Value::Object(m) => m.is_empty(),
                _ => false,
            };
            if empty {
                Value::String(required_text(input, "defaultString")?)
            } else {
                value
            }
        }
        "markdown_to_html" => text_convert::markdown_to_html(input)?,
        "html_to_markdown" => text_convert::html_to_markdown(input)?,
        "stripHtml" => text_convert::strip_html(input)?,
        "slugify" => text_convert::slugify(input)?,
        "json_to_ascii_table" => text_convert::json_to_ascii_table(input)?,
        "extract_from_html" => text_convert::extract_from_html(input)?,
        other => return Err(unknown_action(catalog::TEXT_HELPER, other)),
    };
    Ok(ActionResult::output(out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn split_and_default_value_as_the_package() {
        let run = |action: &str, input: Value| execute(action, input.as_object().unwrap()).unwrap().output;
        assert_eq!(run("split", json!({"text": "a,b,,c", "delimiter": ","})), json!(["a", "b", "", "c"]));
        assert_eq!(run("split", json!({"text": "añb", "delimiter": ""})), json!(["a", "ñ", "b"]));
        for empty in [json!(null), json!(""), json!([]), json!({})] {
            assert_eq!(run("defaultValue", json!({"value": empty, "defaultString": "d"})), json!("d"));
        }
        assert_eq!(run("defaultValue", json!({"value": "v", "defaultString": "d"})), json!("v"));
        assert_eq!(run("defaultValue", json!({"value": 0, "defaultString": "d"})), json!(0));
    }

    #[test]
    fn concat_takes_the_separator_by_its_current_name_and_its_old_one() {
        let run = |input: Value| execute("concat", input.as_object().unwrap()).unwrap().output;
        assert_eq!(run(json!({"texts": ["a", "b", 3], "separator": "-"})), json!("a-b-3"));
        assert_eq!(run(json!({"texts": ["a", "b"], "seperator": "+"})), json!("a+b"));
        assert_eq!(run(json!({"texts": ["a", "b"], "separator": "-", "seperator": "+"})), json!("a-b"));
    }
}
