//! Connections as stored: the sealed value, and the name and order indexes beside it.
//!
//! The cipher lives here because nothing else in the store needs it; what a connection is and
//! how a value is sealed belong to [`crate::connection`].

use super::page::{paginate, Page};
use super::{from_json, order_key, to_json, Result, Store, StoreError};
use crate::connection::Connection;
use crate::names::meta;

fn connection_name_key(project: &str, external_id: &str) -> Vec<u8> {
    let mut k = project.as_bytes().to_vec();
    k.push(0);
    k.extend_from_slice(external_id.as_bytes());
    k
}

impl Store {
    /// Installs the encryption key. The first key ever used is remembered through a sealed
    /// check value, so that a different key later fails here rather than at the first run.
    pub fn unlock(&self, key: &str) -> Result<()> {
        const CHECK: &[u8] = b"troupe encryption key check";
        let cipher = crate::connection::Cipher::from_key(key)?;
        match self.meta.get(meta::ENCRYPTION_CHECK)? {
            Some(sealed) => {
                let plain = cipher.open(&String::from_utf8_lossy(&sealed))?;
                if plain != CHECK {
                    return Err(crate::connection::KeyError::Wrong.into());
                }
            }
            None => {
                self.meta.insert(meta::ENCRYPTION_CHECK, cipher.seal(CHECK).as_bytes())?;
            }
        }
        let _ = self.cipher.set(cipher);
        Ok(())
    }

    fn cipher(&self) -> Result<&crate::connection::Cipher> {
        self.cipher.get().ok_or(StoreError::Locked)
    }

    /// Creates or replaces the connection `external_id` of `project` (its id stays).
    pub fn upsert_connection(&self, mut conn: Connection, value: &serde_json::Value) -> Result<Connection> {
        let name_key = connection_name_key(&conn.project_id, &conn.external_id);
        conn.sealed_value = self.cipher()?.seal(&to_json(value));
        if let Some(existing) =
            self.connection_names.get(&name_key)?.and_then(|id| self.get_connection_raw(&id).ok()?)
        {
            conn.id = existing.id;
            conn.created = existing.created;
            conn.created_micros = existing.created_micros;
        } else {
            self.connection_order.insert(order_key(conn.created_micros, &conn.id), &[])?;
            self.connection_names.insert(name_key, conn.id.as_bytes())?;
        }
        self.connections.insert(conn.id.as_bytes(), to_json(&conn))?;
        Ok(conn)
    }

    fn get_connection_raw(&self, id: &[u8]) -> Result<Option<Connection>> {
        self.connections.get(id)?.map(|v| from_json(&v)).transpose()
    }

    pub fn get_connection(&self, id: &str) -> Result<Option<Connection>> {
        self.get_connection_raw(id.as_bytes())
    }

    pub fn connection_by_name(&self, project: &str, external_id: &str) -> Result<Option<Connection>> {
        match self.connection_names.get(connection_name_key(project, external_id))? {
            Some(id) => self.get_connection_raw(&id),
            None => Ok(None),
        }
    }

    /// The decrypted value of a connection.
    pub fn connection_value(&self, conn: &Connection) -> Result<serde_json::Value> {
        from_json(&self.cipher()?.open(&conn.sealed_value)?)
    }

    pub fn delete_connection(&self, conn: &Connection) -> Result<()> {
        self.connections.remove(conn.id.as_bytes())?;
        self.connection_names.remove(connection_name_key(&conn.project_id, &conn.external_id))?;
        self.connection_order.remove(order_key(conn.created_micros, &conn.id))?;
        Ok(())
    }

    pub fn list_connections(
        &self,
        project: Option<&str>,
        limit: usize,
        cursor: Option<&str>,
    ) -> Result<Page<Connection>> {
        paginate(&self.connection_order, limit, cursor, |id| {
            Ok(self.get_connection(id)?.filter(|c| project.is_none_or(|p| p == c.project_id)))
        })
    }
}

/// What an engine token (`server.token` of a piece's context) grants: the store of one run's
/// project and flow, until it expires.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct EngineToken {
    pub project_id: String,
    pub flow_id: String,
    pub run_id: String,
    /// Seconds since the epoch.
    pub expires: u64,
}

impl Store {
    /// `token` sealed with the connections' key (AES-GCM: a token cannot be made or changed
    /// without it, and every process of a cluster has it).
    pub fn seal_engine_token(&self, token: &EngineToken) -> Result<String> {
        Ok(self.cipher()?.seal(&serde_json::to_vec(token).expect("serializes")))
    }

    /// The token `sealed` carries, if it is one this key sealed and it has not expired.
    pub fn open_engine_token(&self, sealed: &str, now: u64) -> Result<Option<EngineToken>> {
        let Ok(plain) = self.cipher()?.open(sealed) else { return Ok(None) };
        Ok(serde_json::from_slice::<EngineToken>(&plain).ok().filter(|t| t.expires > now))
    }
}
