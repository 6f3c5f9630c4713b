//! Projects: the tenant every flow, run, connection and project key belongs to.

use super::{from_json, to_json, Result, Store};
use crate::names::meta;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Project {
    pub id: String,
    pub created: String,
    pub display_name: String,
    #[serde(default)]
    pub updated: Option<String>,
    /// A client's own id for the project (Activepieces' `externalId`).
    #[serde(default)]
    pub external_id: Option<String>,
}

impl Project {
    /// The project in Activepieces' shape: the fields Troupe has no use for (owner, platform,
    /// type, icon, releases) at their neutral values.
    pub fn activepieces(&self) -> serde_json::Value {
        let mut v = serde_json::to_value(self).expect("serializes");
        v["updated"] = serde_json::Value::String(self.updated.clone().unwrap_or_else(|| self.created.clone()));
        v["ownerId"] = "".into();
        // an id in Activepieces' form (21 alphanumerics): one platform
        v["platformId"] = "troupeplatform0000000".into();
        v["type"] = "TEAM".into();
        v["icon"] = serde_json::json!({"color": "BLUE"});
        v["releasesEnabled"] = false.into();
        v
    }
}

impl Store {
    /// The default project, created on first start.
    pub fn ensure_default_project(&self) -> Result<String> {
        if let Some(id) = self.meta.get(meta::DEFAULT_PROJECT)? {
            return Ok(String::from_utf8_lossy(&id).into_owned());
        }
        let project = Project {
            id: crate::ids::new_id(),
            created: crate::ids::now_iso(),
            display_name: "Default Project".into(),
            updated: None,
            external_id: None,
        };
        self.projects.insert(project.id.as_bytes(), to_json(&project))?;
        self.meta.insert(meta::DEFAULT_PROJECT, project.id.as_bytes())?;
        Ok(project.id)
    }

    pub fn create_project(&self, display_name: &str) -> Result<Project> {
        let project = Project {
            id: crate::ids::new_id(),
            created: crate::ids::now_iso(),
            display_name: display_name.into(),
            updated: None,
            external_id: None,
        };
        self.projects.insert(project.id.as_bytes(), to_json(&project))?;
        Ok(project)
    }

    pub fn get_project(&self, id: &str) -> Result<Option<Project>> {
        self.projects.get(id.as_bytes())?.map(|v| from_json(&v)).transpose()
    }

    pub fn list_projects(&self) -> Result<Vec<Project>> {
        self.projects.iter().values().map(|v| from_json(&v?)).collect()
    }

    pub fn project_exists(&self, id: &str) -> Result<bool> {
        Ok(self.projects.contains_key(id.as_bytes())?)
    }

    /// Sets the default project (in a cluster, the one the cluster agreed on).
    pub fn set_default_project(&self, id: &str) -> Result<()> {
        if !self.projects.contains_key(id.as_bytes())? {
            let project = Project {
                id: id.to_string(),
                created: crate::ids::now_iso(),
                display_name: "Default project".into(),
                updated: None,
                external_id: None,
            };
            self.projects.insert(project.id.as_bytes(), to_json(&project))?;
        }
        self.meta.insert(meta::DEFAULT_PROJECT, id.as_bytes())?;
        Ok(())
    }

    pub fn put_project(&self, project: &Project) -> Result<()> {
        self.projects.insert(project.id.as_bytes(), to_json(project))?;
        Ok(())
    }

    /// Deletes a project that holds no flow (the caller checks).
    pub fn delete_project(&self, id: &str) -> Result<()> {
        self.projects.remove(id.as_bytes())?;
        Ok(())
    }

    /// The id of the default project, if set.
    pub fn default_project(&self) -> Result<Option<String>> {
        Ok(self.meta.get(meta::DEFAULT_PROJECT)?.map(|v| String::from_utf8_lossy(&v).into_owned()))
    }
}
