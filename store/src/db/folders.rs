//! Folders of flows (Activepieces' folders): a name per project; a flow names its folder
//! (`folderId`), and deleting a folder leaves its flows uncategorized.

use super::{from_json, to_json, Result, Store};
use crate::flow::Flow;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Folder {
    pub id: String,
    pub created: String,
    pub updated: String,
    pub project_id: String,
    pub display_name: String,
    #[serde(default)]
    pub display_order: i64,
    #[serde(default)]
    pub external_id: Option<String>,
}

impl Store {
    pub fn put_folder(&self, folder: &Folder) -> Result<()> {
        self.folders.insert(folder.id.as_bytes(), to_json(folder))?;
        Ok(())
    }

    pub fn get_folder(&self, id: &str) -> Result<Option<Folder>> {
        self.folders.get(id.as_bytes())?.map(|v| from_json(&v)).transpose()
    }

    /// A project's folders (all projects' with `None`), by display order then name.
    pub fn list_folders(&self, project_id: Option<&str>) -> Result<Vec<Folder>> {
        let mut out: Vec<Folder> = self
            .folders
            .iter()
            .values()
            .map(|v| from_json::<Folder>(&v?))
            .filter(|f| f.as_ref().map_or(true, |f| project_id.is_none_or(|p| f.project_id == p)))
            .collect::<Result<_>>()?;
        out.sort_by(|a, b| (a.display_order, &a.display_name).cmp(&(b.display_order, &b.display_name)));
        Ok(out)
    }

    /// How many flows each folder holds.
    pub fn flows_per_folder(&self) -> Result<std::collections::HashMap<String, usize>> {
        let mut counts = std::collections::HashMap::new();
        for v in self.flows.iter().values() {
            if let Some(folder) = from_json::<Flow>(&v?)?.folder_id {
                *counts.entry(folder).or_insert(0) += 1;
            }
        }
        Ok(counts)
    }

    /// Deletes a folder; its flows become uncategorized.
    pub fn delete_folder(&self, id: &str) -> Result<()> {
        for v in self.flows.iter().values() {
            let mut flow: Flow = from_json(&v?)?;
            if flow.folder_id.as_deref() == Some(id) {
                flow.folder_id = None;
                self.put_flow(&flow)?;
            }
        }
        self.folders.remove(id.as_bytes())?;
        Ok(())
    }
}
