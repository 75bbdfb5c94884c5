//! `runs-replicator verify` (SPEC §10): proves ClickHouse `task_runs_v2` (under `FINAL`) equals
//! the transform of the current Postgres rows, every column but `_version`, for the runs of a
//! `created_at` window — while the daemon streams — and with `--repair` puts right what differs.
//!
//! The orchestration lives here ([`run`]):
//! 1. [`prepare`]: the sources ([`Config::sources`], or `--source`), the window ([`window`]).
//! 2. The walk ([`walk`]), slice by slice of `createdAt` ([`slices`]), within a fixed memory
//!    budget however large the window: each slice's runs read from Postgres through fresh
//!    snapshots by `--parallel` readers — the backfill's COPY and the stream's transform
//!    ([`expected`]), one hash per run ([`canonical`]); the stream waited for past those
//!    snapshots ([`slots`]); ClickHouse's sum per hash range of the same slice ([`ranges`],
//!    `sink::verify_reads`), run hashes in the ranges that differ.
//! 3. The re-checks, a batch at a time: the runs whose hashes differ, in full, from fresh
//!    snapshots ([`few_runs`]), until each is in sync or its drift is settled ([`settle`],
//!    [`compare`]); a run still pending after the last round is unsettled, reported apart and
//!    never repaired. With `--repair`, [`repair`] of each batch's settled drift.
//! 4. The [`report`]; [`progress`] shows the walk as it goes.
//!
//! The daemon runs the same over a recent window in the background ([`continuous`]).

pub mod canonical;
pub mod compare;
pub mod continuous;
pub mod expected;
pub mod few_runs;
pub mod progress;
pub mod ranges;
pub mod repair;
pub mod report;
pub mod settle;
pub mod slices;
pub mod slots;
pub mod walk;
pub mod window;

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::backfill::lease::SnapshotClock;
use crate::backfill::{self, BackfillError};
use crate::config::{Config, Source};
use crate::health::Health;
use crate::pipeline::sink::{Sink, SinkError};
use crate::sink::verify_reads::{Scope, VerifyReads};

pub use progress::Display;
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
    /// Readers of the window's slices (each its own connection per source).
    pub parallel: usize,
    /// A sleep between slices (the daemon's background verify).
    pub pause: Duration,
    /// How progress is shown.
    pub display: Display,
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
    /// Every snapshot this verify takes, and the longest one held.
    pub clock: Arc<SnapshotClock>,
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
        clock: SnapshotClock::new("verify"),
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

    if ctx.payloads && ctx.reads.payloads_time_index().await? == Some(false) {
        report.warnings.push(format!(
            "the payloads table has no index on created_at: each slice reads whole months of it; \
             add it once (ALTER TABLE {db}.{t} ADD INDEX IF NOT EXISTS idx_created_at created_at \
             TYPE minmax GRANULARITY 1, then ALTER TABLE {db}.{t} MATERIALIZE INDEX idx_created_at)",
            db = ctx.config.clickhouse.database,
            t = ctx.reads.payloads_table().unwrap_or_default(),
        ));
    }
    if request.repair {
        report.repair = Some(repair::Repaired::default());
    }
    walk::walk(&ctx, request, &sink, &mut report).await?;
    report.runs_in_sync = report
        .runs_compared
        .saturating_sub(report.drift.runs + report.unsettled.runs);
    report.outcome = Report::conclude(&report.drift, &report.unsettled);
    report.in_sync = report.outcome == report::Outcome::InSync;
    for w in &report.slots {
        if w.outcome != slots::Outcome::Passed {
            report.warnings.push(w.describe());
        }
    }
    report.phases = report.phases.rounded();
    report.clickhouse_rows_read = ctx.reads.rows_read();
    report.snapshots_taken = ctx.clock.count();
    report.longest_snapshot_s = Phases::round(ctx.clock.longest().as_secs_f64());
    report.peak_rss_bytes = backfill::report::peak_rss_bytes();
    report.memory_budget_bytes = ctx.config.backfill.memory_bytes;
    report.seconds = (started.elapsed().as_secs_f64() * 100.0).round() / 100.0;
    Ok(report)
}

#[cfg(test)]
mod tests;
