//! End-to-end benchmark on the real services: Postgres 15, pg_recvlogical, the worker (release
//! build) and the embedded ClickHouse engine. `scripts/bench.sh` starts the services and runs it
//! (`cargo bench --bench e2e -- --pg-url … --ch-url … --worker …`); run alone under `cargo test`
//! it only says how to run it.
//!
//! One run, side by side, on the same backlog:
//! 1. a publication and one slot per drain are created first, so every slot holds the whole
//!    backlog; then the backlog is loaded (inserts, then updates, one transaction per change);
//! 2. pg_recvlogical drains its slot to /dev/null: the source's own limit;
//! 3. the worker drains its slot into ClickHouse, then 4. another with `--null-sink`;
//! 5. a steady load at a fixed rate measures commit-to-visible latency;
//! 6. optionally, a 1,000,000-change backlog measures the worker's peak RSS;
//!
//! and the table of every figure goes to stdout and BENCHMARKS.md (`report.rs`). The steady loads
//! live in `steady.rs`, the load's SQL in `sql.rs`, what /proc says about processes in `procs.rs`.

mod procs;
mod report;
mod sql;
mod steady;

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use procs::{Exit, cpu_seconds, status_mib};
use report::{render, write_report};
use runs_replicator::testing::metrics::{value as metric, value_with as metric_with};
use steady::steady;

const PUBLICATION: &str = "bench_pub";

struct Args {
    pg_url: String,
    ch_url: String,
    ch_pid: Option<u32>,
    worker: PathBuf,
    changes: u32,
    /// Steady loads, one after the other, changes per second.
    steady_rates: Vec<u32>,
    steady_secs: u32,
    /// How often the steady load asks ClickHouse what is visible.
    poll_ms: u64,
    /// The steady load at this rate again with `clickhouse.async_insert` (0: not run).
    async_rate: u32,
    /// The steady load at this rate again through a worker with `--null-sink` (0: not run).
    null_rate: u32,
    /// `batch.min_insert_interval_ms` and `batch.max_bytes` for this build (never for the baseline,
    /// which may not know them); unset: the worker's defaults.
    min_insert_interval_ms: Option<u64>,
    max_bytes: Option<u64>,
    rss_changes: u32,
    out: Option<PathBuf>,
    machine: String,
    max_rows: usize,
    flush_interval_ms: u64,
    max_inflight: usize,
    work_dir: PathBuf,
    label: String,
    /// `perf record -a` around each drain, into this directory.
    perf_dir: Option<PathBuf>,
    /// Another build of the worker (e.g. before an optimization) drained side by side.
    baseline: Option<PathBuf>,
}

fn parse_args() -> Option<Args> {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    // Under `cargo test`, or a bare `cargo bench`, there are no services to measure.
    if !argv.iter().any(|a| a == "--bench") || !argv.iter().any(|a| a == "--pg-url") {
        return None;
    }
    let get = |name: &str| {
        argv.iter()
            .position(|a| a == name)
            .and_then(|i| argv.get(i + 1))
            .cloned()
    };
    let num = |name: &str, default: u64| get(name).map_or(default, |v| v.parse().expect(name));
    Some(Args {
        pg_url: get("--pg-url").expect("--pg-url"),
        ch_url: get("--ch-url").expect("--ch-url"),
        ch_pid: get("--ch-pid").map(|p| p.parse().expect("--ch-pid")),
        worker: get("--worker").expect("--worker").into(),
        changes: num("--changes", 200_000) as u32,
        steady_rates: get("--steady-rates")
            .or_else(|| get("--steady-rate"))
            .unwrap_or_else(|| "200,2000,20000".into())
            .split(',')
            .filter(|r| !r.is_empty())
            .map(|r| r.trim().parse().expect("--steady-rates"))
            .collect(),
        steady_secs: num("--steady-secs", 60) as u32,
        poll_ms: num("--poll-ms", 20),
        async_rate: num("--async-rate", 2000) as u32,
        null_rate: num("--null-rate", 2000) as u32,
        min_insert_interval_ms: get("--min-insert-interval-ms").map(|v| v.parse().expect("ms")),
        max_bytes: get("--max-bytes").map(|v| v.parse().expect("bytes")),
        rss_changes: num("--rss-changes", 0) as u32,
        out: get("--out").map(PathBuf::from),
        machine: get("--machine").unwrap_or_default(),
        max_rows: num("--max-rows", 10_000) as usize,
        flush_interval_ms: num("--flush-interval-ms", 1000),
        max_inflight: num("--max-inflight", 2) as usize,
        work_dir: get("--work-dir")
            .map(PathBuf::from)
            .unwrap_or_else(std::env::temp_dir),
        label: get("--label").unwrap_or_default(),
        perf_dir: get("--perf-dir").map(PathBuf::from),
        baseline: get("--baseline-worker").map(PathBuf::from),
    })
}

