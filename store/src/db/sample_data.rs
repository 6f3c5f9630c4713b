//! Sample data (Activepieces' `SAMPLE_DATA` and `SAMPLE_DATA_INPUT` files): what a tested
//! step took and gave, or what a client saved for it, which a draft's step settings point to
//! (`settings.sampleData.sampleDataFileId`); and the trigger events a trigger test kept.

use super::{from_json, to_json, Result, Store};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// One sample data file.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SampleDataFile {
    pub id: String,
    pub project_id: String,
    pub flow_id: String,
    pub flow_version_id: String,
    pub step_name: String,
    /// `INPUT` or `OUTPUT` (Activepieces' `SampleDataFileType`).
    #[serde(rename = "type")]
    pub kind: String,
    pub data: Value,
    pub created: String,
}

impl SampleDataFile {
    /// Activepieces' file type of it: `SAMPLE_DATA` or `SAMPLE_DATA_INPUT`.
    pub fn file_type(&self) -> &'static str {
        if self.kind == "INPUT" {
            "SAMPLE_DATA_INPUT"
        } else {
            "SAMPLE_DATA"
        }
    }

    /// Its size in bytes, as stored.
    pub fn size(&self) -> usize {
        match &self.data {
            Value::String(s) => s.len(),
            other => to_json(other).len(),
        }
    }
}

/// A trigger event: one item a trigger test gave (Activepieces' `TriggerEventWithPayload`).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct TriggerEvent {
    pub id: String,
    pub created: String,
    pub updated: String,
    pub project_id: String,
    pub flow_id: String,
    pub source_name: String,
    pub payload: Value,
}

fn event_key(flow_id: &str, id: &str) -> Vec<u8> {
    let mut k = flow_id.as_bytes().to_vec();
    k.push(0);
    k.extend_from_slice(id.as_bytes());
    k
}

impl Store {
    pub fn put_sample_data(&self, file: &SampleDataFile) -> Result<()> {
        self.sample_data.insert(file.id.as_bytes(), to_json(file))?;
        Ok(())
    }

    pub fn get_sample_data(&self, id: &str) -> Result<Option<SampleDataFile>> {
        self.sample_data.get(id.as_bytes())?.map(|b| from_json(&b)).transpose()
    }

    /// Removes the sample data of a deleted flow.
    pub fn delete_sample_data_of_flow(&self, flow_id: &str) -> Result<usize> {
        let mut n = 0;
        for kv in self.sample_data.iter() {
            let (k, v) = kv?;
            if from_json::<SampleDataFile>(&v).is_ok_and(|f| f.flow_id == flow_id) {
                self.sample_data.remove(k)?;
                n += 1;
            }
        }
        let mut prefix = flow_id.as_bytes().to_vec();
        prefix.push(0);
        for kv in self.trigger_events.scan_prefix(&prefix) {
            self.trigger_events.remove(kv?.0)?;
            n += 1;
        }
        Ok(n)
    }

    pub fn add_trigger_event(&self, event: &TriggerEvent) -> Result<()> {
        self.trigger_events.insert(event_key(&event.flow_id, &event.id), to_json(event))?;
        Ok(())
    }

    /// A flow's trigger events, newest first, at most `limit`.
    pub fn trigger_events(&self, flow_id: &str, limit: usize) -> Result<Vec<TriggerEvent>> {
        let mut prefix = flow_id.as_bytes().to_vec();
        prefix.push(0);
        self.trigger_events.scan_prefix(&prefix).rev().take(limit).map(|kv| from_json(&kv?.1)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trigger_events_list_newest_first_per_flow_and_go_with_the_flow() {
        let (_dir, store) = super::super::temp_store();
        for (flow, id) in [("f1", "01"), ("f1", "02"), ("f2", "03")] {
            let event = TriggerEvent {
                id: id.into(),
                created: String::new(),
                updated: String::new(),
                project_id: "p".into(),
                flow_id: flow.into(),
                source_name: "t".into(),
                payload: Value::from(id),
            };
            store.add_trigger_event(&event).unwrap();
        }
        let file = SampleDataFile {
            id: "s1".into(),
            project_id: "p".into(),
            flow_id: "f1".into(),
            flow_version_id: "v".into(),
            step_name: "step_1".into(),
            kind: "OUTPUT".into(),
            data: Value::from("x"),
            created: String::new(),
        };
        store.put_sample_data(&file).unwrap();
        let ids: Vec<String> = store.trigger_events("f1", 10).unwrap().into_iter().map(|e| e.id).collect();
        assert_eq!(ids, ["02", "01"]);
        assert_eq!(store.get_sample_data("s1").unwrap(), Some(file));
        assert_eq!(store.delete_sample_data_of_flow("f1").unwrap(), 3);
        assert!(store.trigger_events("f1", 10).unwrap().is_empty());
        assert_eq!(store.trigger_events("f2", 10).unwrap().len(), 1);
        assert_eq!(store.get_sample_data("s1").unwrap(), None);
    }
}
