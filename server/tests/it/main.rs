//! Troupe's integration tests, one module per area, in one test binary: each test starts the
//! real `troupe` binary (with its embedded nats-server, or on a NATS server or cluster of its
//! own) and talks to it over HTTP. One binary instead of one per file links the whole stack
//! once, not ten times (docs/performance.md, "Test binaries: one instead of N"). The harness is
//! `troupe_testkit::troupe`, through `support`. `just faults` runs the `faults::` module alone.

mod support;

mod api;
mod audit;
mod chaos;
mod chart;
mod cluster;
mod code;
mod connections;
mod egress;
mod faults;
mod fidelity;
mod lifecycle;
mod observability;
mod oracle;
mod pauses;
mod pieces;
mod roles;
mod runs;
mod sample_data;
