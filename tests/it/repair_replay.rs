//! A repair replay on one source (changes made under REPLICA IDENTITY DEFAULT, replayed once the
//! table is fixed: each UPDATE without its old row needs ClickHouse's rows of its run) does not
//! stall the other source, and its lookups read the run's granules, not the table.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use runs_replicator::testing::metrics::value_with as metric_with;

use crate::reliability::{wait_ready, wait_unready};
use crate::replication::start_worker;
use crate::support::TestEnv;
use crate::support::expect::assert_converges;
use crate::support::runs::{insert, insert_many_sql};

const CONVERGE: Duration = Duration::from_secs(120);
/// Rows of other organizations already in the runs table: a lookup that scans reads them all.
const FILLER: u64 = 200_000;

/// `read_rows` of ClickHouse's X-ClickHouse-Summary for `query` in `env`'s database.
fn rows_read(env: &TestEnv, query: &str) -> u64 {
    let addr = env.ch.url.trim_start_matches("http://");
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    write!(
        stream,
        "POST /?database={} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{query}",
        env.ch_db,
        query.len()
    )
    .unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).unwrap();
    let text = String::from_utf8_lossy(&raw);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    let summary = text
        .lines()
        .find_map(|l| l.strip_prefix("X-ClickHouse-Summary: "))
        .unwrap_or_else(|| panic!("no summary: {text}"));
    let json: serde_json::Value = serde_json::from_str(summary).unwrap();
    json["read_rows"].as_str().unwrap().parse().unwrap()
}

