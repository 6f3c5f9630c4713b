//! Installed piece versions (`name@version` → [`PieceRecord`]) and the package tarballs they
//! are made of, by digest: the same package shared by two pieces is stored once. Both trees
//! are replicated, so every process of a cluster can load every installed piece.

use super::{from_json, to_json, Result, Store};
use crate::piece::{key, PieceRecord};

impl Store {
    pub fn put_piece(&self, record: &PieceRecord) -> Result<()> {
        self.pieces.insert(record.key().as_bytes(), to_json(record))?;
        Ok(())
    }

    pub fn get_piece(&self, name: &str, version: &str) -> Result<Option<PieceRecord>> {
        self.pieces.get(key(name, version).as_bytes())?.map(|b| from_json(&b)).transpose()
    }

    /// The installed versions of `name`, in no particular order.
    pub fn piece_versions(&self, name: &str) -> Result<Vec<PieceRecord>> {
        let mut out = Vec::new();
        for item in self.pieces.scan_prefix(format!("{name}@").as_bytes()) {
            let (_, v) = item?;
            let record: PieceRecord = from_json(&v)?;
            // `@scope/a@` is also a prefix of `@scope/a@b...`: keep exact names only
            if record.name == name {
                out.push(record);
            }
        }
        Ok(out)
    }

    pub fn list_pieces(&self) -> Result<Vec<PieceRecord>> {
        self.pieces.iter().values().map(|v| from_json(&v?)).collect()
    }

    /// Forgets a piece version (its tarballs stay: other pieces may share them).
    pub fn delete_piece(&self, name: &str, version: &str) -> Result<bool> {
        Ok(self.pieces.remove(key(name, version).as_bytes())?.is_some())
    }

    /// Stores a tarball under its digest's file name (`sha512-<hex>`); idempotent.
    pub fn put_piece_blob(&self, digest: &str, tgz: &[u8]) -> Result<()> {
        if !self.piece_blobs.contains_key(digest.as_bytes())? {
            self.piece_blobs.insert(digest.as_bytes(), tgz)?;
        }
        Ok(())
    }

    pub fn piece_blob(&self, digest: &str) -> Result<Option<Vec<u8>>> {
        Ok(self.piece_blobs.get(digest.as_bytes())?.map(|v| v.to_vec()))
    }
}
