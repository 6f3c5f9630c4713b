//! `@activepieces/piece-date-helper`: `get_current_date` and `date_difference`.
//!
//! Formats are dayjs patterns as in Activepieces; the common tokens are translated
//! (`YYYY MM DD HH mm ss SSS`, `MMM`, `MMMM`, `ddd`, `dddd`, `A`, `hh`, `Z`).

use super::{catalog, required_text, text, unknown_action, ActionError, ActionResult};
use chrono::{DateTime, NaiveDate, NaiveDateTime, TimeZone, Utc};
use serde_json::{json, Map, Value};

/// Activepieces' default format (`format00`).
const DEFAULT_FORMAT: &str = "YYYY-MM-DDTHH:mm:ss.SSSZ";

fn dayjs_to_chrono(fmt: &str) -> String {
    const TOKENS: &[(&str, &str)] = &[
        ("YYYY", "%Y"),
        ("YY", "%y"),
        ("MMMM", "%B"),
        ("MMM", "%b"),
        ("MM", "%m"),
        ("M", "%-m"),
        ("DD", "%d"),
        ("D", "%-d"),
        ("dddd", "%A"),
        ("ddd", "%a"),
        ("HH", "%H"),
        ("H", "%-H"),
        ("hh", "%I"),
        ("h", "%-I"),
        ("mm", "%M"),
        ("m", "%-M"),
        ("ss", "%S"),
        ("s", "%-S"),
        ("SSS", "%3f"),
        ("A", "%p"),
        ("a", "%P"),
        ("ZZ", "%z"),
        ("Z", "%:z"),
        ("X", "%s"),
    ];
    let mut out = String::new();
    let mut rest = fmt;
    'outer: while !rest.is_empty() {
        if let Some(stripped) = rest.strip_prefix('[') {
            if let Some(end) = stripped.find(']') {
                out.push_str(&stripped[..end].replace('%', "%%"));
                rest = &stripped[end + 1..];
                continue;
            }
        }
        for (t, c) in TOKENS {
            if let Some(r) = rest.strip_prefix(t) {
                out.push_str(c);
                rest = r;
                continue 'outer;
            }
        }
        let ch = rest.chars().next().expect("not empty");
        if ch == '%' {
            out.push_str("%%");
        } else {
            out.push(ch);
        }
        rest = &rest[ch.len_utf8()..];
    }
    out
}

fn parse_date(input: &str, format: &str) -> Result<DateTime<Utc>, ActionError> {
    if let Ok(d) = DateTime::parse_from_rfc3339(input) {
        return Ok(d.with_timezone(&Utc));
    }
    let f = dayjs_to_chrono(format);
    if let Ok(d) = DateTime::parse_from_str(input, &f) {
        return Ok(d.with_timezone(&Utc));
    }
    if let Ok(d) = NaiveDateTime::parse_from_str(input, &f) {
        return Ok(Utc.from_utc_datetime(&d));
    }
    if let Ok(d) = NaiveDate::parse_from_str(input, &f) {
        return Ok(Utc.from_utc_datetime(&d.and_hms_opt(0, 0, 0).expect("midnight")));
    }
    Err(format!("date {input:?} does not match the format {format:?}").into())
}

pub fn execute(action: &str, input: &Map<String, Value>) -> Result<ActionResult, ActionError> {
    match action {
        "get_current_date" => {
            let format = text(input, "timeFormat").unwrap_or_else(|| DEFAULT_FORMAT.into());
            let tz_name = text(input, "timeZone").unwrap_or_else(|| "UTC".into());
            let tz: chrono_tz::Tz = tz_name.parse().map_err(|_| format!("unknown time zone {tz_name:?}"))?;
            let now = Utc::now().with_timezone(&tz);
            Ok(ActionResult::output(json!({"result": now.format(&dayjs_to_chrono(&format)).to_string()})))
        }
        "date_difference" => {
            let start = parse_date(
                &required_text(input, "startDate")?,
                &text(input, "startDateFormat").unwrap_or_else(|| DEFAULT_FORMAT.into()),
            )?;
            let end = parse_date(
                &required_text(input, "endDate")?,
                &text(input, "endDateFormat").unwrap_or_else(|| DEFAULT_FORMAT.into()),
            )?;
            let ms = (end - start).num_milliseconds() as f64;
            let units = match input.get("unitDifference") {
                Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).map(String::from).collect(),
                Some(Value::String(s)) => vec![s.clone()],
                _ => vec!["year".to_string()],
            };
            let mut out = Map::new();
            for unit in units {
                let div = match unit.as_str() {
                    "year" => 1000.0 * 60.0 * 60.0 * 24.0 * 365.0,
                    "month" => 1000.0 * 60.0 * 60.0 * 24.0 * 30.0,
                    "day" => 1000.0 * 60.0 * 60.0 * 24.0,
                    "hour" => 1000.0 * 60.0 * 60.0,
                    "minute" => 1000.0 * 60.0,
                    "second" => 1000.0,
                    other => {
                        return Err(format!("unit {other:?} must be year, month, day, hour, minute or second").into())
                    }
                };
                out.insert(unit, json!((ms / div).floor() as i64));
            }
            Ok(ActionResult::output(Value::Object(out)))
        }
        other => Err(unknown_action(catalog::DATE_HELPER, other)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn difference_in_days_and_hours() {
        let input = json!({"startDate": "2024-01-01T00:00:00Z", "endDate": "2024-01-03T12:00:00Z", "unitDifference": ["day", "hour"]});
        let out = execute("date_difference", input.as_object().unwrap()).unwrap().output;
        assert_eq!(out, json!({"day": 2, "hour": 60}));
    }

    #[test]
    fn dayjs_formats_translate() {
        assert_eq!(dayjs_to_chrono("YYYY-MM-DD HH:mm"), "%Y-%m-%d %H:%M");
        let d = parse_date("03/01/2024", "DD/MM/YYYY").unwrap();
        assert_eq!(d.to_rfc3339(), "2024-01-03T00:00:00+00:00");
    }
}
