//! From decoded changes to acknowledged positions.
//!
//! - `apply` — one source's decoding state; a decoded message applied to it (no I/O).
//! - `changes` — one row change (INSERT, UPDATE, DELETE) into a transaction's rows.
//! - `transaction`, `collapse`, `batch` — collapsing rows per ClickHouse row, within a transaction
//!   and across the transactions of a batch.
//! - `version_map` — where a WAL position sits in `_version` across the timelines a source's
//!   server went through.
//! - `writer` — the batch being filled, the inserts in flight, what may be acknowledged (`ack`).
//! - `repair` — completing changes a once-broken table streamed incompletely.
//! - `replicator` — the loop that drives them; `attached` — one stream as the loop holds it;
//!   `errors` and `meters` are the loop's outcome and gauges.
//! - `sink`, `control` — the seams to storage and to the Postgres control plane, as traits the
//!   loop is written against (implemented by `sink::insert` and `daemon::control`, and in memory
//!   by `testing`).

pub mod ack;
pub mod apply;
pub mod attached;
pub mod batch;
pub mod changes;
pub mod collapse;
pub mod control;
pub mod errors;
pub mod held;
pub mod meters;
pub mod repair;
pub mod replicator;
pub mod sink;
pub mod transaction;
pub mod version_map;
pub mod writer;

#[cfg(test)]
mod tests;
