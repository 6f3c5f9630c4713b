//! `@troupe/piece-debug`: fault injection for tests and drills, enabled only with
//! `TROUPE_DEBUG_PIECES=1`. `panic` panics inside the step; `sleep` waits `ms` milliseconds;
//! `fail_unless_flag` fails until the project store holds the key `flag` (a failure that an
//! operator can fix, for retry drills).

use super::{catalog, required_text, unknown_action, ActionError, ActionResult, PieceCtx};
use serde_json::{json, Map, Value};
use std::time::Duration;

pub async fn execute(
    ctx: &PieceCtx<'_>,
    action: &str,
    input: &Map<String, Value>,
) -> Result<ActionResult, ActionError> {
    match action {
        "fail_unless_flag" => {
            let flag = required_text(input, "flag")?;
            let key = format!("project/{}/{flag}", ctx.run.project_id);
            match ctx.engine.store.entry_get(&key)? {
                Some(v) => Ok(ActionResult::output(json!({"flag": v}))),
                None => Err(format!("flag {flag:?} is not set").into()),
            }
        }
        "panic" => panic!("debug piece asked to panic"),
        "sleep" => {
            let ms = input.get("ms").and_then(Value::as_u64).ok_or("input \"ms\" must be a whole number")?;
            tokio::time::sleep(Duration::from_millis(ms)).await;
            Ok(ActionResult::output(json!({"slept": ms})))
        }
        other => Err(unknown_action(catalog::DEBUG, other)),
    }
}
