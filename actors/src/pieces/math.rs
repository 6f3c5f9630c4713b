//! `@activepieces/piece-math-helper`: the arithmetic actions.

use super::{catalog, unknown_action, ActionError, ActionResult};
use serde_json::{json, Map, Number, Value};

fn number(input: &Map<String, Value>, key: &str) -> Result<f64, ActionError> {
    match input.get(key) {
        Some(Value::Number(n)) => n.as_f64().ok_or_else(|| format!("input {key:?} is not a number").into()),
        Some(Value::String(s)) => s.trim().parse().map_err(|_| format!("input {key:?} ({s:?}) is not a number").into()),
        _ => Err(format!("input {key:?} is required and must be a number").into()),
    }
}

/// A whole result stays an integer in JSON, as JavaScript prints it; NaN and the infinities
/// are `null`, as `JSON.stringify` writes them.
pub(crate) fn js_number(x: f64) -> Value {
    if !x.is_finite() {
        return Value::Null;
    }
    // JavaScript writes whole numbers below 1e21 without an exponent
    if x.fract() == 0.0 && x.abs() < 9.2e18 {
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
        // "Subtract the first number from the second number"
        "subtraction_math" => b - a,
        "multiplication_math" => a * b,
        // the package's zod check refuses a zero divisor
        "division_math" if b == 0.0 => {
            let errors = json!({"errors": {"second_number": "Second number cannot be zero"}});
            return Err(serde_json::to_string_pretty(&errors).expect("json").into());
        }
        "division_math" => a / b,
        "modulo_math" => a % b,
        // Math.floor(Math.random() * (max - min + 1) + min)
        "generateRandom_math" => (rand::random::<f64>() * (b - a + 1.0) + a).floor(),
        other => return Err(unknown_action(catalog::MATH_HELPER, other)),
    };
    Ok(ActionResult::output(js_number(result)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Each row as the package computes it (its `run` is the JavaScript operator).
    #[test]
    fn every_action_gives_what_javascript_gives() {
        let run = |action: &str, a: Value, b: Value| {
            execute(action, json!({"first_number": a, "second_number": b}).as_object().unwrap()).map(|r| r.output)
        };
        let rows = [
            ("addition_math", json!(2), json!(3), json!(5)),
            ("addition_math", json!(0.1), json!(0.2), json!(0.30000000000000004)),
            ("subtraction_math", json!(-4), json!("6"), json!(10)),
            ("multiplication_math", json!(1.5), json!(4), json!(6)),
            ("division_math", json!(7), json!(2), json!(3.5)),
            ("modulo_math", json!(-7), json!(3), json!(-1)),
            ("modulo_math", json!(7.5), json!(2), json!(1.5)),
            ("modulo_math", json!(7), json!(0), Value::Null),
        ];
        for (action, a, b, want) in rows {
            assert_eq!(run(action, a.clone(), b.clone()).unwrap(), want, "{action}({a}, {b})");
        }
        for _ in 0..200 {
            let n = run("generateRandom_math", json!(3), json!(5)).unwrap().as_i64().unwrap();
            assert!((3..=5).contains(&n), "{n}");
        }
        assert!(run("addition_math", json!("x"), json!(1)).unwrap_err().to_string().contains("first_number"));
        let by_zero = run("division_math", json!(7), json!(0)).unwrap_err().to_string();
        assert!(by_zero.contains("Second number cannot be zero"), "{by_zero}");
    }
}
