//! The REST API under `/api/v1`, shapes as in Activepieces.

pub mod admin;
pub mod connections;
pub mod engine;
pub mod flows;
pub mod folders;
#[cfg(test)]
mod fuzz;
pub mod pieces;
pub mod runs;
pub mod sample_data;
pub mod wasm_modules;
