//! Faults injected while replicating, each ending with the same check: ClickHouse under FINAL
//! equals the transform of the current Postgres rows, column by column.

use std::time::{Duration, Instant};

use runs_replicator::leader::roster::MEMBER_SPACE;
use runs_replicator::testing::metrics::{
    sum as metric_sum, value as metric, value_with as metric_with,
};
use runs_replicator::testing::wait::{poll, wait_for};

use crate::replication::start_worker;
use crate::support::expect::{assert_converges, mismatches};
use crate::support::load::write_mixed;
use crate::support::runs::{insert, lit};
use crate::support::{ChServer, PgCluster, TestEnv, Worker, process};

const CONVERGE: Duration = Duration::from_secs(90);

pub(crate) fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
}

pub(crate) async fn readyz(worker: &Worker) -> Option<(u16, String)> {
    worker.get("/readyz")
}

pub(crate) async fn wait_unready(worker: &Worker, needle: &str, timeout: Duration) -> String {
    poll(timeout, Duration::from_millis(100), || async {
        match readyz(worker).await {
            Some((503, body)) if body.contains(needle) => Ok(body),
            answer => Err(answer),
        }
    })
    .await
    .unwrap_or_else(|answer| {
        panic!(
            "/readyz did not fail with {needle:?} in {timeout:?}; last answer {answer:?}; log:\n{}",
            worker.log_text()
        )
    })
}

pub(crate) async fn wait_ready(worker: &Worker, timeout: Duration) {
    wait_for("/readyz to pass", timeout, || async {
        matches!(readyz(worker).await, Some((200, _))).then_some(())
    })
    .await
}

#[tokio::test]
async fn crash_loop_of_five_sigkills_loses_nothing() {
    let env = TestEnv::new("crash_loop").await;
    let overrides = "[batch]\nmax_rows = 500\nflush_interval_ms = 50\n";
    let mut worker = start_worker(&env, overrides).await;
    let url = env.pg.url(&env.pg_db);
    let writer = tokio::spawn(async move { write_mixed(&url, 20_000, 7, 5).await });
    let mut rng = crate::support::load::Rng::new(11);
    for kill in 1..=5 {
        tokio::time::sleep(Duration::from_millis(300 + rng.below(1200))).await;
        worker.kill9();
        println!("injected: SIGKILL #{kill} of the worker");
        worker = start_worker(&env, overrides).await;
    }
    let written = writer.await.unwrap();
    println!("writer finished: {written} changes across both tables");
    assert_converges(&env, CONVERGE).await;
    println!("checked: ClickHouse FINAL equals the transform of Postgres, column by column");
    assert_eq!(worker.terminate().code(), Some(0));
}

