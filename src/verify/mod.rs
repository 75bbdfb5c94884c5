//! `runs-replicator verify` (SPEC §10): proves ClickHouse `task_runs_v2` (under `FINAL`) equals
//! the transform of the current Postgres rows, every column but `_version`, for the runs of a
//! `created_at` window — while the daemon streams — and with `--repair` puts right what differs.
//!
//! The orchestration lives here ([`run`]):
//! 1. [`prepare`]: the sources ([`Config::sources`], or `--source`), the window ([`window`]).
//! 2. The window pass: a snapshot per source and every run of the window read through the
//!    backfill's COPY and the stream's transform ([`expected`]), one hash per run
//!    ([`canonical`]); the stream waited for past the snapshot ([`slots`]); ClickHouse's sum per
//!    hash range ([`ranges`], `sink::verify_reads`), run hashes in the ranges that differ.
//! 3. The re-checks: the runs whose hashes differ, in full, from fresh snapshots, until each is
//!    in sync or its drift is settled ([`settle`], [`compare`]); a run still pending after the
//!    last round is unsettled, reported apart and never repaired.
//! 4. With `--repair`, [`repair`] of the settled drift; then the [`report`].
//!
//! The daemon runs the same over a recent window in the background ([`continuous`]).

pub mod canonical;
pub mod compare;
pub mod continuous;
pub mod expected;
pub mod ranges;
pub mod repair;
pub mod report;
pub mod settle;
pub mod slots;
pub mod window;

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::backfill::{self, BackfillError};
use crate::config::{Config, Source};
use crate::health::Health;
use crate::pipeline::sink::{Sink, SinkError};
use crate::sink::verify_reads::{PAYLOAD_PRESENT, Scope, VerifyReads};

pub use report::{Phases, Report};
pub use window::Bound;

