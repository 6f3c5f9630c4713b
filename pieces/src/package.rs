//! One npm package's files, unpacked from its tarball in memory: paths relative to the package
//! root (npm puts everything under one top folder, usually `package/`), regular files only.
//! Nothing is ever written where a path could escape, and an unpacked size cap stops a
//! decompression bomb.

use std::collections::BTreeMap;
use std::io::Read;

/// Largest unpacked package accepted.
pub const MAX_UNPACKED_BYTES: u64 = 256 << 20;

#[derive(Debug, thiserror::Error)]
pub enum PackageError {
    #[error("the tarball is not a gzipped tar archive: {0}")]
    Unreadable(String),
    #[error("the package unpacks to more than {} MiB", MAX_UNPACKED_BYTES >> 20)]
    TooLarge,
    #[error("the package has no package.json at its root")]
    NoManifest,
    #[error("its package.json is not valid: {0}")]
    BadManifest(String),
}

/// The files of one package.
#[derive(Debug, Default)]
pub struct PackageFiles {
    pub files: BTreeMap<String, Vec<u8>>,
}

impl PackageFiles {
    /// Unpacks a `.tgz` as `npm pack` makes it.
    pub fn unpack(tgz: &[u8]) -> Result<PackageFiles, PackageError> {
        let unreadable = |e: std::io::Error| PackageError::Unreadable(e.to_string());
        let gz = flate2::read::GzDecoder::new(tgz);
        let mut archive = tar::Archive::new(gz.take(MAX_UNPACKED_BYTES + 1));
        let mut files = BTreeMap::new();
        let mut total = 0u64;
        for entry in archive.entries().map_err(unreadable)? {
            let mut entry = entry.map_err(|e| {
                if e.kind() == std::io::ErrorKind::UnexpectedEof && total >= MAX_UNPACKED_BYTES {
                    PackageError::TooLarge
                } else {
                    unreadable(e)
                }
            })?;
            if !entry.header().entry_type().is_file() {
                continue;
            }
            let path = entry.path().map_err(unreadable)?.to_string_lossy().replace('\\', "/");
            // drop the top folder; refuse anything that climbs out
            let Some((_, rel)) = path.split_once('/') else { continue };
            if rel.is_empty() || rel.split('/').any(|s| s == ".." || s.is_empty()) {
                continue;
            }
            total += entry.size();
            if total > MAX_UNPACKED_BYTES {
                return Err(PackageError::TooLarge);
            }
            let mut bytes = Vec::with_capacity(entry.size() as usize);
            entry.read_to_end(&mut bytes).map_err(unreadable)?;
            files.insert(rel.to_string(), bytes);
        }
        if !files.contains_key("package.json") {
            return Err(PackageError::NoManifest);
        }
        Ok(PackageFiles { files })
    }

    /// The parsed `package.json`.
    pub fn manifest(&self) -> Result<serde_json::Value, PackageError> {
        let raw = self.files.get("package.json").ok_or(PackageError::NoManifest)?;
        serde_json::from_slice(raw).map_err(|e| PackageError::BadManifest(e.to_string()))
    }

    /// What shows that the package holds native code, which cannot run in the Wasm sandbox:
    /// a compiled addon (`*.node`), a node-gyp build file, or `"gypfile": true`.
    pub fn native_code(&self) -> Option<String> {
        if let Some(path) =
            self.files.keys().find(|p| p.ends_with(".node") || p.rsplit('/').next() == Some("binding.gyp"))
        {
            return Some(path.clone());
        }
        let gypfile = self.manifest().ok().and_then(|m| m.get("gypfile").and_then(serde_json::Value::as_bool));
        gypfile.unwrap_or(false).then(|| "package.json (\"gypfile\": true)".to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use troupe_testkit::npm::pack as tgz;

    #[test]
    fn files_come_out_relative_to_the_package_root() {
        let p = PackageFiles::unpack(&tgz(&[("package.json", b"{\"name\":\"x\"}"), ("src/index.js", b"1")])).unwrap();
        assert_eq!(p.files.keys().collect::<Vec<_>>(), ["package.json", "src/index.js"]);
        assert_eq!(p.manifest().unwrap()["name"], "x");
        assert_eq!(p.native_code(), None);
    }

    #[test]
    fn native_addons_are_found() {
        let p =
            PackageFiles::unpack(&tgz(&[("package.json", b"{}"), ("build/Release/addon.node", b"\x7fELF")])).unwrap();
        assert_eq!(p.native_code().as_deref(), Some("build/Release/addon.node"));
        let p = PackageFiles::unpack(&tgz(&[("package.json", b"{\"gypfile\":true}")])).unwrap();
        assert!(p.native_code().unwrap().contains("gypfile"));
    }

    #[test]
    fn garbage_and_manifestless_archives_are_refused() {
        assert!(matches!(PackageFiles::unpack(b"not a tarball"), Err(PackageError::Unreadable(_))));
        assert!(matches!(PackageFiles::unpack(&tgz(&[("index.js", b"1")])), Err(PackageError::NoManifest)));
    }
}