#[tokio::test]
async fn clickhouse_outage_backpressure_and_recovery() {
    let ch: &'static ChServer = Box::leak(Box::new(ChServer::start(&[])));
    let mut env = TestEnv::new("ch_outage").await;
    env.ch = ch;
    env.ch_db = ch.create_database("ch_outage").await;
    let overrides = "[batch]\nmax_rows = 500\nmax_inflight = 2\nflush_interval_ms = 100\n";
    let worker = start_worker(&env, overrides).await;
    let pid = worker.child.id();
    let url = env.pg.url(&env.pg_db);
    let writer = tokio::spawn(async move { write_mixed(&url, 15_000, 21, 3).await });
    tokio::time::sleep(Duration::from_secs(2)).await;
    ch.kill();
    let outage_started = Instant::now();
    println!("injected: ClickHouse killed for 30 s during the load");
    let body = wait_unready(&worker, "", Duration::from_secs(20)).await;
    println!("checked: /readyz reports the outage: {}", body.trim());
    let mut peak = 0;
    while outage_started.elapsed() < Duration::from_secs(30) {
        peak = peak.max(rss_kib(pid).unwrap_or(0));
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    ch.restart();
    println!(
        "ClickHouse back after {:?}; worker peak RSS during the outage: {} MiB",
        outage_started.elapsed(),
        peak / 1024
    );
    assert!(
        peak < 200 * 1024,
        "memory stays bounded while ClickHouse is down: {peak} KiB"
    );
    writer.await.unwrap();
    wait_ready(&worker, Duration::from_secs(60)).await;
    assert_converges(&env, CONVERGE).await;
    let (_, metrics) = worker.get("/metrics").unwrap();
    let restarts = metric_sum(&metrics, "runs_replicator_stream_restarts_total");
    println!("checked: everything arrived; stream restarts during the outage: {restarts}");
    assert!(restarts >= 1.0 || metric(&metrics, "runs_replicator_insert_retries_total").is_some());
}

#[tokio::test]
async fn walsender_terminated_and_postgres_restarted_mid_stream() {
    let cluster: &'static PgCluster = Box::leak(Box::new(PgCluster::start(&[])));
    let mut env = TestEnv::new("pg_faults").await;
    env.pg = cluster;
    env.pg_db = cluster.create_database("pg_faults").await;
    let mut worker = start_worker(&env, "").await;
    let url = env.pg.url(&env.pg_db);
    let writer = {
        let url = url.clone();
        tokio::spawn(async move { write_mixed(&url, 6_000, 33, 2).await })
    };
    tokio::time::sleep(Duration::from_millis(800)).await;
    let admin = cluster.connect("postgres").await;
    let n = admin
        .execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_replication WHERE application_name = 'runs-replicator'",
            &[],
        )
        .await
        .unwrap();
    println!("injected: pg_terminate_backend of the walsender ({n} terminated)");
    drop(admin);
    // The writer must finish before Postgres restarts, or its own connection breaks.
    let written = writer.await.unwrap();
    println!("writer finished: {written} changes");
    cluster.restart();
    println!("injected: Postgres restarted (fast shutdown) while the worker streams");
    let written = write_mixed(&url, 2_000, 34, 0).await;
    println!("writer after the restart: {written} changes");
    assert_converges(&env, CONVERGE).await;
    wait_ready(&worker, Duration::from_secs(30)).await;
    println!("checked: the worker reconnected and nothing was lost");
    assert_eq!(worker.terminate().code(), Some(0));
}

#[tokio::test]
async fn second_instance_waits_and_takes_over_within_15_seconds() {
    let env = TestEnv::new("two_workers").await;
    let leader_port = process::free_port();
    let standby_port = process::free_port();
    let mut leader = Worker::start(&env.write_config(leader_port, ""), leader_port, &[]);
    leader.wait_ready(Duration::from_secs(30)).await;
    let standby = Worker::start(&env.write_config(standby_port, ""), standby_port, &[]);
    wait_for(
        "the standby to report it is waiting",
        Duration::from_secs(20),
        || async { standby.log_text().contains("standby").then_some(()) },
    )
    .await;
    let (_, body) = standby.get("/readyz").unwrap();
    assert!(body.contains("standby"), "{body}");
    let leader_metrics = leader.get("/metrics").unwrap().1;
    let standby_metrics = standby.get("/metrics").unwrap().1;
    assert_eq!(metric(&leader_metrics, "runs_replicator_leader"), Some(1.0));
    assert_eq!(
        metric(&standby_metrics, "runs_replicator_leader"),
        Some(0.0)
    );
    println!("checked: exactly one instance leads");

    let url = env.pg.url(&env.pg_db);
    let writer = tokio::spawn(async move { write_mixed(&url, 5_000, 44, 2).await });
    tokio::time::sleep(Duration::from_millis(700)).await;
    leader.kill9();
    let killed = Instant::now();
    println!("injected: SIGKILL of the leader");
    wait_for("the standby to lead", Duration::from_secs(15), || async {
        let m = standby.get("/metrics")?.1;
        (metric(&m, "runs_replicator_leader") == Some(1.0)).then_some(())
    })
    .await;
    println!(
        "checked: the standby took over after {:?}",
        killed.elapsed()
    );
    writer.await.unwrap();
    assert_converges(&env, CONVERGE).await;
}

pub(crate) async fn slot_confirmed(env: &TestEnv) -> Option<u64> {
    let pg = env.pg_client().await;
    let row = pg
        .query_opt(
            "SELECT (confirmed_flush_lsn - '0/0'::pg_lsn)::int8 FROM pg_replication_slots WHERE slot_name = $1",
            &[&env.slot],
        )
        .await
        .unwrap()?;
    row.get::<_, Option<i64>>(0).map(|v| v as u64)
}

