//! The transform's output: rows of `task_runs_v2` and `raw_task_runs_payload_v1`.
//!
//! Field order is the table's column order (`config/clickhouse/002_task_runs_v2.sql`), which is
//! also the RowBinary order on the wire. Timestamps are Unix epoch milliseconds (`DateTime64(3)`
//! in RowBinary is an `Int64` of ticks). JSON columns travel as strings and are parsed by the
//! server (`input_format_binary_read_json_as_string=1`).

use clickhouse::Row;
use serde::{Deserialize, Serialize};

/// One row of `trigger_dev.task_runs_v2` (the 56 columns the worker writes).
#[derive(Clone, Debug, PartialEq, Row, Serialize, Deserialize)]
pub struct RunRow {
    pub environment_id: String,
    pub organization_id: String,
    pub project_id: String,
    pub run_id: String,
    pub updated_at: i64,
    pub created_at: i64,
    pub queue_timestamp: Option<i64>,
    pub status: String,
    pub environment_type: String,
    pub friendly_id: String,
    pub attempt: u8,
    pub engine: String,
    pub task_identifier: String,
    pub queue: String,
    pub schedule_id: String,
    pub batch_id: String,
    pub completed_at: Option<i64>,
    pub started_at: Option<i64>,
    pub executed_at: Option<i64>,
    pub delay_until: Option<i64>,
    pub queued_at: Option<i64>,
    pub expired_at: Option<i64>,
    pub usage_duration_ms: u32,
    pub cost_in_cents: f64,
    pub base_cost_in_cents: f64,
    /// JSON text, always an object: `{"data": …}` or `{}`.
    pub output: String,
    /// JSON text, always an object: `{"data": …}`.
    pub error: String,
    pub error_fingerprint: String,
    pub tags: Vec<String>,
    pub task_version: String,
    pub sdk_version: String,
    pub cli_version: String,
    pub machine_preset: String,
    pub root_run_id: String,
    pub parent_run_id: String,
    pub depth: u8,
    pub span_id: String,
    pub trace_id: String,
    pub idempotency_key: String,
    pub idempotency_key_user: String,
    pub idempotency_key_scope: String,
    pub expiration_ttl: String,
    pub is_test: u8,
    /// `(generation << 56) | (commit_end_lsn & (2^56 - 1))`, stamped at Commit.
    pub _version: u64,
    pub _is_deleted: u8,
    pub concurrency_key: String,
    pub bulk_action_group_ids: Vec<String>,
    pub worker_queue: String,
    pub region: String,
    pub plan_type: String,
    pub max_duration_in_seconds: Option<u32>,
    pub trigger_source: String,
    pub root_trigger_source: String,
    pub task_kind: String,
    pub is_warm_start: Option<u8>,
    pub external_deployment_id: String,
}

/// The columns of [`RunRow`] in insert order; the preflight checks the ClickHouse table has them.
pub const RUN_COLUMNS: [(&str, &str); 56] = [
    ("environment_id", "String"),
    ("organization_id", "String"),
    ("project_id", "String"),
    ("run_id", "String"),
    ("updated_at", "DateTime64(3)"),
    ("created_at", "DateTime64(3)"),
    ("queue_timestamp", "Nullable(DateTime64(3))"),
    ("status", "LowCardinality(String)"),
    ("environment_type", "LowCardinality(String)"),
    ("friendly_id", "String"),
    ("attempt", "UInt8"),
    ("engine", "LowCardinality(String)"),
    ("task_identifier", "String"),
    ("queue", "String"),
    ("schedule_id", "String"),
    ("batch_id", "String"),
    ("completed_at", "Nullable(DateTime64(3))"),
    ("started_at", "Nullable(DateTime64(3))"),
    ("executed_at", "Nullable(DateTime64(3))"),
    ("delay_until", "Nullable(DateTime64(3))"),
    ("queued_at", "Nullable(DateTime64(3))"),
    ("expired_at", "Nullable(DateTime64(3))"),
    ("usage_duration_ms", "UInt32"),
    ("cost_in_cents", "Float64"),
    ("base_cost_in_cents", "Float64"),
    ("output", "JSON"),
    ("error", "JSON"),
    ("error_fingerprint", "String"),
    ("tags", "Array(String)"),
    ("task_version", "String"),
    ("sdk_version", "String"),
    ("cli_version", "String"),
    ("machine_preset", "LowCardinality(String)"),
    ("root_run_id", "String"),
    ("parent_run_id", "String"),
    ("depth", "UInt8"),
    ("span_id", "String"),
    ("trace_id", "String"),
    ("idempotency_key", "String"),
    ("idempotency_key_user", "String"),
    ("idempotency_key_scope", "String"),
    ("expiration_ttl", "String"),
    ("is_test", "UInt8"),
    ("_version", "UInt64"),
    ("_is_deleted", "UInt8"),
    ("concurrency_key", "String"),
    ("bulk_action_group_ids", "Array(String)"),
    ("worker_queue", "String"),
    ("region", "String"),
    ("plan_type", "LowCardinality(String)"),
    ("max_duration_in_seconds", "Nullable(UInt32)"),
    ("trigger_source", "LowCardinality(String)"),
    ("root_trigger_source", "LowCardinality(String)"),
    ("task_kind", "LowCardinality(String)"),
    ("is_warm_start", "Nullable(UInt8)"),
    ("external_deployment_id", "String"),
];

/// One row of `trigger_dev.raw_task_runs_payload_v1`, written for INSERT events only.
#[derive(Clone, Debug, PartialEq, Row, Serialize, Deserialize)]
pub struct PayloadRow {
    pub run_id: String,
    pub created_at: i64,
    /// JSON text, always an object: `{"data": …}` or `{}`.
    pub payload: String,
}

pub const PAYLOAD_COLUMNS: [(&str, &str); 3] = [
    ("run_id", "String"),
    ("created_at", "DateTime64(3)"),
    ("payload", "JSON"),
];

impl RunRow {
    /// The ClickHouse identity of a row: the table's ORDER BY key. Two rows with the same key are
    /// versions of one another; rows with different keys never replace each other.
    pub fn sort_key(&self) -> SortKey<'_> {
        (
            &self.organization_id,
            &self.project_id,
            &self.environment_id,
            self.created_at,
            &self.run_id,
        )
    }
}

/// `(organization_id, project_id, environment_id, created_at, run_id)`.
pub type SortKey<'a> = (&'a str, &'a str, &'a str, i64, &'a str);