fn main() {
    let Some(args) = parse_args() else {
        println!("e2e: needs Postgres, pg_recvlogical and ClickHouse; run scripts/bench.sh");
        return;
    };
    let _ = rustls::crypto::ring::default_provider().install_default();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(run(args));
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

async fn pg(url: &str) -> tokio_postgres::Client {
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap_or_else(|e| panic!("connect to Postgres: {e}"));
    tokio::spawn(conn);
    client
}

async fn lsn(pg: &tokio_postgres::Client, sql: &str) -> u64 {
    let row = pg
        .query_one(&format!("SELECT (({sql}) - '0/0'::pg_lsn)::text"), &[])
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    row.get::<_, Option<String>>(0)
        .and_then(|s| s.parse::<u64>().ok())
        .unwrap_or(0)
}

fn fmt_lsn(v: u64) -> String {
    format!("{:X}/{:X}", v >> 32, v & 0xFFFF_FFFF)
}

/// The backlog: slots, runs and the LSN bounds a drain must reach.
struct Backlog {
    changes: u32,
    /// The WAL position before the last change's commit: an acknowledged LSN above it covers
    /// every change.
    before_last: u64,
    /// The WAL position after the last commit (pg_recvlogical's --endpos).
    end: u64,
    load_s: f64,
}

/// Creates one slot per name, then loads `changes` changes (half inserts, then half updates,
/// both tables, one transaction each) for runs `first..first + changes/4` of each table.
async fn load_backlog(a: &Args, slots: &[&str], changes: u32, first: i32) -> Backlog {
    let pg0 = pg(&a.pg_url).await;
    for slot in slots {
        pg0.execute(
            "SELECT pg_create_logical_replication_slot($1, 'pgoutput')",
            &[slot],
        )
        .await
        .unwrap_or_else(|e| panic!("create slot {slot}: {e}"));
    }
    let per_table = (changes / 4) as i32;
    let last = first + per_table - 1;
    let started = Instant::now();
    for op in ["insert", "update"] {
        let mut tasks = Vec::new();
        for t in ["v1", "v2"] {
            let url = a.pg_url.clone();
            // The very last update is committed on its own below.
            let end = if op == "update" && t == "v2" {
                last - 1
            } else {
                last
            };
            tasks.push(tokio::spawn(async move {
                let c = pg(&url).await;
                c.batch_execute(&format!(
                    "CALL bench_load('{op}', '{t}', {first}, {end}, '2026-11-01 00:00:00')"
                ))
                .await
                .unwrap_or_else(|e| panic!("load {op} {t}: {e}"));
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        eprintln!("  loaded {op}s: {:.1} s", started.elapsed().as_secs_f64());
    }
    let before_last = lsn(&pg0, "pg_current_wal_lsn()").await;
    pg0.batch_execute(&format!(
        "CALL bench_load('update', 'v2', {last}, {last}, '2026-11-01 00:00:00')"
    ))
    .await
    .unwrap();
    let end = lsn(&pg0, "pg_current_wal_lsn()").await;
    let load_s = started.elapsed().as_secs_f64();
    eprintln!(
        "  backlog: {changes} changes in {load_s:.1} s, WAL {} MiB, end {}",
        (end - lsn(&pg0, "(SELECT min(restart_lsn) FROM pg_replication_slots)").await) >> 20,
        fmt_lsn(end)
    );
    Backlog {
        changes,
        before_last,
        end,
        load_s,
    }
}

/// What one drain measured.
#[derive(Default, Clone)]
struct Drain {
    name: String,
    seconds: f64,
    rate: f64,
    cpu_s: f64,
    /// The kernel's part of `cpu_s`.
    sys_s: f64,
    peak_rss_mib: f64,
    walsender_cpu_s: f64,
    clickhouse_cpu_s: f64,
    note: String,
}

/// CPU of the walsender serving `slot`, sampled until `stop` says so; the last reading.
fn walsender_sampler(
    url: String,
    slot: String,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> tokio::task::JoinHandle<(f64, String)> {
    tokio::spawn(async move {
        let c = pg(&url).await;
        let mut pid: Option<u32> = None;
        let mut last = 0.0;
        // What the walsender was doing, sampled: on CPU (no wait event), waiting for the
        // consumer to take data (WalSenderWriteData), waiting for WAL, ...
        let mut waits: std::collections::BTreeMap<String, u32> = Default::default();
        while !stop.load(std::sync::atomic::Ordering::Relaxed) {
            if pid.is_none() {
                let row = c
                    .query_one(
                        "SELECT active_pid FROM pg_replication_slots WHERE slot_name = $1",
                        &[&slot],
                    )
                    .await
                    .unwrap();
                pid = row.get::<_, Option<i32>>(0).map(|p| p as u32);
            }
            if let Some(p) = pid
                && let Some(cpu) = cpu_seconds(p)
            {
                last = cpu;
                if let Ok(row) = c
                    .query_one(
                        "SELECT coalesce(wait_event, 'on CPU') FROM pg_stat_activity WHERE pid = $1",
                        &[&(p as i32)],
                    )
                    .await
                {
                    *waits.entry(row.get::<_, String>(0)).or_default() += 1;
                }
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let total: u32 = waits.values().sum();
        let mut shown: Vec<(u32, String)> = waits.into_iter().map(|(k, v)| (v, k)).collect();
        shown.sort_by(|a, b| b.cmp(a));
        let text = shown
            .iter()
            .take(3)
            .map(|(v, k)| format!("{k} {:.0}%", 100.0 * *v as f64 / total.max(1) as f64))
            .collect::<Vec<_>>()
            .join(", ");
        (last, text)
    })
}

async fn drain_recvlogical(a: &Args, b: &Backlog, slot: &str) -> Drain {
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let ws = walsender_sampler(a.pg_url.clone(), slot.to_string(), stop.clone());
    let ch0 = a.ch_pid.and_then(cpu_seconds);
    let started = Instant::now();
    let mut child = procs::spawn(
        Command::new("pg_recvlogical")
            .args(["-d", &a.pg_url, "--slot", slot, "--start", "--no-loop"])
            .arg(format!("--endpos={}", fmt_lsn(b.end)))
            .args(["-o", "proto_version=1"])
            .arg("-o")
            .arg(format!("publication_names={PUBLICATION}"))
            .args(["-f", "/dev/null"])
            .stdin(Stdio::null()),
    );
    let exit: Exit =
        tokio::task::block_in_place(|| procs::wait_exit(&mut child, Duration::from_secs(3600)))
            .expect("pg_recvlogical finishes");
    assert!(exit.success, "pg_recvlogical failed");
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let ws = ws.await.unwrap();
    let seconds = exit.at.duration_since(started).as_secs_f64();
    let c = pg(&a.pg_url).await;
    let confirmed = lsn(
        &c,
        &format!("SELECT confirmed_flush_lsn FROM pg_replication_slots WHERE slot_name = '{slot}'"),
    )
    .await;
    Drain {
        name: "pg_recvlogical → /dev/null".into(),
        seconds,
        rate: b.changes as f64 / seconds,
        cpu_s: exit.cpu_s,
        sys_s: exit.sys_s,
        peak_rss_mib: exit.max_rss_mib,
        walsender_cpu_s: ws.0,
        clickhouse_cpu_s: ch_delta(a, ch0),
        note: format!("walsender: {}; slot confirmed {}", ws.1, fmt_lsn(confirmed)),
    }
}

/// A system-wide `perf record` (every process, flat samples) while a drain runs.
struct Perf(Option<std::process::Child>);

impl Perf {
    fn start(a: &Args, name: &str) -> Perf {
        let Some(dir) = &a.perf_dir else {
            return Perf(None);
        };
        std::fs::create_dir_all(dir).unwrap();
        // BENCH_PERF_ARGS replaces the sampling arguments, e.g. "-e page-faults --call-graph dwarf".
        let sampling = std::env::var("BENCH_PERF_ARGS").unwrap_or_else(|_| "-F 999".into());
        let child = Command::new("perf")
            .args(["record", "-a", "-q"])
            .args(sampling.split_whitespace())
            .arg("-o")
            .arg(dir.join(format!("{name}.data")))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .ok();
        std::thread::sleep(Duration::from_millis(300));
        Perf(child)
    }

    fn stop(self) {
        if let Some(mut child) = self.0 {
            procs::signal(child.id(), libc::SIGINT);
            let _ = child.wait();
        }
    }
}

fn ch_delta(a: &Args, before: Option<f64>) -> f64 {
    match (before, a.ch_pid.and_then(cpu_seconds)) {
        (Some(b), Some(n)) => n - b,
        _ => f64::NAN,
    }
}

/// A running worker.
struct Worker {
    child: std::process::Child,
    metrics: String,
    log: PathBuf,
}

/// How a worker is started.
#[derive(Clone, Copy, Default)]
struct Opts {
    /// The build given with --baseline-worker.
    baseline: bool,
    null_sink: bool,
    /// `clickhouse.compression = "none"` (default: lz4).
    plain: bool,
    /// `clickhouse.async_insert = true` (with wait_for_async_insert = 1).
    async_insert: bool,
}

impl Worker {
    fn start(a: &Args, slot: &str, o: Opts) -> Worker {
        let bin = if o.baseline {
            a.baseline.as_ref().expect("--baseline-worker")
        } else {
            &a.worker
        };
        let port = procs::free_port();
        let dir = a.work_dir.join(format!("worker-{slot}"));
        std::fs::create_dir_all(&dir).unwrap();
        let config = dir.join("runs-replicator.toml");
        // Keys the baseline may not know are written only for this build, and only when given.
        let mut batch_extra = String::new();
        if !o.baseline {
            if let Some(ms) = a.min_insert_interval_ms {
                batch_extra.push_str(&format!("min_insert_interval_ms = {ms}\n"));
            }
            if let Some(b) = a.max_bytes {
                batch_extra.push_str(&format!("max_bytes = {b}\n"));
            }
        }
        std::fs::write(
            &config,
            format!(
                r#"[postgres]
url = "{pg}"
publication = "{PUBLICATION}"
slot = "{slot}"
[clickhouse]
url = "{ch}"
compression = "{compression}"
async_insert = {async_insert}
[batch]
max_rows = {max_rows}
flush_interval_ms = {flush}
max_inflight = {inflight}
{batch_extra}[metrics]
listen = "127.0.0.1:{port}"
"#,
                pg = a.pg_url,
                ch = a.ch_url,
                compression = if o.plain { "none" } else { "lz4" },
                async_insert = o.async_insert,
                max_rows = a.max_rows,
                flush = a.flush_interval_ms,
                inflight = a.max_inflight,
            ),
        )
        .unwrap();
        let log = dir.join(if o.null_sink {
            "worker-null.log"
        } else {
            "worker.log"
        });
        let file = std::fs::File::create(&log).unwrap();
        let mut cmd = Command::new(bin);
        let null_sink = o.null_sink;
        cmd.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("NO_COLOR", "1")
            .arg("--config")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(file.try_clone().unwrap())
            .stderr(file);
        if null_sink {
            cmd.arg("--null-sink");
        }
        // Allocator experiments (MIMALLOC_PURGE_DELAY=…) reach the worker.
        for (k, v) in std::env::vars().filter(|(k, _)| k.starts_with("MIMALLOC_")) {
            cmd.env(k, v);
        }
        Worker {
            child: procs::spawn(&mut cmd),
            metrics: format!("127.0.0.1:{port}"),
            log,
        }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn scrape(&self) -> Option<String> {
        procs::http_get(&self.metrics, "/metrics")
    }

    /// (acknowledged LSN, backpressure gauge, batches being inserted).
    fn progress(&self) -> Option<(u64, f64, f64)> {
        let m = self.scrape()?;
        Some((
            metric(&m, "runs_replicator_acknowledged_lsn")? as u64,
            metric(&m, "runs_replicator_backpressure").unwrap_or(0.0),
            metric(&m, "runs_replicator_inflight_batches").unwrap_or(0.0),
        ))
    }

    fn alive(&mut self) -> bool {
        let mut status = 0;
        let r = unsafe { libc::waitpid(self.pid() as i32, &mut status, libc::WNOHANG) };
        r == 0
    }

    /// SIGTERM and wait (it flushes and acknowledges before exiting).
    fn stop(mut self) -> Option<Exit> {
        procs::signal(self.pid(), libc::SIGTERM);
        procs::wait_exit(&mut self.child, Duration::from_secs(60))
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while procs::http_get(&self.metrics, "/readyz").is_none() {
            assert!(
                self.alive() && Instant::now() < deadline,
                "worker not ready; see {}",
                self.log.display()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

async fn drain_worker(a: &Args, b: &Backlog, slot: &str, o: Opts) -> Drain {
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let ws = walsender_sampler(a.pg_url.clone(), slot.to_string(), stop.clone());
    let ch0 = a.ch_pid.and_then(cpu_seconds);
    let started = Instant::now();
    let mut w = Worker::start(a, slot, o);
    let pid = w.pid();
    let (mut cpu, mut hwm) = (0.0, 0.0);
    let mut ready_at = None;
    let (mut samples, mut pressed, mut inflight) = (0u32, 0u32, 0.0);
    let done = loop {
        if ready_at.is_none() && procs::http_get(&w.metrics, "/readyz").is_some() {
            ready_at = Some(started.elapsed().as_secs_f64());
        }
        if let Some((acked, backpressure, busy)) = w.progress() {
            if acked > b.before_last {
                break Instant::now();
            }
            if ready_at.is_some() {
                samples += 1;
                pressed += u32::from(backpressure > 0.0);
                inflight += busy;
            }
        }
        assert!(w.alive(), "the worker exited; see {}", w.log.display());
        cpu = cpu_seconds(pid).unwrap_or(cpu);
        hwm = status_mib(pid, "VmHWM").unwrap_or(hwm);
        assert!(
            started.elapsed() < Duration::from_secs(3600),
            "drain did not finish"
        );
        // Every scrape renders every metric in the worker: often enough to time the end of the
        // drain to 1% of a second, not so often that the scrapes weigh in its CPU.
        tokio::time::sleep(Duration::from_millis(25)).await;
    };
    // Figures at the end of the drain, before the worker is stopped.
    cpu = cpu_seconds(pid).unwrap_or(cpu);
    let sys = procs::cpu_split(pid).map_or(f64::NAN, |(_, s)| s);
    hwm = status_mib(pid, "VmHWM").unwrap_or(hwm);
    let clickhouse_cpu_s = ch_delta(a, ch0);
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (walsender_cpu_s, walsender_waits) = ws.await.unwrap();
    let seconds = done.duration_since(started).as_secs_f64();
    let metrics = w.scrape().unwrap_or_default();
    let batches = metric_with(
        &metrics,
        "runs_replicator_batches_total",
        &[("result", "ok")],
    )
    .unwrap_or(f64::NAN);
    let rows_per_insert = metric(&metrics, "runs_replicator_batch_rows_sum").unwrap_or(f64::NAN)
        / metric(&metrics, "runs_replicator_batch_rows_count").unwrap_or(f64::NAN);
    let exit = w.stop().expect("worker stops on SIGTERM");
    assert!(exit.success, "worker exited with an error");
    let name = match (o.baseline, o.null_sink, o.plain) {
        (false, true, _) => "worker --null-sink",
        (false, false, false) => "worker → ClickHouse",
        (false, false, true) => "worker → ClickHouse, compression none",
        (true, true, _) => "baseline worker --null-sink",
        (true, false, _) => "baseline worker → ClickHouse",
    };
    Drain {
        name: name.into(),
        seconds,
        rate: b.changes as f64 / seconds,
        cpu_s: cpu,
        sys_s: sys,
        peak_rss_mib: hwm,
        walsender_cpu_s,
        clickhouse_cpu_s,
        note: format!(
            "walsender: {walsender_waits}; ready after {:.2} s; {batches} batches of {rows_per_insert:.0} rows on average; backpressure {:.0}% of the time, {:.1} inserts in flight on average",
            ready_at.unwrap_or(f64::NAN),
            100.0 * pressed as f64 / samples.max(1) as f64,
            inflight / samples.max(1) as f64
        ),
    }
}

/// Truncates the ClickHouse tables, so each drain into ClickHouse starts from the same state,
/// and lets the engine settle.
async fn empty_clickhouse(a: &Args) {
    let client = clickhouse::Client::default().with_url(&a.ch_url);
    for table in ["task_runs_v2", "raw_task_runs_payload_v1"] {
        client
            .query(&format!("TRUNCATE TABLE trigger_dev.{table}"))
            .execute()
            .await
            .unwrap_or_else(|e| panic!("truncate {table}: {e}"));
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
}

/// Runs in ClickHouse: (rows under FINAL, runs still PENDING) among runs created before `until`.
async fn ch_counts(a: &Args) -> (u64, u64) {
    let client = clickhouse::Client::default()
        .with_url(&a.ch_url)
        .with_validation(false);
    client
        .query(
            "SELECT count(), countIf(status = 'PENDING') FROM trigger_dev.task_runs_v2 FINAL \
             WHERE created_at < '2026-11-20 00:00:00'",
        )
        .fetch_one::<(u64, u64)>()
        .await
        .unwrap_or_else(|e| panic!("count runs in ClickHouse: {e}"))
}

/// A drain into an emptied ClickHouse, checked afterwards: every run there, none left PENDING.
async fn drain_into_clickhouse(
    a: &Args,
    b: &Backlog,
    slot: &str,
    perf_name: &str,
    plain: bool,
) -> Drain {
    empty_clickhouse(a).await;
    let perf = Perf::start(a, perf_name);
    let o = Opts {
        plain,
        ..Opts::default()
    };
    let drain = drain_worker(a, b, slot, o).await;
    perf.stop();
    eprintln!("  {:.0} changes/s", drain.rate);
    let (rows, pending) = ch_counts(a).await;
    assert_eq!(rows, (a.changes / 2) as u64, "ClickHouse holds every run");
    assert_eq!(pending, 0, "every run's update reached ClickHouse");
    drain
}

async fn run(a: Args) {
    let started = Instant::now();
    let pg0 = pg(&a.pg_url).await;
    pg0.batch_execute(&sql::functions()).await.unwrap();
    pg0.batch_execute(&format!(
        "DROP PUBLICATION IF EXISTS {PUBLICATION}; \
         CREATE PUBLICATION {PUBLICATION} FOR TABLE public.\"TaskRun\", public.task_run_v2 \
         WITH (publish = 'insert, update, delete, truncate')"
    ))
    .await
    .unwrap();

    eprintln!("== 1. backlog: {} changes", a.changes);
    let mut slots = vec![
        "bench_recvlogical",
        "bench_ch",
        "bench_ch_plain",
        "bench_null",
    ];
    if a.baseline.is_some() {
        slots.extend(["bench_base_ch", "bench_base_null"]);
    }
    let b = load_backlog(&a, &slots, a.changes, 0).await;

    eprintln!("== 2. pg_recvlogical");
    let perf = Perf::start(&a, "recvlogical");
    let recv = drain_recvlogical(&a, &b, "bench_recvlogical").await;
    perf.stop();
    eprintln!("  {:.0} changes/s", recv.rate);
    let mut drains = vec![recv.clone()];

    if a.baseline.is_some() {
        eprintln!("== baseline worker → ClickHouse, --null-sink");
        empty_clickhouse(&a).await;
        let base = Opts {
            baseline: true,
            ..Opts::default()
        };
        drains.push(drain_worker(&a, &b, "bench_base_ch", base).await);
        let null = Opts {
            null_sink: true,
            ..base
        };
        drains.push(drain_worker(&a, &b, "bench_base_null", null).await);
    }

    eprintln!("== 3. worker → ClickHouse");
    drains.push(drain_into_clickhouse(&a, &b, "bench_ch", "worker-clickhouse", false).await);
    eprintln!("== 3b. worker → ClickHouse, clickhouse.compression = none");
    drains.push(
        drain_into_clickhouse(&a, &b, "bench_ch_plain", "worker-clickhouse-plain", true).await,
    );

    eprintln!("== 4. worker --null-sink");
    let perf = Perf::start(&a, "worker-null");
    let o = Opts {
        null_sink: true,
        ..Opts::default()
    };
    let null = drain_worker(&a, &b, "bench_null", o).await;
    perf.stop();
    eprintln!("  {:.0} changes/s", null.rate);
    drains.push(null);

    // Each load writes runs of its own: 5,000,000 ids apart, above the backlogs' (0.., 20,000,000..).
    let mut loads: Vec<(u32, Opts)> = Vec::new();
    for &rate in &a.steady_rates {
        if rate == a.async_rate && a.baseline.is_some() {
            loads.push((
                rate,
                Opts {
                    baseline: true,
                    ..Opts::default()
                },
            ));
        }
        loads.push((rate, Opts::default()));
        if rate == a.async_rate {
            loads.push((
                rate,
                Opts {
                    async_insert: true,
                    ..Opts::default()
                },
            ));
        }
        if rate == a.null_rate {
            loads.push((
                rate,
                Opts {
                    null_sink: true,
                    ..Opts::default()
                },
            ));
        }
    }
    let mut steadies = Vec::new();
    for (n, (rate, o)) in loads.into_iter().enumerate() {
        eprintln!(
            "== 5.{n}. steady load: {rate}/s for {} s{}{}{}",
            a.steady_secs,
            if o.baseline { ", baseline worker" } else { "" },
            if o.async_insert { ", async_insert" } else { "" },
            if o.null_sink { ", --null-sink" } else { "" }
        );
        let st = steady(&a, "bench_ch", 30_000_000 + 5_000_000 * n as i32, rate, o).await;
        let ms = |v: Option<f64>| v.map_or("–".into(), |v| format!("{v:.0}"));
        eprintln!(
            "  {:.0}/s: p50 {} ms, p99 {} ms, max {} ms (histogram p99 ≤ {} ms), {:.1} inserts/s of {:.0} rows",
            st.achieved_rate,
            ms(st.p50_ms),
            ms(st.p99_ms),
            ms(st.max_ms),
            ms(st.hist_p99.map(|s| s * 1000.0)),
            st.inserts_per_s,
            st.rows_per_insert
        );
        steadies.push(st);
    }

    let mut rss = None;
    if a.rss_changes > 0 {
        eprintln!(
            "== 6. {} -change backlog, worker → ClickHouse",
            a.rss_changes
        );
        let big = load_backlog(&a, &["bench_rss"], a.rss_changes, 20_000_000).await;
        let d = drain_worker(&a, &big, "bench_rss", Opts::default()).await;
        eprintln!(
            "  {:.0} changes/s, peak RSS {:.0} MiB",
            d.rate, d.peak_rss_mib
        );
        rss = Some((big, d));
    }

    let report = render(&a, &b, &drains, &steadies, rss.as_ref());
    println!("{report}");
    if let Some(out) = &a.out {
        write_report(out, &report);
        eprintln!("wrote {}", out.display());
    }
    eprintln!("total {:.0} s", started.elapsed().as_secs_f64());
}
