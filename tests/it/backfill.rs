//! `runs-replicator backfill` against the real services: copies equal the transform of the
//! Postgres rows column by column; a backfill racing the live stream never leaves a stale row;
//! SIGKILL mid-way resumes; windows; bad input; the snapshot waits for commits before `L`; the
//! bootstrap path from a slot's exported snapshot.

use std::path::Path;
use std::process::Output;
use std::time::Duration;

use crate::replication::start_worker;
use crate::support::expect::{actual_rows, assert_cannot_run, assert_converges};
use crate::support::load::write_mixed;
use crate::support::runs::{insert_sql, lit};
use crate::support::{TestEnv, process, worker};

const CONVERGE: Duration = Duration::from_secs(60);

/// Runs `runs-replicator backfill <args>` with `config` and returns its output.
pub fn backfill(config: &Path, args: &[&str]) -> Output {
    let mut cmd = worker::command(config);
    cmd.arg("backfill").args(args);
    cmd.output().expect("run runs-replicator backfill")
}

/// The `--format json` summary of a run that exited 0.
pub fn summary(out: &Output) -> serde_json::Value {
    assert!(
        out.status.success(),
        "backfill failed ({:?}):\nstdout: {}\nstderr: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("{e}: {stdout}"))
}

fn total(summary: &serde_json::Value, field: &str) -> u64 {
    summary["total"][field].as_u64().unwrap()
}

/// Runs whose values exercise the COPY text format: escapes, NULLs, arrays, booleans, JSON with
/// control characters, a TOASTed output, a row the transform skips.
async fn seed_special(pg: &tokio_postgres::Client) {
    let big: String = (0..40_000)
        .map(|i| char::from(b'a' + (i * 7 % 26) as u8))
        .collect();
    type Seed<'a> = (&'a str, &'a str, Vec<(&'a str, String)>);
    let rows: Vec<Seed> = vec![
        (
            "\"TaskRun\"",
            "run_bf_escapes",
            vec![
                ("status", lit("COMPLETED_WITH_ERRORS")),
                (
                    "output",
                    lit("{\"text\": \"tab\\there\\nnewline \\\\ backslash \\u00e9 \\u0001\"}"),
                ),
                (
                    "runTags",
                    "ARRAY['a\tb', 'c\nd', 'e\\f', 'g\"h', 'NULL']".into(),
                ),
                ("isTest", "true".into()),
                (
                    "error",
                    lit("{\"name\": \"Error\", \"message\": \"line1\\nline2\\ttab\"}"),
                ),
                ("costInCents", "0.1".into()),
                ("payload", lit("{\"x\": \"\\\\N\"}")),
            ],
        ),
        (
            "task_run_v2",
            "2bq8aDrQkxTvTwXAhFCJrQEXbtr",
            vec![
                ("output", lit(&format!("{{\"big\": \"{big}\"}}"))),
                ("isWarmStart", "false".into()),
                (
                    "annotations",
                    lit("{\"triggerSource\": \"api\", \"taskKind\": \"STANDARD\"}"),
                ),
                ("maxDurationInSeconds", "60".into()),
                ("statusReason", "NULL".into()),
            ],
        ),
        (
            "\"TaskRun\"",
            "run_bf_no_org",
            vec![("organizationId", "NULL".into())],
        ),
    ];
    for (table, id, overrides) in rows {
        pg.batch_execute(&insert_sql(table, id, &overrides))
            .await
            .unwrap_or_else(|e| panic!("seed {id}: {e}"));
    }
}

async fn payload_count(env: &TestEnv) -> u64 {
    env.ch_client()
        .query("SELECT count() FROM raw_task_runs_payload_v1 FINAL")
        .fetch_one()
        .await
        .unwrap()
}

