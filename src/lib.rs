//! runs-replicator: keeps ClickHouse `trigger_dev.task_runs_v2` equal to Postgres `"TaskRun"` and
//! `task_run_v2` by consuming logical replication. ARCHITECTURE.md is the full map.
//!
//! # Layout
//!
//! The modules follow the data, upstream first; a module imports only modules above it in the
//! flow or beside it (the foundations), never one downstream of it.
//!
//! ```text
//! source ──► transform ──► pipeline ──► sink
//! (stream,    (pure: one    (transactions,  (ClickHouse: insert,
//!  pgoutput,   row in,       batches, ack,   reads; implements
//!  relations)  rows out)     the loop)       pipeline::sink::Sink)
//! ```
//!
//! - Foundations, used by all: [`rows`] (the row shapes), [`config`] (the one source of
//!   settings), [`budget`] (how `batch.max_bytes` is shared), [`pg`] (Postgres connections and
//!   typed catalog readings), [`metrics`].
//! - The data flow: [`source`], [`transform`], [`pipeline`], [`sink`].
//! - Around it: [`preflight`] (readings → verdicts → report), [`leader`] (one consumer per stream, the streams shared among instances),
//!   [`health`] and [`http`] (what operators see), [`logging`], [`version`] (what the binary
//!   reports it is).
//! - The top: [`daemon`] wires a session together (stream, control plane, sink, loop) and
//!   supervises it; [`backfill`] copies the current rows through the same transform and sink
//!   (SPEC §9); [`verify`] compares ClickHouse with the transform of Postgres and repairs it
//!   through the backfill path (SPEC §10); `main.rs` is the command line.
//! - [`failpoint`]: named moments a test can kill the worker at (test builds only).
//! - [`testing`]: in-memory parts and builders for tests and benchmarks, never in the worker.

pub mod backfill;
pub mod budget;
pub mod config;
pub mod daemon;
pub mod failpoint;
pub mod health;
pub mod http;
pub mod leader;
pub mod logging;
pub mod metrics;
pub mod pg;
pub mod pipeline;
pub mod preflight;
pub mod rows;
pub mod sink;
pub mod source;
/// Support for tests and benchmarks, compiled only for `cargo test` and with the `test-support`
/// feature: never part of the worker.
#[cfg(any(test, feature = "test-support"))]
pub mod testing;
pub mod transform;
pub mod verify;
pub mod version;
