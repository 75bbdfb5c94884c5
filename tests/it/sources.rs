//! Several sources and shards in one worker (SPEC §8): trigger.dev's legacy and run-ops
//! databases on two real clusters, and one database split over several slots.

use std::time::Duration;

use runs_replicator::testing::metrics::{sum as metric_sum, value_with as metric_with};

use crate::reliability::{wait_ready, wait_unready};
use crate::replication::start_worker;
use crate::support::expect::{actual_rows, assert_converges};
use crate::support::runs::{insert, insert_many_sql, lit};
use crate::support::{PgCluster, TestEnv};

const CONVERGE: Duration = Duration::from_secs(60);

async fn wal_lsn(pg: &tokio_postgres::Client) -> u64 {
    let v: i64 = pg
        .query_one("SELECT (pg_current_wal_lsn() - '0/0'::pg_lsn)::int8", &[])
        .await
        .unwrap()
        .get(0);
    v as u64
}

/// Moves `pg`'s WAL past `target` (segment switches), so its next commit has the larger LSN.
async fn wal_past(pg: &tokio_postgres::Client, target: u64) {
    while wal_lsn(pg).await <= target + (16 << 20) {
        pg.batch_execute("CREATE TEMP TABLE IF NOT EXISTS w (x int); INSERT INTO w VALUES (1); SELECT pg_switch_wal()")
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn trigger_devs_legacy_and_run_ops_databases_stream_into_one_table() {
    let run_ops: &'static PgCluster = Box::leak(Box::new(PgCluster::start(&[])));
    let mut env = TestEnv::new("split").await;
    env.add_source("new", run_ops, &[("\"TaskRun\"", 1)], &[("\"TaskRun\"", 0)])
        .await;
    let worker = start_worker(&env, "").await;
    let legacy = env.pg_client().await;
    let new = env.sources[0].client().await;

    // The same run, COMPLETED in run-ops, later (larger raw LSN) PENDING in legacy.
    insert(
        &new,
        "\"TaskRun\"",
        "run_both_1",
        &[("status", lit("COMPLETED_SUCCESSFULLY"))],
    )
    .await;
    let new_lsn = wal_lsn(&new).await;
    wal_past(&legacy, new_lsn).await;
    insert(
        &legacy,
        "\"TaskRun\"",
        "run_both_1",
        &[("status", lit("PENDING"))],
    )
    .await;
    // The same, the legacy copy landing first.
    insert(
        &legacy,
        "\"TaskRun\"",
        "run_both_2",
        &[("status", lit("PENDING"))],
    )
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    insert(
        &new,
        "\"TaskRun\"",
        "run_both_2",
        &[("status", lit("COMPLETED_SUCCESSFULLY"))],
    )
    .await;
    // Distinct runs in each source.
    insert(&legacy, "\"TaskRun\"", "run_legacy_only", &[]).await;
    insert(&new, "\"TaskRun\"", "run_new_only", &[]).await;
    println!(
        "injected: run_both_1 and run_both_2 in both databases (run-ops COMPLETED, legacy PENDING, \
         in both orders; the legacy copy with the larger raw LSN), one run only in each"
    );
    assert_converges(&env, CONVERGE).await;
    let rows = actual_rows(&env).await;
    for id in ["run_both_1", "run_both_2"] {
        assert_eq!(
            rows[id].status, "COMPLETED_SUCCESSFULLY",
            "{id}: the run-ops copy wins"
        );
        assert_eq!(rows[id]._version >> 56, 1, "{id}: generation 1");
    }
    assert!(rows.contains_key("run_legacy_only") && rows.contains_key("run_new_only"));
    println!(
        "checked: one row per run under FINAL, the run-ops copy (generation 1) wins both ways"
    );

    let (_, metrics) = worker.get("/metrics").unwrap();
    for source in ["default", "new"] {
        assert!(
            metric_with(
                &metrics,
                "runs_replicator_changes_received_total",
                &[
                    ("source", source),
                    ("table", "TaskRun"),
                    ("operation", "insert")
                ]
            )
            .unwrap_or(0.0)
                >= 2.0,
            "per-source counters with plain table names: {source}"
        );
    }

    // One source down never holds back the other.
    run_ops.kill();
    println!("injected: the run-ops cluster is killed");
    let body = wait_unready(&worker, "new: not streaming", Duration::from_secs(30)).await;
    assert!(body.contains("default: leader, streaming"), "{body}");
    println!(
        "checked: /readyz names the source that is down: {}",
        body.replace('\n', " | ")
    );
    for i in 0..20 {
        insert(&legacy, "\"TaskRun\"", &format!("run_while_down_{i}"), &[]).await;
    }
    crate::support::expect::assert_primary_converges_for(&env, CONVERGE, |id| {
        id.starts_with("run_while_down_")
    })
    .await;
    println!("checked: the legacy source's runs arrived while the run-ops source was down");
    run_ops.restart();
    let new = env.sources[0].client().await;
    insert(&new, "\"TaskRun\"", "run_after_restart", &[]).await;
    wait_ready(&worker, Duration::from_secs(60)).await;
    assert_converges(&env, CONVERGE).await;
    println!("checked: the run-ops source streams again and ClickHouse equals both databases");
}

#[tokio::test]
async fn a_sharded_source_streams_every_change_exactly_once_and_moves_runs_between_shards() {
    let env = TestEnv::new("shards").await;
    let worker = start_worker(&env, "[postgres]\nshards = 3\n").await;
    let pg = env.pg_client().await;
    let slots: i64 = pg
        .query_one(
            "SELECT count(*) FROM pg_replication_slots WHERE slot_name LIKE $1",
            &[&format!("{}\\_%", env.slot)],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(slots, 3, "a slot per shard");
    let ids: Vec<String> = (0..300).map(|i| format!("run_s_{i:03}")).collect();
    pg.batch_execute(&insert_many_sql("\"TaskRun\"", &ids[..150], &[]))
        .await
        .unwrap();
    pg.batch_execute(&insert_many_sql("task_run_v2", &ids[150..], &[]))
        .await
        .unwrap();
    pg.batch_execute(
        "UPDATE \"TaskRun\" SET status = 'EXECUTING', \"updatedAt\" = now() WHERE id < 'run_s_100'; \
         UPDATE task_run_v2 SET status = 'COMPLETED_SUCCESSFULLY' WHERE id >= 'run_s_250'",
    )
    .await
    .unwrap();
    // A run whose id changes moves to another shard (its old shard sees a DELETE, the new one
    // an INSERT).
    pg.batch_execute(
        "UPDATE \"TaskRun\" SET id = 'moved_' || id WHERE id IN ('run_s_010', 'run_s_011', 'run_s_012', 'run_s_013'); \
         DELETE FROM task_run_v2 WHERE id IN ('run_s_200', 'run_s_201')",
    )
    .await
    .unwrap();
    println!(
        "injected: 300 inserts, 150 updates, 4 runs renamed (moving between shards), 2 deletes over 3 shards"
    );
    assert_converges(&env, CONVERGE).await;
    let (_, metrics) = worker.get("/metrics").unwrap();
    let inserts = metric_sum(
        &metrics
            .lines()
            .filter(|l| l.contains("operation=\"insert\""))
            .collect::<Vec<_>>()
            .join("\n"),
        "runs_replicator_changes_received_total",
    );
    // Each insert arrives through exactly one shard; a moved run adds an INSERT on its new
    // shard when the filter moves it (a DELETE on the old one), or an UPDATE when it stays.
    assert!(
        (300.0..=304.0).contains(&inserts),
        "every run arrives once: {inserts} inserts over the shards"
    );
    for k in 0..3 {
        let name = format!("default.{k}");
        assert!(
            metric_with(
                &metrics,
                "runs_replicator_changes_received_total",
                &[
                    ("source", name.as_str()),
                    ("table", "TaskRun"),
                    ("operation", "insert")
                ]
            )
            .unwrap_or(0.0)
                > 0.0,
            "shard {k} streams its part"
        );
    }
    println!(
        "checked: {inserts} inserts over 3 shards for 300 runs, each shard streamed some; ClickHouse equals Postgres (moves and deletes included)"
    );
}
