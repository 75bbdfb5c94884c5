//! `RunRow`s for tests: [`run_row`], a plausible pending run with most columns empty (what unit
//! tests of the pipeline and the sink start from), [`completed_run_row`], a finished run with
//! timings, costs, tags, versions and annotations set (what the ClickHouse round trip in
//! `tests/it` writes), and builder methods for the fields tests vary.

use crate::rows::RunRow;

/// A plausible runs-table row for `run_id`, version 0.
pub fn run_row(run_id: &str) -> RunRow {
    RunRow {
        environment_id: "env_1".into(),
        organization_id: "org_1".into(),
        project_id: "proj_1".into(),
        run_id: run_id.into(),
        updated_at: 1_764_000_000_000,
        created_at: 1_764_000_000_000,
        queue_timestamp: None,
        status: "PENDING".into(),
        environment_type: "PRODUCTION".into(),
        friendly_id: format!("friendly_{run_id}"),
        attempt: 1,
        engine: "V2".into(),
        task_identifier: "task".into(),
        queue: "task/task".into(),
        schedule_id: String::new(),
        batch_id: String::new(),
        completed_at: None,
        started_at: None,
        executed_at: None,
        delay_until: None,
        queued_at: None,
        expired_at: None,
        usage_duration_ms: 0,
        cost_in_cents: 0.0,
        base_cost_in_cents: 0.0,
        output: "{}".into(),
        error: "{\"data\":null}".into(),
        error_fingerprint: String::new(),
        tags: vec![],
        task_version: String::new(),
        sdk_version: String::new(),
        cli_version: String::new(),
        machine_preset: String::new(),
        root_run_id: String::new(),
        parent_run_id: String::new(),
        depth: 0,
        span_id: "span".into(),
        trace_id: "trace".into(),
        idempotency_key: String::new(),
        idempotency_key_user: String::new(),
        idempotency_key_scope: String::new(),
        expiration_ttl: String::new(),
        is_test: 0,
        _version: 0,
        _is_deleted: 0,
        concurrency_key: String::new(),
        bulk_action_group_ids: vec![],
        worker_queue: "main".into(),
        region: String::new(),
        plan_type: String::new(),
        max_duration_in_seconds: None,
        trigger_source: String::new(),
        root_trigger_source: String::new(),
        task_kind: String::new(),
        is_warm_start: None,
        external_deployment_id: String::new(),
    }
}

/// A run that completed successfully, version 0: timestamps, usage, costs, tags, versions,
/// machine, region, plan and annotations set, so most column types carry a value.
pub fn completed_run_row(run_id: &str) -> RunRow {
    RunRow {
        queue_timestamp: Some(1_764_000_000_500),
        status: "COMPLETED_SUCCESSFULLY".into(),
        attempt: 2,
        task_identifier: "my-task".into(),
        queue: "task/my-task".into(),
        batch_id: "batch_1".into(),
        completed_at: Some(1_764_000_009_000),
        started_at: Some(1_764_000_001_000),
        queued_at: Some(1_764_000_000_100),
        usage_duration_ms: 1234,
        cost_in_cents: 0.5,
        base_cost_in_cents: 0.25,
        tags: vec!["a".into(), "b c".into()],
        task_version: "20250101.1".into(),
        sdk_version: "4.0.0".into(),
        cli_version: "4.0.0".into(),
        machine_preset: "small-1x".into(),
        expiration_ttl: "1h".into(),
        worker_queue: "us-east-1".into(),
        region: "us-east-1".into(),
        plan_type: "free".into(),
        max_duration_in_seconds: Some(3600),
        trigger_source: "api".into(),
        root_trigger_source: "dashboard".into(),
        task_kind: "STANDARD".into(),
        is_warm_start: Some(1),
        ..run_row(run_id)
    }
}

/// Builder methods for the fields tests vary most; any other field is set directly.
impl RunRow {
    pub fn with_status(mut self, status: impl Into<String>) -> RunRow {
        self.status = status.into();
        self
    }

    pub fn with_version(mut self, version: u64) -> RunRow {
        self._version = version;
        self
    }

    /// The tombstone of this row (`_is_deleted = 1`).
    pub fn deleted(mut self) -> RunRow {
        self._is_deleted = 1;
        self
    }
}
