//! `@activepieces/piece-store`: a key/value store with the piece's scopes. `COLLECTION` is
//! the project, `FLOW` the flow, and `RUN` a key of the flow scope prefixed with the run id,
//! exactly as the Activepieces piece maps it. Keys up to 128 characters, values up to 512 KB.

use super::{catalog, required_text, text, unknown_action, ActionError, ActionResult, PieceCtx};
use serde_json::{json, Map, Value};
use troupe_store::db::EntryRefused;

/// A check inside an `entry_update` closure that fails refuses the write with its message.
impl From<ActionError> for EntryRefused {
    fn from(e: ActionError) -> EntryRefused {
        EntryRefused(e.to_string())
    }
}

fn scoped_key(ctx: &PieceCtx<'_>, input: &Map<String, Value>) -> Result<String, ActionError> {
    let key = required_text(input, "key")?;
    let max = ctx.engine.config.store_key_max_chars;
    if key.chars().count() > max {
        return Err(format!("key is {} characters long; keys may have at most {max}", key.chars().count()).into());
    }
    let scope = input.get("store_scope").and_then(Value::as_str).unwrap_or("COLLECTION");
    Ok(match scope {
        "COLLECTION" => format!("project/{}/{key}", ctx.run.project_id),
        "FLOW" => format!("flow/{}/{key}", ctx.run.flow_id),
        "RUN" => format!("flow/{}/run_{}/{key}", ctx.run.flow_id, ctx.run.id),
        other => return Err(format!("store_scope {other:?} must be COLLECTION, FLOW or RUN").into()),
    })
}

fn check_size(ctx: &PieceCtx<'_>, value: &Value) -> Result<(), ActionError> {
    let size = serde_json::to_vec(value).map(|v| v.len()).unwrap_or(0);
    let max = ctx.engine.config.store_value_max_bytes;
    if size > max {
        return Err(format!("value is {size} bytes; stored values may have at most {max} bytes").into());
    }
    Ok(())
}

fn as_list(v: Value, what: &str) -> Result<Vec<Value>, ActionError> {
    match v {
        Value::Array(a) => Ok(a),
        Value::String(s) => match serde_json::from_str(&s) {
            Ok(Value::Array(a)) => Ok(a),
            _ => Err(format!("{what} is not a list").into()),
        },
        _ => Err(format!("{what} is not a list").into()),
    }
}

pub fn execute(ctx: &PieceCtx<'_>, action: &str, input: &Map<String, Value>) -> Result<ActionResult, ActionError> {
    let store = &ctx.engine.store;
    let key = scoped_key(ctx, input)?;
    let user_key = required_text(input, "key")?;
    let out = match action {
        "put" => {
            let value = input.get("value").cloned().unwrap_or(Value::Null);
            check_size(ctx, &value)?;
            store.entry_put(&key, &value)?;
            value
        }
        "get" => store.entry_get(&key)?.or_else(|| input.get("defaultValue").cloned()).unwrap_or(Value::Null),
        "remove_value" => {
            store.entry_delete(&key)?;
            json!({"success": true})
        }
        "append" => {
            let addition = text(input, "value").unwrap_or_default();
            let sep = text(input, "separator").unwrap_or_default().replace("\\n", "\n");
            store.entry_update(&key, |old| {
                let old = match old {
                    None => String::new(),
                    Some(Value::String(s)) => s,
                    Some(_) => return Err(format!("key {user_key:?} is not a string").into()),
                };
                if addition.is_empty() {
                    return Ok(Value::String(old));
                }
                let joined = if old.is_empty() { addition.clone() } else { format!("{old}{sep}{addition}") };
                let v = Value::String(joined);
                check_size(ctx, &v)?;
                Ok(v)
            })?
        }
        "add_to_list" => {
            let items = as_list(input.get("value").cloned().unwrap_or(Value::Array(vec![])), "value")?;
            let ignore_existing = input.get("ignore_if_exists").and_then(Value::as_bool).unwrap_or(false);
            store.entry_update(&key, |old| {
                let mut list = match old {
                    None => vec![],
                    Some(v) => as_list(v, &format!("key {user_key:?}"))?,
                };
                for item in &items {
                    if !(ignore_existing && list.contains(item)) {
                        list.push(item.clone());
                    }
                }
                let v = Value::Array(list);
                check_size(ctx, &v)?;
                Ok(v)
            })?
        }
        "remove_from_list" => {
            let target = input.get("value").cloned().unwrap_or(Value::Null);
            store.entry_update(&key, |old| {
                let mut list = match old {
                    None => vec![],
                    Some(Value::Array(a)) => a,
                    Some(_) => return Err(format!("key {user_key:?} is not an array").into()),
                };
                let as_text = |v: &Value| match v {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                if let Some(i) = list.iter().position(|v| *v == target || as_text(v) == as_text(&target)) {
                    list.remove(i);
                }
                Ok(Value::Array(list))
            })?
        }
        other => return Err(unknown_action(catalog::STORE, other)),
    };
    Ok(ActionResult::output(out))
}