pub(crate) async fn wal_insert_lsn(env: &TestEnv) -> u64 {
    let pg = env.pg_client().await;
    let v: i64 = pg
        .query_one(
            "SELECT (pg_current_wal_insert_lsn() - '0/0'::pg_lsn)::int8",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    v as u64
}

#[tokio::test]
async fn replica_identity_default_while_running_stops_then_resumes_after_the_fix() {
    let env = TestEnv::new("hs_identity").await;
    let worker = start_worker(&env, "").await;
    let pg = env.pg_client().await;
    let big: String = (0..1500)
        .map(|i| format!("{:x}", (i as u64).wrapping_mul(0x2545_F491_4F6C_DD1D)))
        .collect();
    insert(
        &pg,
        "\"TaskRun\"",
        "run_hs_keep",
        &[("output", lit(&format!("{{\"blob\":\"{big}\"}}")))],
    )
    .await;
    insert(&pg, "\"TaskRun\"", "run_hs_gone", &[]).await;
    assert_converges(&env, CONVERGE).await;

    pg.batch_execute("ALTER TABLE \"TaskRun\" REPLICA IDENTITY DEFAULT")
        .await
        .unwrap();
    println!("injected: ALTER TABLE \"TaskRun\" REPLICA IDENTITY DEFAULT while streaming");
    // Changes the stream now carries without old rows: a TOASTed output left unchanged, a delete.
    pg.batch_execute("UPDATE \"TaskRun\" SET status = 'EXECUTING' WHERE id = 'run_hs_keep'")
        .await
        .unwrap();
    let after_bad = wal_insert_lsn(&env).await;
    pg.batch_execute("DELETE FROM \"TaskRun\" WHERE id = 'run_hs_gone'")
        .await
        .unwrap();
    let body = wait_unready(&worker, "REPLICA IDENTITY DEFAULT", Duration::from_secs(20)).await;
    println!("checked: /readyz fails: {}", body.trim());
    let log = worker.log_text();
    let line = log
        .lines()
        .find(|l| l.contains("hard stop"))
        .expect("one clear log line");
    println!("checked: log says: {line}");
    let metrics = worker.get("/metrics").unwrap().1;
    assert_eq!(
        metric_with(
            &metrics,
            "runs_replicator_hard_stop",
            &[("source", "default"), ("reason", "replica_identity")]
        ),
        Some(1.0),
        "{metrics}"
    );
    let confirmed = slot_confirmed(&env).await.unwrap();
    assert!(
        confirmed < after_bad,
        "the first bad transaction is not acknowledged ({confirmed:X} >= {after_bad:X})"
    );
    println!(
        "checked: the slot's confirmed position {confirmed:X} is before the end of the first bad change {after_bad:X}"
    );

    pg.batch_execute("ALTER TABLE \"TaskRun\" REPLICA IDENTITY FULL")
        .await
        .unwrap();
    println!("fixed: ALTER TABLE \"TaskRun\" REPLICA IDENTITY FULL");
    wait_ready(&worker, Duration::from_secs(30)).await;
    assert_converges(&env, CONVERGE).await;
    println!(
        "checked: resumed; the changes made meanwhile were repaired (TOASTed output kept, delete applied)"
    );
}

#[tokio::test]
async fn a_dropped_required_column_stops_then_resumes_after_it_is_restored() {
    let env = TestEnv::new("hs_column").await;
    let worker = start_worker(&env, "").await;
    let pg = env.pg_client().await;
    insert(
        &pg,
        "task_run_v2",
        "2bq8aDrQkxTvTwXAhFCJrQEXbtB",
        &[("region", lit("eu"))],
    )
    .await;
    assert_converges(&env, CONVERGE).await;
    pg.batch_execute("ALTER TABLE task_run_v2 DROP COLUMN \"planType\"")
        .await
        .unwrap();
    println!("injected: ALTER TABLE task_run_v2 DROP COLUMN \"planType\" while streaming");
    insert(&pg, "task_run_v2", "2bq8aDrQkxTvTwXAhFCJrQEXbtC", &[]).await;
    let body = wait_unready(&worker, "planType", Duration::from_secs(20)).await;
    println!("checked: /readyz fails: {}", body.trim());
    pg.batch_execute("ALTER TABLE task_run_v2 ADD COLUMN \"planType\" TEXT")
        .await
        .unwrap();
    println!("fixed: ALTER TABLE task_run_v2 ADD COLUMN \"planType\" TEXT");
    wait_ready(&worker, Duration::from_secs(30)).await;
    assert_converges(&env, CONVERGE).await;
    println!("checked: resumed and ClickHouse equals Postgres");
}

#[tokio::test]
async fn a_dropped_slot_is_a_hard_stop_and_is_not_recreated() {
    let env = TestEnv::new("hs_slot").await;
    let worker = start_worker(&env, "").await;
    let pg = env.pg_client().await;
    insert(&pg, "\"TaskRun\"", "run_slot_1", &[]).await;
    assert_converges(&env, CONVERGE).await;
    // The walsender must be gone before the slot can be dropped; the worker reconnects quickly.
    wait_for("the slot to be dropped", Duration::from_secs(20), || async {
        let _ = pg
            .execute(
                "SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots WHERE slot_name = $1 AND active_pid IS NOT NULL",
                &[&env.slot],
            )
            .await;
        pg.execute("SELECT pg_drop_replication_slot($1)", &[&env.slot]).await.ok().map(|_| ())
    })
    .await;
    println!("injected: the slot was dropped under the worker");
    let body = wait_unready(&worker, "disappeared", Duration::from_secs(30)).await;
    println!("checked: /readyz fails: {}", body.trim());
    tokio::time::sleep(Duration::from_secs(4)).await;
    let exists: i64 = pg
        .query_one(
            "SELECT count(*) FROM pg_replication_slots WHERE slot_name = $1",
            &[&env.slot],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(exists, 0, "the worker never recreates the slot on its own");
    println!("checked: the slot was not silently recreated");
    pg.execute(
        "SELECT pg_create_logical_replication_slot($1, 'pgoutput')",
        &[&env.slot],
    )
    .await
    .unwrap();
    println!("fixed: an operator recreated the slot");
    wait_ready(&worker, Duration::from_secs(30)).await;
    insert(&pg, "\"TaskRun\"", "run_slot_2", &[]).await;
    assert_converges(&env, CONVERGE).await;
    println!("checked: streaming resumed");
}

#[tokio::test]
async fn an_invalidated_slot_is_a_hard_stop_until_it_is_dropped() {
    let cluster: &'static PgCluster = Box::leak(Box::new(PgCluster::start(&[
        ("max_slot_wal_keep_size", "1MB"),
        ("wal_keep_size", "0"),
    ])));
    let mut env = TestEnv::new("hs_invalid").await;
    env.pg = cluster;
    env.pg_db = cluster.create_database("hs_invalid").await;
    let mut worker = start_worker(&env, "").await;
    let pg = env.pg_client().await;
    insert(&pg, "\"TaskRun\"", "run_inv_1", &[]).await;
    assert_converges(&env, CONVERGE).await;
    assert_eq!(worker.terminate().code(), Some(0));
    // A change the slot will lose with its WAL (`updatedAt` is the time of the write, as
    // trigger.dev writes it).
    insert(
        &pg,
        "\"TaskRun\"",
        "run_inv_gap",
        &[("updatedAt", "now()".into())],
    )
    .await;
    // With the worker gone, write far more WAL than the slot may keep, and checkpoint.
    for _ in 0..6 {
        pg.batch_execute(
            "CREATE TABLE IF NOT EXISTS filler (x int); \
             INSERT INTO filler SELECT generate_series(1, 100000); SELECT pg_switch_wal(); CHECKPOINT;",
        )
        .await
        .unwrap();
    }
    let status: Option<String> = pg
        .query_one(
            "SELECT wal_status::text FROM pg_replication_slots WHERE slot_name = $1",
            &[&env.slot],
        )
        .await
        .unwrap()
        .get(0);
    println!(
        "injected: WAL beyond max_slot_wal_keep_size with the worker stopped; wal_status = {status:?}"
    );
    assert_eq!(status.as_deref(), Some("lost"));
    let port = process::free_port();
    let worker = Worker::start(&env.write_config(port, ""), port, &[]);
    let body = wait_unready(&worker, "invalidated", Duration::from_secs(30)).await;
    println!("checked: /readyz fails: {}", body.trim());
    pg.execute("SELECT pg_drop_replication_slot($1)", &[&env.slot])
        .await
        .unwrap();
    println!("fixed: an operator dropped the invalidated slot");
    wait_ready(&worker, Duration::from_secs(30)).await;
    insert(&pg, "\"TaskRun\"", "run_inv_2", &[]).await;
    wait_for("a change after the new slot", CONVERGE, || async {
        mismatches(&env)
            .await
            .iter()
            .all(|m| !m.contains("run_inv_2"))
            .then_some(())
    })
    .await;
    assert_converges(&env, CONVERGE).await;
    assert!(
        worker
            .log_text()
            .contains("the slot was lost; created a new one; copying the runs changed in the gap"),
        "{}",
        worker.log_text()
    );
    println!(
        "checked: a new slot was created, the run written while the old one lost its WAL was \
         copied (the gap), and streaming resumed: ClickHouse equals Postgres"
    );
}