#[tokio::test]
async fn backfill_copies_both_tables_column_by_column() {
    let env = TestEnv::new("bf_basic").await;
    let pg = env.pg_client().await;
    // No worker, no slot: the runs exist only in Postgres.
    let written = write_mixed(&env.pg.url(&env.pg_db), 3_000, 11, 0).await;
    seed_special(&pg).await;
    let runs: i64 = pg
        .query_one(
            "SELECT (SELECT count(*) FROM \"TaskRun\") + (SELECT count(*) FROM task_run_v2)",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    println!("injected: {written} mixed changes, {runs} runs in both tables, none in ClickHouse");
    let config = env.write_config(
        process::free_port(),
        "[backfill]\nchunk_rows = 97\nparallel = 2\n",
    );
    let out = backfill(&config, &["--format", "json"]);
    let s = summary(&out);
    println!("summary: {s}");
    assert_eq!(s["outcome"], "complete");
    assert_eq!(total(&s, "rows_read"), runs as u64);
    assert_eq!(total(&s, "skipped"), 1, "the run without organizationId");
    assert_eq!(total(&s, "rejected"), 0);
    assert!(total(&s, "chunks") > 4, "several chunks per table");
    assert_converges(&env, CONVERGE).await;
    assert_eq!(
        payload_count(&env).await,
        0,
        "no payload rows without --payloads"
    );
    println!("checked: ClickHouse FINAL equals the transform of Postgres, column by column");

    // Every row carries the snapshot's L (and its table's generation).
    let lsn = s["lsn"].as_str().unwrap();
    let (hi, lo) = lsn.split_once('/').unwrap();
    let l = (u64::from_str_radix(hi, 16).unwrap() << 32) | u64::from_str_radix(lo, 16).unwrap();
    for row in actual_rows(&env).await.values() {
        assert_eq!(row._version & ((1 << 56) - 1), l, "run {}", row.run_id);
    }

    // The same command again: the job is complete, nothing is read.
    let again = summary(&backfill(&config, &["--format", "json"]));
    assert_eq!(again["outcome"], "already_complete");
    assert_eq!(total(&again, "rows_read"), 0);
    assert_eq!(
        total(&again, "rows_done_before"),
        runs as u64,
        "as recorded"
    );
    assert_eq!(total(&again, "chunks_copied"), 0);

    // --payloads is another job: it copies again, with payload rows.
    let with_payloads = summary(&backfill(&config, &["--payloads", "--format", "json"]));
    assert_eq!(with_payloads["outcome"], "complete");
    assert_eq!(total(&with_payloads, "rows_read"), runs as u64);
    assert_eq!(payload_count(&env).await, runs as u64 - 1);
    assert_converges(&env, CONVERGE).await;

    // The text summary is a table a person reads.
    let text = backfill(&config, &["--restart", "--parallel", "2"]);
    let stdout = String::from_utf8_lossy(&text.stdout);
    let stderr = String::from_utf8_lossy(&text.stderr);
    assert!(text.status.success(), "{stdout}{stderr}");
    println!("{stderr}{stdout}");
    assert!(
        stdout.contains("TaskRun") && stdout.contains("task_run_v2") && stdout.contains("rows/s"),
        "{stdout}"
    );
    // Not a terminal: one log line per chunk.
    let chunk_lines = stderr.matches("backfill chunk copied").count() as u64;
    assert_eq!(chunk_lines, total(&s, "chunks"), "{stderr}");
}

#[tokio::test]
async fn since_and_until_copy_only_runs_created_in_the_window() {
    let env = TestEnv::new("bf_window").await;
    let pg = env.pg_client().await;
    for (table, prefix) in [("\"TaskRun\"", "run_w_legacy"), ("task_run_v2", "run_w_v2")] {
        for day in 1..=9 {
            let id = format!("{prefix}_{day}");
            let created = lit(&format!("2026-11-0{day} 12:00:00"));
            pg.batch_execute(&insert_sql(table, &id, &[("createdAt", created)]))
                .await
                .unwrap();
        }
    }
    let config = env.write_config(process::free_port(), "[backfill]\nchunk_rows = 2\n");
    let s = summary(&backfill(
        &config,
        &[
            "--since",
            "2026-11-03",
            "--until",
            "2026-11-06T12:00:00Z",
            "--format",
            "json",
        ],
    ));
    println!(
        "window [2026-11-03, 2026-11-06 12:00) copied: {}",
        s["total"]
    );
    let mut ids: Vec<String> = actual_rows(&env).await.into_keys().collect();
    ids.sort();
    assert_eq!(
        ids,
        [
            "run_w_legacy_3",
            "run_w_legacy_4",
            "run_w_legacy_5",
            "run_w_v2_3",
            "run_w_v2_4",
            "run_w_v2_5"
        ],
        "createdAt in [since, until): the 6th at 12:00 is excluded"
    );
    assert_eq!(total(&s, "rows_read"), 6);
}

#[tokio::test]
async fn bad_input_exits_2_with_one_line_and_no_password() {
    let env = TestEnv::new("bf_bad").await;
    let password = crate::support::postgres::SUPERUSER_PASSWORD;
    let port = process::free_port();
    let dead = process::free_port();
    let cases: Vec<(&str, String, Vec<&str>)> = vec![
        ("unknown table", String::new(), vec!["--table", "nope"]),
        ("unknown source", String::new(), vec!["--source", "other"]),
        (
            "bad window",
            String::new(),
            vec!["--since", "yesterday-ish"],
        ),
        (
            "unreachable Postgres",
            format!(
                "[postgres]\nurl = \"postgres://postgres:{password}@127.0.0.1:{dead}/x\"\nconnect_timeout_ms = 500\n"
            ),
            vec![],
        ),
        (
            "unreachable ClickHouse",
            format!(
                "[clickhouse]\nurl = \"http://default:{password}@127.0.0.1:{dead}\"\nrequest_timeout_ms = 1000\n"
            ),
            vec![],
        ),
    ];
    for (what, overrides, args) in cases {
        let config = env.write_config(port, &overrides);
        let out = backfill(&config, &args);
        assert_cannot_run(&out, "backfill", what, password);
    }
}

/// A writer that keeps changing the same runs: status, output and updatedAt of a few runs per
/// transaction, some deleted, deleted ones inserted again. It pauses while `pause` is held.
struct Racer {
    rounds: std::sync::atomic::AtomicU64,
    deletes: std::sync::atomic::AtomicU64,
    reinserts: std::sync::atomic::AtomicU64,
    stop: std::sync::atomic::AtomicBool,
    pause: tokio::sync::Mutex<()>,
}

impl Racer {
    async fn run(&self, url: String, runs: Vec<(&'static str, String)>) {
        use std::sync::atomic::Ordering::Relaxed;
        let (pg, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(conn);
        let mut rng = crate::support::load::Rng::new(7);
        let mut live = vec![true; runs.len()];
        while !self.stop.load(Relaxed) {
            let _turn = self.pause.lock().await;
            let round = self.rounds.load(Relaxed);
            let mut sql = vec!["BEGIN".to_string()];
            for _ in 0..3 {
                let i = rng.below(runs.len() as u64) as usize;
                let (table, id) = &runs[i];
                if !live[i] {
                    sql.push(insert_sql(table, id, &[("status", lit("PENDING"))]));
                    live[i] = true;
                    self.reinserts.fetch_add(1, Relaxed);
                } else if rng.below(10) == 0 {
                    sql.push(format!("DELETE FROM {table} WHERE id = '{id}'"));
                    live[i] = false;
                    self.deletes.fetch_add(1, Relaxed);
                } else {
                    let status =
                        ["EXECUTING", "COMPLETED_SUCCESSFULLY", "CRASHED"][rng.below(3) as usize];
                    sql.push(format!(
                        "UPDATE {table} SET status = '{status}', output = '{{\"round\":{round}}}', \
                         \"updatedAt\" = clock_timestamp(), \"attemptNumber\" = {} WHERE id = '{id}'",
                        round % 200
                    ));
                }
            }
            sql.push("COMMIT".into());
            pg.batch_execute(&sql.join(";\n")).await.unwrap();
            self.rounds.fetch_add(1, Relaxed);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backfill_racing_live_updates_of_the_same_runs_never_leaves_a_stale_row() {
    use std::sync::Arc;
    use std::sync::atomic::Ordering::Relaxed;
    let env = TestEnv::new("bf_race").await;
    let pg = env.pg_client().await;
    let mut runs: Vec<(&'static str, String)> = Vec::new();
    for i in 0..120 {
        runs.push(("\"TaskRun\"", format!("run_race_l_{i:03}")));
        runs.push(("task_run_v2", format!("run_race_v_{i:03}")));
    }
    for (table, id) in &runs {
        pg.batch_execute(&insert_sql(table, id, &[])).await.unwrap();
    }
    let _worker = start_worker(&env, "[batch]\nmax_rows = 500\nflush_interval_ms = 20\n").await;
    let racer = Arc::new(Racer {
        rounds: Default::default(),
        deletes: Default::default(),
        reinserts: Default::default(),
        stop: Default::default(),
        pause: Default::default(),
    });
    let writer = {
        let racer = racer.clone();
        let url = env.pg.url(&env.pg_db);
        let runs = runs.clone();
        tokio::spawn(async move { racer.run(url, runs).await })
    };
    // Small chunks, two connections: every backfill copies the runs the writer is changing.
    let config = env.write_config(
        process::free_port(),
        "[backfill]\nchunk_rows = 16\nparallel = 2\n",
    );
    let backfills = 10;
    for b in 1..=backfills {
        let before = racer.rounds.load(Relaxed);
        let cfg = config.clone();
        let out =
            tokio::task::spawn_blocking(move || backfill(&cfg, &["--restart", "--format", "json"]))
                .await
                .unwrap();
        let s = summary(&out);
        let during = racer.rounds.load(Relaxed) - before;
        // Pause the writer; the worker delivers what it wrote; a backfilled row that beat a live
        // change would stay in ClickHouse FINAL for good, so anything short of equality fails.
        let paused = racer.pause.lock().await;
        assert_converges(&env, Duration::from_secs(20)).await;
        println!(
            "backfill {b}/{backfills}: L {}, {} rows copied while {during} writer transactions \
             committed; checked: ClickHouse FINAL == Postgres after the worker caught up",
            s["lsn"].as_str().unwrap(),
            total(&s, "rows_read"),
        );
        drop(paused);
    }
    racer.stop.store(true, Relaxed);
    writer.await.unwrap();
    assert_converges(&env, CONVERGE).await;
    println!(
        "injected: {} writer transactions (3 changes each) on {} runs, {} deletes, {} re-inserts, \
         racing {backfills} backfills; no stale row ever won",
        racer.rounds.load(Relaxed),
        runs.len(),
        racer.deletes.load(Relaxed),
        racer.reinserts.load(Relaxed)
    );
    assert!(racer.rounds.load(Relaxed) >= 1000, "thousands of rounds");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_snapshot_waits_for_a_commit_written_before_l_but_not_yet_visible() {
    // A cluster of its own where a session with synchronous_commit = on writes its commit record
    // and then waits for a synchronous standby that never comes: committed in the WAL (the stream
    // delivers it), invisible to snapshots until the wait is cancelled.
    // Leaked: the environment's checks connect through a &'static cluster; it is stopped when
    // the test binary exits, as every service it starts.
    let cluster: &'static crate::support::PgCluster = Box::leak(Box::new(
        crate::support::PgCluster::start(&[("synchronous_standby_names", "nobody")]),
    ));
    let mut env = TestEnv::new("bf_syncrep").await;
    env.pg = cluster;
    env.pg_db = cluster.create_database("bf_syncrep").await;
    let overrides = format!("[postgres]\nurl = \"{}\"\n", cluster.url(&env.pg_db));
    let pg = cluster.connect(&env.pg_db).await;
    let _worker = start_worker(&env, &overrides).await;
    pg.batch_execute(&insert_sql("\"TaskRun\"", "run_sync_1", &[]))
        .await
        .unwrap();
    assert_converges(&env, CONVERGE).await;

    let hanger = cluster.connect(&env.pg_db).await;
    let pid: i32 = hanger
        .query_one("SELECT pg_backend_pid()", &[])
        .await
        .unwrap()
        .get(0);
    let commit = tokio::spawn(async move {
        hanger
            .batch_execute(
                "SET synchronous_commit = on; \
                 UPDATE \"TaskRun\" SET status = 'COMPLETED_SUCCESSFULLY', \"updatedAt\" = now() \
                 WHERE id = 'run_sync_1'",
            )
            .await
    });
    runs_replicator::testing::wait::wait_for(
        "the commit to wait for its standby",
        CONVERGE,
        || async {
            let row = pg
                .query_one(
                    "SELECT wait_event FROM pg_stat_activity WHERE pid = $1",
                    &[&pid],
                )
                .await
                .ok()?;
            (row.get::<_, Option<String>>(0).as_deref() == Some("SyncRep")).then_some(())
        },
    )
    .await;
    println!(
        "injected: an UPDATE whose commit record is written but not yet visible (SyncRep wait)"
    );

    let config = env.write_config(process::free_port(), &overrides);
    let mut cmd = worker::command(&config);
    cmd.args(["backfill", "--format", "json"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = process::spawn(cmd).expect("start backfill");
    // Seen waiting (its query on the transactions in flight), then given 1.5 s more: a start that
    // is slow on a loaded machine does not count against the wait.
    runs_replicator::testing::wait::wait_for("the backfill to wait for it", CONVERGE, || async {
        let n: i64 = pg
            .query_one(
                "SELECT count(*) FROM pg_stat_activity \
                 WHERE application_name = 'runs-replicator' AND query LIKE '%pg_prepared_xacts%'",
                &[],
            )
            .await
            .ok()?
            .get(0);
        (n > 0).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(
        child.try_wait().unwrap().is_none(),
        "the backfill must wait for the transaction whose commit precedes L"
    );
    pg.query_one("SELECT pg_cancel_backend($1)", &[&pid])
        .await
        .unwrap();
    commit
        .await
        .unwrap()
        .expect("the cancelled wait still commits locally");
    let out = tokio::task::spawn_blocking(move || child.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    let s = summary(&out);
    println!(
        "backfill waited {} s for it, then copied at L {}",
        s["snapshot_wait_s"], s["lsn"]
    );
    assert!(s["snapshot_wait_s"].as_f64().unwrap() >= 1.0, "{s}");
    // The stream delivered the update with its commit's version, below L; the backfilled row (at
    // L) must carry the update too, or the older state would win for good.
    assert_converges(&env, Duration::from_secs(20)).await;
    let row = actual_rows(&env).await.remove("run_sync_1").unwrap();
    assert_eq!(row.status, "COMPLETED_SUCCESSFULLY");
    println!("checked: ClickHouse shows the update, not the state before it");
}

async fn chunks_checkpointed(env: &TestEnv) -> u64 {
    env.ch_client()
        .query("SELECT count() FROM runs_replicator_state FINAL WHERE kind = 'backfill_chunk'")
        .fetch_one()
        .await
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_backfill_then_rerun_resumes_and_converges() {
    let env = TestEnv::new("bf_kill").await;
    let pg = env.pg_client().await;
    let per_table = 4_000;
    for (table, prefix) in [("\"TaskRun\"", "run_kill_l"), ("task_run_v2", "run_kill_v")] {
        for start in (0..per_table).step_by(500) {
            let ids: Vec<String> = (start..start + 500)
                .map(|i| format!("{prefix}_{i:05}"))
                .collect();
            pg.batch_execute(&crate::support::runs::insert_many_sql(table, &ids, &[]))
                .await
                .unwrap();
        }
    }
    let runs = 2 * per_table as u64;
    let config = env.write_config(
        process::free_port(),
        "[backfill]\nchunk_rows = 100\nparallel = 1\n",
    );
    let mut cmd = worker::command(&config);
    cmd.arg("backfill")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    let mut child = process::spawn(cmd).expect("start backfill");
    runs_replicator::testing::wait::wait_for("10 chunks checkpointed", CONVERGE, || async {
        (chunks_checkpointed(&env).await >= 10).then_some(())
    })
    .await;
    child.kill().unwrap();
    let status = child.wait().unwrap();
    let done_at_kill = chunks_checkpointed(&env).await;
    println!(
        "injected: SIGKILL ({status}) after {done_at_kill} of ~{} chunks were checkpointed",
        runs / 100 + 2
    );

    let resumed = summary(&backfill(&config, &["--format", "json"]));
    println!("resumed: {}", resumed["total"]);
    let chunks = total(&resumed, "chunks");
    assert!(done_at_kill < chunks, "killed half-way, not after the end");
    assert!(total(&resumed, "chunks_done_before") >= done_at_kill);
    assert_eq!(
        total(&resumed, "chunks_done_before") + total(&resumed, "chunks_copied"),
        chunks
    );
    let reread = total(&resumed, "rows_read");
    assert_eq!(reread + total(&resumed, "rows_done_before"), runs);
    assert!(
        reread < runs,
        "the rerun reads only the chunks not done: {reread} < {runs}"
    );
    assert_converges(&env, CONVERGE).await;

    let restarted = summary(&backfill(&config, &["--restart", "--format", "json"]));
    assert_eq!(total(&restarted, "chunks_done_before"), 0);
    assert_eq!(total(&restarted, "rows_read"), runs);
    println!(
        "checked: the resumed run read {reread} rows, a restart reads {runs}; ClickHouse equals Postgres"
    );
    assert_converges(&env, CONVERGE).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bootstrap_copies_the_snapshot_a_new_slot_exports_no_gap_no_overlap() {
    use runs_replicator::backfill::{self, Snapshot, SnapshotSource};
    use std::sync::Arc;
    let env = TestEnv::new("bf_export").await;
    let pg = env.pg_client().await;
    let mut ids = Vec::new();
    for (table, prefix) in [("\"TaskRun\"", "run_exp_l"), ("task_run_v2", "run_exp_v")] {
        let batch: Vec<String> = (0..150).map(|i| format!("{prefix}_{i:03}")).collect();
        pg.batch_execute(&crate::support::runs::insert_many_sql(table, &batch, &[]))
            .await
            .unwrap();
        ids.extend(batch.into_iter().map(|id| (table, id)));
    }
    // The publication exists before the slot (pgoutput reads it as of each change).
    pg.batch_execute(&format!(
        "CREATE PUBLICATION {} FOR TABLE \"TaskRun\", task_run_v2",
        env.publication
    ))
    .await
    .unwrap();

    // The slot, created on a replication session that exports its snapshot.
    let cfg = pgwire_replication::ReplicationConfig::new(
        env.pg.host.clone(),
        "postgres",
        crate::support::postgres::SUPERUSER_PASSWORD,
        env.pg_db.clone(),
        env.slot.clone(),
        env.publication.clone(),
    )
    .with_port(env.pg.port);
    let mut session = pgwire_replication::ReplicationClient::connect_gated(cfg)
        .await
        .unwrap();
    let created = session
        .simple_query(&format!(
            "CREATE_REPLICATION_SLOT {} LOGICAL pgoutput (SNAPSHOT 'export')",
            env.slot
        ))
        .await
        .unwrap();
    let text = |i: usize| String::from_utf8(created[0][i].clone().unwrap().to_vec()).unwrap();
    let (consistent_point, snapshot_name) = (text(1), text(2));
    let lsn = backfill::snapshot::parse_lsn(&consistent_point).unwrap();
    println!("slot created at {consistent_point}, snapshot {snapshot_name} exported");

    // Changes after the slot's consistent point: the stream's, not the snapshot's.
    let mut after = vec!["BEGIN".to_string()];
    for (table, id) in ids.iter().step_by(3) {
        after.push(format!(
            "UPDATE {table} SET status = 'EXECUTING', \"updatedAt\" = now() WHERE id = '{id}'"
        ));
    }
    for (table, id) in ids.iter().skip(1).step_by(10) {
        after.push(format!("DELETE FROM {table} WHERE id = '{id}'"));
    }
    after.push("COMMIT".into());
    pg.batch_execute(&after.join(";\n")).await.unwrap();
    let new: Vec<String> = (0..40).map(|i| format!("run_exp_new_{i:02}")).collect();
    pg.batch_execute(&crate::support::runs::insert_many_sql(
        "task_run_v2",
        &new,
        &[],
    ))
    .await
    .unwrap();

    // Import the snapshot on every copy connection, then let the slot's session go.
    let path = env.write_config(process::free_port(), "");
    let config =
        Arc::new(runs_replicator::config::Config::load(Some(&path), &|_| None, &[]).unwrap());
    let source = config.sources().remove(0);
    let snapshot = Snapshot::open(
        &config,
        &source,
        SnapshotSource::Exported {
            name: snapshot_name,
            lsn,
        },
        2,
    )
    .await
    .unwrap();
    drop(session);

    // The daemon streams from the slot while the bootstrap copies.
    let _worker = start_worker(&env, "").await;
    let request = backfill::Request {
        source: None,
        tables: Vec::new(),
        since: None,
        until: None,
        updated_since: None,
        shard: None,
        payloads: false,
        parallel: 2,
        restart: false,
        display: backfill::Display::Lines,
        owed: None,
    };
    let spec = backfill::prepare(&config, &request, &source).await.unwrap();
    let client = runs_replicator::sink::client::build(&config).unwrap();
    let health = Arc::new(runs_replicator::health::Health::new(
        Duration::from_secs(30),
        &[],
    ));
    let sink = Arc::new(runs_replicator::sink::insert::ClickHouseSink::new(
        &config,
        client.clone(),
        health,
    ));
    let store = Arc::new(runs_replicator::sink::state::StateStore::new(
        client,
        Duration::from_secs(30),
    ));
    let summary = backfill::copy(config, source, spec, &request, snapshot, sink, store)
        .await
        .unwrap();
    println!("bootstrap copied: {}", summary.render_json());
    assert_eq!(summary.lsn.as_deref(), Some(consistent_point.as_str()));
    assert_eq!(
        summary.total.rows_read, 300,
        "exactly the rows before the slot"
    );
    assert_converges(&env, CONVERGE).await;
    // Runs nothing touched after the slot carry exactly its consistent point.
    let untouched = actual_rows(&env)
        .await
        .into_values()
        .filter(|r| {
            r.status == "PENDING" && r.run_id.starts_with("run_exp_") && !r.run_id.contains("new")
        })
        .collect::<Vec<_>>();
    assert!(!untouched.is_empty());
    for r in untouched {
        assert_eq!(r._version & ((1 << 56) - 1), lsn, "run {}", r.run_id);
    }
    println!("checked: ClickHouse equals Postgres; the copy carries the slot's consistent point");
}

#[tokio::test]
async fn a_dry_run_writes_no_checkpoint_a_real_backfill_honours() {
    let env = TestEnv::new("bf_dry").await;
    let pg = env.pg_client().await;
    crate::recovery::seed(&pg, "run_bfdry", 120).await;
    let config = env.write_config(process::free_port(), "");
    let dry = summary(&backfill(&config, &["--null-sink", "--format", "json"]));
    assert_eq!(total(&dry, "rows_read"), 240);
    println!("injected: a dry run (--null-sink) of 240 runs");
    let real = summary(&backfill(&config, &["--format", "json"]));
    println!("the real backfill: {}", real["total"]);
    assert_eq!(real["outcome"], "complete", "{real}");
    assert_eq!(
        total(&real, "rows_read"),
        240,
        "the real run copies every run"
    );
    assert_converges(&env, CONVERGE).await;
    let again = backfill(&config, &[]);
    let text = String::from_utf8_lossy(&again.stdout);
    let lsn = real["lsn"].as_str().unwrap();
    let job = real["job_id"].as_str().unwrap();
    assert!(
        text.contains(&format!("backfill job {job} is already complete"))
            && text.contains(&format!("L = {lsn}")),
        "names the job and its L: {text}"
    );
    println!(
        "checked: the dry run's checkpoints were not honoured; a finished job says: {}",
        text.lines().next().unwrap_or("")
    );
}

/// Runs `backfill <args>`, killing it when it has not exited within `limit` (`None` then).
fn backfill_within(config: &Path, args: &[&str], limit: Duration) -> Option<Output> {
    let mut cmd = worker::command(config);
    cmd.arg("backfill")
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = process::spawn(cmd).expect("start backfill");
    let deadline = std::time::Instant::now() + limit;
    while std::time::Instant::now() < deadline {
        if child.try_wait().unwrap().is_some() {
            return Some(child.wait_with_output().unwrap());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = child.kill();
    let _ = child.wait();
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_snapshot_waits_only_for_transactions_that_can_write_the_copied_tables() {
    let env = TestEnv::new("bf_scope").await;
    let pg = env.pg_client().await;
    crate::recovery::seed(&pg, "run_scope", 20).await;
    // A transaction left open in another database of the same cluster.
    let other_db = env.pg.create_database("bf_scope_other").await;
    let other = env.pg.connect(&other_db).await;
    other
        .batch_execute(&format!(
            "BEGIN; {}",
            insert_sql("\"TaskRun\"", "run_elsewhere", &[])
        ))
        .await
        .unwrap();
    println!("injected: a transaction holding an xid, open in another database");
    let config = env.write_config(
        process::free_port(),
        "[backfill]\nsnapshot_wait_timeout_s = 3\n",
    );
    let out = backfill_within(&config, &["--format", "json"], Duration::from_secs(60))
        .expect("the backfill does not wait for another database's transaction");
    let done = summary(&out);
    assert_eq!(total(&done, "rows_read"), 40);
    println!(
        "checked: copied without waiting ({} s)",
        done["snapshot_wait_s"]
    );

    // One left open in this database: waited for, within the limit, then named.
    pg.batch_execute(&format!(
        "BEGIN; {}",
        insert_sql("\"TaskRun\"", "run_open", &[])
    ))
    .await
    .unwrap();
    let pid: i32 = pg
        .query_one("SELECT pg_backend_pid()", &[])
        .await
        .unwrap()
        .get(0);
    let out = backfill_within(&config, &["--restart"], Duration::from_secs(60))
        .expect("the wait is bounded");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("backfill.snapshot_wait_timeout_s")
            && stderr.contains(&format!("of pid {pid}")),
        "names what it waited for: {stderr}"
    );
    println!("checked: exit 2: {}", stderr.trim());
    pg.batch_execute("ROLLBACK").await.unwrap();
    other.batch_execute("ROLLBACK").await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forgotten_prepared_transaction_bounds_the_wait_and_is_named_on_readyz() {
    let cluster: &'static crate::support::PgCluster = Box::leak(Box::new(
        crate::support::PgCluster::start(&[("max_prepared_transactions", "4")]),
    ));
    let mut env = TestEnv::new("bf_prepared").await;
    env.pg = cluster;
    env.pg_db = cluster.create_database("bf_prepared").await;
    let pg = env.pg_client().await;
    crate::recovery::seed(&pg, "run_prep", 20).await;
    pg.batch_execute(&format!(
        "BEGIN; {}; PREPARE TRANSACTION 'forgotten_tx'",
        insert_sql("\"TaskRun\"", "run_prepared", &[])
    ))
    .await
    .unwrap();
    println!("injected: a prepared transaction nobody commits");
    let overrides = "[backfill]\nsnapshot_wait_timeout_s = 4\non_slot_create = true\n";
    let port = process::free_port();
    let config = env.write_config(port, overrides);
    let began = std::time::Instant::now();
    let out = backfill_within(&config, &[], Duration::from_secs(60)).expect("the wait is bounded");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("prepared transaction 'forgotten_tx'"),
        "{stderr}"
    );
    println!(
        "checked: backfill exits 2 after {:.1} s (limit 4 s): {}",
        began.elapsed().as_secs_f64(),
        stderr.trim()
    );

    // The daemon's bootstrap: creating its slot waits for it too, and says so.
    let worker = crate::support::Worker::start(&config, port, &[]);
    let body =
        crate::reliability::wait_unready(&worker, "forgotten_tx", Duration::from_secs(30)).await;
    println!("checked: /readyz: {}", body.trim());
    runs_replicator::testing::wait::wait_for(
        "the daemon to give up and say it tries again",
        Duration::from_secs(60),
        || async { worker.log_text().contains("trying again").then_some(()) },
    )
    .await;
    pg.batch_execute("ROLLBACK PREPARED 'forgotten_tx'")
        .await
        .unwrap();
    println!("fixed: ROLLBACK PREPARED");
    crate::reliability::wait_ready(&worker, Duration::from_secs(60)).await;
    assert_converges(&env, CONVERGE).await;
    println!("checked: the bootstrap then copied every run; equal");
}