/// How long after it was written run `id` of the legacy source shows in ClickHouse.
async fn arrival(ch: &clickhouse::Client, id: &str, written: Instant) -> Duration {
    loop {
        let n: u64 = ch
            .query("SELECT count() FROM task_runs_v2 WHERE run_id = ?")
            .bind(id)
            .fetch_one()
            .await
            .unwrap();
        if n > 0 {
            return written.elapsed();
        }
        assert!(written.elapsed() < CONVERGE, "run {id} did not arrive");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_repair_replay_on_one_source_does_not_stall_the_other_and_reads_no_whole_table() {
    let mut env = TestEnv::new("repair_replay").await;
    let pg = env.pg;
    env.add_source("new", pg, &[("\"TaskRun\"", 1)], &[("\"TaskRun\"", 0)])
        .await;
    let ch = env.ch_client();
    ch.query(&format!(
        "INSERT INTO task_runs_v2 (environment_id, organization_id, project_id, run_id, \
         updated_at, created_at, status, environment_type, friendly_id, engine, task_identifier, \
         queue, schedule_id, batch_id, task_version, sdk_version, cli_version, machine_preset, \
         _version) \
         SELECT 'env_f', 'org_filler', 'proj_f', concat('run_filler_', toString(number)), \
         now64(3), now64(3) - toIntervalSecond(number), 'PENDING', 'PRODUCTION', '', 'V2', 'task', 'q', '', '', '', '', '', '', 1 \
         FROM numbers({FILLER})"
    ))
    .execute()
    .await
    .unwrap();
    ch.query("OPTIMIZE TABLE task_runs_v2 FINAL")
        .execute()
        .await
        .unwrap();
    let worker = start_worker(&env, "").await;
    let legacy = env.pg_client().await;
    let new = env.sources[0].client().await;
    let ids: Vec<String> = (0..120).map(|i| format!("run_rr_{i:03}")).collect();
    new.batch_execute(&insert_many_sql("\"TaskRun\"", &ids, &[]))
        .await
        .unwrap();
    println!(
        "injected: {FILLER} rows of another organization in the runs table; 120 runs in the \
         run-ops source"
    );
    // The stream's own rows; the filler is compared apart (assert_converges reads every row).
    crate::support::expect::wait_run_count(&env, "run_rr_", 120, CONVERGE).await;

    // REPLICA IDENTITY DEFAULT, then a transaction per run moving it to another project: an
    // UPDATE without its old row each, whose old ClickHouse key only a lookup can find.
    let mut sql = vec!["ALTER TABLE \"TaskRun\" REPLICA IDENTITY DEFAULT".to_string()];
    for id in &ids {
        sql.push(format!(
            "BEGIN; UPDATE \"TaskRun\" SET \"projectId\" = 'proj_moved', status = 'EXECUTING' \
             WHERE id = '{id}'; COMMIT"
        ));
    }
    new.batch_execute(&sql.join(";\n")).await.unwrap();
    wait_unready(&worker, "REPLICA IDENTITY DEFAULT", Duration::from_secs(20)).await;
    new.batch_execute("ALTER TABLE \"TaskRun\" REPLICA IDENTITY FULL")
        .await
        .unwrap();
    println!("injected: 120 transactions moving a run each under REPLICA IDENTITY DEFAULT; fixed");

    // Meanwhile the legacy source streams a run every 100 ms, each timed to ClickHouse.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let trickle = {
        let env_ch = env.ch_client();
        let stop = stop.clone();
        let legacy = env.pg_client().await;
        tokio::spawn(async move {
            let mut took = Vec::new();
            let mut i = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let id = format!("run_legacy_{i:03}");
                i += 1;
                let written = Instant::now();
                insert(&legacy, "\"TaskRun\"", &id, &[]).await;
                took.push(arrival(&env_ch, &id, written).await);
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            took
        })
    };
    drop(legacy);
    let replayed = Instant::now();
    let moved = "SELECT countIf(project_id = 'proj_moved'), count() FROM task_runs_v2 FINAL \
                 WHERE startsWith(run_id, 'run_rr_')";
    runs_replicator::testing::wait::wait_for("the 120 runs moved", CONVERGE, || async {
        let (moved, all): (u64, u64) = ch.query(moved).fetch_one().await.unwrap_or((0, 0));
        (moved == 120 && all == 120).then_some(())
    })
    .await;
    println!(
        "checked: the replay completed {:?} after the fix",
        replayed.elapsed()
    );
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut took = trickle.await.unwrap();
    took.sort();
    let worst = *took.last().unwrap();
    println!(
        "checked: {} legacy runs during the replay arrived in median {:?}, worst {worst:?}",
        took.len(),
        took[took.len() / 2]
    );
    wait_ready(&worker, CONVERGE).await;
    let (_, metrics) = worker.get("/metrics").unwrap();
    let get = |name: &str| metric_with(&metrics, name, &[("source", "new")]).unwrap_or(0.0);
    let lookups = get("runs_replicator_repair_lookups_total");
    let tombstones = get("runs_replicator_repair_tombstones_total");
    println!("checked: 120 repaired transactions took {lookups} lookups, {tombstones} tombstones");

    let lookup = "SELECT run_id FROM task_runs_v2 FINAL WHERE run_id IN ('run_rr_007', 'run_rr_099') \
                  AND _is_deleted = 0 SETTINGS use_skip_indexes_if_final = 1";
    let with_index = rows_read(&env, lookup);
    let without = rows_read(&env, &format!("{lookup}, use_skip_indexes = 0"));
    println!("checked: a lookup reads {with_index} rows; without the run_id index {without}");

    ch.query("DELETE FROM task_runs_v2 WHERE organization_id = 'org_filler'")
        .execute()
        .await
        .unwrap();
    assert_converges(&env, CONVERGE).await;
    println!("checked: converged, each moved run under its new key only");
    assert!(
        worst < Duration::from_secs(3),
        "a legacy run took {worst:?}"
    );
    assert!(
        tombstones >= 120.0,
        "every old key tombstoned: {tombstones}"
    );
    assert!(
        lookups <= 40.0,
        "lookups batched across transactions: {lookups} for 120"
    );
    assert!(
        with_index * 10 < FILLER && without >= FILLER,
        "the index keeps a lookup to a few granules: {with_index} (without it {without})"
    );
}
