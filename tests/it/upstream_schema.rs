//! trigger.dev's real ClickHouse schema around the runs table: the error views it builds on
//! `task_runs_v2` (`config/clickhouse/005_errors_v1.sql`, `006_error_occurrences_v1.sql`), which
//! every insert of the worker feeds, and its payload table's plain MergeTree engine. Each test
//! prints what it injects and what it checks.

use std::collections::BTreeMap;
use std::time::Duration;

use runs_replicator::rows::RunRow;
use runs_replicator::testing::metrics::{sum as metric_sum, value_with as metric_with};
use runs_replicator::testing::wait::{poll, wait_for};
use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::reliability::{slot_confirmed, wait_ready, wait_unready, wal_insert_lsn};
use crate::replication::start_worker;
use crate::support::expect::{actual_rows, assert_converges};
use crate::support::runs::{insert, insert_many_sql, lit};
use crate::support::{PgCluster, TestEnv};

const CONVERGE: Duration = Duration::from_secs(60);

/// upstream's `calculateErrorFingerprint` (`apps/webapp/app/utils/errorFingerprinting.ts`) for an
/// input whose normalisation the caller wrote out: the first 16 hex digits of
/// `sha256("<type || name || 'Error'>:<normalised message || name || raw>:<normalised stack>")`.
fn fingerprint_of(input: &str) -> String {
    Sha256::digest(input.as_bytes())[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// An error group as upstream's dashboard reads `errors_v1`: the key, the samples, and the
/// aggregate states merged (`ErrorGroupsListQueryResult` in `internal-packages/clickhouse/src/
/// errors.ts`, plus the other states of the table).
#[derive(Debug, clickhouse::Row, Deserialize)]
struct ErrorGroup {
    fingerprint: String,
    task_identifier: String,
    error_type: String,
    error_message: String,
    stack: String,
    first_seen: i64,
    last_seen: i64,
    occurrences: u64,
    versions: u64,
    sample_run_id: String,
    sample_friendly_id: String,
    statuses: (Vec<String>, Vec<u64>),
}

async fn error_groups(env: &TestEnv) -> Vec<ErrorGroup> {
    env.ch_client()
        .query(
            "SELECT error_fingerprint AS fingerprint, task_identifier, \
                    any(error_type) AS error_type, any(error_message) AS error_message, \
                    any(sample_stack_trace) AS stack, \
                    toUnixTimestamp64Milli(min(first_seen)) AS first_seen, \
                    toUnixTimestamp64Milli(max(last_seen)) AS last_seen, \
                    toUInt64(sumMerge(occurrence_count)) AS occurrences, \
                    toUInt64(uniqMerge(affected_task_versions)) AS versions, \
                    anyMerge(sample_run_id) AS sample_run_id, \
                    anyMerge(sample_friendly_id) AS sample_friendly_id, \
                    sumMapMerge(status_distribution) AS statuses \
             FROM errors_v1 \
             WHERE organization_id = 'org_1' AND project_id = 'proj_1' AND environment_id = 'env_1' \
             GROUP BY error_fingerprint, task_identifier \
             ORDER BY error_fingerprint",
        )
        .fetch_all()
        .await
        .unwrap()
}

/// `sum(count)` of `error_occurrences_v1` per fingerprint, for minutes at or after `since_ms`.
async fn occurrences_since(env: &TestEnv, since_ms: i64) -> Vec<(String, u64)> {
    env.ch_client()
        .query(
            "SELECT error_fingerprint, toUInt64(sum(count)) FROM error_occurrences_v1 \
             WHERE minute >= toDateTime(intDiv(?, 1000)) \
             GROUP BY error_fingerprint ORDER BY error_fingerprint",
        )
        .bind(since_ms)
        .fetch_all()
        .await
        .unwrap()
}

/// The end LSN of the last transaction of `rows`: the low 56 bits of a `_version`.
fn last_commit_end(rows: &BTreeMap<String, RunRow>) -> u64 {
    rows.values()
        .map(|r| r._version & ((1 << 56) - 1))
        .max()
        .unwrap_or(0)
}

/// `createdAt` of each run, as epoch milliseconds (what the worker writes to `created_at`).
async fn created_at_ms(pg: &tokio_postgres::Client, table: &str, ids: &[&str]) -> Vec<i64> {
    let mut out = Vec::new();
    for id in ids {
        let row = pg
            .query_one(
                &format!(
                    "SELECT (extract(epoch FROM \"createdAt\") * 1000)::int8 FROM {table} WHERE id = $1"
                ),
                &[id],
            )
            .await
            .unwrap();
        out.push(row.get(0));
    }
    out
}

#[tokio::test]
async fn failed_runs_reach_errors_v1_grouped_by_upstreams_fingerprint() {
    let env = TestEnv::new("errors_v1").await;
    let _worker = start_worker(&env, "").await;
    let pg = env.pg_client().await;

    // trigger.dev's stored errors (TaskRunError): a built-in error twice, with a different
    // order number and run id in its message; a messageless tagged error; a non-Error throw;
    // an internal error with a code.
    let type_error = |order: &str, run: &str| {
        format!(
            r#"{{"type": "BUILT_IN_ERROR", "name": "TypeError", "message": "Cannot read properties of undefined (reading 'sku') for order {order} in {run}", "stackTrace": "TypeError: Cannot read properties of undefined (reading 'sku')\n    at fulfil (/app/src/trigger/orders.ts:42:17)\n    at run (/app/src/trigger/orders.ts:12:5)"}}"#
        )
    };
    let messageless = r#"{"type": "BUILT_IN_ERROR", "name": "OrderNotFoundError", "message": "", "stackTrace": "OrderNotFoundError\n    at run (/app/src/trigger/orders.ts:20:11)"}"#;
    let thrown_string = r#"{"type": "STRING_ERROR", "raw": "payment provider said no"}"#;
    let internal = r#"{"type": "INTERNAL_ERROR", "code": "TASK_PROCESS_OOM_KILLED", "message": "Task ran out of memory"}"#;
    let run = |status: &str, error: &str, version: &str, hours_ago: u32| {
        vec![
            ("status", lit(status)),
            ("error", lit(error)),
            ("taskVersion", lit(version)),
            (
                "createdAt",
                format!("now() - interval '{hours_ago} hours 17 minutes'"),
            ),
        ]
    };

    // A run that fails after it started: inserted EXECUTING, then updated with its error.
    insert(
        &pg,
        "\"TaskRun\"",
        "run_err_a",
        &[
            ("status", lit("EXECUTING")),
            ("taskVersion", lit("20261130.1")),
            ("createdAt", "now() - interval '5 hours 17 minutes'".into()),
        ],
    )
    .await;
    pg.batch_execute(&format!(
        "UPDATE \"TaskRun\" SET status = 'SYSTEM_FAILURE', error = {} WHERE id = 'run_err_a'",
        lit(&type_error("48213", "run_cm9q2k7x0001"))
    ))
    .await
    .unwrap();
    let b_error = type_error("77120", "run_cm9q2k7x0002");
    insert(
        &pg,
        "task_run_v2",
        "run_err_b",
        &run("COMPLETED_WITH_ERRORS", &b_error, "20261130.2", 1),
    )
    .await;
    insert(
        &pg,
        "task_run_v2",
        "run_err_c",
        &run("CRASHED", messageless, "20261130.2", 2),
    )
    .await;
    insert(
        &pg,
        "\"TaskRun\"",
        "run_err_d",
        &run("INTERRUPTED", thrown_string, "20261130.2", 3),
    )
    .await;
    insert(
        &pg,
        "task_run_v2",
        "run_err_e",
        &run("TIMED_OUT", internal, "20261130.2", 4),
    )
    .await;
    // Not failures: a successful run that carries an error, an expired one.
    insert(
        &pg,
        "task_run_v2",
        "run_ok",
        &run("COMPLETED_SUCCESSFULLY", &b_error, "20261130.2", 1),
    )
    .await;
    insert(
        &pg,
        "\"TaskRun\"",
        "run_expired",
        &run("EXPIRED", thrown_string, "20261130.2", 1),
    )
    .await;
    println!(
        "injected: 5 failed runs (SYSTEM_FAILURE via an update, COMPLETED_WITH_ERRORS, CRASHED, \
         INTERRUPTED, TIMED_OUT) with trigger.dev's error shapes, one COMPLETED_SUCCESSFULLY run \
         with an error and one EXPIRED run"
    );
    assert_converges(&env, CONVERGE).await;

    // Fingerprints computed here from upstream's algorithm, each normalisation written out: the
    // order number (4+ digits) becomes <id>, the run id <run-id>; `stack || stacktrace` is
    // empty (trigger.dev stores the trace as `stackTrace`); a messageless error uses its name, a
    // non-Error throw its raw value. The literals are what upstream's own function returns for
    // these errors (run under Node.js from trigger.dev commit b082e443).
    let expected = [
        (
            "BUILT_IN_ERROR:Cannot read properties of undefined (reading 'sku') for order <id> in <run-id>:",
            "066f627d42e10e93",
        ),
        ("BUILT_IN_ERROR:OrderNotFoundError:", "0318bdc1530047b1"),
        ("STRING_ERROR:payment provider said no:", "c20069e693e4dd2e"),
        ("INTERNAL_ERROR:Task ran out of memory:", "53d7beedf3fc058b"),
    ];
    for (input, literal) in expected {
        assert_eq!(fingerprint_of(input), literal, "sha256 of {input:?}");
    }
    let [type_fp, messageless_fp, string_fp, internal_fp] = expected.map(|(_, fp)| fp);

    let rows = actual_rows(&env).await;
    for (id, fp) in [
        ("run_err_a", type_fp),
        ("run_err_b", type_fp),
        ("run_err_c", messageless_fp),
        ("run_err_d", string_fp),
        ("run_err_e", internal_fp),
        ("run_ok", ""),
        ("run_expired", ""),
    ] {
        assert_eq!(rows[id].error_fingerprint, fp, "task_runs_v2 {id}");
    }

    let groups = wait_for("four error groups in errors_v1", CONVERGE, || async {
        Some(error_groups(&env).await).filter(|g| g.len() >= 4)
    })
    .await;
    for g in &groups {
        println!(
            "checked: errors_v1 {} {:?} {:?} x{} first {} last {} statuses {:?} sample {}",
            g.fingerprint,
            g.error_type,
            g.error_message,
            g.occurrences,
            g.first_seen,
            g.last_seen,
            g.statuses,
            g.sample_run_id
        );
    }
    let fingerprints: Vec<&str> = groups.iter().map(|g| g.fingerprint.as_str()).collect();
    let mut want = vec![type_fp, messageless_fp, string_fp, internal_fp];
    want.sort();
    assert_eq!(
        fingerprints, want,
        "one group per fingerprint; the successful and the expired run are in none"
    );
    let group = |fp: &str| groups.iter().find(|g| g.fingerprint == fp).unwrap();

    let a = created_at_ms(&pg, "\"TaskRun\"", &["run_err_a"]).await[0];
    let b = created_at_ms(&pg, "task_run_v2", &["run_err_b"]).await[0];
    let g = group(type_fp);
    assert_eq!(g.task_identifier, "my-task");
    assert_eq!(g.occurrences, 2, "the EXECUTING insert does not count");
    assert_eq!((g.first_seen, g.last_seen), (a, b), "first and last seen");
    assert_eq!(g.versions, 2, "affected task versions");
    assert_eq!(g.error_type, "TypeError");
    assert!(
        g.error_message
            .starts_with("Cannot read properties of undefined (reading 'sku') for order "),
        "{}",
        g.error_message
    );
    assert!(
        g.stack.starts_with("TypeError: Cannot read properties")
            && g.stack.contains("\n    at fulfil ("),
        "the stack sample is error.data.stackTrace: {:?}",
        g.stack
    );
    assert!(["run_err_a", "run_err_b"].contains(&g.sample_run_id.as_str()));
    assert_eq!(g.sample_friendly_id, format!("run_{}", g.sample_run_id));
    assert_eq!(
        g.statuses,
        (
            vec!["COMPLETED_WITH_ERRORS".to_string(), "SYSTEM_FAILURE".into()],
            vec![1, 1]
        )
    );

    let g = group(messageless_fp);
    assert_eq!(
        (g.error_type.as_str(), g.error_message.as_str()),
        ("OrderNotFoundError", "OrderNotFoundError"),
        "a messageless error is titled by its name (035)"
    );
    assert!(g.stack.starts_with("OrderNotFoundError\n    at run"));
    assert_eq!(g.occurrences, 1);
    assert_eq!(g.statuses, (vec!["CRASHED".to_string()], vec![1]));

    let g = group(string_fp);
    assert_eq!(
        (g.error_type.as_str(), g.error_message.as_str()),
        ("Error", "payment provider said no"),
        "a non-Error throw: no name or code, titled by its raw value (035)"
    );
    assert_eq!(g.stack, "");
    assert_eq!(g.statuses, (vec!["INTERRUPTED".to_string()], vec![1]));

    let g = group(internal_fp);
    assert_eq!(
        (g.error_type.as_str(), g.error_message.as_str()),
        ("TASK_PROCESS_OOM_KILLED", "Task ran out of memory"),
        "an internal error is typed by its code (035)"
    );
    assert_eq!(g.statuses, (vec!["TIMED_OUT".to_string()], vec![1]));

    let occurrences = occurrences_since(&env, 0).await;
    let mut want: Vec<(String, u64)> = [
        (type_fp, 2),
        (messageless_fp, 1),
        (string_fp, 1),
        (internal_fp, 1),
    ]
    .map(|(f, n)| (f.to_string(), n))
    .to_vec();
    want.sort();
    assert_eq!(occurrences, want, "error_occurrences_v1 per fingerprint");
    println!(
        "checked: 4 groups with upstream's fingerprints, counts, first/last seen, statuses and \
         035's titles; error_occurrences_v1 counts 5 failed runs; the successful and the expired \
         run appear in neither"
    );
}

#[tokio::test]
async fn failed_runs_created_over_more_than_100_days_count_once_in_the_error_views() {
    let env = TestEnv::new("errors_days").await;
    let worker = start_worker(&env, "").await;
    let pg = env.pg_client().await;
    // One transaction, one batch, one insert: 150 runs that failed with the same error, created
    // on 150 different days (a bulk timeout of old runs, or a backfill of history). task_runs_v2
    // partitions by month (6 partitions here), error_occurrences_v1 by day (150): more than
    // ClickHouse's default max_partitions_per_insert_block (100).
    let ids: Vec<String> = (0..150).map(|i| format!("run_days_{i:03}")).collect();
    let mut sql = vec!["BEGIN".to_string()];
    for (i, id) in ids.iter().enumerate() {
        sql.push(insert_many_sql(
            "task_run_v2",
            std::slice::from_ref(id),
            &[
                ("status", lit("TIMED_OUT")),
                (
                    "error",
                    lit(r#"{"type": "INTERNAL_ERROR", "code": "MAX_DURATION_EXCEEDED", "message": "Run exceeded maximum compute time (maxDuration) of 300 seconds"}"#),
                ),
                ("createdAt", format!("now() - interval '{i} days 1 hour'")),
            ],
        ));
    }
    sql.push("COMMIT".into());
    pg.batch_execute(&sql.join(";\n")).await.unwrap();
    println!("injected: 150 TIMED_OUT runs created on 150 different days, in one transaction");
    let commit_end = wait_for("the 150 runs in task_runs_v2", CONVERGE, || async {
        let rows = actual_rows(&env).await;
        (rows.len() == 150).then(|| last_commit_end(&rows))
    })
    .await;

    // Acknowledged only once ClickHouse took the insert as a whole, views included.
    let confirmed = poll(CONVERGE, Duration::from_millis(200), || async {
        let slot = slot_confirmed(&env).await.unwrap_or(0);
        let counted: u64 = error_groups(&env).await.iter().map(|g| g.occurrences).sum();
        if slot >= commit_end {
            Ok(slot)
        } else {
            Err((slot, counted))
        }
    })
    .await
    .unwrap_or_else(|(slot, counted)| {
        panic!(
            "the slot stayed at {slot:X}, before the commit's end {commit_end:X}; errors_v1 counts \
             {counted} occurrences for 150 runs; worker log:\n{}",
            worker.log_text()
        )
    });
    println!("checked: the slot confirmed {confirmed:X}, past the transaction");
    assert_converges(&env, CONVERGE).await;

    let groups = error_groups(&env).await;
    assert_eq!(groups.len(), 1, "{groups:?}");
    let g = &groups[0];
    let created = created_at_ms(
        &pg,
        "task_run_v2",
        &ids.iter().map(String::as_str).collect::<Vec<_>>(),
    )
    .await;
    assert_eq!(g.occurrences, 150, "each failed run counted once");
    assert_eq!(
        (g.first_seen, g.last_seen),
        (
            *created.iter().min().unwrap(),
            *created.iter().max().unwrap()
        )
    );
    assert_eq!(g.statuses, (vec!["TIMED_OUT".to_string()], vec![150]));
    // Minutes older than the table's 90-day TTL may be dropped; the last 80 days are all there.
    let since = *created.iter().max().unwrap() - 80 * 86_400_000 + 3_600_000;
    let recent = created.iter().filter(|&&c| c >= since).count() as u64;
    assert_eq!(
        occurrences_since(&env, since).await,
        vec![(g.fingerprint.clone(), recent)],
        "error_occurrences_v1 for the last 80 days"
    );
    println!(
        "checked: errors_v1 counts the 150 runs once (first and last seen span 149 days); \
         error_occurrences_v1 holds the {recent} of the last 80 days"
    );
}

#[tokio::test]
async fn a_broken_error_view_holds_the_failed_runs_until_it_is_fixed() {
    let env = TestEnv::new("errors_broken").await;
    let worker = start_worker(&env, "[batch]\nmax_rows = 50\nflush_interval_ms = 200\n").await;
    let pg = env.pg_client().await;
    // A run that did not fail, stored first: the sink's canary, which the error views skip.
    insert(
        &pg,
        "\"TaskRun\"",
        "run_v_ok",
        &[("status", lit("COMPLETED_SUCCESSFULLY"))],
    )
    .await;
    assert_converges(&env, CONVERGE).await;

    // A CHECK a DBA added to errors_v1: errors_mv_v1 now fails on every failed run, so every
    // insert into task_runs_v2 holding one is refused (code 469, "while pushing to view").
    env.ch_client()
        .query(
            "ALTER TABLE errors_v1 ADD CONSTRAINT short_titles CHECK length(error_message) <= 10",
        )
        .execute()
        .await
        .unwrap();
    let error = r#"{"type": "BUILT_IN_ERROR", "name": "Error", "message": "Upstream API answered 502 Bad Gateway"}"#;
    let ids: Vec<String> = (0..2).map(|i| format!("run_v_failed_{i}")).collect();
    let others: Vec<String> = (0..5).map(|i| format!("run_v_fine_{i}")).collect();
    pg.batch_execute(&format!(
        "BEGIN; {}; {}; COMMIT",
        insert_many_sql(
            "task_run_v2",
            &ids,
            &[("status", lit("SYSTEM_FAILURE")), ("error", lit(error))]
        ),
        insert_many_sql("task_run_v2", &others, &[])
    ))
    .await
    .unwrap();
    // At or past the end of the refused transaction's commit record.
    let after_refused = wal_insert_lsn(&env).await;
    insert(&pg, "\"TaskRun\"", "run_v_later", &[]).await;
    println!(
        "injected: a CHECK on errors_v1 that every failed run's row breaks; one transaction of 2 \
         failed and 5 other runs, then one more run"
    );

    let body = wait_unready(&worker, "errors_mv_v1", Duration::from_secs(30)).await;
    println!("checked: /readyz says why: {}", body.trim());
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (_, metrics) = worker.get("/metrics").unwrap();
    assert_eq!(
        metric_sum(&metrics, "runs_replicator_rows_rejected_total"),
        0.0,
        "no failed run is given up as a poison row"
    );
    assert_eq!(
        metric_with(
            &metrics,
            "runs_replicator_clickhouse_refusing",
            &[("table", "task_runs_v2")]
        ),
        Some(1.0),
        "the refusal gauge is up"
    );
    let confirmed = slot_confirmed(&env).await.unwrap_or(0);
    assert!(
        confirmed < after_refused,
        "nothing past the refused rows is acknowledged: slot at {confirmed:X}, the refused \
         commit ends by {after_refused:X}"
    );
    println!("checked: nothing rejected, the refusal gauge up, the slot held at {confirmed:X}");

    env.ch_client()
        .query("ALTER TABLE errors_v1 DROP CONSTRAINT short_titles")
        .execute()
        .await
        .unwrap();
    println!("injected: the CHECK is dropped");
    wait_ready(&worker, CONVERGE).await;
    assert_converges(&env, CONVERGE).await;
    let groups = wait_for("the failed runs' group in errors_v1", CONVERGE, || async {
        Some(error_groups(&env).await).filter(|g| !g.is_empty())
    })
    .await;
    assert_eq!(groups.len(), 1, "{groups:?}");
    assert_eq!(
        groups[0].statuses,
        (vec!["SYSTEM_FAILURE".to_string()], vec![2]),
        "both failed runs counted, once: errors_v1 refused every earlier attempt"
    );
    let (_, metrics) = worker.get("/metrics").unwrap();
    assert_eq!(
        metric_sum(&metrics, "runs_replicator_rows_rejected_total"),
        0.0
    );
    println!(
        "checked: all 9 runs in task_runs_v2 and both failed runs in errors_v1 once the view \
         takes them; none dropped"
    );
}

/// Replaces the shipped payload table (a ReplacingMergeTree) with upstream's: a plain MergeTree
/// (`internal-packages/clickhouse/schema/003_create_task_runs_v1.sql`), which keeps every copy.
async fn use_upstreams_payload_table(env: &TestEnv) {
    let ch = env.ch_client();
    for sql in [
        "DROP TABLE raw_task_runs_payload_v1",
        "CREATE TABLE raw_task_runs_payload_v1 \
         (run_id String, created_at DateTime64(3), payload JSON(max_dynamic_paths = 1024)) \
         ENGINE = MergeTree PARTITION BY toYYYYMM(created_at) ORDER BY (run_id) \
         SETTINGS enable_json_type = 1",
    ] {
        ch.query(sql).execute().await.unwrap();
    }
}

async fn payload_rows(env: &TestEnv) -> (u64, u64) {
    env.ch_client()
        .query("SELECT count(), uniqExact(run_id) FROM raw_task_runs_payload_v1")
        .fetch_one()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_replay_writes_each_payload_once_on_upstreams_plain_merge_tree() {
    // A cluster of its own whose walsender never asks for feedback (wal_sender_timeout = 0), and a
    // worker that reports its position only every 60 s: the runs and payloads it stores stay
    // unacknowledged until it is killed, so its restart is sent all of them again.
    let cluster: &'static PgCluster =
        Box::leak(Box::new(PgCluster::start(&[("wal_sender_timeout", "0")])));
    let mut env = TestEnv::new("payload_once").await;
    env.pg = cluster;
    env.pg_db = cluster.create_database("payload_once").await;
    use_upstreams_payload_table(&env).await;
    let engine: String = env
        .ch_client()
        .query("SELECT engine FROM system.tables WHERE database = currentDatabase() AND name = 'raw_task_runs_payload_v1'")
        .fetch_one()
        .await
        .unwrap();
    println!("injected: the payload table is upstream's: engine {engine}");

    let slow_ack = "[postgres]\nstatus_interval_ms = 60000\n";
    let mut worker = start_worker(&env, slow_ack).await;
    let pg = env.pg_client().await;
    let start = slot_confirmed(&env).await.unwrap();
    for t in 0..10 {
        let table = if t % 2 == 0 {
            "\"TaskRun\""
        } else {
            "task_run_v2"
        };
        let ids: Vec<String> = (0..5).map(|i| format!("run_p_{t}_{i}")).collect();
        pg.batch_execute(&format!(
            "BEGIN; {}; UPDATE {table} SET status = 'EXECUTING' WHERE id = '{}'; COMMIT",
            insert_many_sql(table, &ids, &[]),
            ids[0]
        ))
        .await
        .unwrap();
    }
    let (stored, last_end) = wait_for("50 runs and their payloads stored", CONVERGE, || async {
        let (payloads, _) = payload_rows(&env).await;
        let rows = actual_rows(&env).await;
        (rows.len() == 50 && payloads >= 50).then(|| (payloads, last_commit_end(&rows)))
    })
    .await;
    let before_kill = slot_confirmed(&env).await.unwrap();
    println!(
        "stored: 50 runs, {stored} payload rows; the slot still confirms {before_kill:X} \
         (it was at {start:X}; the last transaction ends at {last_end:X})"
    );
    assert!(
        before_kill < last_end,
        "nothing stored is acknowledged yet, so the restart replays it"
    );

    worker.kill9();
    println!("injected: SIGKILL; the restarted worker is sent the 10 transactions again");
    let mut worker = start_worker(&env, "").await;
    wait_for("the replay acknowledged", CONVERGE, || async {
        (slot_confirmed(&env).await? >= last_end).then_some(())
    })
    .await;
    assert_converges(&env, CONVERGE).await;
    assert_eq!(worker.terminate().code(), Some(0), "{}", worker.log_text());
    let (rows, runs) = payload_rows(&env).await;
    println!("checked: {rows} payload rows for {runs} runs, without FINAL");
    assert_eq!(
        (rows, runs),
        (50, 50),
        "exactly one payload row per run on a plain MergeTree"
    );
    assert!(
        worker
            .log_text()
            .contains("payload rows of runs the table already holds"),
        "the replay was seen and its payloads skipped"
    );
}

#[tokio::test]
async fn three_bad_runs_in_a_batch_of_100_are_rejected_and_the_failed_runs_count_once() {
    let env = TestEnv::new("errors_three_bad").await;
    // Three runs ClickHouse refuses whatever their JSON fields hold.
    env.ch_client()
        .query(
            "ALTER TABLE task_runs_v2 ADD CONSTRAINT not_these CHECK \
             run_id NOT IN ('run_tb_007', 'run_tb_050', 'run_tb_093')",
        )
        .execute()
        .await
        .unwrap();
    let worker = start_worker(&env, "[batch]\nmax_rows = 1000\nflush_interval_ms = 300\n").await;
    let pg = env.pg_client().await;
    // One transaction, one batch: 100 runs, every third one failed (the error views count those).
    let mut sql = vec!["BEGIN".to_string()];
    let mut failed = 0u64;
    for i in 0..100 {
        let id = format!("run_tb_{i:03}");
        let bad = [7, 50, 93].contains(&i);
        let fails = i % 3 == 0;
        if fails && !bad {
            failed += 1;
        }
        let overrides = if fails {
            vec![
                ("status", lit("TIMED_OUT")),
                (
                    "error",
                    lit(
                        r#"{"type": "INTERNAL_ERROR", "code": "MAX_DURATION_EXCEEDED", "message": "Run exceeded maximum compute time (maxDuration) of 300 seconds"}"#,
                    ),
                ),
            ]
        } else {
            Vec::new()
        };
        sql.push(insert_many_sql("task_run_v2", &[id], &overrides));
    }
    sql.push("COMMIT".into());
    pg.batch_execute(&sql.join(";\n")).await.unwrap();
    let commit_end = wal_insert_lsn(&env).await;
    println!(
        "injected: 3 runs ClickHouse refuses in one transaction of 100 ({failed} good failed runs)"
    );

    let confirmed = poll(CONVERGE, Duration::from_millis(200), || async {
        let slot = slot_confirmed(&env).await.unwrap_or(0);
        if slot >= commit_end {
            Ok(slot)
        } else {
            let counted: u64 = error_groups(&env).await.iter().map(|g| g.occurrences).sum();
            Err((slot, counted))
        }
    })
    .await
    .unwrap_or_else(|(slot, counted)| {
        panic!(
            "the slot stayed at {slot:X}, before the commit's end {commit_end:X}; errors_v1 counts \
             {counted} occurrences for {failed} failed runs; /readyz: {:?}",
            worker.get("/readyz")
        )
    });
    println!("checked: the slot confirmed {confirmed:X}, past the transaction");
    // Anything a retry would store again has had time to.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let rows = actual_rows(&env).await;
    assert_eq!(rows.len(), 97, "every good run stored");
    for bad in ["run_tb_007", "run_tb_050", "run_tb_093"] {
        assert!(!rows.contains_key(bad), "{bad} is refused");
    }
    let (_, metrics) = worker.get("/metrics").unwrap();
    assert_eq!(
        metric_sum(&metrics, "runs_replicator_rows_rejected_total"),
        3.0,
        "the three bad runs are rejected, logged and counted"
    );
    // Without FINAL: every copy stored counts. The canary (a copy of a stored run that did not
    // fail, inserted before each row is given up) is the only row stored again.
    let (stored, stored_failed): (u64, u64) = env
        .ch_client()
        .query("SELECT count(), countIf(error_fingerprint != '') FROM task_runs_v2")
        .fetch_one()
        .await
        .unwrap();
    let groups = error_groups(&env).await;
    let counted: u64 = groups.iter().map(|g| g.occurrences).sum();
    let occurrences: u64 = occurrences_since(&env, 0).await.iter().map(|o| o.1).sum();
    println!(
        "checked: 97 runs, 3 rejected; {stored} rows stored in task_runs_v2 without FINAL \
         ({stored_failed} of failed runs; the rest includes the canary's copies); errors_v1 counts \
         {counted} and error_occurrences_v1 {occurrences} for {failed} failed runs"
    );
    assert_eq!(counted, failed, "errors_v1 counts each failed run once");
    assert_eq!(occurrences, failed, "error_occurrences_v1 counts each once");
    assert_eq!(stored_failed, failed, "no failed run stored twice");
    assert!(
        stored <= 97 + 3,
        "at most a canary copy per rejected row: {stored}"
    );
}
