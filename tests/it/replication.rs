//! The data path end to end: changes to "TaskRun" and task_run_v2 in a real Postgres arrive in
//! the real ClickHouse engine through the worker binary, checked column by column under FINAL.

use std::time::Duration;

use runs_replicator::rows::{PayloadRow, RunRow};
use runs_replicator::testing::wait::wait_for;

use crate::support::expect::{actual_rows, assert_converges};
use crate::support::runs::{insert, insert_many_sql, insert_sql, lit};
use crate::support::{TestEnv, Worker, process};

const CONVERGE: Duration = Duration::from_secs(30);

/// Starts the worker for `env` and waits until it streams (a bootstrap copy comes first, and a
/// loaded test machine makes every start-up step slow: the bound is generous, the wait is not).
pub async fn start_worker(env: &TestEnv, overrides: &str) -> Worker {
    let port = process::free_port();
    let config = env.write_config(port, overrides);
    let mut worker = Worker::start(&config, port, &[]);
    worker.wait_ready(Duration::from_secs(90)).await;
    worker
}

async fn run_final(env: &TestEnv, id: &str) -> Option<RunRow> {
    actual_rows(env).await.remove(id)
}

async fn wait_run(env: &TestEnv, id: &str, pred: impl Fn(&RunRow) -> bool) -> RunRow {
    wait_for(&format!("run {id} in ClickHouse"), CONVERGE, || async {
        run_final(env, id).await.filter(|r| pred(r))
    })
    .await
}

async fn payloads(env: &TestEnv, id: &str) -> Vec<PayloadRow> {
    env.ch_client()
        .query("SELECT ?fields FROM raw_task_runs_payload_v1 WHERE run_id = ?")
        .bind(id)
        .with_setting("output_format_binary_write_json_as_string", "1")
        .with_setting("output_format_json_quote_64bit_integers", "0")
        .fetch_all::<PayloadRow>()
        .await
        .unwrap()
}

/// The payload rows of a run once there are any: a batch's payloads are inserted after its runs,
/// so a run can be visible a moment before its payload.
async fn landed_payloads(env: &TestEnv, id: &str) -> Vec<PayloadRow> {
    wait_for(&format!("the payload of {id}"), CONVERGE, || async {
        Some(payloads(env, id).await).filter(|p| !p.is_empty())
    })
    .await
}

fn json(s: &str) -> serde_json::Value {
    serde_json::from_str(s).unwrap()
}

