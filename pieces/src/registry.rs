//! The npm registry client: package documents (the abbreviated "install" form npm itself
//! uses) and tarballs, each tarball checked against its `integrity` before anything reads it.
//!
//! With a cache folder, tarballs are kept by digest (content never changes under a digest) and
//! package documents for [`PACKUMENT_TTL`], so that repeated installs (tests, a cluster's
//! processes on one machine) do not fetch them again.

use crate::integrity::{Integrity, IntegrityError};
use serde::Deserialize;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;
use troupe_store::piece::LockedPackage;

/// npm's public registry.
pub const DEFAULT_REGISTRY: &str = "https://registry.npmjs.org";
/// How long a cached package document is used before it is fetched again.
pub const PACKUMENT_TTL: Duration = Duration::from_secs(24 * 3600);
/// Largest tarball accepted.
pub const MAX_TARBALL_BYTES: usize = 64 << 20;

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("package {0} does not exist in the registry")]
    NotFound(String),
    #[error("fetching {url}: {message}")]
    Fetch { url: String, message: String },
    #[error("the registry's document for {name} is not valid: {message}")]
    BadDocument { name: String, message: String },
    #[error("tarball {url} is larger than {} MiB", MAX_TARBALL_BYTES >> 20)]
    TooLarge { url: String },
    #[error("tarball {url} has no usable integrity: {source}")]
    NoIntegrity { url: String, source: IntegrityError },
    #[error("tarball {url} does not match its integrity: {source}")]
    IntegrityMismatch { url: String, source: IntegrityError },
}

/// A package's versions, as the registry lists them.
#[derive(Debug, Deserialize)]
pub struct Packument {
    pub name: String,
    #[serde(rename = "dist-tags", default)]
    pub dist_tags: BTreeMap<String, String>,
    #[serde(default)]
    pub versions: BTreeMap<String, Manifest>,
}

/// One version of a package.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    pub name: String,
    pub version: String,
    #[serde(default)]
    pub dependencies: BTreeMap<String, String>,
    #[serde(default)]
    pub optional_dependencies: BTreeMap<String, String>,
    #[serde(default)]
    pub peer_dependencies: BTreeMap<String, String>,
    #[serde(default)]
    pub peer_dependencies_meta: BTreeMap<String, Value>,
    /// Platforms the package is for (`["linux"]`, `["!win32"]`); empty for all.
    #[serde(default)]
    pub os: Value,
    #[serde(default)]
    pub cpu: Value,
    pub dist: Dist,
}

#[derive(Clone, Debug, Deserialize)]
pub struct Dist {
    pub tarball: String,
    #[serde(default)]
    pub integrity: Option<String>,
    #[serde(default)]
    pub shasum: Option<String>,
}

impl From<&LockedPackage> for Dist {
    /// Where a locked package's tarball is, and what it must hash to.
    fn from(p: &LockedPackage) -> Dist {
        Dist { tarball: p.tarball.clone(), integrity: Some(p.integrity.clone()), shasum: None }
    }
}

impl Dist {
    /// The digest the tarball must match (the SRI `integrity`, else the old sha-1 `shasum`).
    pub fn integrity(&self) -> Result<Integrity, RegistryError> {
        let parsed = match (&self.integrity, &self.shasum) {
            (Some(sri), _) => Integrity::parse(sri),
            (None, Some(sha1)) => Integrity::from_shasum(sha1),
            (None, None) => Err(IntegrityError::Unsupported("none".into())),
        };
        parsed.map_err(|source| RegistryError::NoIntegrity { url: self.tarball.clone(), source })
    }
}

impl Manifest {
    /// True when the package may be installed on a Linux x86-64 host (npm's `os` and `cpu`).
    pub fn fits_platform(&self) -> bool {
        fn allows(field: &Value, ours: &str) -> bool {
            let list: Vec<&str> = match field {
                Value::String(s) => vec![s.as_str()],
                Value::Array(a) => a.iter().filter_map(Value::as_str).collect(),
                _ => return true,
            };
            if list.is_empty() {
                return true;
            }
            let denied = list.iter().any(|e| e.strip_prefix('!') == Some(ours));
            let positives: Vec<&&str> = list.iter().filter(|e| !e.starts_with('!')).collect();
            !denied && (positives.is_empty() || positives.iter().any(|e| **e == ours))
        }
        allows(&self.os, "linux") && allows(&self.cpu, "x64")
    }
}

pub struct Registry {
    base: String,
    http: reqwest::Client,
    cache: Option<PathBuf>,
}

impl Registry {
    /// A client of the registry at `base` (e.g. [`DEFAULT_REGISTRY`]), caching in `cache`.
    pub fn new(base: &str, cache: Option<PathBuf>) -> Registry {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .user_agent(concat!("troupe/", env!("CARGO_PKG_VERSION")))
            .build()
            .expect("the HTTP client builds");
        Registry { base: base.trim_end_matches('/').to_string(), http, cache }
    }

