//! `@activepieces/piece-data-mapper`: `advanced_mapping` returns its (resolved) mapping, read
//! as the package's JSON prop reads it: JSON text is parsed (`"true"` is `true`), other text
//! stays text, and nothing (or empty text) fails the step with the framework's message.

use super::{catalog, unknown_action, ActionError, ActionResult};
use serde_json::{json, Map, Value};

/// The framework's validation error for the `mapping` prop.
fn not_json(received: &str) -> ActionError {
    let errors = json!({"mapping": [format!("Expected JSON, received: {received}")]});
    serde_json::to_string_pretty(&errors).expect("serializes").into()
}

pub fn execute(action: &str, input: &Map<String, Value>) -> Result<ActionResult, ActionError> {
    match action {
        "advanced_mapping" => {
            let mapping = match input.get("mapping") {
                None | Some(Value::Null) => return Err(not_json("")),
                Some(Value::String(s)) if s.is_empty() => return Err(not_json("")),
                // JSON text is parsed; other text stays text
                Some(Value::String(s)) => serde_json::from_str(s).unwrap_or_else(|_| Value::String(s.clone())),
                Some(other) => other.clone(),
            };
            Ok(ActionResult::output(mapping))
        }
        other => Err(unknown_action(catalog::DATA_MAPPER, other)),
    }
}
