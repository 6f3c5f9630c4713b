//! `@troupe/piece-debug`: fault injection for tests and drills, enabled only with
//! `TROUPE_DEBUG_PIECES=1`. `panic` panics inside the step; `sleep` waits `ms` milliseconds.

use super::{catalog, unknown_action, ActionResult};
use serde_json::{json, Map, Value};
use std::time::Duration;

pub async fn execute(action: &str, input: &Map<String, Value>) -> Result<ActionResult, String> {
    match action {
        "panic" => panic!("debug piece asked to panic"),
        "sleep" => {
            let ms = input.get("ms").and_then(Value::as_u64).ok_or("input \"ms\" must be a whole number")?;
            tokio::time::sleep(Duration::from_millis(ms)).await;
            Ok(ActionResult::output(json!({"slept": ms})))
        }
        other => Err(unknown_action(catalog::DEBUG, other)),
    }
}
