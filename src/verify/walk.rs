//! The walk of a verify: its window, slice by slice (`slices`), both sides in the same order,
//! holding only what a few slices need — however large the window.
//!
//! - `--parallel` readers take slices from a shared queue and read each from Postgres through
//!   fresh snapshots (`expected::SliceReader`: COPY, transform, a hash per run; on as many cores);
//!   a slice with more runs than a reader may hold comes back cut in pieces, read next.
//! - One comparer takes each slice read, waits until every slot confirmed the slice's snapshots
//!   (`slots`), then asks ClickHouse for the same slice only (its hash-range sums, then the run
//!   hashes of the ranges that differ: `ranges`) and keeps the runs that differ.
//! - Those runs are re-checked in batches from fresh snapshots until settled (`settle`), and
//!   repaired with `--repair` (`repair`), a batch at a time; the report keeps counts and the
//!   first `--max-report` runs.
//!
//! The slice is the unit of every rule a verify keeps (ARCHITECTURE.md, "A verify reports only
//! settled drift"): its runs are read from snapshots whose `upper` the slots confirmed before
//! ClickHouse is read for it, and a difference is reported only once the re-checks settle it.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::{Notify, mpsc};
use tokio::task::JoinSet;

use super::expected::{Outcome, RUN_BYTES, SliceRead, SliceReader};
use super::progress::{Compared, Progress};
use super::slices::{self, Planner, Slice};
use super::{
    Context, Phases, Report, Request, VerifyError, canonical, ranges, repair, settle, slots,
};
use crate::backfill::lease::Terms;
use crate::pipeline::sink::Sink;
use crate::sink::verify_reads::PAYLOAD_PRESENT;

/// What the walk is doing, for `/readyz` (the background verify).
const READING: &str = "reading the window slice by slice: from Postgres through fresh snapshots \
     (each first waits for the transactions in flight to end), then from ClickHouse";

/// An id's bytes, as the budget counts them (trigger.dev's are 25).
const ID_BYTES: usize = 25;

/// How the walk sizes what it holds, from `backfill.memory_bytes`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sizes {
    /// Runs a slice is planned to hold.
    pub target: u64,
    /// Runs a reader holds of a slice at most; more and it is cut.
    pub cap: usize,
    /// Runs re-checked at once.
    pub batch: usize,
}

/// Half the budget for the slices held at once — one per reader, one waiting, one compared —,
/// a quarter for COPY buffers, a quarter for the runs re-checked in full; at most
/// `verify.chunk_rows` runs per slice.
pub fn sizes(memory_bytes: u64, parallel: usize, chunk_rows: u64) -> Sizes {
    let held = (parallel.max(1) + 2) as u64;
    let by_budget = (memory_bytes / 2 / held / (RUN_BYTES + ID_BYTES) as u64).max(2);
    let cap = by_budget.min(chunk_rows.max(1).saturating_mul(2)).max(2);
    // A re-checked run costs its expected and actual rows (a few KiB without large outputs).
    let batch = (memory_bytes / 4 / (16 << 10)).clamp(8, 1000) as usize;
    Sizes {
        target: (cap / 2).max(1),
        cap: cap as usize,
        batch,
    }
}

/// Slices still to read: taken by the readers, cut pieces put back in front.
struct Queue {
    state: Mutex<(VecDeque<Slice>, usize)>,
    changed: Notify,
}

impl Queue {
    fn new(plan: Vec<Slice>) -> Queue {
        Queue {
            state: Mutex::new((plan.into(), 0)),
            changed: Notify::new(),
        }
    }

    /// The next slice to read; `None` once none is left and none is being read (a slice being
    /// read may come back cut).
    async fn next(&self) -> Option<Slice> {
        loop {
            let changed = self.changed.notified();
            {
                let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
                if let Some(slice) = s.0.pop_front() {
                    s.1 += 1;
                    return Some(slice);
                }
                if s.1 == 0 {
                    return None;
                }
            }
            changed.await;
        }
    }

    /// A slice taken is read, or cut into `pieces` to read next.
    fn done(&self, pieces: Vec<Slice>) {
        {
            let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
            s.1 -= 1;
            for p in pieces.into_iter().rev() {
                s.0.push_front(p);
            }
        }
        self.changed.notify_waiters();
    }
}

