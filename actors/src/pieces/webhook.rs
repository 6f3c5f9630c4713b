//! `@activepieces/piece-webhook`: `return_response` (the trigger `catch_webhook` is the
//! gateway's ingress).

use super::{catalog, unknown_action, ActionError, ActionResult, Control, PauseRequest, PieceCtx};
use serde_json::{json, Map, Value};

/// The header carrying the resume URL, as Activepieces names it.
pub const RESUME_WEBHOOK_HEADER: &str = "x-activepieces-resume-webhook-url";

pub fn execute(ctx: &PieceCtx<'_>, action: &str, input: &Map<String, Value>) -> Result<ActionResult, ActionError> {
    match action {
        "return_response" => return_response(input),
        "return_response_and_wait_for_next_webhook" => match ctx.resume {
            Some(payload) => Ok(ActionResult::output(json!({
                "body": payload["body"], "headers": payload["headers"], "queryParams": payload["queryParams"],
            }))),
            None => {
                let request_id = troupe_store::ids::new_id();
                let url = ctx.resume_url(&request_id, true);
                let mut response = return_response(input)?.output;
                response["headers"][RESUME_WEBHOOK_HEADER] = Value::String(url.clone());
                Ok(ActionResult {
                    output: json!({"nextWebhookUrl": url}),
                    control: Control::Pause(PauseRequest::Webhook { request_id, response: Some(response) }),
                })
            }
        },
        other => Err(unknown_action(catalog::WEBHOOK, other)),
    }
}

/// `responseType` json | raw | redirect, `fields {status, headers, body}`, `respond`
/// stop | respond. The output is the response, as in Activepieces.
fn return_response(input: &Map<String, Value>) -> Result<ActionResult, ActionError> {
    let response_type = input.get("responseType").and_then(Value::as_str).unwrap_or("json");
    let fields = input.get("fields").and_then(Value::as_object).cloned().unwrap_or_default();
    let status = fields.get("status").and_then(|v| v.as_u64().or_else(|| v.as_str()?.parse().ok())).unwrap_or(200);
    let mut headers = fields.get("headers").and_then(Value::as_object).cloned().unwrap_or_default();
    let body_input = fields.get("body").cloned().unwrap_or(Value::Null);
    let (status, body) = match response_type {
        "json" => (status, parse_json_body(body_input)?),
        "raw" => (status, body_input),
        "redirect" => {
            let url = body_input.as_str().unwrap_or_default().to_string();
            let url =
                if url.starts_with("http://") || url.starts_with("https://") { url } else { format!("https://{url}") };
            headers.insert("Location".into(), Value::String(url.clone()));
            (301, Value::String(url))
        }
        other => return Err(format!("responseType {other:?} must be json, raw or redirect").into()),
    };
    let response = json!({"status": status, "headers": headers, "body": body});
    let control = match input.get("respond").and_then(Value::as_str).unwrap_or("stop") {
        "respond" => Control::Respond(response.clone()),
        _ => Control::Stop(response.clone()),
    };
    Ok(ActionResult { output: response, control })
}

pub(crate) fn parse_json_body(body: Value) -> Result<Value, ActionError> {
    match body {
        Value::String(s) => {
            serde_json::from_str(&s).map_err(|e| format!("the JSON body is not valid JSON: {e}").into())
        }
        other => Ok(other),
    }
}
