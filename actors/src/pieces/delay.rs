//! `@activepieces/piece-delay`: `delayFor` (`unit`, `delayFor`) and `delay_until`
//! (`delayUntilTimestamp`). Every positive delay pauses the run: a paused run holds no actor
//! and no memory, so Troupe never sleeps inside a step (Activepieces sleeps under 10 s).

use super::{catalog, required_text, unknown_action, ActionError, ActionResult, Control, PauseRequest, PieceCtx};
use chrono::{DateTime, Utc};
use serde_json::{json, Map, Value};

fn delay_ms(input: &Map<String, Value>) -> Result<i64, ActionError> {
    let amount = match input.get("delayFor") {
        Some(Value::Number(n)) => n.as_f64().unwrap_or(-1.0),
        Some(Value::String(s)) => s.trim().parse().map_err(|_| format!("delayFor {s:?} is not a number"))?,
        _ => return Err("input \"delayFor\" is required and must be a number".into()),
    };
    if amount < 0.0 {
        return Err("delayFor must be at least 0".into());
    }
    let unit = input.get("unit").and_then(Value::as_str).unwrap_or("seconds");
    let factor = match unit {
        "seconds" => 1_000.0,
        "minutes" => 60_000.0,
        "hours" => 3_600_000.0,
        "days" => 86_400_000.0,
        other => return Err(format!("unit {other:?} must be seconds, minutes, hours or days").into()),
    };
    Ok((amount * factor) as i64)
}

fn parse_timestamp(s: &str) -> Result<DateTime<Utc>, ActionError> {
    DateTime::parse_from_rfc3339(s)
        .or_else(|_| DateTime::parse_from_rfc2822(s))
        .map(|d| d.with_timezone(&Utc))
        .or_else(|_| {
            chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f")
                .or_else(|_| chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S"))
                .map(|d| d.and_utc())
        })
        .map_err(|_| format!("delayUntilTimestamp {s:?} is not a date and time (use ISO 8601)").into())
}

pub fn execute(ctx: &PieceCtx<'_>, action: &str, input: &Map<String, Value>) -> Result<ActionResult, ActionError> {
    match action {
        "delayFor" => {
            let ms = delay_ms(input)?;
            if ctx.resume.is_some() || ms == 0 {
                return Ok(ActionResult::output(json!({"delayForInMs": ms, "success": true})));
            }
            let until = Utc::now() + chrono::Duration::milliseconds(ms);
            Ok(ActionResult { output: json!({}), control: Control::Pause(PauseRequest::Delay { until }) })
        }
        "delay_until" => {
            let until = parse_timestamp(&required_text(input, "delayUntilTimestamp")?)?;
            let done = json!({"delayTill": troupe_store::ids::iso(until), "success": true});
            if ctx.resume.is_some() || until <= Utc::now() {
                return Ok(ActionResult::output(done));
            }
            Ok(ActionResult { output: json!({}), control: Control::Pause(PauseRequest::Delay { until }) })
        }
        other => Err(unknown_action(catalog::DELAY, other)),
    }
}
