//! The audit log (Activepieces' audit events): who did what to which object, when, and with
//! which outcome. Appended only, replicated in a cluster, paged newest first. Events carry
//! metadata only: never a connection's value, a key or a password.

use super::page::{paginate, Page};
use super::{from_json, order_key, to_json, Result, Store};
use crate::run::FlowRun;
use serde_json::{json, Value};

/// The one platform a Troupe is (Activepieces' `platformId`).
pub const PLATFORM_ID: &str = "troupeplatform0000000";

/// What a list of audit events is filtered by (Activepieces' `ListAuditEventsRequest`).
#[derive(Debug, Default, Clone)]
pub struct AuditFilter {
    pub actions: Vec<String>,
    pub project_ids: Vec<String>,
    pub user_id: Option<String>,
    pub created_before: Option<String>,
    pub created_after: Option<String>,
}

impl AuditFilter {
    fn admits(&self, event: &Value) -> bool {
        let field = |k: &str| event.get(k).and_then(Value::as_str).unwrap_or_default();
        (self.actions.is_empty() || self.actions.iter().any(|a| a == field("action")))
            && (self.project_ids.is_empty() || self.project_ids.iter().any(|p| p == field("projectId")))
            && self.user_id.as_deref().is_none_or(|u| u == field("userId"))
            && self.created_before.as_deref().is_none_or(|t| field("created") < t)
            && self.created_after.as_deref().is_none_or(|t| field("created") > t)
    }
}

/// A new audit event: `action` (`flow.created`, …) by `principal` on `data`'s object.
pub fn event(action: &str, project_id: Option<&str>, principal: Option<&Value>, data: Value) -> Value {
    let now = crate::ids::now_iso();
    let mut event = json!({
        "id": crate::ids::new_ordered_id(),
        "created": now,
        "updated": now,
        "platformId": PLATFORM_ID,
        "action": action,
        "data": data,
        "outcome": "SUCCEEDED",
    });
    if let Some(p) = project_id {
        event["projectId"] = p.into();
    }
    if let Some(principal) = principal {
        if let Some(user) = principal.get("userId") {
            event["userId"] = user.clone();
        }
        if let Some(email) = principal.get("userEmail") {
            event["userEmail"] = email.clone();
        }
        event["principal"] = principal.clone();
    } else {
        event["principal"] = json!({"type": "TROUPE"});
    }
    event
}

impl Store {
    /// Appends an audit event (made by [`event`]).
    pub fn append_audit(&self, mut event: Value) -> Result<()> {
        let id = event["id"].as_str().map(String::from).unwrap_or_else(crate::ids::new_ordered_id);
        event["id"] = id.clone().into();
        self.audit_events.insert(id.as_bytes(), to_json(&event))?;
        self.audit_order.insert(order_key(crate::ids::now_micros(), &id), &[])?;
        Ok(())
    }

    /// Audit events, newest first, seek-paged.
    pub fn list_audit(&self, filter: &AuditFilter, limit: usize, cursor: Option<&str>) -> Result<Page<Value>> {
        paginate(&self.audit_order, limit, cursor, |id| {
            let Some(bytes) = self.audit_events.get(id.as_bytes())? else { return Ok(None) };
            let event: Value = from_json(&bytes)?;
            Ok(filter.admits(&event).then_some(event))
        })
    }

    /// `flow.run.started` or `flow.run.finished` for `run`.
    pub(super) fn audit_run(&self, run: &FlowRun, action: &str) -> Result<()> {
        let mut flow_run = json!({
            "id": run.id,
            "startTime": run.start_time,
            "finishTime": run.finish_time,
            "duration": run.duration_ms,
            "environment": run.environment,
            "flowId": run.flow_id,
            "flowVersionId": run.flow_version_id,
            "flowDisplayName": run.flow_display_name,
            "status": run.status(),
        });
        // what a run does not have yet is left out (Activepieces' schema has no nulls here)
        if let Some(m) = flow_run.as_object_mut() {
            m.retain(|_, v| !v.is_null());
        }
        self.append_audit(event(action, Some(&run.project_id), None, json!({ "flowRun": flow_run })))
    }
}
