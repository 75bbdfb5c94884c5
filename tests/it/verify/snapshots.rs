//! No snapshot a backfill or a verify reads through is held longer than `backfill.snapshot_max_s`
//! while a writer keeps changing runs — not even while ClickHouse stalls under a write (a
//! backfill's page) or a read (a verify's slice): a sampler watches every session of the worker
//! in `pg_stat_activity` that holds a snapshot, and the summaries say the same.

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use crate::support::clickhouse::ChServer;
use crate::support::runs::insert_many_sql;
use crate::support::{TestEnv, process, worker};

/// The longest (ms) any session of the worker has held a snapshot, sampled every 50 ms.
async fn sample(url: String, longest: Arc<AtomicU64>, stop: Arc<AtomicBool>) {
    let (pg, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    while !stop.load(Relaxed) {
        let row = pg
            .query_one(
                "SELECT coalesce(max(extract(epoch FROM clock_timestamp() - xact_start)), 0)::float8 \
                 FROM pg_stat_activity WHERE datname = current_database() \
                   AND application_name = 'runs-replicator' AND backend_xmin IS NOT NULL \
                   AND state IN ('active', 'idle in transaction', 'idle in transaction (aborted)')",
                &[],
            )
            .await
            .unwrap();
        let held: f64 = row.get(0);
        longest.fetch_max((held * 1000.0) as u64, Relaxed);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Updates runs, one transaction each, until told to stop.
async fn write(url: String, ids: Vec<String>, stop: Arc<AtomicBool>) -> u64 {
    let (pg, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    let mut n = 0u64;
    while !stop.load(Relaxed) {
        let id = &ids[(n as usize * 7919) % ids.len()];
        pg.execute(
            "UPDATE task_run_v2 SET status = 'EXECUTING', \"updatedAt\" = clock_timestamp() WHERE id = $1",
            &[id],
        )
        .await
        .unwrap();
        n += 1;
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    n
}

/// Runs `runs-replicator <args>`, stalling ClickHouse for `stall` once its stderr shows `when`.
fn run_stalling(
    ch: &'static ChServer,
    config: &std::path::Path,
    args: &[&str],
    when: &'static str,
    stall: Duration,
) -> (Option<i32>, String) {
    let mut cmd = worker::command(config);
    cmd.args(args).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = process::spawn(cmd).expect("start the command");
    let stderr = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut stalled = false;
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if !stalled && line.contains(when) {
                stalled = true;
                ch.stall(true);
                std::thread::sleep(stall);
                ch.stall(false);
                println!("ClickHouse stalled for {stall:?} after: {line}");
            }
        }
        stalled
    });
    let out = child.wait_with_output().unwrap();
    assert!(reader.join().unwrap(), "the command never logged {when:?}");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).to_string(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_snapshot_outlives_its_bound_while_a_writer_changes_runs_and_clickhouse_stalls() {
    let ch: &'static ChServer = Box::leak(Box::new(ChServer::start(&[])));
    let mut env = TestEnv::new("vf_snapbound").await;
    env.ch = ch;
    env.ch_db = ch.create_database("vf_snapbound").await;
    let pg = env.pg_client().await;
    let mut ids = Vec::new();
    for part in 0..6 {
        let part_ids: Vec<String> = (0..500)
            .map(|i| format!("run_sb_{:05}", part * 500 + i))
            .collect();
        pg.batch_execute(&insert_many_sql("task_run_v2", &part_ids, &[]))
            .await
            .unwrap();
        ids.extend(part_ids);
    }
    let bound = 2u64;
    let config = env.write_config(
        process::free_port(),
        &format!(
            "[backfill]\nsnapshot_max_s = {bound}\nchunk_rows = 1000\nparallel = 2\n\
             [batch]\nmax_rows = 100\n[verify]\nchunk_rows = 300\nrounds = 1\n[log]\nlevel = \"info\"\n"
        ),
    );
    let url = env.pg.url(&env.pg_db);
    let stop = Arc::new(AtomicBool::new(false));
    let longest = Arc::new(AtomicU64::new(0));
    let sampler = tokio::spawn(sample(url.clone(), longest.clone(), stop.clone()));
    let writer = tokio::spawn(write(url, ids, stop.clone()));

    // A backfill whose inserts stall for 5 s: a snapshot kept across that write would be held
    // more than twice the bound.
    let stall = Duration::from_secs(5);
    let (code, stdout) = tokio::task::spawn_blocking({
        let config = config.clone();
        move || {
            run_stalling(
                ch,
                &config,
                &["backfill", "--payloads", "--format", "json"],
                "backfill chunk copied",
                stall,
            )
        }
    })
    .await
    .unwrap();
    assert_eq!(code, Some(0), "{stdout}");
    let s: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    let seen_backfill = longest.swap(0, Relaxed);
    println!(
        "backfill: {} snapshots, the longest {} s by its summary, {} ms seen in pg_stat_activity",
        s["snapshots"], s["longest_snapshot_s"], seen_backfill
    );

    // A verify of many slices whose ClickHouse reads stall for 5 s, the writer still writing.
    let (code, stdout) = tokio::task::spawn_blocking({
        let config = config.clone();
        move || {
            run_stalling(
                ch,
                &config,
                &["verify", "--format", "json"],
                "verify slice compared",
                stall,
            )
        }
    })
    .await
    .unwrap();
    assert!(matches!(code, Some(0..=2)), "{stdout}");
    let r: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    let seen_verify = longest.load(Relaxed);
    stop.store(true, Relaxed);
    sampler.await.unwrap();
    let writes = writer.await.unwrap();
    println!(
        "verify: {} slices, {} snapshots, the longest {} s by its report, {} ms seen; {writes} \
         writer transactions meanwhile",
        r["slices"], r["snapshots_taken"], r["longest_snapshot_s"], seen_verify
    );
    assert!(writes > 100, "the writer kept changing runs: {writes}");
    assert!(
        s["snapshots"].as_u64().unwrap() >= 2,
        "a fresh snapshot once the bound came"
    );
    let limit_ms = bound * 1000 + 700;
    for (what, seen, reported) in [
        ("backfill", seen_backfill, &s["longest_snapshot_s"]),
        ("verify", seen_verify, &r["longest_snapshot_s"]),
    ] {
        assert!(
            seen <= limit_ms,
            "{what}: a snapshot held {seen} ms, beyond the {bound} s bound"
        );
        assert!(
            reported.as_f64().unwrap() <= (limit_ms as f64) / 1000.0,
            "{what}: {reported}"
        );
    }
}
