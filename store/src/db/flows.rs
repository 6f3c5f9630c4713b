//! Flows and their versions, and the ids of deleted flows (their webhooks answer 410).

use super::page::{paginate, Page};
use super::{from_json, order_key, to_json, Result, Store};
use crate::flow::{Flow, FlowStatus, FlowVersion};

#[derive(Default, Debug, Clone)]
pub struct FlowFilter {
    pub project_id: Option<String>,
    pub folder_id: Option<String>,
    pub status: Option<FlowStatus>,
}

impl Store {
    pub fn insert_new_flow(&self, flow: &Flow, version: &FlowVersion, micros: u64) -> Result<()> {
        self.versions.insert(version.id.as_bytes(), to_json(version))?;
        self.flows.insert(flow.id.as_bytes(), to_json(flow))?;
        self.flow_order.insert(order_key(micros, &flow.id), &[])?;
        Ok(())
    }

    pub fn put_flow(&self, flow: &Flow) -> Result<()> {
        self.flows.insert(flow.id.as_bytes(), to_json(flow))?;
        Ok(())
    }

    pub fn get_flow(&self, id: &str) -> Result<Option<Flow>> {
        self.flows.get(id.as_bytes())?.map(|b| from_json(&b)).transpose()
    }

    pub fn flow_was_deleted(&self, id: &str) -> Result<bool> {
        Ok(self.deleted_flows.contains_key(id.as_bytes())?)
    }

    /// Deletes a flow and its versions; its id is remembered so its webhooks answer 410.
    pub fn delete_flow(&self, id: &str) -> Result<Option<Flow>> {
        let Some(flow) = self.get_flow(id)? else {
            return Ok(None);
        };
        for item in self.flow_order.iter() {
            let (k, _) = item?;
            if &k[8..] == id.as_bytes() {
                self.flow_order.remove(k)?;
                break;
            }
        }
        for item in self.versions.iter() {
            let (k, v) = item?;
            let version: FlowVersion = from_json(&v)?;
            if version.flow_id == id {
                self.versions.remove(k)?;
            }
        }
        self.flows.remove(id.as_bytes())?;
        self.deleted_flows.insert(id.as_bytes(), crate::ids::now_iso().as_bytes())?;
        Ok(Some(flow))
    }

    pub fn put_version(&self, version: &FlowVersion) -> Result<()> {
        self.versions.insert(version.id.as_bytes(), to_json(version))?;
        Ok(())
    }

    pub fn get_version(&self, id: &str) -> Result<Option<FlowVersion>> {
        self.versions.get(id.as_bytes())?.map(|b| from_json(&b)).transpose()
    }

    pub fn list_flows(&self, filter: &FlowFilter, limit: usize, cursor: Option<&str>) -> Result<Page<Flow>> {
        paginate(&self.flow_order, limit, cursor, |id| {
            let Some(flow) = self.get_flow(id)? else {
                return Ok(None);
            };
            let keep = filter.project_id.as_ref().is_none_or(|p| *p == flow.project_id)
                && filter.folder_id.as_ref().is_none_or(|f| Some(f) == flow.folder_id.as_ref())
                && filter.status.is_none_or(|s| s == flow.status);
            Ok(keep.then_some(flow))
        })
    }
}