    /// The document of `name` (`@scope/name` is sent as `@scope%2fname`).
    pub async fn packument(&self, name: &str) -> Result<Packument, RegistryError> {
        let cached = self.cache.as_ref().map(|c| c.join("packuments").join(format!("{}.json", name.replace('/', "+"))));
        if let Some(path) = &cached {
            let fresh = std::fs::metadata(path)
                .and_then(|m| m.modified())
                .is_ok_and(|t| t.elapsed().unwrap_or(Duration::MAX) < PACKUMENT_TTL);
            if fresh {
                if let Ok(bytes) = std::fs::read(path) {
                    if let Ok(p) = serde_json::from_slice(&bytes) {
                        return Ok(p);
                    }
                }
            }
        }
        let url = format!("{}/{}", self.base, name.replacen('/', "%2f", 1));
        let resp = self
            .http
            .get(&url)
            .header("accept", "application/vnd.npm.install-v1+json; q=1.0, application/json; q=0.8")
            .send()
            .await
            .map_err(|e| RegistryError::Fetch { url: url.clone(), message: crate::with_causes(&e) })?;
        if resp.status() == reqwest::StatusCode::NOT_FOUND {
            return Err(RegistryError::NotFound(name.to_string()));
        }
        if !resp.status().is_success() {
            return Err(RegistryError::Fetch { url, message: format!("HTTP {}", resp.status()) });
        }
        let bytes =
            resp.bytes().await.map_err(|e| RegistryError::Fetch { url: url.clone(), message: e.to_string() })?;
        let packument: Packument = serde_json::from_slice(&bytes)
            .map_err(|e| RegistryError::BadDocument { name: name.to_string(), message: e.to_string() })?;
        if let Some(path) = &cached {
            write_atomically(path, &bytes);
        }
        Ok(packument)
    }

    /// The tarball of a version, checked against its integrity.
    pub async fn tarball(&self, dist: &Dist) -> Result<Vec<u8>, RegistryError> {
        let integrity = dist.integrity()?;
        let cached = self.cache.as_ref().map(|c| c.join("tarballs").join(integrity.file_name()));
        if let Some(bytes) = cached.as_ref().and_then(|p| std::fs::read(p).ok()) {
            if integrity.verify(&bytes).is_ok() {
                return Ok(bytes);
            }
        }
        let url = dist.tarball.clone();
        let fetch_error =
            |e: reqwest::Error| RegistryError::Fetch { url: url.clone(), message: crate::with_causes(&e) };
        let mut resp = self.http.get(&url).send().await.map_err(fetch_error)?;
        if !resp.status().is_success() {
            return Err(RegistryError::Fetch { url, message: format!("HTTP {}", resp.status()) });
        }
        let mut bytes = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(fetch_error)? {
            bytes.extend_from_slice(&chunk);
            if bytes.len() > MAX_TARBALL_BYTES {
                return Err(RegistryError::TooLarge { url });
            }
        }
        integrity.verify(&bytes).map_err(|source| RegistryError::IntegrityMismatch { url: url.clone(), source })?;
        if let Some(path) = &cached {
            write_atomically(path, &bytes);
        }
        Ok(bytes)
    }
}

/// Writes a cache file through a temporary file in the same folder, so that a reader never
/// sees half of it; a cache that cannot be written is only slower.
fn write_atomically(path: &std::path::Path, bytes: &[u8]) {
    let Some(dir) = path.parent() else { return };
    let written = std::fs::create_dir_all(dir)
        .and_then(|_| tempfile::NamedTempFile::new_in(dir))
        .and_then(|mut tmp| std::io::Write::write_all(&mut tmp, bytes).map(|_| tmp))
        .and_then(|tmp| tmp.persist(path).map_err(|e| e.error));
    if let Err(e) = written {
        tracing::debug!(path = %path.display(), error = %e, "could not cache a registry file");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(os: Value, cpu: Value) -> Manifest {
        serde_json::from_value(serde_json::json!({
            "name": "x", "version": "1.0.0", "os": os, "cpu": cpu, "dist": {"tarball": "t"}
        }))
        .unwrap()
    }

    #[test]
    fn platform_filters_follow_npm() {
        use serde_json::json;
        assert!(manifest(Value::Null, Value::Null).fits_platform());
        assert!(manifest(json!(["linux"]), json!(["x64", "arm64"])).fits_platform());
        assert!(!manifest(json!(["darwin"]), json!(["x64"])).fits_platform());
        assert!(!manifest(json!(["linux"]), json!(["arm64"])).fits_platform());
        assert!(manifest(json!(["!win32"]), json!([])).fits_platform());
        assert!(!manifest(json!(["!linux"]), json!([])).fits_platform());
    }
}
