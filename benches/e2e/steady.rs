//! The steady load: changes at a fixed rate through a running worker, each its own transaction,
//! and how long each takes to show in ClickHouse; with the CPU every process used meanwhile.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::procs::{self, cpu_seconds};
use super::{Args, Opts, Worker, metric, metric_with, now_ms, pg};
use runs_replicator::testing::metrics::buckets;

/// The postmaster's pid, from `postmaster.pid` in the cluster's data directory.
async fn postmaster_pid(url: &str) -> Option<u32> {
    let c = pg(url).await;
    let dir: String = c.query_one("SHOW data_directory", &[]).await.ok()?.get(0);
    let text = std::fs::read_to_string(format!("{dir}/postmaster.pid")).ok()?;
    text.lines().next()?.trim().parse().ok()
}

pub(crate) struct Steady {
    /// Which worker, and how it inserts.
    pub(crate) name: String,
    pub(crate) target_rate: u32,
    pub(crate) achieved_rate: f64,
    /// The benchmark's own measurement; `None` through the null sink (nothing to poll).
    pub(crate) p50_ms: Option<f64>,
    pub(crate) p99_ms: Option<f64>,
    pub(crate) max_ms: Option<f64>,
    pub(crate) hist_p50: Option<f64>,
    pub(crate) hist_p99: Option<f64>,
    pub(crate) worker_cpu_per_s: f64,
    /// The ClickHouse process's CPU seconds per second of load.
    pub(crate) clickhouse_cpu_per_s: Option<f64>,
    /// The Postgres cluster's CPU seconds per second of load (the load's sessions, the
    /// walsender, background processes).
    pub(crate) postgres_cpu_per_s: Option<f64>,
    /// The benchmark's own CPU seconds per second of load (the load driver and the poller).
    pub(crate) driver_cpu_per_s: Option<f64>,
    /// Cores the whole machine kept busy during the load (Postgres, the load driver, the worker,
    /// ClickHouse, anything else running).
    pub(crate) machine_busy: Option<f64>,
    /// Worker CPU per change during the load, µs.
    pub(crate) cpu_us_per_change: f64,
    /// Times the worker's threads slept and were woken, per change.
    pub(crate) sleeps_per_change: Option<f64>,
    /// Batches written per second over the load: one insert into each table a batch has rows
    /// for, so the inserts per second of either table are at most this.
    pub(crate) inserts_per_s: f64,
    /// Rows (runs and payloads) per batch.
    pub(crate) rows_per_insert: f64,
    /// Mean and bucket-p99 of one batch insert (runs and payloads), seconds.
    pub(crate) flush_mean: f64,
    pub(crate) flush_p99: Option<f64>,
}

/// A counter or histogram sum of the worker's `/metrics` text.
fn scraped(m: &str, name: &str) -> f64 {
    metric(m, name).unwrap_or(0.0)
}

