//! Resume and shutdown: what the slot acknowledges, and that nothing is lost or doubled across a
//! graceful stop or a crash.

use std::time::Duration;

use runs_replicator::testing::wait::wait_for;

use crate::replication::start_worker;
use crate::support::expect::{actual_rows, assert_converges};
use crate::support::runs::{insert_many_sql, insert_sql, lit};
use crate::support::{PgCluster, TestEnv};

const CONVERGE: Duration = Duration::from_secs(60);

async fn payload_count(env: &TestEnv, final_: bool) -> u64 {
    let sql = format!(
        "SELECT count() FROM raw_task_runs_payload_v1{}",
        if final_ { " FINAL" } else { "" }
    );
    env.ch_client().query(&sql).fetch_one().await.unwrap()
}

async fn lsn_of(client: &tokio_postgres::Client, sql: &str) -> u64 {
    let text: Option<String> = client.query_one(sql, &[]).await.unwrap().get(0);
    let text = text.expect("an LSN");
    let (hi, lo) = text.split_once('/').unwrap();
    (u64::from_str_radix(hi, 16).unwrap() << 32) | u64::from_str_radix(lo, 16).unwrap()
}

#[tokio::test]
async fn stop_change_start_delivers_everything_once() {
    let env = TestEnv::new("resume").await;
    let pg = env.pg_client().await;
    let mut worker = start_worker(&env, "").await;
    let first: Vec<String> = (0..20).map(|i| format!("run_resume_{i:02}")).collect();
    pg.batch_execute(&insert_many_sql("\"TaskRun\"", &first, &[]))
        .await
        .unwrap();
    assert_converges(&env, CONVERGE).await;
    assert_eq!(worker.terminate().code(), Some(0), "{}", worker.log_text());

    // While the worker is down: inserts in both tables, updates, deletes.
    let second: Vec<String> = (0..20).map(|i| format!("run_resume_v2_{i:02}")).collect();
    pg.batch_execute(&insert_many_sql("task_run_v2", &second, &[]))
        .await
        .unwrap();
    pg.batch_execute("UPDATE \"TaskRun\" SET status = 'EXECUTING' WHERE id < 'run_resume_10'")
        .await
        .unwrap();
    pg.batch_execute("DELETE FROM \"TaskRun\" WHERE id >= 'run_resume_15'")
        .await
        .unwrap();

    let mut worker = start_worker(&env, "").await;
    assert_converges(&env, CONVERGE).await;
    assert_eq!(actual_rows(&env).await.len(), 35);
    // A batch's payloads go in after its runs; a graceful stop waits for both.
    assert_eq!(worker.terminate().code(), Some(0));
    // Payload rows are append-only: a replay of already-acknowledged transactions would double them.
    assert_eq!(
        payload_count(&env, false).await,
        40,
        "every INSERT's payload exactly once"
    );
}

#[tokio::test]
async fn sigterm_acknowledges_exactly_the_last_commit() {
    // A quiet cluster of its own: no other test's WAL moves the server's position.
    let cluster = PgCluster::start(&[("autovacuum", "off")]);
    let mut env = TestEnv::new("sigterm").await;
    env.pg_db = cluster.create_database("sigterm").await;
    let overrides = format!("[postgres]\nurl = \"{}\"\n", cluster.url(&env.pg_db));
    let pg = cluster.connect(&env.pg_db).await;
    let port = crate::support::process::free_port();
    let config = env.write_config(port, &overrides);
    let mut worker = crate::support::Worker::start(&config, port, &[]);
    worker.wait_ready(Duration::from_secs(30)).await;

    for i in 0..5 {
        pg.batch_execute(&insert_sql(
            "\"TaskRun\"",
            &format!("run_term_{i}"),
            &[("status", lit("EXECUTING"))],
        ))
        .await
        .unwrap();
    }
    let last_end = wait_for("all five runs in ClickHouse", CONVERGE, || async {
        let rows = actual_rows(&env).await;
        (rows.len() == 5).then(|| rows.values().map(|r| r._version).max().unwrap())
    })
    .await;
    // The version's low 56 bits are the commit's end LSN (generation 0 for "TaskRun").
    let last_end = last_end & ((1 << 56) - 1);
    let status = worker.terminate();
    assert_eq!(status.code(), Some(0), "{}", worker.log_text());
    let confirmed = lsn_of(
        &pg,
        &format!(
            "SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = '{}'",
            env.slot
        ),
    )
    .await;
    let wal_end = lsn_of(&pg, "SELECT pg_current_wal_insert_lsn()::text").await;
    println!(
        "last commit end {last_end:X}, confirmed_flush_lsn {confirmed:X}, WAL end {wal_end:X}"
    );
    assert!(
        confirmed >= last_end,
        "everything in ClickHouse is acknowledged"
    );
    assert!(confirmed <= wal_end);
    if wal_end == last_end {
        assert_eq!(
            confirmed, last_end,
            "nothing but the last commit to acknowledge"
        );
    }
    let log = worker.log_text();
    assert!(
        log.contains("stream closed after flushing and acknowledging"),
        "{log}"
    );
}

