//! runs-replicator: keeps ClickHouse `trigger_dev.task_runs_v2` equal to Postgres `"TaskRun"` and
//! `task_run_v2` by consuming logical replication. See ARCHITECTURE.md for the map.

pub mod source;
pub mod transform;
