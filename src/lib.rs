//! runs-replicator: keeps ClickHouse `trigger_dev.task_runs_v2` equal to Postgres `"TaskRun"` and
//! `task_run_v2` by consuming logical replication. See ARCHITECTURE.md for the map.

pub mod config;
pub mod daemon;
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
