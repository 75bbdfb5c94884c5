//! One memory budget for the process (`batch.max_bytes`, `crate::budget`), however many streams:
//! four shards draining runs with 1 MiB outputs through a 20 s ClickHouse stall stay within it.

use std::time::{Duration, Instant};

use crate::reliability::rss_kib;
use crate::support::runs::{insert_sql, lit};
use crate::support::{ChServer, TestEnv, Worker, process};

const MIB: u64 = 1 << 20;
const MAX_BYTES: u64 = 64 * MIB;
/// What the budget does not count and the bound adds: an insert's encoding block, a frame being
/// decoded per stream (2 MiB here: an UPDATE's old and new row), and the allocator's slack.
const OVERHEAD: u64 = 16 * MIB;
const RUNS: usize = 240;

/// VmHWM (peak RSS) of a live process, in KiB.
fn peak_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
}

/// The lowest confirmed position of the shards' slots (`None` until all four exist).
async fn slots_confirmed(env: &TestEnv) -> Option<u64> {
    let pg = env.pg_client().await;
    let row = pg
        .query_one(
            "SELECT count(*), min((confirmed_flush_lsn - '0/0'::pg_lsn)::int8) \
             FROM pg_replication_slots WHERE slot_name LIKE $1",
            &[&format!("{}\\_%", env.slot)],
        )
        .await
        .unwrap();
    let (n, min): (i64, Option<i64>) = (row.get(0), row.get(1));
    (n == 4).then_some(min? as u64)
}

#[tokio::test]
async fn four_shards_draining_megabyte_runs_through_a_clickhouse_stall_stay_within_max_bytes() {
    let ch: &'static ChServer = Box::leak(Box::new(ChServer::start(&[])));
    let mut env = TestEnv::new("budget").await;
    env.ch = ch;
    env.ch_db = ch.create_database("budget").await;
    let pg = env.pg_client().await;
    let output = |i: usize| {
        format!(
            "jsonb_build_object('report', repeat(md5('{i}'), {}))",
            MIB / 32
        )
    };
    for chunk in (0..RUNS).collect::<Vec<_>>().chunks(40) {
        let sql: Vec<String> = chunk
            .iter()
            .map(|&i| {
                insert_sql(
                    "task_run_v2",
                    &format!("run_mb_{i:04}"),
                    &[("status", lit("EXECUTING")), ("output", output(i))],
                )
            })
            .collect();
        pg.batch_execute(&sql.join(";\n")).await.unwrap();
    }
    let config = format!(
        "[postgres]\nshards = 4\n[batch]\nmax_rows = 10000\nflush_interval_ms = 1000\n\
         max_bytes = {MAX_BYTES}\n"
    );
    // The first start creates the four slots; the backlog is what is written after them.
    let port = process::free_port();
    let path = env.write_config(port, &config);
    let mut worker = Worker::start(&path, port, &[]);
    worker.wait_ready(Duration::from_secs(90)).await;
    let at_start = rss_kib(worker.child.id()).unwrap_or(0);
    assert_eq!(worker.terminate().code(), Some(0));
    for i in 0..RUNS {
        pg.batch_execute(&format!(
            "UPDATE task_run_v2 SET status = 'COMPLETED_SUCCESSFULLY', \"updatedAt\" = now() \
             WHERE id = 'run_mb_{i:04}'"
        ))
        .await
        .unwrap();
    }
    let end = crate::reliability::wal_insert_lsn(&env).await;
    println!(
        "injected: a backlog of {RUNS} updates of runs with 1 MiB outputs (old and new row each) \
         over 4 shards; batch.max_bytes {} MiB",
        MAX_BYTES / MIB
    );

    let mut worker = Worker::start(&path, port, &[]);
    let pid = worker.child.id();
    let started = Instant::now();
    let mut stall: Option<Instant> = None;
    let mut sampled = 0;
    loop {
        sampled = sampled.max(rss_kib(pid).unwrap_or(0));
        // Mid-drain: once the worker has been at it for a second, ClickHouse stalls for 20 s.
        match stall {
            None if started.elapsed() > Duration::from_secs(1) => {
                ch.stall(true);
                stall = Some(Instant::now());
                println!("injected: ClickHouse stalled (SIGSTOP) for 20 s mid-drain");
            }
            Some(at) if at.elapsed() > Duration::from_secs(20) => {
                ch.stall(false);
                stall = Some(at - Duration::from_secs(3600));
            }
            _ => {}
        }
        if stall.is_some_and(|at| at.elapsed() > Duration::from_secs(3600))
            && slots_confirmed(&env).await.is_some_and(|c| c >= end)
        {
            break;
        }
        if let Ok(Some(status)) = worker.child.try_wait() {
            panic!("the worker exited ({status}):\n{}", worker.log_text());
        }
        assert!(
            started.elapsed() < Duration::from_secs(600),
            "the backlog drains"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let peak = peak_rss_kib(pid).unwrap_or(sampled).max(sampled);
    let grown = peak.saturating_sub(at_start) * 1024;
    println!(
        "checked: drained in {:.1?}; peak RSS {} MiB (VmHWM), {} MiB over the {} MiB of a ready \
         worker; bound max_bytes + overhead = {} MiB",
        started.elapsed(),
        peak / 1024,
        grown / MIB,
        at_start / 1024,
        (MAX_BYTES + OVERHEAD) / MIB
    );
    let completed: u64 = env
        .ch_client()
        .query("SELECT countIf(status = 'COMPLETED_SUCCESSFULLY') FROM task_runs_v2 FINAL")
        .fetch_one()
        .await
        .unwrap();
    assert_eq!(
        completed as usize, RUNS,
        "every run completed in ClickHouse"
    );
    assert!(
        grown < MAX_BYTES + OVERHEAD,
        "RSS growth within batch.max_bytes + {} MiB: {} MiB",
        OVERHEAD / MIB,
        grown / MIB
    );
    assert_eq!(worker.terminate().code(), Some(0));
}
