//! Schedule triggers of `@activepieces/piece-schedule`, turned into cron expressions exactly
//! as the piece does, and their next tick in the trigger's time zone.

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

pub const PIECE: &str = "@activepieces/piece-schedule";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schedule {
    pub cron: String,
    pub timezone: chrono_tz::Tz,
}

/// Why a schedule trigger's inputs make no schedule; each message names the bad input.
#[derive(Debug, thiserror::Error)]
pub enum InvalidSchedule {
    #[error("{key} must be a whole number")]
    NotWhole { key: &'static str },
    #[error("{key} {text:?} must be a whole number")]
    TextNotWhole { key: &'static str, text: String },
    #[error("{key} must be a whole number, got {value}")]
    NotANumber { key: &'static str, value: Value },
    #[error("{key} must be from {lo} to {hi}, got {value}")]
    OutOfRange { key: &'static str, value: i64, lo: i64, hi: i64 },
    #[error("cronExpression is required")]
    NoCronExpression,
    #[error("{PIECE} has no trigger {0:?}")]
    UnknownTrigger(String),
    #[error("unknown timezone {0:?}")]
    UnknownTimezone(String),
    // not #[source]s: the messages already end with the cause
    #[error("cron expression {cron:?} is invalid: {reason}")]
    BadCron { cron: String, reason: croner::errors::CronError },
    #[error("cron expression {cron:?} has no next time: {reason}")]
    NoNextTime { cron: String, reason: croner::errors::CronError },
}

/// Lets the timer functions that still give `String` errors use `?` on a schedule.
fn num(input: &Map<String, Value>, key: &'static str, default: i64) -> Result<i64, InvalidSchedule> {
    match input.get(key) {
        None | Some(Value::Null) => Ok(default),
        Some(Value::Number(n)) => n.as_i64().ok_or(InvalidSchedule::NotWhole { key }),
        Some(Value::String(s)) => s.trim().parse().map_err(|_| InvalidSchedule::TextNotWhole { key, text: s.clone() }),
        Some(other) => Err(InvalidSchedule::NotANumber { key, value: other.clone() }),
    }
}

fn in_range(key: &'static str, value: i64, lo: i64, hi: i64) -> Result<i64, InvalidSchedule> {
    if (lo..=hi).contains(&value) {
        Ok(value)
    } else {
        Err(InvalidSchedule::OutOfRange { key, value, lo, hi })
    }
}

/// The schedule of a trigger of the schedule piece, or an error naming the bad input.
pub fn schedule_for(trigger_name: &str, input: &Map<String, Value>) -> Result<Schedule, InvalidSchedule> {
    let weekends = input.get("run_on_weekends").and_then(Value::as_bool).unwrap_or(false);
    let hour = || in_range("hour_of_the_day", num(input, "hour_of_the_day", 0)?, 0, 23);
    let cron = match trigger_name {
        "every_x_minutes" => format!("*/{} * * * *", in_range("minutes", num(input, "minutes", 1)?, 1, 59)?),
        "every_hour" => if weekends { "0 * * * *" } else { "0 * * * 1-5" }.to_string(),
        "every_day" => {
            let h = hour()?;
            if weekends {
                format!("0 {h} * * *")
            } else {
                format!("0 {h} * * 1-5")
            }
        }
        "every_week" => {
            format!("0 {} * * {}", hour()?, in_range("day_of_the_week", num(input, "day_of_the_week", 1)?, 0, 6)?)
        }
        "every_month" => {
            format!("0 {} {} * *", hour()?, in_range("day_of_the_month", num(input, "day_of_the_month", 1)?, 1, 31)?)
        }
        "cron_expression" => input
            .get("cronExpression")
            .and_then(Value::as_str)
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .ok_or(InvalidSchedule::NoCronExpression)?
            .to_string(),
        other => return Err(InvalidSchedule::UnknownTrigger(other.to_string())),
    };
    let tz_name = input.get("timezone").and_then(Value::as_str).unwrap_or("UTC");
    let timezone: chrono_tz::Tz = tz_name.parse().map_err(|_| InvalidSchedule::UnknownTimezone(tz_name.to_string()))?;
    let schedule = Schedule { cron, timezone };
    schedule.next_after(Utc::now())?;
    Ok(schedule)
}

impl Schedule {
    /// The first tick strictly after `after`. Five fields as Activepieces; a sixth leading
    /// field (seconds) is accepted too.
    pub fn next_after(&self, after: DateTime<Utc>) -> Result<DateTime<Utc>, InvalidSchedule> {
        let cron = croner::Cron::new(&self.cron)
            .with_seconds_optional()
            .parse()
            .map_err(|reason| InvalidSchedule::BadCron { cron: self.cron.clone(), reason })?;
        cron.find_next_occurrence(&after.with_timezone(&self.timezone), false)
            .map(|t| t.with_timezone(&Utc))
            .map_err(|reason| InvalidSchedule::NoNextTime { cron: self.cron.clone(), reason })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use serde_json::json;

    fn input(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn every_x_minutes_ticks_on_the_multiples() {
        let s = schedule_for("every_x_minutes", &input(json!({"minutes": 5}))).unwrap();
        assert_eq!(s.cron, "*/5 * * * *");
        assert_eq!(s.next_after(at("2026-01-05T10:07:30Z")).unwrap(), at("2026-01-05T10:10:00Z"));
        assert_eq!(s.next_after(at("2026-01-05T10:10:00Z")).unwrap(), at("2026-01-05T10:15:00Z"));
    }

    #[test]
    fn every_day_honours_weekends_and_the_timezone() {
        let s = schedule_for(
            "every_day",
            &input(json!({"hour_of_the_day": 9, "timezone": "Europe/Paris", "run_on_weekends": false})),
        )
        .unwrap();
        // Friday 2026-01-09 after 09:00 Paris: next is Monday 09:00 Paris = 08:00 UTC
        assert_eq!(s.next_after(at("2026-01-09T09:30:00Z")).unwrap(), at("2026-01-12T08:00:00Z"));
    }

    #[test]
    fn every_week_and_month_and_cron() {
        let w = schedule_for("every_week", &input(json!({"day_of_the_week": 0, "hour_of_the_day": 6}))).unwrap();
        assert_eq!(w.next_after(at("2026-01-05T00:00:00Z")).unwrap(), at("2026-01-11T06:00:00Z"));
        let m = schedule_for("every_month", &input(json!({"day_of_the_month": 15, "hour_of_the_day": 0}))).unwrap();
        assert_eq!(
            m.next_after(at("2026-01-20T00:00:00Z")).unwrap(),
            Utc.with_ymd_and_hms(2026, 2, 15, 0, 0, 0).unwrap()
        );
        let c = schedule_for("cron_expression", &input(json!({"cronExpression": "30 2 * * *", "timezone": "UTC"})))
            .unwrap();
        assert_eq!(c.next_after(at("2026-01-05T03:00:00Z")).unwrap(), at("2026-01-06T02:30:00Z"));
    }

    #[test]
    fn bad_schedules_say_what_is_wrong() {
        assert!(schedule_for("every_x_minutes", &input(json!({"minutes": 0})))
            .unwrap_err()
            .to_string()
            .contains("minutes"));
        assert!(schedule_for("cron_expression", &input(json!({"cronExpression": "nope"})))
            .unwrap_err()
            .to_string()
            .contains("invalid"));
        assert!(schedule_for("every_day", &input(json!({"timezone": "Mars/Olympus"})))
            .unwrap_err()
            .to_string()
            .contains("timezone"));
    }

    #[test]
    fn a_process_down_for_several_ticks_fires_once_not_a_burst() {
        // the next tick is computed from now, not from the missed tick
        let s = schedule_for("every_x_minutes", &input(json!({"minutes": 1}))).unwrap();
        let missed = at("2026-01-05T10:01:00Z");
        let now = at("2026-01-05T10:09:20Z");
        let next = s.next_after(missed.max(now)).unwrap();
        assert_eq!(next, at("2026-01-05T10:10:00Z"));
    }
}
