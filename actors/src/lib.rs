//! The engine: shard, flow and run actors (actix, supervised), template resolution, step
//! executors and the native core pieces.
//!
//! It reads and writes through `troupe-store` and never speaks HTTP to clients; the gateway
//! hands it webhooks through JetStream and reads results from the store.

pub mod cluster;
pub mod code;
pub mod engine;
pub mod flow_actor;
pub mod metric_definitions;
pub mod pieces;
pub mod router;
pub mod run_actor;
pub mod shard;
pub mod template;
pub mod validate;
