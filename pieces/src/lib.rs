//! npm piece packages: the registry client, integrity checks, the dependency closure of a
//! package (npm's semver resolution), unpacking and the refusal of native code.
//!
//! and the runtime that loads a piece in the sandbox and runs its actions ([`runtime`]). It
//! knows nothing of flows: what an action's context needs from a run comes from its caller.

pub mod egress;
pub mod install;
pub mod installed;
pub mod integrity;
pub mod metric_definitions;
pub mod oauth2;
pub mod package;
pub mod registry;
pub mod resolve;
pub mod runtime;

/// Orders two npm versions as semver does (what is not a version sorts first).
pub fn version_order(a: &str, b: &str) -> std::cmp::Ordering {
    match (nodejs_semver::Version::parse(a), nodejs_semver::Version::parse(b)) {
        (Ok(a), Ok(b)) => a.cmp(&b),
        (Ok(_), Err(_)) => std::cmp::Ordering::Greater,
        (Err(_), Ok(_)) => std::cmp::Ordering::Less,
        (Err(_), Err(_)) => a.cmp(b),
    }
}

/// An error with its causes, each once: reqwest's own message ("error sending request") says
/// too little.
pub(crate) fn with_causes(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let s = c.to_string();
        if !out.contains(&s) {
            out.push_str(": ");
            out.push_str(&s);
        }
        cur = c.source();
    }
    out
}