#[tokio::test]
async fn kill_9_during_a_stream_of_changes_loses_nothing() {
    let env = TestEnv::new("kill9").await;
    let mut worker = start_worker(&env, "[batch]\nmax_rows = 200\nflush_interval_ms = 50\n").await;
    let url = env.pg.url(&env.pg_db);
    // 5,000 changes in 500 transactions across both tables, while the worker is killed.
    let writer = tokio::spawn(async move {
        let (pg, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(conn);
        for t in 0..500u32 {
            let table = if t % 2 == 0 {
                "\"TaskRun\""
            } else {
                "task_run_v2"
            };
            let ids: Vec<String> = (0..6).map(|i| format!("run_k_{t:03}_{i}")).collect();
            let mut sql = vec!["BEGIN".to_string(), insert_many_sql(table, &ids, &[])];
            sql.push(format!(
                "UPDATE {table} SET status = 'EXECUTING', \"attemptNumber\" = {t} WHERE id IN ('{}', '{}')",
                ids[0], ids[1]
            ));
            sql.push(format!(
                "UPDATE {table} SET status = 'COMPLETED_SUCCESSFULLY' WHERE id = '{}'",
                ids[2]
            ));
            sql.push(format!("DELETE FROM {table} WHERE id = '{}'", ids[3]));
            sql.push("COMMIT".into());
            pg.batch_execute(&sql.join(";\n")).await.unwrap();
            if t % 50 == 0 {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    });
    tokio::time::sleep(Duration::from_millis(700)).await;
    worker.kill9();
    println!("killed the worker with SIGKILL mid-stream");
    let mut worker = start_worker(&env, "[batch]\nmax_rows = 200\nflush_interval_ms = 50\n").await;
    writer.await.unwrap();
    assert_converges(&env, CONVERGE).await;
    let rows = actual_rows(&env).await;
    assert_eq!(rows.len(), 500 * 5);
    // A batch's payloads go in after its runs; a graceful stop waits for both.
    assert_eq!(worker.terminate().code(), Some(0));
    // Payloads may be written twice for transactions replayed after the crash; the payload table
    // is a ReplacingMergeTree keyed by run_id, so FINAL shows each once.
    assert_eq!(payload_count(&env, true).await, 500 * 6);
    assert!(payload_count(&env, false).await >= 500 * 6);
}

#[tokio::test]
async fn an_idle_slot_follows_the_wal_of_other_tables() {
    let env = TestEnv::new("idle_slot").await;
    let _worker = start_worker(&env, "").await;
    let pg = env.pg_client().await;
    pg.batch_execute(
        "CREATE TABLE unrelated (x int); INSERT INTO unrelated SELECT generate_series(1, 20000);",
    )
    .await
    .unwrap();
    let written = lsn_of(&pg, "SELECT pg_current_wal_lsn()::text").await;
    println!("injected: WAL from a table outside the publication, up to {written:X}");
    let sql = format!(
        "SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = '{}'",
        env.slot
    );
    let confirmed = wait_for(
        "the slot to confirm past the unrelated WAL",
        CONVERGE,
        || async {
            let c = lsn_of(&pg, &sql).await;
            (c >= written).then_some(c)
        },
    )
    .await;
    println!(
        "checked: nothing to replicate, yet the slot confirmed {confirmed:X}: it retains no WAL"
    );
}
