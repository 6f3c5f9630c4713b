//! Native core pieces, one module each, and the table of what exists.

pub mod catalog;
