//! API keys, stored by hash only: a leaked store does not leak a usable key.

use super::{from_json, to_json, Result, Store};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApiKeyRecord {
    pub id: String,
    pub created: String,
    pub display_name: String,
    /// The one project this key may see; none for an admin key (`AP_API_KEY`, the first-start
    /// key), which sees every project and manages keys and projects.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project_id: Option<String>,
    /// A project key's role there (`Admin`, `Editor`, `Operator`, `Viewer`); Admin when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
}

/// Hashes an API key for storage; the key itself is never stored.
pub fn hash_api_key(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

impl Store {
    pub fn add_api_key(&self, key: &str, display_name: &str) -> Result<()> {
        let rec = ApiKeyRecord {
            id: crate::ids::new_id(),
            created: crate::ids::now_iso(),
            display_name: display_name.into(),
            project_id: None,
            role: None,
        };
        self.api_keys.insert(hash_api_key(key).as_bytes(), to_json(&rec))?;
        Ok(())
    }

    /// A new key for one project; the key itself is returned once and only its hash is kept.
    pub fn create_project_key(
        &self,
        project_id: &str,
        display_name: &str,
        role: Option<&str>,
    ) -> Result<(ApiKeyRecord, String)> {
        let key = format!("sk-{}{}", crate::ids::new_id(), crate::ids::new_id());
        let rec = ApiKeyRecord {
            id: crate::ids::new_id(),
            created: crate::ids::now_iso(),
            display_name: display_name.into(),
            project_id: Some(project_id.into()),
            role: role.map(String::from),
        };
        self.api_keys.insert(hash_api_key(&key).as_bytes(), to_json(&rec))?;
        Ok((rec, key))
    }

    /// The record of a key, when it is valid.
    pub fn api_key(&self, key: &str) -> Result<Option<ApiKeyRecord>> {
        self.api_keys.get(hash_api_key(key).as_bytes())?.map(|v| from_json(&v)).transpose()
    }

    pub fn list_api_keys(&self) -> Result<Vec<ApiKeyRecord>> {
        self.api_keys.iter().values().map(|v| from_json(&v?)).collect()
    }

    /// Revokes the key with this id; false when there is none.
    pub fn revoke_api_key(&self, id: &str) -> Result<bool> {
        for item in self.api_keys.iter() {
            let (hash, v) = item?;
            let rec: ApiKeyRecord = from_json(&v)?;
            if rec.id == id {
                self.api_keys.remove(hash)?;
                return Ok(true);
            }
        }
        Ok(false)
    }

    pub fn has_api_keys(&self) -> bool {
        !self.api_keys.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use crate::db::temp_store;

    #[test]
    fn api_keys_are_stored_hashed() {
        let (_d, store) = temp_store();
        store.add_api_key("sk-secret", "admin").unwrap();
        assert!(store.api_key("sk-secret").unwrap().is_some());
        assert!(store.api_key("sk-other").unwrap().is_none());
        assert!(store.api_keys.get("sk-secret").unwrap().is_none());
    }
}
