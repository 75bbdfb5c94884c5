//! The ClickHouse engine the tests use, through the worker's own client settings (LZ4, plain
//! RowBinary, JSON as string): rows written into the shipped `task_runs_v2` read back equal
//! under FINAL, a tombstone hides its row, and a date-like string in JSON keeps its form.

use runs_replicator::config::Config;
use runs_replicator::sink::client::{self, INSERT_SETTINGS};
use runs_replicator::transform::RunRow;

use crate::support::TestEnv;

pub fn sample_run(i: u32, version: u64, deleted: bool) -> RunRow {
    RunRow {
        environment_id: "env_1".into(),
        organization_id: "org_1".into(),
        project_id: "proj_1".into(),
        run_id: format!("run_{i:04}"),
        updated_at: 1_764_000_000_000 + i as i64,
        created_at: 1_764_000_000_000,
        queue_timestamp: Some(1_764_000_000_500),
        status: "COMPLETED_SUCCESSFULLY".into(),
        environment_type: "PRODUCTION".into(),
        friendly_id: format!("run_friendly_{i}"),
        attempt: 2,
        engine: "V2".into(),
        task_identifier: "my-task".into(),
        queue: "task/my-task".into(),
        schedule_id: String::new(),
        batch_id: "batch_1".into(),
        completed_at: Some(1_764_000_009_000),
        started_at: Some(1_764_000_001_000),
        executed_at: None,
        delay_until: None,
        queued_at: Some(1_764_000_000_100),
        expired_at: None,
        usage_duration_ms: 1234,
        cost_in_cents: 0.5,
        base_cost_in_cents: 0.25,
        output: format!(r#"{{"data":{{"i":{i},"at":"2024-01-02T03:04:05.000Z"}}}}"#),
        error: r#"{"data":null}"#.into(),
        error_fingerprint: String::new(),
        tags: vec!["a".into(), "b c".into()],
        task_version: "20250101.1".into(),
        sdk_version: "4.0.0".into(),
        cli_version: "4.0.0".into(),
        machine_preset: "small-1x".into(),
        root_run_id: String::new(),
        parent_run_id: String::new(),
        depth: 0,
        span_id: "span".into(),
        trace_id: "trace".into(),
        idempotency_key: String::new(),
        idempotency_key_user: String::new(),
        idempotency_key_scope: String::new(),
        expiration_ttl: "1h".into(),
        is_test: 0,
        _version: version,
        _is_deleted: deleted as u8,
        concurrency_key: String::new(),
        bulk_action_group_ids: vec![],
        worker_queue: "us-east-1".into(),
        region: "us-east-1".into(),
        plan_type: "free".into(),
        max_duration_in_seconds: Some(3600),
        trigger_source: "api".into(),
        root_trigger_source: "dashboard".into(),
        task_kind: "STANDARD".into(),
        is_warm_start: Some(1),
        external_deployment_id: String::new(),
    }
}

pub fn config_for(env: &TestEnv) -> Config {
    let toml = env.config_toml(9);
    let dir = crate::support::process::temp_dir("chcfg");
    let path = dir.join("c.toml");
    std::fs::write(&path, toml).unwrap();
    Config::load(Some(&path), &|_| None, &[]).unwrap()
}

/// Reads the runs table under FINAL, JSON columns as strings.
pub async fn read_final(env: &TestEnv) -> Vec<RunRow> {
    env.ch_client()
        .query("SELECT ?fields FROM task_runs_v2 FINAL ORDER BY run_id")
        .with_setting("output_format_binary_write_json_as_string", "1")
        .with_setting("output_format_json_quote_64bit_integers", "0")
        .fetch_all::<RunRow>()
        .await
        .expect("read task_runs_v2")
}

#[tokio::test]
async fn round_trip_through_the_workers_client() {
    let env = TestEnv::new("ch_front").await;
    let config = config_for(&env);
    let client = client::build(&config).expect("client");

    let mut insert = client.insert::<RunRow>("task_runs_v2").await.unwrap();
    for (k, v) in INSERT_SETTINGS {
        insert = insert.with_setting(*k, *v);
    }
    let mut expected = Vec::new();
    for i in 0..50 {
        let row = sample_run(i, 10, false);
        insert.write(&row).await.unwrap();
        expected.push(row);
    }
    insert.end().await.unwrap();

    // A newer version of run 7 and a tombstone for run 9, in a second insert.
    let mut insert = client.insert::<RunRow>("task_runs_v2").await.unwrap();
    for (k, v) in INSERT_SETTINGS {
        insert = insert.with_setting(*k, *v);
    }
    let mut newer = sample_run(7, 11, false);
    newer.status = "CRASHED".into();
    insert.write(&newer).await.unwrap();
    insert.write(&sample_run(9, 11, true)).await.unwrap();
    insert.end().await.unwrap();
    expected[7] = newer;
    expected.remove(9);

    let rows = read_final(&env).await;
    assert_eq!(rows.len(), 49, "the tombstoned run is hidden under FINAL");
    for (got, want) in rows.iter().zip(&expected) {
        let mut want = want.clone();
        // ClickHouse stores {"data":null} as an empty object.
        want.error = "{}".into();
        assert_run_eq(got, &want);
    }
    assert!(
        rows[0]
            .output
            .contains(r#""at":"2024-01-02T03:04:05.000Z""#),
        "date-like strings in JSON survive unchanged: {}",
        rows[0].output
    );
}

/// Compares two rows column by column; JSON columns as JSON values (ClickHouse re-renders them
/// with sorted keys).
pub fn assert_run_eq(got: &RunRow, want: &RunRow) {
    let json = |s: &str| {
        serde_json::from_str::<serde_json::Value>(s).unwrap_or_else(|e| panic!("{e}: {s}"))
    };
    assert_eq!(
        json(&got.output),
        json(&want.output),
        "output of {}",
        want.run_id
    );
    assert_eq!(
        json(&got.error),
        json(&want.error),
        "error of {}",
        want.run_id
    );
    let mut got = got.clone();
    got.output = want.output.clone();
    got.error = want.error.clone();
    assert_eq!(&got, want);
}