/// `rate` changes/s for `steady_secs` s (alternating inserts of new runs and updates of runs
/// inserted about a second earlier), each its own transaction with "updatedAt" = the client's
/// clock; visibility is polled in ClickHouse as max(updated_at).
pub(crate) async fn steady(a: &Args, slot: &str, first: i32, rate: u32, o: Opts) -> Steady {
    let mut w = Worker::start(a, slot, o);
    tokio::task::block_in_place(|| w.wait_ready());
    let pid = w.pid();
    let start = Counters::read(a, pid);
    let mut cluster = postmaster_pid(&a.pg_url).await.map(procs::ClusterCpu::new);
    let mut sampled = Instant::now();
    let m0 = w.scrape().unwrap_or_default();
    let batches0 =
        metric_with(&m0, "runs_replicator_batches_total", &[("result", "ok")]).unwrap_or(0.0);
    let (rows0, count0) = (
        scraped(&m0, "runs_replicator_batch_rows_sum"),
        scraped(&m0, "runs_replicator_batch_rows_count"),
    );
    // A commit takes a round trip and a WAL flush; enough sessions that the load keeps its rate.
    // Each session runs one change at a time, taken from a queue filled at the load's pace, so a
    // change's clock starts when its statement is sent, not while it waits behind others; enough
    // sessions that a commit (a round trip and a WAL flush) keeps up with the rate.
    let conns = (rate as usize / 200).clamp(4, 48);
    let start_ms = now_ms();
    let t0 = Instant::now();
    let total = rate as u64 * a.steady_secs as u64;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<i64>();
    let (jobs, queue) = tokio::sync::mpsc::unbounded_channel::<u64>();
    let queue = std::sync::Arc::new(tokio::sync::Mutex::new(queue));
    let mut sessions = tokio::task::JoinSet::new();
    for _ in 0..conns {
        let c = pg(&a.pg_url).await;
        // The cluster runs with synchronous_commit = off to load backlogs quickly; then a commit
        // reaches the walsender only at the WAL writer's next flush (wal_writer_delay, 200 ms).
        // Production commits wait for the flush, so these do too.
        c.batch_execute("SET synchronous_commit = on")
            .await
            .unwrap();
        let (queue, tx) = (queue.clone(), tx.clone());
        let rate = rate as u64;
        sessions.spawn(async move {
            loop {
                let Some(k) = queue.lock().await.recv().await else {
                    return;
                };
                let (op, t, i) = steady_change(k, first, rate);
                let ts = now_ms();
                let row = c
                    .query_one(
                        &format!(
                            "SELECT bench_{op}_{t}($1, (to_timestamp($2::float8 / 1000) AT TIME ZONE 'UTC')::timestamp(3))::text"
                        ),
                        &[&i, &(ts as f64)],
                    )
                    .await
                    .unwrap_or_else(|e| panic!("steady change: {e}"));
                // An update whose run's insert has not committed yet (a commit a second earlier
                // still waiting) changes nothing, and nothing becomes visible.
                if op == "insert" || row.get::<_, Option<String>>(0).as_deref() == Some("1") {
                    let _ = tx.send(ts);
                }
            }
        });
    }
    drop(tx);
    let writer = {
        let rate = rate as u64;
        tokio::spawn(async move {
            for k in 0..total {
                let due = t0 + Duration::from_micros(k * 1_000_000 / rate);
                tokio::time::sleep_until(due.into()).await;
                let _ = jobs.send(k);
            }
            drop(jobs);
            while sessions.join_next().await.is_some() {}
            t0.elapsed()
        })
    };
    let client = clickhouse::Client::default()
        .with_url(&a.ch_url)
        .with_validation(false);
    let mut pending: VecDeque<i64> = VecDeque::new();
    let mut latencies: Vec<f64> = Vec::with_capacity(total as usize);
    let poll = format!(
        "SELECT toUnixTimestamp64Milli(max(updated_at)) FROM trigger_dev.task_runs_v2 \
         WHERE updated_at >= fromUnixTimestamp64Milli(toInt64({start_ms}))"
    );
    // A minute for the last changes to show once the load has been sent, however long sending
    // it took (a rate the machine cannot sustain takes longer than steady_secs).
    let mut deadline = t0 + Duration::from_secs(a.steady_secs as u64 + 60);
    let mut changed = 0u64;
    let mut sent_all = false;
    let mut at_end = String::new();
    let (mut end, mut postgres) = (None, None);
    while !(sent_all && pending.is_empty()) && Instant::now() < deadline {
        loop {
            match rx.try_recv() {
                Ok(ts) => {
                    pending.push_back(ts);
                    changed += 1;
                }
                Err(tokio::sync::mpsc::error::TryRecvError::Disconnected) => {
                    if !sent_all {
                        // The load is over: what the worker wrote during it.
                        at_end = w.scrape().unwrap_or_default();
                        end = Some(Counters::read(a, pid));
                        postgres = cluster.as_mut().map(|c| {
                            c.sample();
                            c.used()
                        });
                        deadline = deadline.max(Instant::now() + Duration::from_secs(60));
                    }
                    sent_all = true;
                    break;
                }
                Err(tokio::sync::mpsc::error::TryRecvError::Empty) => break,
            }
        }
        if !sent_all && sampled.elapsed() >= Duration::from_secs(1) {
            if let Some(c) = cluster.as_mut() {
                c.sample();
            }
            sampled = Instant::now();
        }
        if o.null_sink {
            // Nothing reaches ClickHouse: the worker's own histogram is the measurement.
            pending.clear();
            tokio::time::sleep(Duration::from_millis(a.poll_ms)).await;
            continue;
        }
        let mut sorted: Vec<i64> = pending.drain(..).collect();
        sorted.sort_unstable();
        pending.extend(sorted);
        let max: i64 = client.query(&poll).fetch_one::<i64>().await.unwrap_or(0);
        let seen_at = now_ms();
        while pending.front().is_some_and(|ts| *ts <= max) {
            let ts = pending.pop_front().unwrap();
            latencies.push((seen_at - ts) as f64);
        }
        tokio::time::sleep(Duration::from_millis(a.poll_ms)).await;
    }
    let load = writer.await.unwrap();
    let load_s = load.as_secs_f64();
    if o.null_sink {
        // The last changes pass the worker within a flush interval of the load's end.
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    let end = end.unwrap_or_else(|| Counters::read(a, pid));
    let per_s = |a: Option<f64>, b: Option<f64>| Some((b? - a?) / load_s);
    let cpu = end.worker.unwrap_or(0.0) - start.worker.unwrap_or(0.0);
    let metrics = w.scrape().unwrap_or_default();
    let hist = buckets(&metrics, "runs_replicator_commit_to_clickhouse_seconds");
    let flush = buckets(&metrics, "runs_replicator_flush_duration_seconds");
    let flush_mean = metric(&metrics, "runs_replicator_flush_duration_seconds_sum")
        .unwrap_or(f64::NAN)
        / metric(&metrics, "runs_replicator_flush_duration_seconds_count").unwrap_or(f64::NAN);
    let batches = metric_with(
        &at_end,
        "runs_replicator_batches_total",
        &[("result", "ok")],
    )
    .unwrap_or(0.0)
        - batches0;
    let rows = scraped(&at_end, "runs_replicator_batch_rows_sum") - rows0;
    let counted = scraped(&at_end, "runs_replicator_batch_rows_count") - count0;
    let _ = w.stop();
    assert!(
        sent_all && (o.null_sink || latencies.len() as u64 == changed),
        "not every steady change became visible: {} of {changed} ({total} sent)",
        latencies.len()
    );
    if changed < total {
        eprintln!(
            "  {} updates found their run not yet inserted and changed nothing",
            total - changed
        );
    }
    latencies.sort_by(|x, y| x.partial_cmp(y).unwrap());
    // `None` (shown as "–") without a measurement of its own: the null sink's load.
    let q = |p: f64| {
        let last = latencies.len().checked_sub(1)?;
        Some(latencies[((latencies.len() as f64 * p) as usize).min(last)])
    };
    let name = match (o.baseline, o.async_insert, o.null_sink) {
        (true, _, _) => "baseline worker",
        (false, _, true) => "worker --null-sink (no ClickHouse)",
        (false, true, false) => "worker, async_insert",
        (false, false, false) => "worker",
    };
    Steady {
        name: name.into(),
        target_rate: rate,
        achieved_rate: total as f64 / load.as_secs_f64(),
        p50_ms: q(0.50),
        p99_ms: q(0.99),
        max_ms: latencies.last().copied(),
        hist_p50: procs::bucket_quantile(&hist, 0.5),
        hist_p99: procs::bucket_quantile(&hist, 0.99),
        worker_cpu_per_s: cpu / load_s,
        clickhouse_cpu_per_s: per_s(start.clickhouse, end.clickhouse),
        postgres_cpu_per_s: per_s(Some(0.0), postgres),
        driver_cpu_per_s: per_s(start.driver, end.driver),
        machine_busy: start.busy_cores_until(&end),
        cpu_us_per_change: cpu * 1e6 / total as f64,
        sleeps_per_change: end
            .worker_sleeps
            .zip(start.worker_sleeps)
            .map(|(b, a)| (b - a) as f64 / total as f64),
        inserts_per_s: batches / load_s,
        rows_per_insert: rows / counted.max(1.0),
        flush_mean,
        flush_p99: procs::bucket_quantile(&flush, 0.99),
    }
}

/// Change `k` of the steady load at `rate` changes/s: even k inserts run `first + k/2`, odd k
/// updates the run inserted `rate` changes (one second) earlier; in the first second odd k insert
/// runs of their own. Runs alternate between the tables.
fn steady_change(k: u64, first: i32, rate: u64) -> (&'static str, &'static str, i32) {
    let run = |n: u64| first + n as i32;
    let table = |i: i32| if i % 2 == 0 { "v1" } else { "v2" };
    let back = (rate / 2).max(1);
    if k.is_multiple_of(2) {
        let i = run(k / 2);
        ("insert", table(i), i)
    } else if k / 2 < back {
        let i = run(2_000_000 + k);
        ("insert", table(i), i)
    } else {
        let i = run(k / 2 - back);
        ("update", table(i), i)
    }
}

/// CPU counters of what a steady load involves, read at its start and at its end.
struct Counters {
    worker: Option<f64>,
    worker_sleeps: Option<u64>,
    clickhouse: Option<f64>,
    /// This benchmark: the load driver and the poller.
    driver: Option<f64>,
    /// (busy, all) seconds of the whole machine.
    machine: Option<(f64, f64)>,
}

impl Counters {
    fn read(a: &Args, worker: u32) -> Counters {
        Counters {
            worker: cpu_seconds(worker),
            worker_sleeps: procs::sleeps(worker),
            clickhouse: a.ch_pid.and_then(cpu_seconds),
            driver: cpu_seconds(std::process::id()),
            machine: procs::machine_cpu(),
        }
    }

    /// Cores the whole machine kept busy from `self` to `end`: /proc/stat sums every core, so
    /// the busy share times the cores.
    fn busy_cores_until(&self, end: &Counters) -> Option<f64> {
        let ((b0, t0), (b1, t1)) = (self.machine?, end.machine?);
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
        (t1 > t0).then(|| (b1 - b0) / (t1 - t0) * cores)
    }
}
