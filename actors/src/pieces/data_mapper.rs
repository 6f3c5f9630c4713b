//! `@activepieces/piece-data-mapper`: `advanced_mapping` returns its (resolved) mapping.

use super::{catalog, unknown_action, ActionError, ActionResult};
use serde_json::{Map, Value};

pub fn execute(action: &str, input: &Map<String, Value>) -> Result<ActionResult, ActionError> {
    match action {
        "advanced_mapping" => Ok(ActionResult::output(input.get("mapping").cloned().unwrap_or(Value::Null))),
        other => Err(unknown_action(catalog::DATA_MAPPER, other)),
    }
}
