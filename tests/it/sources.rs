//! Several sources and shards in one worker (SPEC §8): trigger.dev's legacy and run-ops
//! databases on two real clusters, and one database split over several slots.

use std::time::{Duration, Instant};

use runs_replicator::testing::metrics::{sum as metric_sum, value_with as metric_with};

use crate::reliability::{wait_ready, wait_unready};
use crate::replication::start_worker;
use crate::support::expect::{actual_rows, assert_converges};
use crate::support::load::write_mixed;
use crate::support::runs::{insert, insert_many_sql, lit};
use crate::support::{PgCluster, TestEnv, Worker, process};

const CONVERGE: Duration = Duration::from_secs(60);

/// How long run `id` takes to appear in ClickHouse (under FINAL), measured from now.
async fn arrival(env: &TestEnv, id: &str) -> Duration {
    let start = Instant::now();
    loop {
        let n: u64 = env
            .ch_client()
            .query("SELECT count() FROM task_runs_v2 FINAL WHERE run_id = ?")
            .bind(id)
            .fetch_one()
            .await
            .unwrap();
        if n > 0 {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < CONVERGE,
            "run {id} did not reach ClickHouse in {CONVERGE:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

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

    // One source down for 30 s never holds back the other.
    run_ops.kill();
    let down = Instant::now();
    println!("injected: the run-ops cluster is killed for 30 s");
    let body = wait_unready(&worker, "new: not streaming", Duration::from_secs(30)).await;
    assert!(body.contains("default: leader, streaming"), "{body}");
    println!(
        "checked: /readyz names the source that is down: {}",
        body.replace('\n', " | ")
    );
    let mut latencies = Vec::new();
    let mut i = 0;
    while down.elapsed() < Duration::from_secs(30) {
        let id = format!("run_while_down_{i}");
        insert(&legacy, "\"TaskRun\"", &id, &[]).await;
        latencies.push(arrival(&env, &id).await);
        i += 1;
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    latencies.sort();
    let worst = *latencies.last().unwrap();
    println!(
        "checked: {} legacy runs written while run-ops was down arrived; latency median {:?}, worst {worst:?}",
        latencies.len(),
        latencies[latencies.len() / 2]
    );
    assert!(
        worst < Duration::from_secs(3),
        "the legacy source keeps its normal latency while run-ops is down: worst {worst:?}"
    );
    crate::support::expect::assert_primary_converges_for(&env, CONVERGE, |id| {
        id.starts_with("run_while_down_")
    })
    .await;
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

#[tokio::test]
async fn a_hard_stopped_source_stops_alone() {
    let mut env = TestEnv::new("stop_one").await;
    let pg = env.pg;
    env.add_source("new", pg, &[("\"TaskRun\"", 1)], &[("\"TaskRun\"", 0)])
        .await;
    let worker = start_worker(&env, "").await;
    let legacy = env.pg_client().await;
    let new = env.sources[0].client().await;
    let big: String = (0..1500)
        .map(|i| format!("{:x}", (i as u64).wrapping_mul(0x2545_F491_4F6C_DD1D)))
        .collect();
    insert(
        &new,
        "\"TaskRun\"",
        "run_new_toasted",
        &[("output", lit(&format!("{{\"blob\":\"{big}\"}}")))],
    )
    .await;
    assert_converges(&env, CONVERGE).await;

    new.batch_execute(
        "ALTER TABLE \"TaskRun\" REPLICA IDENTITY DEFAULT; \
         UPDATE \"TaskRun\" SET status = 'EXECUTING' WHERE id = 'run_new_toasted'",
    )
    .await
    .unwrap();
    println!("injected: REPLICA IDENTITY DEFAULT on the run-ops source, then an update there");
    let body = wait_unready(&worker, "REPLICA IDENTITY DEFAULT", Duration::from_secs(20)).await;
    let line = |name: &str| {
        body.lines()
            .find(|l| l.starts_with(&format!("{name}:")))
            .unwrap_or_default()
            .to_string()
    };
    assert!(line("new").contains("REPLICA IDENTITY DEFAULT"), "{body}");
    assert!(line("default").contains("streaming"), "{body}");
    println!("checked: /readyz: {}", body.replace('\n', " | "));
    let (_, metrics) = worker.get("/metrics").unwrap();
    for (source, stopped) in [("new", Some(1.0)), ("default", None)] {
        assert_eq!(
            metric_with(
                &metrics,
                "runs_replicator_hard_stop",
                &[("source", source), ("reason", "replica_identity")]
            )
            .filter(|v| *v > 0.0),
            stopped,
            "{source}"
        );
    }
    for i in 0..5 {
        let id = format!("run_legacy_during_stop_{i}");
        insert(&legacy, "\"TaskRun\"", &id, &[]).await;
        let took = arrival(&env, &id).await;
        assert!(took < Duration::from_secs(3), "{id} took {took:?}");
    }
    println!("checked: only the run-ops source stopped; the legacy source's runs keep arriving");

    new.batch_execute("ALTER TABLE \"TaskRun\" REPLICA IDENTITY FULL")
        .await
        .unwrap();
    wait_ready(&worker, Duration::from_secs(90)).await;
    assert_converges(&env, CONVERGE).await;
    println!("checked: fixed, the run-ops source resumed and its update was repaired");
}

#[tokio::test]
async fn a_sharded_source_loses_nothing_across_a_crash_loop() {
    let env = TestEnv::new("shard_crash").await;
    let overrides = "[postgres]\nshards = 3\n[batch]\nmax_rows = 500\nflush_interval_ms = 50\n";
    let mut worker = start_worker(&env, overrides).await;
    let url = env.pg.url(&env.pg_db);
    let writer = tokio::spawn(async move { write_mixed(&url, 15_000, 17, 5).await });
    let mut rng = crate::support::load::Rng::new(29);
    for kill in 1..=5 {
        tokio::time::sleep(Duration::from_millis(300 + rng.below(1200))).await;
        worker.kill9();
        println!("injected: SIGKILL #{kill} of the worker streaming 3 shards");
        worker = start_worker(&env, overrides).await;
    }
    let written = writer.await.unwrap();
    println!("writer finished: {written} changes across both tables");
    assert_converges(&env, CONVERGE).await;
    println!("checked: ClickHouse FINAL equals Postgres, column by column, over 3 shards");
    assert_eq!(worker.terminate().code(), Some(0));
}

#[tokio::test]
async fn trigger_dev_environment_alone_runs_both_sources() {
    let run_ops: &'static PgCluster = Box::leak(Box::new(PgCluster::start(&[])));
    let mut env = TestEnv::new("env_only").await;
    env.add_source("new", run_ops, &[("\"TaskRun\"", 1)], &[("\"TaskRun\"", 0)])
        .await;
    let dir = process::temp_dir("env_only");
    let port = process::free_port();
    let legacy_url = env.pg.url(&env.pg_db);
    let new_url = env.sources[0].pg.url(&env.sources[0].db);
    let listen = format!("127.0.0.1:{port}");
    let mut worker = Worker::start_from_env(
        &dir,
        port,
        &[
            ("DATABASE_URL", legacy_url.as_str()),
            ("RUN_REPLICATION_RUN_OPS_DATABASE_URL", new_url.as_str()),
            ("RUN_REPLICATION_CLICKHOUSE_URL", env.ch.url.as_str()),
            ("RUN_REPLICATION_SLOT_NAME", env.slot.as_str()),
            ("RUN_REPLICATION_PUBLICATION_NAME", env.publication.as_str()),
            (
                "RUN_REPLICATION_NEW_SLOT_NAME",
                env.sources[0].slot.as_str(),
            ),
            (
                "RUN_REPLICATION_NEW_PUBLICATION_NAME",
                env.sources[0].publication.as_str(),
            ),
            // Where this test's tables are; trigger.dev's own database is the default.
            ("RUNS_REPLICATOR_CLICKHOUSE_DATABASE", env.ch_db.as_str()),
            ("RUNS_REPLICATOR_METRICS_LISTEN", listen.as_str()),
        ],
    );
    worker.wait_ready(Duration::from_secs(30)).await;
    let body = worker.get("/readyz").unwrap().1;
    assert!(
        body.contains("legacy: leader, streaming") && body.contains("new: leader, streaming"),
        "{body}"
    );
    println!(
        "checked: from the environment alone, two sources: {}",
        body.replace('\n', " | ")
    );
    insert(&env.pg_client().await, "\"TaskRun\"", "run_env_legacy", &[]).await;
    insert(
        &env.sources[0].client().await,
        "\"TaskRun\"",
        "run_env_new",
        &[("status", lit("COMPLETED_SUCCESSFULLY"))],
    )
    .await;
    assert_converges(&env, CONVERGE).await;
    let rows = actual_rows(&env).await;
    assert_eq!(
        rows["run_env_new"]._version >> 56,
        1,
        "run-ops is generation 1"
    );
    assert_eq!(
        rows["run_env_legacy"]._version >> 56,
        0,
        "legacy is generation 0"
    );
    println!("checked: both databases' runs arrived, run-ops as generation 1");
    assert_eq!(worker.terminate().code(), Some(0));
}
