//! Test support shared by the unit tests, the integration tests (`tests/it`) and the benchmarks
//! (`benches/`): building the worker's inputs and reading its outputs the same way everywhere.
//! The other test and bench targets get it through the crate's dev-dependency on itself with the
//! `test-support` feature (Cargo.toml).
//!
//! - [`pgoutput`]: the pgoutput encoder, the inverse of the decoder.
//! - [`runs`]: `RunRow`s to start from, and builder methods for the fields tests vary.
//! - [`metrics`]: the one parser of Prometheus text (`/metrics`).
//! - [`wait`]: polling for a condition with a timeout.
//! - [`task_runs`]: pgoutput messages of the runs tables (Relation, INSERT/UPDATE/DELETE of a run).
//! - [`feed`], [`memory_sink`], [`control`]: the streaming loop's stream, sink and Postgres control
//!   plane in memory, with faults on demand, for running the loop in-process.

pub mod control;
pub mod feed;
pub mod memory_sink;
pub mod metrics;
pub mod pgoutput;
pub mod runs;
pub mod task_runs;
pub mod wait;

#[cfg(test)]
mod tests;
