//! Installing a package: its closure resolved ([`crate::resolve`]), every tarball fetched and
//! checked against its digest, unpacked, and refused as a whole when any package of it holds
//! native code (which cannot run in the Wasm sandbox).

use crate::integrity::Integrity;
use crate::package::{PackageError, PackageFiles};
use crate::registry::{Dist, Manifest, Registry, RegistryError};
use crate::resolve::{self, key, Lock, ResolveError};
use futures::StreamExt;
use std::collections::BTreeMap;

/// The tarball "URL" of a package installed from an uploaded archive.
pub const ARCHIVE: &str = "archive";
/// How many tarballs are fetched at once.
const CONCURRENT_TARBALLS: usize = 8;

#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    #[error(transparent)]
    Resolve(#[from] ResolveError),
    #[error(transparent)]
    Registry(#[from] RegistryError),
    #[error("{package}: {source}")]
    Package { package: String, source: PackageError },
    #[error("the archive's package.json lacks {0}")]
    ArchiveManifest(&'static str),
    #[error(
        "{root} cannot run in the sandbox: it needs the native addon of {package} ({evidence}); only JavaScript and WebAssembly can run there"
    )]
    NativeCode { root: String, package: String, evidence: String },
}

/// A package and its closure, checked and unpacked.
pub struct Installed {
    pub lock: Lock,
    /// The files of each package, by lock key.
    pub files: BTreeMap<String, PackageFiles>,
    /// Each package's tarball, by lock key (what a store keeps).
    pub tarballs: BTreeMap<String, Vec<u8>>,
}

impl Installed {
    pub fn root_files(&self) -> &PackageFiles {
        &self.files[&self.lock.root]
    }
}

/// Installs `name@spec` from the registry.
pub async fn install(registry: &Registry, name: &str, spec: &str) -> Result<Installed, InstallError> {
    let lock = resolve::resolve(registry, name, spec).await?;
    fetch(registry, lock).await
}

/// Fetches, checks and unpacks the packages of a resolved closure.
pub async fn fetch(registry: &Registry, lock: Lock) -> Result<Installed, InstallError> {
    fetch_closure(registry, lock, BTreeMap::new()).await
}

/// Installs an uploaded `.tgz` (as `npm pack` makes it); its dependencies come from the registry.
pub async fn install_archive(registry: &Registry, tgz: Vec<u8>) -> Result<Installed, InstallError> {
    let files =
        PackageFiles::unpack(&tgz).map_err(|source| InstallError::Package { package: "the archive".into(), source })?;
    let manifest =
        files.manifest().map_err(|source| InstallError::Package { package: "the archive".into(), source })?;
    let text = |k: &'static str| {
        manifest.get(k).and_then(serde_json::Value::as_str).map(String::from).ok_or(InstallError::ArchiveManifest(k))
    };
    let (name, version) = (text("name")?, text("version")?);
    let integrity = Integrity::sha512_of(&tgz).to_string();
    let field = |k: &str| manifest.get(k).filter(|v| v.is_object()).cloned().unwrap_or_else(|| serde_json::json!({}));
    let root: Manifest = serde_json::from_value(serde_json::json!({
        "name": name, "version": version,
        "dependencies": field("dependencies"),
        "optionalDependencies": field("optionalDependencies"),
        "peerDependencies": field("peerDependencies"),
        "peerDependenciesMeta": field("peerDependenciesMeta"),
        "dist": {"tarball": ARCHIVE, "integrity": integrity}
    }))
    .map_err(|e| InstallError::Package {
        package: key(&name, &version),
        source: PackageError::BadManifest(e.to_string()),
    })?;
    let lock = resolve::resolve_manifest(registry, root).await?;
    let preset = BTreeMap::from([(lock.root.clone(), (tgz, files))]);
    fetch_closure(registry, lock, preset).await
}

async fn fetch_closure(
    registry: &Registry,
    lock: Lock,
    preset: BTreeMap<String, (Vec<u8>, PackageFiles)>,
) -> Result<Installed, InstallError> {
    let wanted: Vec<(String, Dist)> = lock
        .packages
        .iter()
        .filter(|(k, _)| !preset.contains_key(*k))
        .map(|(k, p)| (k.clone(), Dist::from(p)))
        .collect();
    let fetched: Vec<(String, Result<Vec<u8>, RegistryError>)> = futures::stream::iter(wanted)
        .map(|(k, dist)| async move { (k, registry.tarball(&dist).await) })
        .buffer_unordered(CONCURRENT_TARBALLS)
        .collect()
        .await;
    let mut tarballs = BTreeMap::new();
    for (k, r) in fetched {
        tarballs.insert(k, r?);
    }
    // unpacking is CPU work: off the async threads (the tarballs go there and come back)
    let (mut tarballs, unpacked) = tokio::task::spawn_blocking(move || {
        let unpacked: Vec<(String, Result<PackageFiles, PackageError>)> =
            tarballs.iter().map(|(k, t)| (k.clone(), PackageFiles::unpack(t))).collect();
        (tarballs, unpacked)
    })
    .await
    .expect("unpacking does not panic");
    let mut files = BTreeMap::new();
    for (k, r) in unpacked {
        let f = r.map_err(|source| InstallError::Package { package: k.clone(), source })?;
        files.insert(k, f);
    }
    for (k, (tgz, unpacked)) in preset {
        tarballs.insert(k.clone(), tgz);
        files.insert(k, unpacked);
    }
    for (k, f) in &files {
        if let Some(evidence) = f.native_code() {
            return Err(InstallError::NativeCode { root: lock.root.clone(), package: k.clone(), evidence });
        }
    }
    Ok(Installed { lock, files, tarballs })
}