/// Why a verify cannot check.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// The request cannot be served as given (an unknown source, a bad window).
    #[error("{0}")]
    Request(String),
    #[error("Postgres, {what}: {reason}")]
    Postgres { what: String, reason: String },
    #[error("ClickHouse: {0}")]
    Sink(#[from] SinkError),
    #[error("{0}")]
    Backfill(#[from] BackfillError),
    #[error("a verify task failed: {0}")]
    Task(String),
}

/// What to verify, and how.
#[derive(Debug, Clone)]
pub struct Request {
    /// One source by name; every source when `None`.
    pub source: Option<String>,
    pub since: Option<Bound>,
    pub until: Option<Bound>,
    pub repair: bool,
    /// Connections sharing each source's snapshot in the window pass.
    pub parallel: usize,
    /// A sleep between COPY chunks (the daemon's background verify).
    pub pause: Duration,
    /// Drifted runs listed in the report.
    pub max_report: usize,
    /// Where the daemon's background verify says what it is doing (`/readyz`); `None` for the
    /// command.
    pub progress: Option<Arc<Health>>,
}

/// A prepared verify: everything the passes share.
pub struct Context {
    pub config: Arc<Config>,
    pub sources: Vec<Arc<Source>>,
    pub window: window::VerifyWindow,
    pub scope: Scope,
    pub reads: Arc<VerifyReads>,
    /// Payload rows are checked.
    pub payloads: bool,
    pub wait_timeout: Duration,
    pub rounds: u32,
    pub progress: Option<Arc<Health>>,
}

impl Context {
    /// Says what the verify is doing now, where `/readyz` reads it (the background verify).
    pub fn doing(&self, what: impl FnOnce() -> String) {
        if let Some(p) = &self.progress {
            p.verify_doing(what());
        }
    }
}

/// Checks the request against the configuration and reads its window.
pub async fn prepare(
    config: Arc<Config>,
    request: &Request,
    reads: Arc<VerifyReads>,
) -> Result<Context, VerifyError> {
    let all = config.sources();
    let sources: Vec<Arc<Source>> = match &request.source {
        None => all.clone(),
        Some(name) => {
            let one: Vec<_> = all.iter().filter(|s| &s.name == name).cloned().collect();
            if one.is_empty() {
                let names: Vec<&str> = all.iter().map(|s| s.name.as_str()).collect();
                return Err(VerifyError::Request(format!(
                    "unknown source {name:?}: the configured sources are {}",
                    names.join(", ")
                )));
            }
            one
        }
    };
    // With the default table list, the tables that exist (trigger.dev's schema may not have
    // task_run_v2 yet).
    let mut sources = sources;
    for source in &mut sources {
        *source = backfill::existing_tables(&config, source).await?;
    }
    if !reads.runs_table_exists().await? {
        return Err(VerifyError::Request(format!(
            "ClickHouse has no table {}.{}",
            config.clickhouse.database, config.clickhouse.runs_table
        )));
    }
    let client = backfill::snapshot::connect(&config, &sources[0]).await?;
    let window = window::resolve(&client, request.since.as_ref(), request.until.as_ref()).await?;
    let generations = (sources.len() < all.len()).then(|| {
        sources
            .iter()
            .flat_map(|s| s.generations.values().copied())
            .collect()
    });
    let scope = Scope {
        since_ms: window.since_ms,
        until_ms: window.until_ms,
        generations,
    };
    let payloads = config.verify.payloads && reads.payloads_table().is_some();
    Ok(Context {
        wait_timeout: Duration::from_millis(config.verify.wait_timeout_ms),
        rounds: config.verify.rounds,
        progress: request.progress.clone(),
        config,
        sources,
        window,
        scope,
        reads,
        payloads,
    })
}

/// The `verify` command, and each background verify of the daemon.
pub async fn run<S: Sink>(
    config: Arc<Config>,
    request: &Request,
    reads: Arc<VerifyReads>,
    sink: Arc<S>,
) -> Result<Report, VerifyError> {
    let started = Instant::now();
    let ctx = prepare(config, request, reads).await?;
    let mut report = Report {
        window: ctx.window.describe(),
        since: ctx.window.pg.since.clone(),
        until: ctx.window.pg.until.clone(),
        sources: ctx.sources.iter().map(|s| s.name.clone()).collect(),
        ..Report::default()
    };

    // The window pass.
    let options = expected::ReadOptions {
        parallel: request.parallel,
        chunk_rows: ctx.config.verify.chunk_rows,
        pause: request.pause,
        payloads: ctx.payloads,
    };
    let phase = Instant::now();
    ctx.doing(|| {
        format!(
            "reading the window from Postgres: a snapshot of {} (which first waits for the \
             transactions in flight to end), then COPY",
            report.sources.join(", ")
        )
    });
    let ours = expected::read_window(&ctx.config, &ctx.sources, &ctx.window, options).await?;
    report.phases.postgres = Phases::round(phase.elapsed().as_secs_f64());
    let phase = Instant::now();
    report.snapshots = ours.snapshots.clone();
    report.postgres_runs = ours.runs.len() as u64;
    report.postgres_rows_read = ours.rows_read;
    report.skipped = ours.skipped;
    let mut waits = Vec::new();
    for (source, snap) in ctx.sources.iter().zip(&ours.snapshots) {
        waits.extend(slots::wait(&ctx, source, snap.upper).await?);
    }
    report.slots = waits;
    report.phases.stream = Phases::round(phase.elapsed().as_secs_f64());
    let phase = Instant::now();
    ctx.doing(|| "reading ClickHouse: the window's hash ranges".into());
    let bits = ranges::bits_for(ours.runs.len());
    let range_sql = canonical::range_sql(bits);
    let digest_sql = canonical::digest_sql(ctx.payloads.then_some(PAYLOAD_PRESENT));
    let theirs = ctx
        .reads
        .range_sums(&ctx.scope, &range_sql, &digest_sql)
        .await?;
    report.clickhouse_runs = theirs.iter().map(|r| r.runs).sum();
    let our_sums = ranges::sums(&ours.runs, bits);
    let differing = ranges::differing(&our_sums, &theirs);
    report.ranges = 1 << bits;
    report.ranges_differing = differing.len() as u64;
    let (candidates, only_theirs) = if differing.is_empty() {
        (Vec::new(), 0)
    } else {
        let hashes = ctx
            .reads
            .run_digests(&ctx.scope, &range_sql, &differing, &digest_sql)
            .await?;
        ranges::candidates(&ours.runs, bits, &differing, &hashes)
    };
    drop(ours);
    report.phases.clickhouse = Phases::round(phase.elapsed().as_secs_f64());
    report.runs_compared = report.postgres_runs + only_theirs;
    report.rechecked = candidates.len() as u64;

    // The re-checks.
    let phase = Instant::now();
    let settled = settle::settle(&ctx, candidates).await?;
    report.phases.recheck = Phases::round(phase.elapsed().as_secs_f64());
    report.rounds = settled.rounds;
    report.changed_meanwhile = settled.resolved as u64;
    report.postgres_rows_read += settled.postgres_rows_read;
    if settled.rounds > 0 {
        report.slots = settled.waits.clone();
    }
    let findings: Vec<compare::Finding> =
        settled.drifted.iter().map(|d| d.finding.clone()).collect();
    report.drift = report::DriftCounts::of(&findings);
    report.unsettled = report::UnsettledCounts::of(&settled.unsettled);
    report.runs_in_sync = report
        .runs_compared
        .saturating_sub(report.drift.runs + report.unsettled.runs);
    report.drifted = findings.into_iter().take(request.max_report).collect();
    report.unsettled_runs = settled
        .unsettled
        .iter()
        .take(request.max_report)
        .cloned()
        .collect();
    report.outcome = Report::conclude(&report.drift, &report.unsettled);
    report.in_sync = report.outcome == report::Outcome::InSync;
    for w in &report.slots {
        if w.outcome != slots::Outcome::Passed {
            report.warnings.push(w.describe());
        }
    }
    if request.repair {
        let phase = Instant::now();
        ctx.doing(|| format!("repairing {} drifted run(s)", settled.drifted.len()));
        report.repair = Some(repair::repair(&ctx, &sink, &settled.drifted).await?);
        report.phases.repair = Phases::round(phase.elapsed().as_secs_f64());
    }
    report.clickhouse_rows_read = ctx.reads.rows_read();
    report.seconds = (started.elapsed().as_secs_f64() * 100.0).round() / 100.0;
    Ok(report)
}

#[cfg(test)]
mod tests;
