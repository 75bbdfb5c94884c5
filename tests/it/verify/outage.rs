//! The one-shot commands through a ClickHouse outage: `backfill` and `verify --repair` stop once
//! a write has waited `clickhouse.give_up_after_ms` for ClickHouse, with one line and exit 2 —
//! they do not hang for as long as the outage lasts (the daemon does wait: `reliability.rs`).
//! ClickHouse is killed in the middle of each command's inserts; afterwards a backfill resumes
//! and a verify finds ClickHouse equal to Postgres.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::Stdio;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use super::{json, verify};
use crate::support::runs::insert_many_sql;
use crate::support::{ChServer, TestEnv, process, worker};

const PASSWORD: &str = "ch-Secret-9fQ";
const GIVE_UP: &str = "4000";

/// How `args` ended when ClickHouse was killed as its stderr showed a `trigger` line.
struct Ended {
    code: Option<i32>,
    stderr: Vec<String>,
    /// From the kill to the exit.
    after_kill: Duration,
}

/// Runs the binary with `args`, kills `ch` at the first stderr line `trigger` accepts, and waits
/// for the exit (at most a minute after the kill: past that it would hang through the outage).
fn through_outage(
    ch: &'static ChServer,
    config: &Path,
    args: &[&str],
    trigger: fn(&str) -> bool,
) -> Ended {
    let mut cmd = worker::command(config);
    cmd.args(args)
        .env("RUNS_REPLICATOR_CLICKHOUSE_GIVE_UP_AFTER_MS", GIVE_UP)
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = process::spawn(cmd).expect("start the command");
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut lines = Vec::new();
        let mut killed = false;
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if !killed && trigger(&line) {
                ch.kill();
                killed = true;
                let _ = tx.send(Instant::now());
            }
            lines.push(line);
        }
        lines
    });
    let killed = rx
        .recv_timeout(Duration::from_secs(120))
        .unwrap_or_else(|_| panic!("the command never logged {:?}", args));
    let exited = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if killed.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "{args:?} still running a minute after ClickHouse went down: it hangs through the \
                 outage instead of giving up after {GIVE_UP} ms"
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let after_kill = killed.elapsed();
    Ended {
        code: exited.code(),
        stderr: reader.join().unwrap(),
        after_kill,
    }
}

fn assert_gave_up(ended: &Ended, mode: &str) {
    let last = ended.stderr.last().cloned().unwrap_or_default();
    println!(
        "{mode}: exit {:?} {:.1} s after ClickHouse went down; last line: {last}",
        ended.code,
        ended.after_kill.as_secs_f64()
    );
    assert_eq!(ended.code, Some(2), "{}", ended.stderr.join("\n"));
    assert!(
        ended.after_kill < Duration::from_secs(20),
        "gives up about {GIVE_UP} ms into the outage: {:?}",
        ended.after_kill
    );
    assert!(
        last.starts_with(&format!(
            "runs-replicator: {mode}: ClickHouse: gave up after 4s"
        )),
        "one line says why: {last}"
    );
    assert!(last.contains("clickhouse.give_up_after_ms"), "{last}");
    for line in &ended.stderr {
        assert!(
            !line.contains(PASSWORD),
            "no password in any output: {line}"
        );
    }
}

#[tokio::test]
async fn backfill_and_verify_repair_exit_2_when_clickhouse_stays_down_past_give_up_after_ms() {
    let ch: &'static ChServer = Box::leak(Box::new(ChServer::start(&[
        "--user",
        "default",
        "--password",
        PASSWORD,
    ])));
    let mut env = TestEnv::new("vf_outage").await;
    env.ch = ch;
    env.ch_db = ch.create_database("vf_outage").await;
    let pg = env.pg_client().await;
    for part in 0..20 {
        let ids: Vec<String> = (0..1000)
            .map(|i| format!("run_out_{:05}", part * 1000 + i))
            .collect();
        pg.batch_execute(&insert_many_sql("task_run_v2", &ids, &[]))
            .await
            .unwrap();
    }
    // Many small inserts, so that ClickHouse goes down in the middle of them.
    let config = env.write_config(
        process::free_port(),
        &format!(
            "[clickhouse]\npassword = \"{PASSWORD}\"\n[batch]\nmax_rows = 200\n\
             [backfill]\nchunk_rows = 2000\nparallel = 1\n[verify]\npayloads = false\n"
        ),
    );
    println!("20,000 runs in Postgres; ClickHouse is killed once each command starts writing");

    let backfill = tokio::task::spawn_blocking({
        let config = config.clone();
        // Once the first chunk of runs is stored: the next chunk's inserts meet the outage.
        move || {
            through_outage(ch, &config, &["backfill"], |l| {
                l.contains("backfill chunk copied")
                    && l.contains("task_run_v2")
                    && l.contains("chunk=0")
            })
        }
    })
    .await
    .unwrap();
    assert_gave_up(&backfill, "backfill");
    ch.restart();

    // Most runs are missing from ClickHouse now: the repair has thousands to rewrite.
    let repair = tokio::task::spawn_blocking({
        let config = config.clone();
        move || {
            through_outage(ch, &config, &["verify", "--repair"], |l| {
                l.contains("repair: rewriting drifted runs")
            })
        }
    })
    .await
    .unwrap();
    assert_gave_up(&repair, "verify");
    ch.restart();

    // Nothing lost: the backfill resumes from its checkpoints, and then ClickHouse equals Postgres.
    let out = tokio::task::spawn_blocking({
        let config = config.clone();
        move || {
            let mut cmd = worker::command(&config);
            cmd.args(["backfill", "--format", "json"]);
            cmd.output().unwrap()
        }
    })
    .await
    .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = verify(&config, &["--format", "json"]);
    let r = json(&out);
    assert_eq!(out.status.code(), Some(0), "{r}");
    assert_eq!(r["runs_compared"], 20_000);
    println!("after the outage: the backfill resumed, and verify finds 20,000 runs in sync");
}
