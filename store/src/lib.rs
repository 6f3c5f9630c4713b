//! Troupe's data model and its durable homes.
//!
//! This crate owns what Troupe remembers: flows and their versions (the Activepieces
//! flow-version JSON, kept lossless), runs with their per-step journal, key/value store
//! entries, projects and API keys, all on sled; and the names and limits of the JetStream
//! streams that carry webhooks and run events. Every tree, subject and stream name is defined
//! in [`names`] and nowhere else.
//!
//! It does not execute anything: templates, pieces and validation against the piece catalog
//! belong to `troupe-actors`.

pub mod config;
pub mod connection;
pub mod db;
pub mod flow;
pub mod flow_ops;
pub mod ids;
pub mod lease;
pub mod message;
pub mod metric_definitions;
pub mod migrate;
pub mod names;
pub mod piece;
pub mod publish;
pub mod replication;
pub mod run;
pub mod streams;
pub mod tasks;
pub mod timer;

pub use config::Config;
pub use db::{Page, Store, StoreError};
