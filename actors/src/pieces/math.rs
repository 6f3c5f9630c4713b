//! `@activepieces/piece-math-helper`: the arithmetic actions.

use super::{catalog, unknown_action, ActionError, ActionResult};
use serde_json::{Map, Number, Value};

fn number(input: &Map<String, Value>, key: &str) -> Result<f64, ActionError> {
    match input.get(key) {
        Some(Value::Number(n)) => n.as_f64().ok_or_else(|| format!("input {key:?} is not a number").into()),
        Some(Value::String(s)) => s.trim().parse().map_err(|_| format!("input {key:?} ({s:?}) is not a number").into()),
        _ => Err(format!("input {key:?} is required and must be a number").into()),
    }
}

/// A whole result stays an integer in JSON, as JavaScript prints it.
fn js_number(x: f64) -> Value {
    if x.fract() == 0.0 && x.abs() < 9.0e15 {
        Value::Number(Number::from(x as i64))
    } else {
        Number::from_f64(x).map(Value::Number).unwrap_or(Value::Null)
    }
}

pub fn execute(action: &str, input: &Map<String, Value>) -> Result<ActionResult, ActionError> {
    let a = number(input, "first_number")?;
    let b = number(input, "second_number")?;
    let result = match action {
        "addition_math" => a + b,
        "subtraction_math" => a - b,
        "multiplication_math" => a * b,
        "division_math" => {
            if b == 0.0 {
                return Err("division by zero: second_number is 0".into());
            }
            a / b
        }
        "modulo_math" => {
            if b == 0.0 {
                return Err("modulo by zero: second_number is 0".into());
            }
            a % b
        }
        other => return Err(unknown_action(catalog::MATH_HELPER, other)),
    };
    Ok(ActionResult::output(js_number(result)))
}
