//! `@activepieces/piece-date-helper`: `get_current_date`, `date_difference`, `format_date`,
//! `add_subtract_date`, `extract_date_parts`, `next_day_of_week`, `next_day_of_year`,
//! `first_day_of_previous_month` and `last_day_of_previous_month`.
//!
//! Formats are dayjs patterns as in Activepieces; the common tokens are translated
//! (`YYYY MM DD HH mm ss SSS`, `MMM`, `MMMM`, `ddd`, `dddd`, `A`, `hh`, `Z`).

use super::{catalog, required_text, text, unknown_action, ActionError, ActionResult};
use chrono::{DateTime, NaiveDate, NaiveDateTime, TimeZone, Utc};
use serde_json::{json, Map, Value};

/// The package's `format00`, the default of every format prop.
const DEFAULT_FORMAT: &str = "DDD MMM DD YYYY HH:mm:ss";

fn dayjs_to_chrono(fmt: &str) -> String {
    translate(fmt, None)
}

/// A date written in a dayjs format: `X` is the wall time's seconds as if it were UTC, as
/// dayjs' timezone plugin gives it.
fn write<Tz: TimeZone>(date: &DateTime<Tz>, format: &str) -> String
where
    Tz::Offset: std::fmt::Display,
{
    let unix = date.naive_local().and_utc().timestamp();
    date.format(&translate(format, Some(unix))).to_string()
}

/// A dayjs format as chrono's; `X` is `unix` when given (writing), `%s` otherwise (reading).
fn translate(fmt: &str, unix: Option<i64>) -> String {
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
        if let (Some(r), Some(unix)) = (rest.strip_prefix('X'), unix) {
            out.push_str(&unix.to_string());
            rest = r;
            continue;
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
    parse_in(input, format, &chrono_tz::UTC)
}

/// Parses `input` by the dayjs `format`; a date without an offset is in `zone`.
fn parse_in(input: &str, format: &str, zone: &chrono_tz::Tz) -> Result<DateTime<Utc>, ActionError> {
    if let Ok(d) = DateTime::parse_from_rfc3339(input) {
        return Ok(d.with_timezone(&Utc));
    }
    let f = dayjs_to_chrono(&corrected(format));
    if let Ok(d) = DateTime::parse_from_str(input, &f) {
        return Ok(d.with_timezone(&Utc));
    }
    let local = NaiveDateTime::parse_from_str(input, &f)
        .ok()
        .or_else(|| NaiveDate::parse_from_str(input, &f).ok().map(|d| d.and_hms_opt(0, 0, 0).expect("midnight")));
    match local.map(|d| zone.from_local_datetime(&d).earliest()) {
        Some(Some(d)) => Ok(d.with_timezone(&Utc)),
        _ => Err(format!("date {input:?} does not match the format {format:?}").into()),
    }
}

/// A multi-select of units (`default` when none is given).
fn units(input: &Map<String, Value>, key: &str, default: &[&str]) -> Vec<String> {
    match input.get(key) {
        Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).map(String::from).collect(),
        Some(Value::String(s)) => vec![s.clone()],
        _ => default.iter().map(|u| u.to_string()).collect(),
    }
}

fn zone(input: &Map<String, Value>, key: &str) -> Result<chrono_tz::Tz, ActionError> {
    let name = text(input, key).unwrap_or_else(|| "UTC".into());
    name.parse().map_err(|_| format!("unknown time zone {name:?}").into())
}