#[tokio::test]
async fn poison_rows_are_isolated_and_the_stream_moves_on() {
    let env = TestEnv::new("poison").await;
    // ClickHouse refuses rows it is told to: a constraint on the content of `output`, and one
    // that no neutralisation can satisfy.
    for constraint in [
        "ADD CONSTRAINT no_forbidden_output CHECK position(toJSONString(output), 'forbidden-output') = 0",
        "ADD CONSTRAINT no_rejected_run CHECK run_id != 'run_rejected'",
    ] {
        env.ch_client()
            .query(&format!("ALTER TABLE task_runs_v2 {constraint}"))
            .execute()
            .await
            .unwrap();
    }
    let worker = start_worker(&env, "[batch]\nmax_rows = 50\nflush_interval_ms = 300\n").await;
    let pg = env.pg_client().await;
    let mut sql = vec!["BEGIN".to_string()];
    for i in 0..20 {
        sql.push(crate::support::runs::insert_sql(
            "\"TaskRun\"",
            &format!("run_p_{i:02}"),
            &[],
        ));
    }
    sql.push(crate::support::runs::insert_sql(
        "\"TaskRun\"",
        "run_neutralised",
        &[
            ("status", lit("COMPLETED_SUCCESSFULLY")),
            ("output", lit(r#"{"text": "forbidden-output"}"#)),
        ],
    ));
    sql.push(crate::support::runs::insert_sql(
        "\"TaskRun\"",
        "run_rejected",
        &[],
    ));
    sql.push("COMMIT".into());
    pg.batch_execute(&sql.join(";\n")).await.unwrap();
    println!("injected: two rows ClickHouse refuses, in one batch with 20 good runs");
    insert(&pg, "\"TaskRun\"", "run_after_poison", &[]).await;
    let problems = poll(CONVERGE, Duration::from_millis(200), || async {
        let p = mismatches(&env).await;
        // Two differences also while run_neutralised is still being isolated (missing, like
        // run_rejected): wait for the neutralised one.
        if p.len() == 2
            && p.iter()
                .any(|p| p.starts_with("run run_neutralised: output"))
        {
            Ok(p)
        } else {
            Err(p)
        }
    })
    .await
    .unwrap_or_else(|p| {
        panic!(
            "still different: {p:?}\nmetrics:\n{}",
            worker.get("/metrics").map(|m| m.1).unwrap_or_default()
        )
    });
    println!("checked: the good runs and a later run arrived; differences left: {problems:?}");
    assert!(
        problems
            .iter()
            .any(|p| p.starts_with("run run_neutralised: output")),
        "{problems:?}"
    );
    assert!(
        problems
            .iter()
            .any(|p| p == "run run_rejected: missing in ClickHouse"),
        "{problems:?}"
    );
    let rows = crate::support::expect::actual_rows(&env).await;
    let neutralised = &rows["run_neutralised"];
    assert_eq!(
        neutralised.status, "COMPLETED_SUCCESSFULLY",
        "the rest of the row is intact"
    );
    assert_eq!(neutralised.output, "{}", "the refused field is neutralised");
    // Isolation records what it did once it is done with the batch: the rejected row's last
    // try comes after the neutralised row is already visible.
    let metrics = poll(CONVERGE, Duration::from_millis(100), || async {
        let metrics = worker.get("/metrics").unwrap().1;
        match metric_sum(&metrics, "runs_replicator_rows_rejected_total") {
            1.0 => Ok(metrics),
            _ => Err(metrics),
        }
    })
    .await
    .unwrap_or_else(|m| m);
    assert_eq!(
        metric_with(
            &metrics,
            "runs_replicator_fields_neutralised_total",
            &[("column", "output")]
        ),
        Some(1.0),
        "{metrics}"
    );
    assert_eq!(
        metric_with(
            &metrics,
            "runs_replicator_rows_rejected_total",
            &[("table", "task_runs_v2")]
        ),
        Some(1.0),
        "{metrics}"
    );
    let log = worker.log_text();
    let line = log
        .lines()
        .find(|l| l.contains("run_neutralised") && l.contains("stored a row"))
        .unwrap_or_else(|| panic!("{log}"));
    // Once, with the run, the field and ClickHouse's reason.
    assert!(
        line.contains("\"output\"") && line.contains("Code:"),
        "{line}"
    );
    assert_eq!(
        log.lines()
            .filter(|l| l.contains("run_neutralised") && l.contains("stored a row"))
            .count(),
        1
    );
    assert!(
        log.lines()
            .any(|l| l.contains("run_rejected") && l.contains("skipped")),
        "{log}"
    );
    println!(
        "checked: counted in runs_replicator_fields_neutralised_total / rows_rejected_total, logged with run ids"
    );
}

#[tokio::test]
async fn truncate_is_logged_counted_and_not_applied() {
    let env = TestEnv::new("truncate").await;
    let worker = start_worker(&env, "").await;
    let pg = env.pg_client().await;
    insert(&pg, "\"TaskRun\"", "run_tr_1", &[]).await;
    assert_converges(&env, CONVERGE).await;
    pg.batch_execute("TRUNCATE \"TaskRun\"").await.unwrap();
    println!("injected: TRUNCATE \"TaskRun\"");
    insert(&pg, "task_run_v2", "2bq8aDrQkxTvTwXAhFCJrQEXbtD", &[]).await;
    wait_for("the later run", CONVERGE, || async {
        crate::support::expect::actual_rows(&env)
            .await
            .contains_key("2bq8aDrQkxTvTwXAhFCJrQEXbtD")
            .then_some(())
    })
    .await;
    let rows = crate::support::expect::actual_rows(&env).await;
    assert!(
        rows.contains_key("run_tr_1"),
        "policy: TRUNCATE is not applied to ClickHouse"
    );
    let metrics = worker.get("/metrics").unwrap().1;
    assert_eq!(
        metric_with(
            &metrics,
            "runs_replicator_truncates_received_total",
            &[("source", "default"), ("table", "TaskRun")]
        ),
        Some(1.0),
        "{metrics}"
    );
    assert!(worker.log_text().contains("TRUNCATE of a replicated table"));
    println!("checked: logged, counted, runs kept in ClickHouse, stream continued");
}

/// The pid in a local cluster's `postmaster.pid`.
fn postmaster_pid(cluster: &PgCluster) -> u32 {
    let text = std::fs::read_to_string(cluster.data_dir().unwrap().join("postmaster.pid")).unwrap();
    text.lines().next().unwrap().trim().parse().unwrap()
}

#[tokio::test]
async fn a_standby_whose_postgres_stops_answering_is_not_reported_ready() {
    // A private cluster: the test freezes its postmaster.
    let cluster: &'static PgCluster = Box::leak(Box::new(PgCluster::start(&[])));
    let mut env = TestEnv::new("standby_hang").await;
    env.pg = cluster;
    env.pg_db = cluster.create_database("standby_hang").await;
    let overrides = "[postgres]\nquery_timeout_ms = 2000\nconnect_timeout_ms = 2000\n";
    let _leader = start_worker(&env, overrides).await;
    let port = process::free_port();
    let standby = Worker::start(&env.write_config(port, overrides), port, &[]);
    wait_for(
        "the second worker to be a ready standby",
        Duration::from_secs(30),
        || async {
            matches!(readyz(&standby).await, Some((200, b)) if b.contains("standby")).then_some(())
        },
    )
    .await;
    let pg = env.pg_client().await;
    // The standby's lock session: the worker's session that holds no stream lock (objsubid 1)
    // and is not an instance's member session (`leader::roster`; it may hold its tag).
    let backend: i32 = pg
        .query_one(
            "SELECT pid FROM pg_stat_activity WHERE datname = $1 AND backend_type = 'client backend' \
             AND application_name = 'runs-replicator' \
             AND pid NOT IN (SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted \
                             AND (objsubid = 1 OR classid::int8 = $2))",
            &[&env.pg_db, &i64::from(MEMBER_SPACE)],
        )
        .await
        .unwrap()
        .get(0);
    let postmaster = postmaster_pid(cluster);
    process::signal(backend as u32, libc::SIGSTOP);
    process::signal(postmaster, libc::SIGSTOP);
    let frozen = Instant::now();
    println!("injected: SIGSTOP of the standby's backend ({backend}) and of the postmaster");
    let body = wait_unready(&standby, "stopped answering", Duration::from_secs(20)).await;
    println!(
        "checked: /readyz after {:.1} s (query_timeout_ms = 2000): {}",
        frozen.elapsed().as_secs_f64(),
        body.trim()
    );
    process::signal(postmaster, libc::SIGCONT);
    process::signal(backend as u32, libc::SIGCONT);
    wait_for(
        "the standby to be ready again",
        Duration::from_secs(30),
        || async {
            matches!(readyz(&standby).await, Some((200, b)) if b.contains("standby")).then_some(())
        },
    )
    .await;
    println!("checked: once Postgres answers again, it is a ready standby again");
}

#[tokio::test]
async fn one_source_failing_its_preflight_at_the_first_start_stops_alone() {
    let mut env = TestEnv::new("first_refusal").await;
    let pg = env.pg;
    env.add_source("new", pg, &[("\"TaskRun\"", 1)], &[("\"TaskRun\"", 0)])
        .await;
    let new = env.sources[0].client().await;
    new.batch_execute("ALTER TABLE \"TaskRun\" REPLICA IDENTITY DEFAULT")
        .await
        .unwrap();
    println!("injected: REPLICA IDENTITY DEFAULT on the run-ops source before the first start");
    let port = process::free_port();
    let worker = Worker::start(&env.write_config(port, ""), port, &[]);
    let body = poll(
        Duration::from_secs(60),
        Duration::from_millis(100),
        || async {
            match readyz(&worker).await {
                Some((503, body))
                    if body.contains("new: hard stop: preflight failed")
                        && body.contains("default: leader, streaming") =>
                {
                    Ok(body)
                }
                answer => Err(answer),
            }
        },
    )
    .await
    .unwrap_or_else(|answer| panic!("last /readyz answer {answer:?}:\n{}", worker.log_text()));
    println!("checked: /readyz: {}", body.replace('\n', " | "));
    let legacy = env.pg_client().await;
    insert(&legacy, "\"TaskRun\"", "run_first_refusal_1", &[]).await;
    assert_converges(&env, CONVERGE).await;
    let (_, metrics) = worker.get("/metrics").unwrap();
    assert_eq!(
        metric_with(
            &metrics,
            "runs_replicator_hard_stop",
            &[("source", "new"), ("reason", "preflight")]
        ),
        Some(1.0)
    );
    println!("checked: the legacy source streams; only `new` is hard-stopped");
    new.batch_execute("ALTER TABLE \"TaskRun\" REPLICA IDENTITY FULL")
        .await
        .unwrap();
    wait_ready(&worker, Duration::from_secs(90)).await;
    insert(&new, "\"TaskRun\"", "run_first_refusal_new", &[]).await;
    assert_converges(&env, CONVERGE).await;
    println!("checked: fixed, the run-ops source started too");
}
