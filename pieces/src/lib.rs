//! npm piece packages: the registry client, integrity checks, the dependency closure of a
//! package (npm's semver resolution), unpacking and the refusal of native code.
//!
//! It knows nothing of flows or of the sandbox that runs the packages.

pub mod install;
pub mod installed;
pub mod integrity;
pub mod package;
pub mod registry;
pub mod resolve;