pub fn execute(action: &str, input: &Map<String, Value>) -> Result<ActionResult, ActionError> {
    match action {
        "get_current_date" => {
            let format = text(input, "timeFormat").unwrap_or_else(|| DEFAULT_FORMAT.into());
            let tz_name = text(input, "timeZone").unwrap_or_else(|| "UTC".into());
            let tz: chrono_tz::Tz = tz_name.parse().map_err(|_| format!("unknown time zone {tz_name:?}"))?;
            let now = Utc::now().with_timezone(&tz);
            Ok(ActionResult::output(json!({"result": write(&now, &format)})))
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
            // dayjs' duration (1.11.9, the package's): the difference split into years of 365
            // days, months of 30, days, hours, minutes and seconds, each truncated toward zero
            let mut ms = (end - start).num_milliseconds() as f64;
            let mut parts = Map::new();
            for (unit, size) in [
                ("year", 365.0 * 86_400_000.0),
                ("month", 30.0 * 86_400_000.0),
                ("day", 86_400_000.0),
                ("hour", 3_600_000.0),
                ("minute", 60_000.0),
                ("second", 1000.0),
            ] {
                parts.insert(unit.into(), json!((ms / size).trunc() as i64));
                ms %= size;
            }
            let mut out = Map::new();
            for unit in units(input, "unitDifference", &["day"]) {
                let Some(n) = parts.get(&unit) else {
                    return Err(format!("Invalid unit :\n{}", json!(unit)).into());
                };
                out.insert(unit, n.clone());
            }
            Ok(ActionResult::output(Value::Object(out)))
        }
        // `{result}`: the date read in its format and zone, written in the other ones
        "format_date" => {
            let date = parse_in(
                &required_text(input, "inputDate")?,
                &text(input, "inputFormat").unwrap_or_else(|| DEFAULT_FORMAT.into()),
                &zone(input, "inputTimeZone")?,
            )?;
            let format = text(input, "outputFormat").unwrap_or_else(|| DEFAULT_FORMAT.into());
            let out = date.with_timezone(&zone(input, "outputTimeZone")?);
            Ok(ActionResult::output(json!({"result": write(&out, &corrected(&format))})))
        }
        "add_subtract_date" => add_subtract(input),
        // the units asked for, as the date is written (no time zone change)
        "extract_date_parts" => {
            use chrono::{Datelike, Timelike};
            let date = parse_date(
                &required_text(input, "inputDate")?,
                &text(input, "inputFormat").unwrap_or_else(|| DEFAULT_FORMAT.into()),
            )?;
            let units = units(input, "unitExtract", &["year", "month", "day"]);
            let mut out = Map::new();
            for unit in units {
                let v = match unit.as_str() {
                    "year" => json!(date.year()),
                    "month" => json!(date.month()),
                    "day" => json!(date.day()),
                    "hour" => json!(date.hour()),
                    "minute" => json!(date.minute()),
                    "second" => json!(date.second()),
                    "dayOfWeek" => json!(date.format("%A").to_string()),
                    "monthName" => json!(date.format("%B").to_string()),
                    other => return Err(format!("Invalid unit to extract :\n{}", json!(other)).into()),
                };
                out.insert(unit, v);
            }
            Ok(ActionResult::output(Value::Object(out)))
        }
        "next_day_of_week" | "next_day_of_year" | "first_day_of_previous_month" | "last_day_of_previous_month" => {
            next_date(action, input, Utc::now())
        }
        other => Err(unknown_action(catalog::DATE_HELPER, other)),
    }
}

/// The package's `getCorrectedFormat` (`DDDD`/`DDD` are day names), applied where it applies it.
fn corrected(format: &str) -> String {
    format.replace("DDDD", "dddd").replace("DDD", "ddd")
}

