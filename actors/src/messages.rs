//! The messages actors send each other, in one place: who asks what of whom.
//!
//! - `Dispatch`: a shard's consumer task → its `ShardActor`: runs made durable, to start.
//! - `StartRun`: a `ShardActor` → the run's `FlowActor`: execute this run now.
//! - `RunEnded`: a `RunActor` → the `ShardActor` that started it: the project slot is free.
//! - `StopShard`: the engine → a `ShardActor`: stop taking messages.

use actix::{Message, Recipient};

/// Runs a shard's consumer task made durable: (project, flow, run) each.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Dispatch {
    pub runs: Vec<(String, String, String)>,
}

/// Execute `run_id` now; it holds one slot of its project, which `ended` gets back.
#[derive(Message)]
#[rtype(result = "()")]
pub struct StartRun {
    pub run_id: String,
    pub project: String,
    pub ended: Recipient<RunEnded>,
}

/// A run started through [`StartRun`] is over for this process (ended, paused, lost with its
/// shard, or never started): its project slot is free.
#[derive(Message)]
#[rtype(result = "()")]
pub struct RunEnded {
    pub project: String,
}

/// Stop taking messages; runs in flight go on.
#[derive(Message)]
#[rtype(result = "()")]
pub struct StopShard;
