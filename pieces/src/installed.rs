//! Installed pieces: an install (from the registry or an uploaded archive) stores every
//! tarball of the closure by digest and the piece's record with its lock, both in the store's
//! replicated trees; loading a piece reads them back and checks every tarball again.

use crate::install::{self, InstallError, Installed, ARCHIVE};
use crate::package::{PackageError, PackageFiles};
use crate::registry::{Dist, Registry, RegistryError};
use crate::resolve;
use std::collections::BTreeMap;
use troupe_store::ids::{new_id, now_iso};
use troupe_store::piece::{PackageType, PieceRecord};
use troupe_store::{Store, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum PiecesError {
    #[error(transparent)]
    Install(#[from] InstallError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Registry(#[from] RegistryError),
    #[error("{package}: {source}")]
    Package { package: String, source: PackageError },
    #[error("the tarball of {package} is missing from the store")]
    MissingBlob { package: String },
}

pub struct InstalledPieces {
    store: Store,
    registry: Registry,
}

impl InstalledPieces {
    pub fn new(store: Store, registry: Registry) -> InstalledPieces {
        InstalledPieces { store, registry }
    }

    /// Installs `name@spec` from the registry. A version already installed is kept as it is,
    /// and its tarballs are not fetched again.
    pub async fn add(&self, name: &str, spec: &str, project_id: Option<String>) -> Result<PieceRecord, PiecesError> {
        let lock = resolve::resolve(&self.registry, name, spec).await.map_err(InstallError::from)?;
        let root = lock.root();
        if let Some(existing) = self.store.get_piece(&root.name, &root.version)? {
            return Ok(existing);
        }
        let installed = install::fetch(&self.registry, lock).await?;
        self.keep(installed, PackageType::Registry, project_id)
    }

    /// Installs an uploaded `.tgz`; its dependencies come from the registry.
    pub async fn add_archive(&self, tgz: Vec<u8>, project_id: Option<String>) -> Result<PieceRecord, PiecesError> {
        let installed = install::install_archive(&self.registry, tgz).await?;
        self.keep(installed, PackageType::Archive, project_id)
    }

    fn keep(
        &self,
        installed: Installed,
        package_type: PackageType,
        project_id: Option<String>,
    ) -> Result<PieceRecord, PiecesError> {
        let root = installed.lock.root().clone();
        for (key, p) in &installed.lock.packages {
            let digest = Dist::from(p).integrity()?;
            self.store.put_piece_blob(&digest.file_name(), &installed.tarballs[key])?;
        }
        let record = PieceRecord {
            id: new_id(),
            name: root.name,
            version: root.version,
            package_type,
            project_id,
            created: now_iso(),
            lock: installed.lock,
            metadata: None,
        };
        self.store.put_piece(&record)?;
        Ok(record)
    }

    /// The files of every package of an installed piece, by lock key. A tarball the store lacks
    /// (a process that joined after a replicated write was lost) is fetched from the registry
    /// again, checked against the same digest.
    pub async fn files(&self, record: &PieceRecord) -> Result<BTreeMap<String, PackageFiles>, PiecesError> {
        let mut out = BTreeMap::new();
        for (key, p) in &record.lock.packages {
            let dist = Dist::from(p);
            let digest = dist.integrity()?;
            let tgz = match self.store.piece_blob(&digest.file_name())? {
                Some(b) if digest.verify(&b).is_ok() => b,
                _ if p.tarball == ARCHIVE => return Err(PiecesError::MissingBlob { package: key.clone() }),
                _ => {
                    let b = self.registry.tarball(&dist).await?;
                    self.store.put_piece_blob(&digest.file_name(), &b)?;
                    b
                }
            };
            let files =
                PackageFiles::unpack(&tgz).map_err(|source| PiecesError::Package { package: key.clone(), source })?;
            out.insert(key.clone(), files);
        }
        Ok(out)
    }
}
