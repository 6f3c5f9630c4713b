//! `troupe-loadtest`: an open-loop load generator for webhook ingress and end-to-end runs,
//! talking to a running Troupe over HTTP only.
//!
//! Not built yet; it answers with a clear message instead of pretending to measure.

fn main() {
    eprintln!("troupe-loadtest is not built yet; see docs/performance.md for how Troupe was measured so far");
    std::process::exit(2);
}
