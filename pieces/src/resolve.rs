//! The dependency closure of a package, as npm would install it: every dependency edge gets
//! the registry's `latest` version when it satisfies the range, else the highest version that
//! does (npm-pick-manifest's rule); a version already chosen for the closure is reused when it
//! satisfies (npm's dedupe). `optionalDependencies` are installed when they are for this
//! platform and can be had; required `peerDependencies` are installed like dependencies.
//!
//! The result is a [`Lock`]: each package at one exact version with its tarball, its digest
//! and, for each name its code may `require`, the package that name resolves to. A module
//! loader needs nothing else, whatever npm's folder layout would have been.

use crate::registry::{Manifest, Packument, Registry, RegistryError};
use futures::StreamExt;
use nodejs_semver::{Range, Version};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;
pub use troupe_store::piece::{key, Lock, LockedPackage};

/// How many package documents are fetched at once.
const CONCURRENT_FETCHES: usize = 16;
/// Most packages in one closure.
pub const MAX_PACKAGES: usize = 2000;

#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    #[error(transparent)]
    Registry(#[from] RegistryError),
    #[error("{name}@{spec}: no version satisfies it{}", required_by(.by))]
    NoVersion { name: String, spec: String, by: Option<String> },
    #[error("{name}@{spec}: only registry versions can be installed, not git, file or URL dependencies{}", required_by(.by))]
    Unsupported { name: String, spec: String, by: Option<String> },
    #[error("the dependency closure has more than {MAX_PACKAGES} packages")]
    TooMany,
}

fn required_by(by: &Option<String>) -> String {
    by.as_ref().map(|b| format!(" (required by {b})")).unwrap_or_default()
}

struct Edge {
    /// The dependent's key; `None` for the package asked for.
    from: Option<String>,
    /// The name the dependent requires it by (an alias for `npm:` specs).
    alias: String,
    name: String,
    spec: String,
    optional: bool,
}

/// Resolves `name@spec` (a semver range, an exact version or a dist-tag such as `latest`).
pub async fn resolve(registry: &Registry, name: &str, spec: &str) -> Result<Lock, ResolveError> {
    resolve_with(registry, name, spec, None).await
}

/// Resolves the closure of a package that is not in the registry (an uploaded archive): its
/// manifest stands in for the registry's document, its dependencies come from the registry.
pub async fn resolve_manifest(registry: &Registry, root: Manifest) -> Result<Lock, ResolveError> {
    let (name, version) = (root.name.clone(), root.version.clone());
    let doc = Packument {
        name: name.clone(),
        dist_tags: BTreeMap::new(),
        versions: BTreeMap::from([(version.clone(), root)]),
    };
    resolve_with(registry, &name, &version, Some(doc)).await
}

async fn resolve_with(
    registry: &Registry,
    name: &str,
    spec: &str,
    preset: Option<Packument>,
) -> Result<Lock, ResolveError> {
    let mut documents: HashMap<String, Option<Arc<Packument>>> = HashMap::new();
    if let Some(doc) = preset {
        documents.insert(doc.name.clone(), Some(Arc::new(doc)));
    }
    let mut chosen: HashMap<String, Vec<Version>> = HashMap::new();
    let mut packages: BTreeMap<String, LockedPackage> = BTreeMap::new();
    let mut queue = VecDeque::from([Edge {
        from: None,
        alias: name.to_string(),
        name: name.to_string(),
        spec: spec.to_string(),
        optional: false,
    }]);
    let mut root = None;
    while !queue.is_empty() {
        // the documents this round needs, fetched together
        let missing: Vec<String> = {
            let mut names: Vec<String> = queue.iter().map(|e| real_target(e).0).collect();
            names.sort();
            names.dedup();
            names.retain(|n| !documents.contains_key(n));
            names
        };
        let fetched: Vec<(String, Result<Packument, RegistryError>)> = futures::stream::iter(missing)
            .map(|n| async move {
                let r = registry.packument(&n).await;
                (n, r)
            })
            .buffer_unordered(CONCURRENT_FETCHES)
            .collect()
            .await;
        let mut failures = HashMap::new();
        for (n, r) in fetched {
            match r {
                Ok(p) => {
                    documents.insert(n, Some(Arc::new(p)));
                }
                Err(e) => {
                    documents.insert(n.clone(), None);
                    failures.insert(n, e);
                }
            }
        }
        let round: Vec<Edge> = queue.drain(..).collect();
        for edge in round {
            let (target, spec) = real_target(&edge);
            let by = edge.from.clone();
            let Some(doc) = documents.get(&target).cloned().flatten() else {
                if edge.optional {
                    continue;
                }
                return Err(match failures.remove(&target) {
                    Some(e) => e.into(),
                    None => RegistryError::NotFound(target).into(),
                });
            };
            let range = match parse_spec(&doc, &spec) {
                Some(r) => r,
                None if edge.optional => continue,
                None => return Err(ResolveError::Unsupported { name: target, spec, by }),
            };
            let reuse = chosen.get(&target).and_then(|vs| vs.iter().rev().find(|v| range.satisfies(v)).cloned());
            let manifest = match reuse {
                Some(v) => None.or_else(|| doc.versions.get(&v.to_string()).cloned()),
                None => pick(&doc, &range),
            };
            let Some(manifest) = manifest else {
                if edge.optional {
                    continue;
                }
                return Err(ResolveError::NoVersion { name: target, spec, by });
            };
            if edge.optional && !manifest.fits_platform() {
                continue;
            }
            let k = key(&manifest.name, &manifest.version);
            if !packages.contains_key(&k) {
                if packages.len() >= MAX_PACKAGES {
                    return Err(ResolveError::TooMany);
                }
                if let Ok(v) = Version::parse(&manifest.version) {
                    chosen.entry(target.clone()).or_default().push(v);
                }
                packages.insert(
                    k.clone(),
                    LockedPackage {
                        name: manifest.name.clone(),
                        version: manifest.version.clone(),
                        tarball: manifest.dist.tarball.clone(),
                        integrity: manifest.dist.integrity()?.to_string(),
                        dependencies: BTreeMap::new(),
                    },
                );
                enqueue_dependencies(&mut queue, &k, &manifest);
            }
            match &edge.from {
                None => root = Some(k),
                Some(from) => {
                    if let Some(p) = packages.get_mut(from) {
                        p.dependencies.insert(edge.alias.clone(), k);
                    }
                }
            }
        }
    }
    let root = root.expect("the first edge is the root");
    Ok(Lock { root, packages })
}

