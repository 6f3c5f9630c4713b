//! `@activepieces/piece-csv`: `convert_csv_to_json` (csv-parse) and `convert_json_to_csv`
//! (safe-flat, then csv-stringify), as the package calls them; the reading is csv-parse's,
//! strict quotes and all. Its file, Excel and row
//! actions are not native (docs/compatibility.md).

use super::{catalog, text, unknown_action, ActionError, ActionResult};
use serde_json::{Map, Value};

pub fn execute(action: &str, input: &Map<String, Value>) -> Result<ActionResult, ActionError> {
    let out = match action {
        "convert_csv_to_json" => csv_to_json(input)?,
        "convert_json_to_csv" => json_to_csv(input)?,
        other => return Err(unknown_action(catalog::CSV, other)),
    };
    Ok(ActionResult::output(out))
}

fn delimiter(input: &Map<String, Value>, default: &str) -> Result<u8, ActionError> {
    let d = text(input, "delimiter_type").unwrap_or_else(|| default.to_string());
    match d.as_bytes() {
        [b] => Ok(*b),
        _ => Err(format!("Invalid option delimiter: delimiter must be a non empty string of one character, got {d:?}")
            .into()),
    }
}

/// csv-parse with `bom: true` and `columns` when the text has headers: every value a string,
/// records of one length (else an error naming the record).
fn csv_to_json(input: &Map<String, Value>) -> Result<Value, ActionError> {
    let Some(Value::String(text)) = input.get("csv_text") else {
        return Err("The input should be a string.".into());
    };
    let headers = input.get("has_headers").and_then(Value::as_bool).unwrap_or(false);
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let records = parse(text, delimiter(input, "")? as char)?;
    let width = records.first().map_or(0, Vec::len);
    if let Some((i, r)) = records.iter().enumerate().find(|(_, r)| r.len() != width) {
        let what = if headers { "columns length is" } else { "expect" };
        return Err(format!("Invalid Record Length: {what} {width}, got {} on line {}", r.len(), i + 1).into());
    }
    if !headers {
        return Ok(Value::Array(
            records.into_iter().map(|r| Value::Array(r.into_iter().map(Value::String).collect())).collect(),
        ));
    }
    let mut rows = records.into_iter();
    let Some(names) = rows.next() else { return Ok(Value::Array(Vec::new())) };
    Ok(Value::Array(
        rows.map(|r| Value::Object(names.iter().cloned().zip(r.into_iter().map(Value::String)).collect())).collect(),
    ))
}

/// csv-parse's reading, strict as its defaults are: the record delimiter is the first line
/// break met (`\r\n`, `\n` or `\r`), a quote opens a field only at its start and closes it
/// only before a delimiter, a record delimiter or the end; `""` inside quotes is a quote; an
/// empty line is a record of one empty field; a last line break makes no record.
fn parse(text: &str, delimiter: char) -> Result<Vec<Vec<String>>, ActionError> {
    let chars: Vec<char> = text.chars().collect();
    let mut record_delimiter: Option<Vec<char>> = None;
    let (mut records, mut record, mut field) = (Vec::new(), Vec::new(), String::new());
    let (mut i, mut line) = (0, 1);
    let mut quoted = false;
    let mut field_started = false;
    let at_record_delimiter = |i: usize, rd: &Option<Vec<char>>| -> Option<usize> {
        match rd {
            Some(rd) => chars[i..].starts_with(rd).then_some(rd.len()),
            None => match (chars[i], chars.get(i + 1)) {
                ('\r', Some('\n')) => Some(2),
                ('\r' | '\n', _) => Some(1),
                _ => None,
            },
        }
    };
    while i < chars.len() {
        let c = chars[i];
        if quoted {
            if c == '"' {
                if chars.get(i + 1) == Some(&'"') {
                    field.push('"');
                    i += 2;
                    continue;
                }
                let next = i + 1;
                let closes = next == chars.len()
                    || chars[next] == delimiter
                    || at_record_delimiter(next, &record_delimiter).is_some();
                if !closes {
                    return Err(format!(
                        "Invalid Closing Quote: got \"{}\" at line {line} instead of delimiter, record delimiter, trimable character (if activated) or comment",
                        chars[next]
                    )
                    .into());
                }
                quoted = false;
                i += 1;
                continue;
            }
            if c == '\n' {
                line += 1;
            }
            field.push(c);
            i += 1;
            continue;
        }
        if c == delimiter {
            record.push(std::mem::take(&mut field));
            field_started = true;
            i += 1;
            continue;
        }
        if let Some(n) = at_record_delimiter(i, &record_delimiter) {
            if record_delimiter.is_none() {
                record_delimiter = Some(chars[i..i + n].to_vec());
            }
            record.push(std::mem::take(&mut field));
            records.push(std::mem::take(&mut record));
            field_started = false;
            line += 1;
            i += n;
            continue;
        }
        if c == '"' {
            if !field.is_empty() {
                return Err(format!("Invalid Opening Quote: a quote is found inside a field at line {line}").into());
            }
            quoted = true;
            field_started = true;
            i += 1;
            continue;
        }
        field.push(c);
        field_started = true;
        i += 1;
    }
    if quoted {
        return Err(format!("Quote Not Closed: the parsing is finished with an opening quote at line {line}").into());
    }
    if field_started || !record.is_empty() {
        record.push(field);
        records.push(record);
    }
    Ok(records)
}

