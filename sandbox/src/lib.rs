//! Running untrusted code in Wasmer: JavaScript code steps through a JS engine compiled to
//! WebAssembly, and plain WASI modules, each under a memory cap, a deadline and fuel, with no
//! filesystem, network or environment. It knows nothing of flows.
//!
//! Not built yet: until it is, the engine refuses `CODE` steps and template expressions at
//! validation (see `troupe-actors::validate`), so no flow depends on it.