/// The package an edge really names, and its spec (`npm:other@^1` aliases another package).
fn real_target(edge: &Edge) -> (String, String) {
    if let Some(aliased) = edge.spec.strip_prefix("npm:") {
        // `npm:@scope/pkg@^1`, `npm:pkg@1`, or `npm:pkg`
        let at = aliased.char_indices().skip(1).find(|(_, c)| *c == '@').map(|(i, _)| i);
        return match at {
            Some(i) => (aliased[..i].to_string(), aliased[i + 1..].to_string()),
            None => (aliased.to_string(), "*".to_string()),
        };
    }
    (edge.name.clone(), edge.spec.clone())
}

/// A range from a spec: a semver range, or a dist-tag's version. `None` for git, file and URL
/// specs.
fn parse_spec(doc: &Packument, spec: &str) -> Option<Range> {
    let spec = spec.trim();
    if let Some(v) = doc.dist_tags.get(spec) {
        return Range::parse(v).ok();
    }
    if spec.is_empty() {
        return Some(Range::any());
    }
    if spec.contains(':') || spec.contains('/') {
        return None;
    }
    Range::parse(spec).ok()
}

/// npm-pick-manifest: `latest` when it satisfies the range, else the highest satisfying version.
fn pick(doc: &Packument, range: &Range) -> Option<Manifest> {
    if let Some(latest) = doc.dist_tags.get("latest").and_then(|v| Version::parse(v).ok()) {
        if range.satisfies(&latest) {
            if let Some(m) = doc.versions.get(&latest.to_string()) {
                return Some(m.clone());
            }
        }
    }
    let versions: Vec<Version> = doc.versions.keys().filter_map(|v| Version::parse(v).ok()).collect();
    let best = range.max_satisfying(&versions)?;
    doc.versions.get(&best.to_string()).cloned()
}

fn enqueue_dependencies(queue: &mut VecDeque<Edge>, from: &str, m: &Manifest) {
    let edge = |alias: &String, spec: &String, optional: bool| Edge {
        from: Some(from.to_string()),
        alias: alias.clone(),
        name: alias.clone(),
        spec: spec.clone(),
        optional,
    };
    for (name, spec) in &m.dependencies {
        // npm lets an optional dependency listed in both places be optional
        queue.push_back(edge(name, spec, m.optional_dependencies.contains_key(name)));
    }
    for (name, spec) in &m.optional_dependencies {
        if !m.dependencies.contains_key(name) {
            queue.push_back(edge(name, spec, true));
        }
    }
    for (name, spec) in &m.peer_dependencies {
        let optional_peer = m
            .peer_dependencies_meta
            .get(name)
            .and_then(|v| v.get("optional"))
            .and_then(serde_json::Value::as_bool)
            .unwrap_or(false);
        if !optional_peer && !m.dependencies.contains_key(name) {
            queue.push_back(edge(name, spec, false));
        }
    }
}

/// Whether `version` satisfies a step's `pieceVersion` as Activepieces reads it (not npm's
/// rule for `^0.x`): `^1.2.0` admits up to the next major, `~0.3.0` up to the next minor,
/// `0.3.26` only itself; no spec (or `latest`, `*`) admits any version.
pub fn admits_piece_version(spec: Option<&str>, version: &str) -> bool {
    let Ok(v) = Version::parse(version) else { return false };
    let spec = spec.map(str::trim).unwrap_or_default();
    if spec.is_empty() || spec == "latest" || spec == "*" {
        return true;
    }
    let (op, base) = match spec.chars().next() {
        Some(c @ ('^' | '~')) => (Some(c), &spec[1..]),
        _ => (None, spec),
    };
    let Ok(low) = Version::parse(base) else { return false };
    let high = match op {
        Some('^') => format!("{}.0.0", low.major() + 1),
        Some('~') => format!("{}.{}.0", low.major(), low.minor() + 1),
        _ => return v == low,
    };
    let Ok(high) = Version::parse(&high) else { return false };
    v >= low && v < high
}

#[cfg(test)]
mod piece_version_tests {
    use super::admits_piece_version as admits;

    #[test]
    fn activepieces_ranges() {
        assert!(admits(Some("~0.3.0"), "0.3.26"));
        assert!(!admits(Some("~0.3.0"), "0.4.0"));
        assert!(admits(Some("^0.3.0"), "0.9.1"), "Activepieces' caret keeps to the major even below 1.0");
        assert!(!admits(Some("^1.2.0"), "2.0.0"));
        assert!(!admits(Some("^1.2.0"), "1.1.9"));
        assert!(admits(Some("0.3.26"), "0.3.26"));
        assert!(!admits(Some("0.3.26"), "0.3.27"));
        assert!(admits(None, "0.0.1"));
        assert!(!admits(Some("nonsense"), "1.0.0"));
    }
}