/// safe-flat's `flatten`: nested objects and lists become `a.b` / `a.0` keys; an empty one
/// stays as it is.
fn flatten(value: &Value, prefix: Option<&str>, out: &mut Map<String, Value>) {
    let entries: Vec<(String, &Value)> = match value {
        Value::Object(m) => m.iter().map(|(k, v)| (k.clone(), v)).collect(),
        Value::Array(a) => a.iter().enumerate().map(|(i, v)| (i.to_string(), v)).collect(),
        _ => return,
    };
    if entries.is_empty() {
        if let Some(p) = prefix {
            out.insert(p.to_string(), value.clone());
        }
        return;
    }
    for (key, v) in entries {
        let key = prefix.map_or(key.clone(), |p| format!("{p}.{key}"));
        match v {
            Value::Object(_) | Value::Array(_) => flatten(v, Some(&key), out),
            other => {
                out.insert(key, other.clone());
            }
        }
    }
}

/// csv-stringify's cast of a value: booleans `1` or empty, objects as JSON.
fn cell(value: Option<&Value>) -> String {
    match value {
        None | Some(Value::Null) => String::new(),
        Some(Value::Bool(b)) => {
            if *b {
                "1".into()
            } else {
                String::new()
            }
        }
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(_)) => super::text_convert::js_string(value),
        Some(other) => super::json::js_json(other),
    }
}

fn json_to_csv(input: &Map<String, Value>) -> Result<Value, ActionError> {
    let Some(Value::Array(items)) = input.get("json_array") else {
        return Err("The input should be a JSON array.".into());
    };
    if items.is_empty() {
        return Ok(Value::String(String::new()));
    }
    let delimiter = delimiter(input, ",")? as char;
    let rows: Vec<Map<String, Value>> = items
        .iter()
        .map(|item| {
            let mut flat = Map::new();
            flatten(item, None, &mut flat);
            flat
        })
        .collect();
    let mut columns: Vec<&String> = Vec::new();
    for row in &rows {
        for key in row.keys() {
            if !columns.contains(&key) {
                columns.push(key);
            }
        }
    }
    let quote = |field: String| {
        if field.contains([delimiter, '"', '\n', '\r']) {
            format!("\"{}\"", field.replace('"', "\"\""))
        } else {
            field
        }
    };
    let sep = delimiter.to_string();
    let mut out = columns.iter().map(|c| quote(c.to_string())).collect::<Vec<_>>().join(&sep);
    out.push('\n');
    for row in &rows {
        out.push_str(&columns.iter().map(|c| quote(cell(row.get(*c)))).collect::<Vec<_>>().join(&sep));
        out.push('\n');
    }
    Ok(Value::String(out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn csv_and_json_both_ways_as_the_package() {
        let run = |action: &str, input: Value| execute(action, input.as_object().unwrap()).map(|r| r.output);
        let rows = run(
            "convert_csv_to_json",
            json!({"csv_text": "\u{feff}name,age\nAda,36\n\"B, b\",\"4\"\"2\"\n", "has_headers": true, "delimiter_type": ","}),
        );
        assert_eq!(rows.unwrap(), json!([{"name": "Ada", "age": "36"}, {"name": "B, b", "age": "4\"2"}]));
        let plain = run("convert_csv_to_json", json!({"csv_text": "a\tb\n1\t2", "delimiter_type": "\t"}));
        assert_eq!(plain.unwrap(), json!([["a", "b"], ["1", "2"]]));
        assert!(run("convert_csv_to_json", json!({"csv_text": "a,b\n1", "delimiter_type": ","})).is_err());
        let csv = run(
            "convert_json_to_csv",
            json!({"json_array": [{"a": 1, "n": {"x": true}}, {"a": "x,y", "b": null}], "delimiter_type": ","}),
        );
        assert_eq!(csv.unwrap(), json!("a,n.x,b\n1,1,\n\"x,y\",,\n"));
    }
}