/// Plans the slices from ClickHouse's estimate of the runs per minute: from the primary index's
/// marks (each granule's rows at its first `created_at`; nothing read but the index), or where
/// the server cannot say, by counting them, a month (partition) at a time.
async fn plan(ctx: &Context, target: u64) -> Result<(Vec<Slice>, u64), VerifyError> {
    let (since, until) = (ctx.window.since_ms, ctx.window.until_ms);
    let mut planner = Planner::new(since, until, target);
    let mut estimate = 0;
    match ctx.reads.granules(&ctx.scope).await {
        Ok(granules) => {
            for (at, rows) in granules {
                planner.push(at.div_euclid(60_000), rows);
                estimate += rows;
            }
            return Ok((planner.finish(), estimate));
        }
        Err(e) => {
            tracing::debug!(error = %e, "verify: no primary index to plan by; counting runs per minute")
        }
    }
    let parts = ctx.reads.partitions().await?;
    let scopes = match slices::months(&parts) {
        Some(months) => months
            .into_iter()
            .map(slices::month_range)
            .filter(|(a, b)| since.is_none_or(|s| *b > s) && until.is_none_or(|u| *a < u))
            .map(|(a, b)| ctx.scope.within(Some(a), Some(b)))
            .collect(),
        None => vec![ctx.scope.clone()],
    };
    for scope in scopes {
        for (minute, runs) in ctx.reads.minute_counts(&scope).await? {
            planner.push(minute, runs);
            estimate += runs;
        }
    }
    Ok((planner.finish(), estimate))
}

/// One reader: slices from the queue until none is left.
async fn read_slices(
    mut reader: SliceReader,
    queue: Arc<Queue>,
    out: mpsc::Sender<Result<SliceRead, VerifyError>>,
    pause: Duration,
    progress: Arc<Progress>,
    held: Arc<AtomicU64>,
) {
    let mut first = true;
    while let Some(slice) = queue.next().await {
        if !first && !pause.is_zero() {
            tokio::time::sleep(pause).await;
        }
        first = false;
        progress.started();
        match reader.read(&slice).await {
            Ok(Outcome::Read(read)) => {
                progress.read(read.rows_read, 0);
                held.fetch_add(read.runs.len() as u64, Ordering::Relaxed);
                queue.done(Vec::new());
                if out.send(Ok(read)).await.is_err() {
                    break;
                }
            }
            Ok(Outcome::Split(pieces)) => {
                progress.read(0, pieces.len() as u64);
                queue.done(pieces);
            }
            Err(e) => {
                queue.done(Vec::new());
                let _ = out.send(Err(e)).await;
                break;
            }
        }
    }
    if let Err(e) = reader.close().await {
        tracing::debug!(error = %e, "verify: ending a reader's snapshots");
    }
}

