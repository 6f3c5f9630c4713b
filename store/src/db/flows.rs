//! Flows and their versions, and the ids of deleted flows (their webhooks answer 410).

use super::page::{paginate, Page};
use super::{from_json, order_key, to_json, Result, Store};
use crate::flow::{Flow, FlowStatus, FlowVersion, VersionState};

#[derive(Default, Debug, Clone)]
pub struct FlowFilter {
    pub project_id: Option<String>,
    /// A folder's id; `NULL` (Activepieces' "uncategorized") for flows in no folder.
    pub folder_id: Option<String>,
    pub status: Option<FlowStatus>,
    /// Part of the flow's name (its newest version's display name), any case.
    pub name: Option<String>,
    /// Any of these external ids.
    pub external_ids: Vec<String>,
    /// The state of the flow's newest version.
    pub version_state: Option<VersionState>,
}

impl FlowFilter {
    fn needs_version(&self) -> bool {
        self.name.is_some() || self.version_state.is_some()
    }
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
            let folder_matches = match filter.folder_id.as_deref() {
                None => true,
                Some("NULL") => flow.folder_id.is_none(),
                Some(f) => flow.folder_id.as_deref() == Some(f),
            };
            let keep = filter.project_id.as_ref().is_none_or(|p| *p == flow.project_id)
                && folder_matches
                && filter.status.is_none_or(|s| s == flow.status)
                && (filter.external_ids.is_empty()
                    || flow.external_id.as_ref().is_some_and(|e| filter.external_ids.contains(e)));
            if !keep {
                return Ok(None);
            }
            if filter.needs_version() {
                let Some(version) = self.get_version(&flow.latest_version_id)? else { return Ok(None) };
                let named = filter
                    .name
                    .as_ref()
                    .is_none_or(|n| version.display_name.to_lowercase().contains(&n.to_lowercase()));
                if !named || filter.version_state.is_some_and(|s| s != version.state) {
                    return Ok(None);
                }
            }
            Ok(Some(flow))
        })
    }

    /// The versions of a flow, newest first.
    pub fn flow_versions(&self, flow_id: &str) -> Result<Vec<FlowVersion>> {
        let mut out = Vec::new();
        for v in self.versions.iter().values() {
            let version: FlowVersion = from_json(&v?)?;
            if version.flow_id == flow_id {
                out.push(version);
            }
        }
        out.sort_by(|a, b| b.created.cmp(&a.created).then_with(|| b.id.cmp(&a.id)));
        Ok(out)
    }

    /// How many flows `filter` selects.
    pub fn count_flows(&self, filter: &FlowFilter) -> Result<usize> {
        let mut n = 0;
        let mut cursor: Option<String> = None;
        loop {
            let page = self.list_flows(filter, 1000, cursor.as_deref())?;
            n += page.data.len();
            match page.next {
                Some(next) => cursor = Some(next),
                None => return Ok(n),
            }
        }
    }
}
