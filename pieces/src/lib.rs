//! npm piece packages: the registry client, integrity checks, the dependency closure of a
//! package (npm's semver resolution), unpacking and the refusal of native code.
//!
//! It knows nothing of flows or of the sandbox that runs the packages.

pub mod egress;
pub mod install;
pub mod installed;
pub mod integrity;
pub mod metric_definitions;
pub mod package;
pub mod registry;
pub mod resolve;

/// Orders two npm versions as semver does (what is not a version sorts first).
pub fn version_order(a: &str, b: &str) -> std::cmp::Ordering {
    match (nodejs_semver::Version::parse(a), nodejs_semver::Version::parse(b)) {
        (Ok(a), Ok(b)) => a.cmp(&b),
        (Ok(_), Err(_)) => std::cmp::Ordering::Greater,
        (Err(_), Ok(_)) => std::cmp::Ordering::Less,
        (Err(_), Err(_)) => a.cmp(b),
    }
}