/// Walks the window: every slice read and compared, the runs that differ settled (and repaired
/// with `request.repair`), into `report`.
pub async fn walk<S: Sink>(
    ctx: &Context,
    request: &Request,
    sink: &Arc<S>,
    report: &mut Report,
) -> Result<(), VerifyError> {
    let parallel = request.parallel.max(1);
    let sizes = sizes(
        ctx.config.backfill.memory_bytes,
        parallel,
        ctx.config.verify.chunk_rows,
    );
    ctx.doing(|| "planning the window's slices from ClickHouse's runs per minute".into());
    let phase = Instant::now();
    let (plan, estimate) = plan(ctx, sizes.target).await?;
    report.phases.clickhouse += phase.elapsed().as_secs_f64();
    report.slice_runs = sizes.cap as u64;
    let progress = Arc::new(Progress::new(request.display, estimate, plan.len() as u64));
    let queue = Arc::new(Queue::new(plan));
    let held = Arc::new(AtomicU64::new(0));
    // The background verify says on /readyz what a reader's fresh snapshot waits on.
    let waiting = ctx.progress.clone().map(|health| {
        let report: crate::backfill::WaitReport = Arc::new(move |w: Option<String>| {
            health.verify_doing(match w {
                Some(w) => format!(
                    "reading a slice from Postgres: its fresh snapshot waits for the \
                     transactions in flight to end: {w}"
                ),
                None => READING.into(),
            })
        });
        report
    });
    let terms = Terms::of(&ctx.config, ctx.clock.clone(), waiting);
    let (tx, mut rx) = mpsc::channel(1);
    let mut readers = JoinSet::new();
    for _ in 0..parallel {
        let reader = SliceReader::connect(
            ctx.config.clone(),
            ctx.sources.clone(),
            ctx.window.clone(),
            &terms,
            sizes.cap,
            ctx.payloads,
        )
        .await?;
        readers.spawn(read_slices(
            reader,
            queue.clone(),
            tx.clone(),
            request.pause,
            progress.clone(),
            held.clone(),
        ));
    }
    drop(tx);
    let digest_sql = canonical::digest_sql(ctx.payloads.then_some(PAYLOAD_PRESENT));
    // Per source, the highest snapshot position its slots confirmed; a slot that did not
    // confirm one is not waited for again in this pass (the re-checks wait for it).
    let mut confirmed: HashMap<String, u64> = HashMap::new();
    let mut given_up: HashMap<String, bool> = HashMap::new();
    let mut first_snaps: HashMap<String, super::expected::Snap> = HashMap::new();
    let mut pending: Vec<String> = Vec::new();
    ctx.doing(|| {
        "reading the window slice by slice from Postgres (fresh snapshots) and ClickHouse".into()
    });
    while let Some(read) = rx.recv().await {
        let read = read?;
        report.slices += 1;
        report.postgres_runs += read.runs.len() as u64;
        report.postgres_rows_read += read.rows_read;
        report.skipped += read.skipped;
        report.phases.postgres += read.seconds;
        report.largest_slice = report.largest_slice.max(read.runs.len() as u64);
        let now_held = held.load(Ordering::Relaxed);
        report.peak_held_runs = report.peak_held_runs.max(now_held);
        for snap in &read.snaps {
            let first = first_snaps
                .entry(snap.source.clone())
                .or_insert_with(|| snap.clone());
            if snap.lsn < first.lsn {
                *first = snap.clone();
            }
        }
        // The stream past this slice's snapshots.
        let phase = Instant::now();
        for (source, snap) in ctx.sources.iter().zip(&read.snaps) {
            let done = confirmed
                .get(&source.name)
                .is_some_and(|c| *c >= snap.upper);
            if done || given_up.get(&source.name).copied().unwrap_or(false) {
                continue;
            }
            let waits = slots::wait(ctx, source, snap.upper).await?;
            if slots::caught_up(&waits) {
                confirmed.insert(source.name.clone(), snap.upper);
            } else {
                given_up.insert(source.name.clone(), true);
            }
            for w in waits {
                report.slots.retain(|s| s.slot != w.slot);
                report.slots.push(w);
            }
        }
        report.phases.stream += phase.elapsed().as_secs_f64();
        // ClickHouse, for this slice only.
        let phase = Instant::now();
        let before = ctx.reads.rows_read();
        let scope = ctx.scope.within(read.slice.lo, read.slice.hi);
        let bits = ranges::bits_for(read.runs.len());
        let range_sql = canonical::range_sql(bits);
        let theirs = ctx
            .reads
            .range_sums(&scope, &range_sql, &digest_sql)
            .await?;
        let clickhouse_runs: u64 = theirs.iter().map(|r| r.runs).sum();
        let differing = ranges::differing(&ranges::sums(&read.runs, bits), &theirs);
        let (candidates, only_theirs) = if differing.is_empty() {
            (Vec::new(), 0)
        } else {
            let hashes = ctx
                .reads
                .run_digests(&scope, &range_sql, &differing, &digest_sql)
                .await?;
            ranges::candidates(&read.runs, bits, &differing, &hashes)
        };
        let seconds = phase.elapsed().as_secs_f64();
        report.phases.clickhouse += seconds;
        report.clickhouse_runs += clickhouse_runs;
        report.runs_compared += read.runs.len() as u64 + only_theirs;
        report.ranges += 1 << bits;
        report.ranges_differing += differing.len() as u64;
        report.rechecked += candidates.len() as u64;
        progress.compared(&Compared {
            slice: &read.slice,
            postgres_runs: read.runs.len() as u64,
            clickhouse_runs,
            ranges_differing: differing.len() as u64,
            candidates: candidates.len() as u64,
            clickhouse_rows_read: ctx.reads.rows_read() - before,
            postgres_seconds: read.seconds,
            clickhouse_seconds: seconds,
        });
        held.fetch_sub(read.runs.len() as u64, Ordering::Relaxed);
        drop(read);
        pending.extend(candidates);
        while pending.len() >= sizes.batch {
            let batch: Vec<String> = pending.drain(..sizes.batch).collect();
            settle_batch(ctx, request, sink, batch, report).await?;
        }
    }
    while let Some(joined) = readers.join_next().await {
        joined.map_err(|e| VerifyError::Task(e.to_string()))?;
    }
    progress.finish();
    if !pending.is_empty() {
        settle_batch(ctx, request, sink, std::mem::take(&mut pending), report).await?;
    }
    let mut snaps: Vec<_> = first_snaps.into_values().collect();
    snaps.sort_by(|a, b| a.source.cmp(&b.source));
    report.snapshots = snaps;
    Ok(())
}

/// Re-checks (and with `--repair`, repairs) one batch of runs that differed.
async fn settle_batch<S: Sink>(
    ctx: &Context,
    request: &Request,
    sink: &Arc<S>,
    ids: Vec<String>,
    report: &mut Report,
) -> Result<(), VerifyError> {
    let mut ids = ids;
    ids.sort();
    ids.dedup();
    let phase = Instant::now();
    let settled = settle::settle(ctx, ids).await?;
    report.phases.recheck += phase.elapsed().as_secs_f64();
    if request.repair && !settled.drifted.is_empty() {
        let phase = Instant::now();
        ctx.doing(|| format!("repairing {} drifted run(s)", settled.drifted.len()));
        let repaired = repair::repair(ctx, sink, &settled.drifted).await?;
        report
            .repair
            .get_or_insert_with(Default::default)
            .add(repaired, request.max_report);
        report.phases.repair += phase.elapsed().as_secs_f64();
    }
    report.add_settled(settled, request.max_report);
    Ok(())
}

impl Phases {
    /// Every phase rounded for the report.
    pub fn rounded(&self) -> Phases {
        Phases {
            postgres: Phases::round(self.postgres),
            stream: Phases::round(self.stream),
            clickhouse: Phases::round(self.clickhouse),
            recheck: Phases::round(self.recheck),
            repair: Phases::round(self.repair),
        }
    }
}
