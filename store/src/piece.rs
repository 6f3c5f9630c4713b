//! Installed npm pieces: what a piece version is made of (its [`Lock`]: the package and its
//! whole dependency closure at exact versions, each with its tarball's digest) and how it was
//! installed. The packages themselves are `troupe-pieces`' business.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// `name@version`: how a package version (and an installed piece) is named.
pub fn key(name: &str, version: &str) -> String {
    format!("{name}@{version}")
}

/// One package of a closure.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockedPackage {
    pub name: String,
    pub version: String,
    pub tarball: String,
    /// The tarball's digest (SRI).
    pub integrity: String,
    /// What each name its code may `require` resolves to: a key (`name@version`) of the lock.
    pub dependencies: BTreeMap<String, String>,
}

/// A package and its whole dependency closure, at exact versions.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lock {
    pub root: String,
    pub packages: BTreeMap<String, LockedPackage>,
}

impl Lock {
    pub fn root(&self) -> &LockedPackage {
        &self.packages[&self.root]
    }
}

/// Where a piece came from (Activepieces' `packageType`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum PackageType {
    Registry,
    Archive,
}

/// An installed piece version.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PieceRecord {
    pub id: String,
    pub name: String,
    pub version: String,
    pub package_type: PackageType,
    /// The project it was installed for, when its scope is `PROJECT`; none for the platform.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project_id: Option<String>,
    pub created: String,
    pub lock: Lock,
    /// What loading it in the sandbox gave: Activepieces' piece metadata (name, displayName,
    /// auth, actions and triggers with their props). None until it was loaded once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<serde_json::Value>,
}

impl PieceRecord {
    /// Its key in the `pieces` tree.
    pub fn key(&self) -> String {
        key(&self.name, &self.version)
    }
}