/// Every source column set; every one of the 56 ClickHouse columns checked against the rules.
async fn exhaustive(table: &str, id: &str, expected_version_generation: u64) {
    let env = TestEnv::new(&format!("exh_{}", table.trim_matches('"'))).await;
    let mut worker = start_worker(&env, "").await;
    let pg = env.pg_client().await;
    let overrides: Vec<(&str, String)> = vec![
        ("engine", lit("V2")),
        ("status", lit("EXECUTING")),
        ("statusReason", lit("EXTERNAL_DEPLOYMENT_PENDING")),
        ("idempotencyKey", lit("idem-123")),
        (
            "idempotencyKeyOptions",
            lit(r#"{"key": "user-key", "scope": "run"}"#),
        ),
        ("isTest", "true".into()),
        ("payload", lit(r#"{"order": 42, "items": ["a", "b"]}"#)),
        ("payloadType", lit("application/json")),
        ("runtimeEnvironmentId", lit("env_exh")),
        ("environmentType", lit("STAGING")),
        ("projectId", lit("proj_exh")),
        ("organizationId", lit("org_exh")),
        ("queue", lit("task/exhaustive")),
        ("masterQueue", lit("us-east-1:shard-7")),
        ("region", lit("eu-west-1")),
        ("attemptNumber", "3".into()),
        ("createdAt", lit("2026-11-20 10:00:00.123")),
        ("updatedAt", lit("2026-11-20 10:05:00.456")),
        ("runTags", "ARRAY['tag-a', 'tag b', 'tag\"c']".into()),
        ("taskVersion", lit("20261120.1")),
        ("sdkVersion", lit("4.1.0")),
        ("cliVersion", lit("4.1.1")),
        ("startedAt", lit("2026-11-20 10:01:00.001")),
        ("executedAt", lit("2026-11-20 10:01:30.002")),
        ("completedAt", lit("2026-11-20 10:04:59.999")),
        ("machinePreset", lit("large-2x")),
        ("usageDurationMs", "98765".into()),
        ("costInCents", "12.5".into()),
        ("baseCostInCents", "0.25".into()),
        ("concurrencyKey", lit("tenant-9")),
        ("delayUntil", lit("2026-11-20 10:00:30")),
        ("queuedAt", lit("2026-11-20 10:00:01.5")),
        ("ttl", lit("10m")),
        ("expiredAt", lit("2026-11-21 10:00:00.000")),
        ("queueTimestamp", lit("2026-11-20 10:00:02.000")),
        ("scheduleId", lit("sched_1")),
        ("bulkActionGroupIds", "ARRAY['bulk_1', 'bulk_2']".into()),
        ("rootTaskRunId", lit("run_root")),
        ("parentTaskRunId", lit("run_parent")),
        ("batchId", lit("batch_9")),
        ("depth", "2".into()),
        (
            "annotations",
            lit(
                r#"{"triggerSource": "schedule", "triggerAction": "trigger", "rootTriggerSource": "api", "taskKind": "AGENT", "externalDeploymentId": "dep_42"}"#,
            ),
        ),
        ("isWarmStart", "false".into()),
        (
            "output",
            lit(r#"{"result": "done", "count": 7, "when": "2024-01-02T03:04:05.000Z"}"#),
        ),
        ("outputType", lit("application/json")),
        (
            "error",
            lit(r#"{"name": "Ignored", "message": "not a failure status"}"#),
        ),
        ("planType", lit("pro")),
        ("maxDurationInSeconds", "3600".into()),
    ];
    insert(&pg, table, id, &overrides).await;
    let row = wait_run(&env, id, |_| true).await;

    let ms = |s: &str| {
        let t = time::PrimitiveDateTime::parse(
            s,
            time::macros::format_description!(
                "[year]-[month]-[day] [hour]:[minute]:[second].[subsecond]"
            ),
        )
        .unwrap()
        .assume_utc();
        (t.unix_timestamp_nanos() / 1_000_000) as i64
    };
    assert_eq!(row.environment_id, "env_exh");
    assert_eq!(row.organization_id, "org_exh");
    assert_eq!(row.project_id, "proj_exh");
    assert_eq!(row.run_id, id);
    assert_eq!(row.updated_at, ms("2026-11-20 10:05:00.456"));
    assert_eq!(row.created_at, ms("2026-11-20 10:00:00.123"));
    assert_eq!(row.queue_timestamp, Some(ms("2026-11-20 10:00:02.000")));
    assert_eq!(row.status, "EXECUTING");
    assert_eq!(row.environment_type, "STAGING");
    assert_eq!(row.friendly_id, format!("run_{id}"));
    assert_eq!(row.attempt, 3);
    assert_eq!(row.engine, "V2");
    assert_eq!(row.task_identifier, "my-task");
    assert_eq!(row.queue, "task/exhaustive");
    assert_eq!(row.schedule_id, "sched_1");
    assert_eq!(row.batch_id, "batch_9");
    assert_eq!(row.completed_at, Some(ms("2026-11-20 10:04:59.999")));
    assert_eq!(row.started_at, Some(ms("2026-11-20 10:01:00.001")));
    assert_eq!(row.executed_at, Some(ms("2026-11-20 10:01:30.002")));
    assert_eq!(row.delay_until, Some(ms("2026-11-20 10:00:30.000")));
    assert_eq!(row.queued_at, Some(ms("2026-11-20 10:00:01.500")));
    assert_eq!(row.expired_at, Some(ms("2026-11-21 10:00:00.000")));
    assert_eq!(row.usage_duration_ms, 98765);
    assert_eq!(row.cost_in_cents, 12.5);
    assert_eq!(row.base_cost_in_cents, 0.25);
    assert_eq!(
        json(&row.output),
        json(r#"{"data": {"result": "done", "count": 7, "when": "2024-01-02T03:04:05.000Z"}}"#)
    );
    assert_eq!(
        json(&row.error),
        json(r#"{"data": {"name": "Ignored", "message": "not a failure status"}}"#)
    );
    assert_eq!(
        row.error_fingerprint, "",
        "no fingerprint outside the failure statuses"
    );
    assert_eq!(row.tags, ["tag-a", "tag b", "tag\"c"]);
    assert_eq!(row.task_version, "20261120.1");
    assert_eq!(row.sdk_version, "4.1.0");
    assert_eq!(row.cli_version, "4.1.1");
    assert_eq!(row.machine_preset, "large-2x");
    assert_eq!(row.root_run_id, "run_root");
    assert_eq!(row.parent_run_id, "run_parent");
    assert_eq!(row.depth, 2);
    assert_eq!(row.span_id, "span_1");
    assert_eq!(row.trace_id, "trace_1");
    assert_eq!(row.idempotency_key, "idem-123");
    assert_eq!(row.idempotency_key_user, "user-key");
    assert_eq!(row.idempotency_key_scope, "run");
    assert_eq!(row.expiration_ttl, "10m");
    assert_eq!(row.is_test, 1);
    assert_eq!(row._version >> 56, expected_version_generation);
    assert!(
        row._version & ((1 << 56) - 1) > 0,
        "the commit LSN is in the version"
    );
    assert_eq!(row._is_deleted, 0);
    assert_eq!(row.concurrency_key, "tenant-9");
    assert_eq!(row.bulk_action_group_ids, ["bulk_1", "bulk_2"]);
    assert_eq!(row.worker_queue, "us-east-1");
    assert_eq!(row.region, "eu-west-1");
    assert_eq!(row.plan_type, "pro");
    assert_eq!(row.max_duration_in_seconds, Some(3600));
    assert_eq!(row.trigger_source, "schedule");
    assert_eq!(row.root_trigger_source, "api");
    assert_eq!(row.task_kind, "AGENT");
    assert_eq!(row.is_warm_start, Some(0));
    assert_eq!(row.external_deployment_id, "dep_42");

    let p = landed_payloads(&env, id).await;
    assert_eq!(p.len(), 1, "one payload row per INSERT");
    assert_eq!(p[0].created_at, ms("2026-11-20 10:00:00.123"));
    assert_eq!(
        json(&p[0].payload),
        json(r#"{"data": {"order": 42, "items": ["a", "b"]}}"#)
    );
    assert_eq!(worker.terminate().code(), Some(0));
}

#[tokio::test]
async fn every_column_of_a_task_run_insert() {
    exhaustive("\"TaskRun\"", "run_exh_legacy_00000000001", 0).await;
}

#[tokio::test]
async fn every_column_of_a_task_run_v2_insert() {
    exhaustive("task_run_v2", "2bq8aDrQkxTvTwXAhFCJrQEXbtr", 1).await;
}

#[tokio::test]
async fn updates_replace_and_deletes_leave_a_complete_tombstone() {
    let env = TestEnv::new("upd_del").await;
    let _worker = start_worker(&env, "").await;
    let pg = env.pg_client().await;
    for table in ["\"TaskRun\"", "task_run_v2"] {
        let id = format!("run_ud_{}", table.trim_matches('"'));
        insert(&pg, table, &id, &[]).await;
        wait_run(&env, &id, |r| r.status == "PENDING").await;
        pg.batch_execute(&format!(
            "UPDATE {table} SET status = 'COMPLETED_SUCCESSFULLY', \"usageDurationMs\" = 500, \"updatedAt\" = now() WHERE id = '{id}'"
        ))
        .await
        .unwrap();
        let r = wait_run(&env, &id, |r| r.status == "COMPLETED_SUCCESSFULLY").await;
        assert_eq!(r.usage_duration_ms, 500);

        pg.batch_execute(&format!("DELETE FROM {table} WHERE id = '{id}'"))
            .await
            .unwrap();
        wait_for("the run to disappear under FINAL", CONVERGE, || async {
            run_final(&env, &id).await.is_none().then_some(())
        })
        .await;
        // The tombstone itself, seen without FINAL: it carries the run's whole identity.
        let tombstones: Vec<RunRow> = env
            .ch_client()
            .query("SELECT ?fields FROM task_runs_v2 WHERE run_id = ? AND _is_deleted = 1")
            .bind(id.as_str())
            .with_setting("output_format_binary_write_json_as_string", "1")
            .fetch_all()
            .await
            .unwrap();
        assert_eq!(tombstones.len(), 1);
        let t = &tombstones[0];
        assert_eq!(
            (
                t.organization_id.as_str(),
                t.project_id.as_str(),
                t.environment_id.as_str()
            ),
            ("org_1", "proj_1", "env_1")
        );
        assert_eq!(t.status, "COMPLETED_SUCCESSFULLY", "built from the old row");
        assert_eq!(t.created_at, r.created_at);
        assert!(t._version > r._version);
    }
    assert_converges(&env, CONVERGE).await;
}

#[tokio::test]
async fn insert_and_updates_in_one_transaction_give_the_final_state_once() {
    let env = TestEnv::new("one_txn").await;
    let _worker = start_worker(&env, "").await;
    let pg = env.pg_client().await;
    let id = "run_one_txn";
    let mut sql = vec!["BEGIN".to_string(), insert_sql("\"TaskRun\"", id, &[])];
    for (i, status) in [
        "DEQUEUED",
        "EXECUTING",
        "RETRYING_AFTER_FAILURE",
        "EXECUTING",
        "COMPLETED_SUCCESSFULLY",
    ]
    .iter()
    .enumerate()
    {
        sql.push(format!(
            "UPDATE \"TaskRun\" SET status = '{status}', \"attemptNumber\" = {i} WHERE id = '{id}'"
        ));
    }
    sql.push("COMMIT".into());
    pg.batch_execute(&sql.join(";\n")).await.unwrap();
    let r = wait_run(&env, id, |_| true).await;
    assert_eq!(
        (r.status.as_str(), r.attempt),
        ("COMPLETED_SUCCESSFULLY", 4)
    );
    let versions: u64 = env
        .ch_client()
        .query("SELECT count() FROM task_runs_v2 WHERE run_id = ?")
        .bind(id)
        .fetch_one()
        .await
        .unwrap();
    assert_eq!(versions, 1, "the transaction collapses to one row");
    assert_eq!(
        landed_payloads(&env, id).await.len(),
        1,
        "a run inserted in the transaction still gets its payload"
    );
}

#[tokio::test]
async fn one_transaction_touching_both_tables() {
    let env = TestEnv::new("both_tables").await;
    let _worker = start_worker(&env, "").await;
    let pg = env.pg_client().await;
    let sql = [
        "BEGIN".to_string(),
        insert_sql("\"TaskRun\"", "run_legacy_both", &[]),
        insert_sql(
            "task_run_v2",
            "2bq8aDrQkxTvTwXAhFCJrQEXbtA",
            &[("status", lit("EXECUTING"))],
        ),
        "UPDATE \"TaskRun\" SET status = 'CANCELED' WHERE id = 'run_legacy_both'".into(),
        "COMMIT".into(),
    ];
    pg.batch_execute(&sql.join(";\n")).await.unwrap();
    assert_converges(&env, CONVERGE).await;
    let rows = actual_rows(&env).await;
    assert_eq!(rows["run_legacy_both"].status, "CANCELED");
    assert_eq!(rows["2bq8aDrQkxTvTwXAhFCJrQEXbtA"].status, "EXECUTING");
}

#[tokio::test]
async fn a_thousand_runs_in_one_statement_then_updated_in_one_statement() {
    thousand_runs("bulk", "").await;
}

/// The same through uncompressed insert bodies: ~1.5 MB per insert, so several blocks each.
#[tokio::test]
async fn a_thousand_runs_with_uncompressed_inserts() {
    thousand_runs("bulk_plain", "[clickhouse]\ncompression = \"none\"\n").await;
}

async fn thousand_runs(label: &str, overrides: &str) {
    let env = TestEnv::new(label).await;
    let _worker = start_worker(&env, overrides).await;
    let pg = env.pg_client().await;
    let ids: Vec<String> = (0..1000).map(|i| format!("run_bulk_{i:04}")).collect();
    pg.batch_execute(&insert_many_sql("\"TaskRun\"", &ids, &[]))
        .await
        .unwrap();
    assert_converges(&env, CONVERGE).await;
    pg.batch_execute(
        "UPDATE \"TaskRun\" SET status = 'COMPLETED_SUCCESSFULLY', \"updatedAt\" = now()",
    )
    .await
    .unwrap();
    assert_converges(&env, CONVERGE).await;
    let rows = actual_rows(&env).await;
    assert_eq!(rows.len(), 1000);
    assert!(rows.values().all(|r| r.status == "COMPLETED_SUCCESSFULLY"));
}

#[tokio::test]
async fn a_large_output_survives_an_update_that_does_not_touch_it() {
    let env = TestEnv::new("toast").await;
    let _worker = start_worker(&env, "").await;
    let pg = env.pg_client().await;
    // Random-looking text does not compress, so Postgres stores it out of line (TOAST).
    let big: String = (0..1200)
        .map(|i| format!("{:x}", (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)))
        .collect();
    assert!(big.len() > 16_384);
    let output = format!(r#"{{"blob":"{big}"}}"#);
    insert(&pg, "\"TaskRun\"", "run_toast", &[("output", lit(&output))]).await;
    wait_run(&env, "run_toast", |_| true).await;
    pg.batch_execute("UPDATE \"TaskRun\" SET status = 'EXECUTING' WHERE id = 'run_toast'")
        .await
        .unwrap();
    let r = wait_run(&env, "run_toast", |r| r.status == "EXECUTING").await;
    assert_eq!(
        json(&r.output)["data"]["blob"],
        big.as_str(),
        "the unchanged TOASTed output is kept"
    );
    assert_converges(&env, CONVERGE).await;
}

#[tokio::test]
async fn output_shapes_invalid_json_and_failure_fingerprints() {
    let env = TestEnv::new("shapes").await;
    let _worker = start_worker(&env, "").await;
    let pg = env.pg_client().await;
    let superjson = r#"{"json":{"bigint":"1234","date":"2024-01-02T03:04:05.000Z","map":[["foo","bar"]]},"meta":{"values":{"bigint":["bigint"],"date":["Date"],"map":["map"]}}}"#;
    let cases: Vec<(&str, Vec<(&str, String)>)> = vec![
        (
            "run_superjson",
            vec![
                ("output", lit(superjson)),
                ("outputType", lit("application/super+json")),
            ],
        ),
        ("run_scalar", vec![("output", lit("42"))]),
        (
            "run_array",
            vec![("output", lit(r#"[1, "two", {"three": 3}]"#))],
        ),
        (
            "run_invalid",
            vec![
                ("output", lit(r#"{"unterminated": "#)),
                ("status", lit("EXECUTING")),
            ],
        ),
        (
            "run_surrogate",
            vec![("output", lit(r#"{"bad": "\ud800"}"#))],
        ),
        (
            "run_failed",
            vec![
                ("status", lit("COMPLETED_WITH_ERRORS")),
                (
                    "error",
                    lit(
                        r#"{"type": "BUILT_IN_ERROR", "name": "TypeError", "message": "Cannot read properties of undefined (reading 'id')", "stackTrace": "TypeError: x\n    at run (/app/src/trigger/task.ts:12:7)"}"#,
                    ),
                ),
            ],
        ),
    ];
    for (id, overrides) in &cases {
        insert(&pg, "\"TaskRun\"", id, overrides).await;
    }
    assert_converges(&env, CONVERGE).await;
    let rows = actual_rows(&env).await;
    assert_eq!(
        json(&rows["run_superjson"].output),
        json(
            r#"{"data":{"bigint":"1234","date":"2024-01-02T03:04:05.000Z","map":[["foo","bar"]]}}"#
        )
    );
    assert_eq!(json(&rows["run_scalar"].output), json(r#"{"data":42}"#));
    assert_eq!(
        json(&rows["run_array"].output),
        json(r#"{"data":[1,"two",{"three":3}]}"#)
    );
    assert_eq!(rows["run_invalid"].output, "{}");
    assert_eq!(
        rows["run_invalid"].status, "EXECUTING",
        "the rest of the row is intact"
    );
    assert_eq!(rows["run_surrogate"].output, "{}");
    let fp = &rows["run_failed"].error_fingerprint;
    assert_eq!(fp.len(), 16, "failure statuses carry a fingerprint: {fp:?}");
    assert!(fp.chars().all(|c| c.is_ascii_hexdigit()));
    assert_eq!(rows["run_scalar"].error_fingerprint, "");
}

#[tokio::test]
async fn a_run_copied_into_v2_survives_its_legacy_delete() {
    let env = TestEnv::new("generation").await;
    let _worker = start_worker(&env, "").await;
    let pg = env.pg_client().await;
    let id = "run_moved_0000000000000001";
    insert(&pg, "\"TaskRun\"", id, &[("status", lit("PENDING"))]).await;
    wait_run(&env, id, |r| r.status == "PENDING").await;
    insert(&pg, "task_run_v2", id, &[("status", lit("EXECUTING"))]).await;
    wait_run(&env, id, |r| r.status == "EXECUTING").await;
    pg.batch_execute(&format!("DELETE FROM \"TaskRun\" WHERE id = '{id}'"))
        .await
        .unwrap();
    // A later marker transaction proves the delete went through the pipeline.
    insert(&pg, "\"TaskRun\"", "run_marker", &[]).await;
    wait_run(&env, "run_marker", |_| true).await;
    let r = run_final(&env, id)
        .await
        .expect("the v2 copy stays visible");
    assert_eq!(r.status, "EXECUTING");
    assert_eq!(r._version >> 56, 1);
    assert_converges(&env, CONVERGE).await;
}

#[tokio::test]
async fn a_changed_id_tombstones_the_old_run_and_writes_the_new_one() {
    let env = TestEnv::new("pk_change").await;
    let _worker = start_worker(&env, "").await;
    let pg = env.pg_client().await;
    insert(
        &pg,
        "\"TaskRun\"",
        "run_old_id",
        &[("status", lit("EXECUTING"))],
    )
    .await;
    wait_run(&env, "run_old_id", |_| true).await;
    pg.batch_execute("UPDATE \"TaskRun\" SET id = 'run_new_id' WHERE id = 'run_old_id'")
        .await
        .unwrap();
    let new = wait_run(&env, "run_new_id", |_| true).await;
    assert_eq!(new.status, "EXECUTING");
    assert!(
        run_final(&env, "run_old_id").await.is_none(),
        "the old id is gone under FINAL"
    );
    // The same for a change of created_at, which is part of the ClickHouse key.
    pg.batch_execute(
        "UPDATE \"TaskRun\" SET \"createdAt\" = '2026-11-21 00:00:00' WHERE id = 'run_new_id'",
    )
    .await
    .unwrap();
    wait_run(&env, "run_new_id", |r| r.created_at != new.created_at).await;
    assert_converges(&env, CONVERGE).await;
}

#[tokio::test]
async fn a_publication_without_task_run_v2_is_reconciled() {
    let env = TestEnv::new("pub_reconcile").await;
    let pg = env.pg_client().await;
    pg.batch_execute(&format!(
        "CREATE PUBLICATION {} FOR TABLE \"TaskRun\" WITH (publish = 'insert, update')",
        env.publication
    ))
    .await
    .unwrap();
    let worker = start_worker(&env, "").await;
    let log = worker.log_text();
    assert!(
        log.contains("ADD TABLE \"public\".\"task_run_v2\""),
        "{log}"
    );
    assert!(
        log.contains("SET (publish = 'insert, update, delete')"),
        "{log}"
    );
    insert(&pg, "task_run_v2", "2bq8aDrQkxTvTwXAhFCJrQEXbtE", &[]).await;
    insert(&pg, "\"TaskRun\"", "run_reconciled", &[]).await;
    pg.batch_execute("DELETE FROM \"TaskRun\" WHERE id = 'run_reconciled'")
        .await
        .unwrap();
    assert_converges(&env, CONVERGE).await;
}

#[tokio::test]
async fn a_transaction_larger_than_a_batch_is_inserted_in_parts() {
    let env = TestEnv::new("big_txn").await;
    let worker = start_worker(&env, "[batch]\nmax_rows = 50\n").await;
    let pg = env.pg_client().await;
    let ids: Vec<String> = (0..300).map(|i| format!("run_big_{i:03}")).collect();
    let sql = [
        "BEGIN".to_string(),
        insert_many_sql("task_run_v2", &ids, &[]),
        "UPDATE task_run_v2 SET status = 'EXECUTING' WHERE id < 'run_big_050'".into(),
        "UPDATE task_run_v2 SET status = 'COMPLETED_SUCCESSFULLY' WHERE id < 'run_big_010'".into(),
        "DELETE FROM task_run_v2 WHERE id >= 'run_big_290'".into(),
        insert_sql("\"TaskRun\"", "run_big_legacy", &[]),
        "COMMIT".into(),
    ];
    pg.batch_execute(&sql.join(";\n")).await.unwrap();
    assert_converges(&env, CONVERGE).await;
    let rows = actual_rows(&env).await;
    assert_eq!(rows.len(), 291);
    assert_eq!(rows["run_big_005"].status, "COMPLETED_SUCCESSFULLY");
    assert_eq!(rows["run_big_020"].status, "EXECUTING");
    assert!(
        worker
            .log_text()
            .contains("inserting part of a large transaction before its commit"),
        "the transaction was spilled in parts"
    );
    // Each later part has a higher version, and the rows left at the Commit the highest (its
    // end LSN): no earlier state can win under FINAL, whatever order the parts landed in.
    // The LSN part (run_big_legacy is in "TaskRun", generation 0; the others generation 1).
    let v = |id: &str| rows[id]._version & ((1 << 56) - 1);
    assert!(
        v("run_big_100") < v("run_big_020") && v("run_big_020") < v("run_big_005"),
        "part versions increase: {} {} {}",
        v("run_big_100"),
        v("run_big_020"),
        v("run_big_005")
    );
    assert_eq!(
        v("run_big_005"),
        v("run_big_legacy"),
        "both left at the Commit"
    );
    assert!(
        v("run_big_legacy") - v("run_big_100") < 64,
        "inside the commit record"
    );
    println!(
        "checked: versions of one spilled transaction: an early part {:#x}, a later part {:#x}, its rest {:#x}",
        v("run_big_100"),
        v("run_big_020"),
        v("run_big_legacy")
    );
}