/// A number prop that a dropdown or a template may give as text.
fn number(input: &Map<String, Value>, key: &str) -> Option<i64> {
    match input.get(key)? {
        Value::Number(n) => n.as_i64().or_else(|| n.as_f64().map(|f| f as i64)),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// `next_day_of_week`, `next_day_of_year`, `first_day_of_previous_month` and
/// `last_day_of_previous_month`, computed from `now` in `timeZone` at `time` (`HH:mm`, or now's
/// when `currentTime`) as the package computes them with dayjs.
fn next_date(action: &str, input: &Map<String, Value>, now: DateTime<Utc>) -> Result<ActionResult, ActionError> {
    use chrono::{Datelike, Duration, Months, Timelike};
    let tz = zone(input, "timeZone")?;
    let now = now.with_timezone(&tz);
    let time = text(input, "time").filter(|t| !t.is_empty()).unwrap_or_else(|| "00:00".into());
    check_time("time", &time)?;
    let (hours, minutes) = if input.get("currentTime").and_then(Value::as_bool) == Some(true) {
        (now.hour(), now.minute())
    } else {
        (time[..2].parse().expect("digits"), time[3..].parse().expect("digits"))
    };
    let localize = |d: NaiveDateTime| tz.from_local_datetime(&d).earliest().ok_or("the date falls in a time zone gap");
    let at = |d: NaiveDate| d.and_hms_opt(hours, minutes, 0);
    let invalid_time = || format!("Invalid input \nhours: {hours} \nminutes: {minutes}");
    let date = match action {
        "next_day_of_week" => {
            let day = number(input, "weekday").ok_or("input \"weekday\" is required")?;
            let Some(start) = at(now.date_naive()).filter(|_| (0..=6).contains(&day)) else {
                return Err(format!("Invalid input \ndayIndex: {day} \nhours: {hours} \nminutes: {minutes}").into());
            };
            let mut diff = day - i64::from(now.weekday().num_days_from_sunday());
            if diff < 0 || (diff == 0 && localize(start)? < now) {
                diff += 7;
            }
            localize(start + Duration::days(diff))?
        }
        "next_day_of_year" => {
            let month = number(input, "month").ok_or("input \"month\" is required")?;
            let day = number(input, "day").unwrap_or(1);
            if !(1..=31).contains(&day) {
                let errors = json!({"errors": {"day": "Invalid input"}});
                return Err(serde_json::to_string_pretty(&errors).expect("json").into());
            }
            if !(1..=12).contains(&month) {
                return Err(format!("Invalid input \nmonth: {month} \nday: {day}").into());
            }
            // dayjs builds the date with JavaScript's Date: 30 February is 2 March
            let first = NaiveDate::from_ymd_opt(now.year(), month as u32, 1).ok_or("the date is out of range")?;
            let date = at(first + Duration::days(day - 1)).ok_or_else(invalid_time)?;
            let mut next = localize(date)?;
            if next < now {
                // dayjs adds a year keeping the day when the month has it (29 February: the 28th)
                next = localize(date.checked_add_months(Months::new(12)).ok_or("the date is out of range")?)?;
            }
            next
        }
        _ => {
            let previous = now.date_naive().with_day(1).expect("the first").checked_sub_months(Months::new(1));
            let first = previous.ok_or("the date is out of range")?;
            let day = if action == "first_day_of_previous_month" {
                first
            } else {
                first.checked_add_months(Months::new(1)).expect("a month later") - Duration::days(1)
            };
            localize(at(day).ok_or_else(invalid_time)?)?
        }
    };
    let format = text(input, "timeFormat").filter(|f| !f.is_empty()).unwrap_or_else(|| DEFAULT_FORMAT.into());
    let format = corrected(&format);
    Ok(ActionResult::output(json!({"result": write(&date, &format)})))
}

/// The `+ 1 year - 3 day` of `add_subtract_date`, read as the package reads it: spaces and
/// line breaks go, the text splits at signs, each part is numbers and units (a unit's `s` is
/// dropped); an unknown unit adds nothing.
fn amounts(expression: &str) -> Vec<(i64, String)> {
    let text: String = expression.chars().filter(|c| !matches!(c, ' ' | '\n' | '\r')).collect();
    let mut out = Vec::new();
    let mut sign = 1;
    let (mut number, mut unit) = (String::new(), String::new());
    let flush = |number: &mut String, unit: &mut String, sign: i64, out: &mut Vec<(i64, String)>| {
        if !unit.is_empty() {
            out.push((sign * number.parse::<i64>().unwrap_or(0), std::mem::take(unit)));
        }
        number.clear();
        unit.clear();
    };
    for c in text.chars() {
        match c {
            '+' | '-' => {
                flush(&mut number, &mut unit, sign, &mut out);
                sign = if c == '+' { 1 } else { -1 };
            }
            '0'..='9' => {
                if !unit.is_empty() {
                    flush(&mut number, &mut unit, sign, &mut out);
                }
                number.push(c);
            }
            _ if !number.is_empty() => unit.push(c),
            _ => {}
        }
    }
    flush(&mut number, &mut unit, sign, &mut out);
    out
}

/// `add_subtract_date`: `{result}`, the date moved by `expression` (in `timeZone`'s calendar
/// when given), its time set to `setTime` (`HH:mm`, with a time zone) if asked.
fn add_subtract(input: &Map<String, Value>) -> Result<ActionResult, ActionError> {
    use chrono::{Duration, FixedOffset, Months, Offset, Timelike};
    let tz: Option<chrono_tz::Tz> = match text(input, "timeZone").filter(|z| !z.is_empty()) {
        Some(name) => Some(name.parse().map_err(|_| format!("unknown time zone {name:?}"))?),
        None => None,
    };
    let set_time = text(input, "setTime").filter(|t| !t.trim().is_empty());
    if let Some(t) = &set_time {
        check_time("time", t)?;
    }
    let date = parse_in(
        &required_text(input, "inputDate")?,
        &text(input, "inputDateFormat").unwrap_or_else(|| DEFAULT_FORMAT.into()),
        &chrono_tz::UTC,
    )?;
    // dayjs' timezone plugin moves a date in the offset it had before it moved (its wall time
    // plus the amounts, daylight saving or not); without a zone, in UTC
    let offset_at = |at: &DateTime<Utc>| -> FixedOffset {
        tz.map_or(Utc.fix(), |tz| tz.offset_from_utc_datetime(&at.naive_utc()).fix())
    };
    let fixed = offset_at(&date);
    let mut local = date.with_timezone(&fixed).naive_local();
    for (n, unit) in amounts(&required_text(input, "expression")?) {
        let unit = unit.to_lowercase();
        let unit = unit.strip_suffix('s').unwrap_or(&unit);
        let months = |m: i64| Months::new(m.unsigned_abs() as u32);
        local = match unit {
            "year" | "month" => {
                let m = if unit == "year" { n * 12 } else { n };
                if m >= 0 { local.checked_add_months(months(m)) } else { local.checked_sub_months(months(m)) }
                    .ok_or("the date is out of range")?
            }
            "day" => local + Duration::days(n),
            "hour" => local + Duration::hours(n),
            "minute" => local + Duration::minutes(n),
            "second" => local + Duration::seconds(n),
            _ => local,
        };
    }
    let mut moved = fixed.from_local_datetime(&local).single().ok_or("the date is out of range")?.with_timezone(&Utc);
    // Set Time and Use Current Time apply only with a time zone
    if let Some(tz) = tz {
        let time = if input.get("useCurrentTime").and_then(Value::as_bool) == Some(true) {
            let now = Utc::now().with_timezone(&tz);
            Some(format!("{:02}:{:02}", now.hour(), now.minute()))
        } else {
            set_time
        };
        if let Some(time) = time {
            let (hours, minutes) = hours_minutes(&time);
            if hours > 23 || minutes > 59 {
                return Err(format!(
                    "Invalid time value - hours: {hours} (must be 0-23), minutes: {minutes} (must be 0-59)"
                )
                .into());
            }
            let fixed = offset_at(&moved);
            let wall = moved.with_timezone(&fixed).date_naive().and_hms_opt(hours, minutes, 0).expect("a valid time");
            moved = fixed.from_local_datetime(&wall).single().expect("a fixed offset").with_timezone(&Utc);
        }
    }
    let format = corrected(&text(input, "outputFormat").unwrap_or_else(|| DEFAULT_FORMAT.into()));
    let result = match tz {
        Some(tz) => write(&moved.with_timezone(&tz), &format),
        None => write(&moved, &format),
    };
    Ok(ActionResult::output(json!({ "result": result })))
}

/// The package's check of a `HH:mm` prop (`/^\d\d:\d\d$/`), with its error.
fn check_time(key: &str, time: &str) -> Result<(), ActionError> {
    let valid =
        time.len() == 5 && time.bytes().enumerate().all(|(i, b)| if i == 2 { b == b':' } else { b.is_ascii_digit() });
    if valid {
        return Ok(());
    }
    let errors = json!({"errors": {key: "Invalid input"}});
    Err(serde_json::to_string_pretty(&errors).expect("json").into())
}

/// The hours and minutes of a `H:m` text (JavaScript's `Number` of each side).
fn hours_minutes(time: &str) -> (u32, u32) {
    let mut parts = time.split(':').map(|p| p.trim().parse::<u32>().unwrap_or(u32::MAX));
    (parts.next().unwrap_or(0), parts.next().unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn difference_in_days_and_hours() {
        let input = json!({"startDate": "2024-01-01T00:00:00Z", "endDate": "2024-01-03T12:00:00Z", "unitDifference": ["day", "hour"]});
        let out = execute("date_difference", input.as_object().unwrap()).unwrap().output;
        assert_eq!(out, json!({"day": 2, "hour": 12}), "dayjs' duration: parts, not totals");
    }

    #[test]
    fn format_date_reads_in_one_format_and_zone_and_writes_in_another() {
        let run = |input: Value| execute("format_date", input.as_object().unwrap()).map(|r| r.output);
        let out = run(
            json!({"inputDate": "2026-12-02 09:30", "inputFormat": "YYYY-MM-DD HH:mm", "inputTimeZone": "Europe/Paris",
            "outputFormat": "DD/MM/YYYY HH:mm", "outputTimeZone": "America/New_York"}),
        )
        .unwrap();
        assert_eq!(out, json!({"result": "02/12/2026 03:30"}));
        let out = run(
            json!({"inputDate": "2026-12-02T09:30:00.000Z", "outputFormat": "YYYY MMM D", "outputTimeZone": "UTC"}),
        )
        .unwrap();
        assert_eq!(out, json!({"result": "2026 Dec 2"}));
        assert!(run(json!({"inputDate": "not a date", "inputFormat": "YYYY-MM-DD"})).is_err());
    }

    #[test]
    fn add_subtract_moves_dates_as_the_package() {
        assert_eq!(
            amounts("+ 1 year - 3 day\n- 2 months + 5minute"),
            [(1, "year".into()), (-3, "day".into()), (-2, "months".into()), (5, "minute".into())]
        );
        let run = |expression: &str, more: Value| {
            let mut input = json!({"inputDate": "2026-01-31T10:00:00.000Z", "expression": expression, "outputFormat": "YYYY-MM-DD HH:mm"});
            input.as_object_mut().unwrap().extend(more.as_object().unwrap().clone());
            execute("add_subtract_date", input.as_object().unwrap()).unwrap().output["result"].clone()
        };
        assert_eq!(run("+ 1 month", json!({})), json!("2026-02-28 10:00"), "the end of a shorter month");
        assert_eq!(run("- 1 year + 2 hours - 30 minute", json!({})), json!("2025-01-31 11:30"));
        assert_eq!(run("+ 1 day", json!({"timeZone": "Asia/Tokyo", "setTime": "09:00"})), json!("2026-02-01 09:00"));
        assert_eq!(run("+ 3 fortnight", json!({})), json!("2026-01-31 10:00"), "an unknown unit adds nothing");
    }

    #[test]
    fn extract_date_parts_gives_the_units_asked_for() {
        let input = json!({"inputDate": "2026-12-02T09:05:07.000Z",
            "unitExtract": ["year", "month", "day", "hour", "minute", "second", "dayOfWeek", "monthName"]});
        let out = execute("extract_date_parts", input.as_object().unwrap()).unwrap().output;
        assert_eq!(
            out,
            json!({"year": 2026, "month": 12, "day": 2, "hour": 9, "minute": 5, "second": 7, "dayOfWeek": "Wednesday", "monthName": "December"})
        );
        let bad = json!({"inputDate": "2026-12-02T09:05:07.000Z", "unitExtract": ["unix_time"]});
        assert!(execute("extract_date_parts", bad.as_object().unwrap()).is_err());
    }

    #[test]
    fn next_dates_from_now_as_the_package() {
        // Wednesday 2 December 2026, 09:30 UTC
        let now = DateTime::parse_from_rfc3339("2026-12-02T09:30:00Z").unwrap().with_timezone(&Utc);
        let run = |action: &str, input: Value| {
            next_date(action, input.as_object().unwrap(), now).map(|r| r.output["result"].as_str().unwrap().to_string())
        };
        let f = "YYYY-MM-DD HH:mm";
        let week =
            |day: Value, time: &str| run("next_day_of_week", json!({"weekday": day, "time": time, "timeFormat": f}));
        assert_eq!(week(json!(5), "08:00").unwrap(), "2026-12-04 08:00", "Friday of this week");
        assert_eq!(week(json!(3), "10:00").unwrap(), "2026-12-02 10:00", "today, later");
        assert_eq!(week(json!(3), "09:00").unwrap(), "2026-12-09 09:00", "today, earlier: next week");
        assert_eq!(week(json!("1"), "00:00").unwrap(), "2026-12-07 00:00", "Monday, as a text");
        assert!(week(json!(7), "00:00").unwrap_err().to_string().contains("dayIndex: 7"));
        assert!(week(json!(1), "9:00").is_err(), "the time must be HH:mm");
        assert!(week(json!(1), "24:00").unwrap_err().to_string().contains("hours: 24"));
        let tokyo = run(
            "next_day_of_week",
            json!({"weekday": 3, "time": "17:00", "timeZone": "Asia/Tokyo", "timeFormat": "YYYY-MM-DD HH:mm Z"}),
        );
        assert_eq!(tokyo.unwrap(), "2026-12-09 17:00 +09:00", "18:30 in Tokyo: a week later");
        let now_time = run("next_day_of_week", json!({"weekday": 4, "currentTime": true, "timeFormat": f}));
        assert_eq!(now_time.unwrap(), "2026-12-03 09:30");

        let year = |month: i64, day: i64| {
            run("next_day_of_year", json!({"month": month, "day": day, "time": "12:00", "timeFormat": f}))
        };
        assert_eq!(year(12, 25).unwrap(), "2026-12-25 12:00");
        assert_eq!(year(1, 1).unwrap(), "2027-01-01 12:00");
        assert_eq!(year(2, 30).unwrap(), "2027-03-02 12:00", "Date's overflow, then a year on");
        assert!(year(13, 1).unwrap_err().to_string().contains("month: 13"));
        assert!(year(1, 32).is_err());

        let first = run("first_day_of_previous_month", json!({"time": "08:15", "timeFormat": "DDD YYYY-MM-DD HH:mm"}));
        assert_eq!(first.unwrap(), "Sun 2026-11-01 08:15", "DDD is a day name here");
        let last = run("last_day_of_previous_month", json!({}));
        assert_eq!(last.unwrap(), "Mon Nov 30 2026 00:00:00", "format00 by default");
        let january = DateTime::parse_from_rfc3339("2027-01-15T00:00:00Z").unwrap().with_timezone(&Utc);
        let dec = next_date("last_day_of_previous_month", json!({"timeFormat": f}).as_object().unwrap(), january);
        assert_eq!(dec.unwrap().output["result"], "2026-12-31 00:00");
        let day_name = run("next_day_of_week", json!({"weekday": 5, "timeFormat": "DDD"}));
        assert_eq!(day_name.unwrap(), "Fri", "DDD is a day name in every action of today's package");
    }

    #[test]
    fn dayjs_formats_translate() {
        assert_eq!(dayjs_to_chrono("YYYY-MM-DD HH:mm"), "%Y-%m-%d %H:%M");
        let d = parse_date("03/01/2024", "DD/MM/YYYY").unwrap();
        assert_eq!(d.to_rfc3339(), "2024-01-03T00:00:00+00:00");
    }
}
