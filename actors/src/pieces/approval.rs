//! `@activepieces/piece-approval`: `create_approval_links` gives approve and disapprove links
//! to the run's resume endpoint; `wait_for_approval` pauses until one of them is called and
//! outputs `{approved}`.

use super::{catalog, unknown_action, ActionError, ActionResult, Control, PauseRequest, PieceCtx};
use serde_json::{json, Value};

pub fn execute(ctx: &PieceCtx<'_>, action: &str) -> Result<ActionResult, ActionError> {
    match action {
        "create_approval_links" => {
            let base = format!("{}/api/v1/flow-runs/{}/resume", ctx.base_url(), ctx.run.id);
            Ok(ActionResult::output(json!({
                "approvalLink": format!("{base}?action=approve"),
                "disapprovalLink": format!("{base}?action=disapprove"),
            })))
        }
        "wait_for_approval" => match ctx.resume {
            Some(payload) => {
                let action = payload["queryParams"]["action"]
                    .as_str()
                    .or_else(|| payload["body"]["action"].as_str())
                    .or_else(|| payload["action"].as_str());
                Ok(ActionResult::output(json!({"approved": action == Some("approve")})))
            }
            None => Ok(ActionResult {
                output: json!({"approved": Value::Null}),
                control: Control::Pause(PauseRequest::Webhook {
                    request_id: troupe_store::ids::new_id(),
                    response: None,
                }),
            }),
        },
        other => Err(unknown_action(catalog::APPROVAL, other)),
    }
}
