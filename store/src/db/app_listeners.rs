//! App webhook listeners: which enabled flows want which events of a piece's app (Slack's
//! `message` events of team `T1`), as their triggers' `onEnable` asked with
//! `context.app.createListeners`. An app event is delivered to every flow listening for it.

use super::{from_json, to_json, Result, Store};
use serde_json::Value;

fn key(piece: &str, flow_id: &str) -> Vec<u8> {
    let mut k = piece.as_bytes().to_vec();
    k.push(0);
    k.extend_from_slice(flow_id.as_bytes());
    k
}

impl Store {
    /// Sets the listeners of a flow's trigger (`[{events: [..], identifierValue}]`).
    pub fn set_app_listeners(&self, piece: &str, flow_id: &str, listeners: &[Value]) -> Result<()> {
        self.app_listeners.insert(key(piece, flow_id), to_json(&listeners))?;
        Ok(())
    }

    /// Removes a flow's listeners, whatever its piece.
    pub fn remove_app_listeners(&self, flow_id: &str) -> Result<()> {
        for kv in self.app_listeners.iter() {
            let (k, _) = kv?;
            if k.split(|b| *b == 0).nth(1) == Some(flow_id.as_bytes()) {
                self.app_listeners.remove(k)?;
            }
        }
        Ok(())
    }

    /// The flows listening for `event` of `piece` with `identifier`, in flow id order.
    pub fn app_listeners_for(&self, piece: &str, event: &str, identifier: &str) -> Result<Vec<String>> {
        let mut prefix = piece.as_bytes().to_vec();
        prefix.push(0);
        let mut flows = Vec::new();
        for kv in self.app_listeners.scan_prefix(&prefix) {
            let (k, v) = kv?;
            let listeners: Vec<Value> = from_json(&v)?;
            let wants = listeners.iter().any(|l| {
                let events = l["events"].as_array().map(Vec::as_slice).unwrap_or_default();
                let id_matches = match &l["identifierValue"] {
                    Value::String(s) => s == identifier,
                    Value::Null => true,
                    other => serde_json::from_str::<Value>(identifier).ok().as_ref() == Some(other),
                };
                id_matches && events.iter().any(|e| e == event)
            });
            if wants {
                flows.push(String::from_utf8_lossy(&k[prefix.len()..]).into_owned());
            }
        }
        Ok(flows)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    #[test]
    fn an_event_reaches_the_flows_listening_for_it_and_no_other() {
        let (_dir, store) = super::super::temp_store();
        let slack = "@activepieces/piece-slack";
        store.set_app_listeners(slack, "f1", &[json!({"events": ["message"], "identifierValue": "T1"})]).unwrap();
        store
            .set_app_listeners(
                slack,
                "f2",
                &[json!({"events": ["message", "reaction_added"], "identifierValue": "T2"})],
            )
            .unwrap();
        store
            .set_app_listeners(
                "@activepieces/piece-other",
                "f3",
                &[json!({"events": ["message"], "identifierValue": "T1"})],
            )
            .unwrap();
        assert_eq!(store.app_listeners_for(slack, "message", "T1").unwrap(), ["f1"]);
        assert_eq!(store.app_listeners_for(slack, "reaction_added", "T2").unwrap(), ["f2"]);
        assert!(store.app_listeners_for(slack, "reaction_added", "T1").unwrap().is_empty());
        store.remove_app_listeners("f1").unwrap();
        assert!(store.app_listeners_for(slack, "message", "T1").unwrap().is_empty());
        assert_eq!(store.app_listeners_for("@activepieces/piece-other", "message", "T1").unwrap(), ["f3"]);
    }
}
