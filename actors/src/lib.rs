//! The engine: shard, flow and run actors (actix, supervised), template resolution, step
//! executors and the native core pieces.
//!
//! It reads and writes through `troupe-store` and never speaks HTTP to clients; the gateway
//! hands it webhooks through JetStream and reads results from the store.
//!
//! Modules, from the bottom up (each imports only those above it): `context` (what every actor
//! shares, no actor in it), `messages`, the step machinery (`template`, `router`, `code`,
//! `npm`, `pieces`, `validate`), `run` (RunActor: interpreter, outcome, secrets), `flow` (FlowActor
//! and its registry), `shard` (ShardActor, its consumer, `Shards`), `cluster` (leases), and
//! `engine`, which starts and stops the whole.

pub mod context;
pub mod messages;
pub mod metric_definitions;

pub mod code;
pub mod npm;
pub mod pieces;
pub mod router;
pub mod template;
pub mod typescript;
pub mod validate;

pub mod run;

pub mod flow;

pub mod shard;

pub mod cluster;

pub mod engine;
