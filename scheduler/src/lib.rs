//! Durable timers: delays, schedule and polling triggers, paused-run expiry and retention
//! clean-up, kept in sled and fired by publishing to JetStream.
//!
//! Not built yet: flows with schedule, polling or pausing pieces cannot be published, because
//! those pieces are not in the catalog of `troupe-actors`.
