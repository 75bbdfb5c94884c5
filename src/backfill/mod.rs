//! `runs-replicator backfill` (SPEC §9): copies the current rows of the runs tables into
//! ClickHouse through the same transform and insert path as the stream, online, with versions
//! that never beat a live change, resumably.
//!
//! The orchestration lives here: check the request ([`prepare`]), find the job's checkpoints,
//! open a snapshot ([`snapshot`]), plan the chunks once per job ([`chunks`]), copy the chunks
//! still to do over the snapshot's connections ([`copier`]), checkpoint each ([`checkpoint`]),
//! show progress ([`progress`]) and sum up ([`report`]).
//!
//! Two entry points: [`run`] takes a fresh snapshot (the command line); [`copy`] copies from a
//! [`Snapshot`] the caller opened, e.g. from the snapshot a replication slot exported at
//! creation (the daemon's bootstrap): `prepare` → `Snapshot::open(…, SnapshotSource::Exported
//! { name, lsn }, …)` → release the slot's session → `copy`.

pub mod checkpoint;
pub mod chunks;
pub mod copier;
pub mod lease;
pub mod progress;
pub mod report;
pub mod rewrite;
pub mod snapshot;
pub mod versions;

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use tokio::task::JoinSet;

use crate::config::{Config, Source};
use crate::pg::catalog;
use crate::pipeline::changes::ChangeError;
use crate::pipeline::sink::{Sink, SinkError};
use crate::rows::Col;
use crate::sink::state::StateStore;
use crate::source::relation::TableBinding;
use crate::transform::TransformOptions;

pub use checkpoint::{Checkpoints, JobRecord, JobSpec, Ledger};
pub use chunks::Window;
pub use progress::Display;
pub use report::{Outcome, Summary};
pub use snapshot::{Snapshot, SnapshotSource, WaitReport};

/// Why a backfill cannot run or stopped. Progress made before is checkpointed.
#[derive(Debug, thiserror::Error)]
pub enum BackfillError {
    /// The request cannot be served as given (an unknown table or source, a bad window).
    #[error("{0}")]
    Request(String),
    #[error("Postgres, {what}: {reason}")]
    Postgres { what: String, reason: String },
    #[error("ClickHouse: {0}")]
    Sink(#[from] SinkError),
    #[error("backfill state: {0}")]
    State(String),
    #[error("COPY of {table}: {reason}")]
    Copy { table: String, reason: String },
    #[error("a row cannot be transformed: {0}")]
    Change(#[from] ChangeError),
    #[error("a copy task failed: {0}")]
    Task(String),
    /// Postgres cancelled a copy statement (SQLSTATE 57014): its snapshot's time was up
    /// (`backfill.snapshot_max_s`), or the copy stopped it. The copy goes on from a fresh
    /// snapshot.
    #[error("Postgres cancelled {what} (SQLSTATE 57014)")]
    Cancelled { what: String },
    /// The consumer of a COPY stopped it (a verify's slice holds more than it may keep).
    #[error("the copy was stopped: {0}")]
    Stopped(String),
    /// Transactions that were in flight at `L` did not end within
    /// `backfill.snapshot_wait_timeout_s`: no snapshot was taken.
    #[error(
        "the copy snapshot waited {waited_s} s (backfill.snapshot_wait_timeout_s) for transactions \
         in flight that can write the copied tables, and they have not ended: {waiting_on}. End \
         them (COMMIT PREPARED or ROLLBACK PREPARED a forgotten prepared transaction, \
         pg_terminate_backend(pid) a session left open) or raise backfill.snapshot_wait_timeout_s"
    )]
    SnapshotWait { waited_s: u64, waiting_on: String },
}

/// What to copy, and how.
#[derive(Debug, Clone)]
pub struct Request {
    /// One source by name; `None` for every source, one after the other.
    pub source: Option<String>,
    /// Tables to copy; empty for every configured one.
    pub tables: Vec<String>,
    /// `createdAt` bounds as given (any text Postgres reads as a timestamptz; UTC when no zone).
    pub since: Option<String>,
    pub until: Option<String>,
    /// Only runs updated at or after this time (the gap a lost slot left).
    pub updated_since: Option<String>,
    /// Only one shard's runs: its row filter.
    pub shard: Option<String>,
    /// Payload rows too.
    pub payloads: bool,
    /// Connections copying at once.
    pub parallel: usize,
    /// Start the job over (plan anew, copy every chunk) instead of resuming it.
    pub restart: bool,
    pub display: Display,
    /// A copy a stream owes (the daemon's bootstrap or a lost slot's gap); `None` for an
    /// operator's backfill.
    pub owed: Option<Owed>,
}

/// A copy a stream owes, tied to the pending copy it fills: no other job (an operator's
/// `backfill`, a dry run, the copy an earlier slot owed) stands in for it.
#[derive(Clone)]
pub struct Owed {
    /// The pending copy (`<system id>/<database>/<slot>/<copy id>`): part of the job's identity.
    pub owner: String,
    /// The consistent point of the slot the copy completes: chunks copied below it do not count.
    pub floor: u64,
    /// Told what the snapshot waits on while it waits (for `/readyz`).
    pub waiting: Option<WaitReport>,
}

impl std::fmt::Debug for Owed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Owed")
            .field("owner", &self.owner)
            .field("floor", &snapshot::lsn_text(self.floor))
            .finish()
    }
}

/// The sources a request names: the one `--source` names, or every configured one.
pub fn sources(config: &Config, request: &Request) -> Result<Vec<Arc<Source>>, BackfillError> {
    let all = config.sources();
    match &request.source {
        None => Ok(all),
        Some(name) => match all.iter().find(|s| &s.name == name) {
            Some(s) => Ok(vec![s.clone()]),
            None => Err(BackfillError::Request(format!(
                "unknown source {name:?}: the configured sources are {}",
                all.iter()
                    .map(|s| s.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))),
        },
    }
}

/// `source` as it can be read now: with the default table list, only the tables that exist (at
/// least one must; trigger.dev's schema may not have task_run_v2 yet). A list of the
/// operator's is kept whole: a missing table is then an error where it is read.
pub async fn existing_tables(
    config: &Config,
    source: &Arc<Source>,
) -> Result<Arc<Source>, BackfillError> {
    if source.tables_required {
        return Ok(source.clone());
    }
    let client = snapshot::connect(config, source).await?;
    let found = catalog::read_tables(&client, &source.schema, &source.tables)
        .await
        .map_err(|e| BackfillError::Postgres {
            what: "reading the tables".into(),
            reason: e.reason,
        })?;
    let present: Vec<String> = source
        .tables
        .iter()
        .filter(|t| found.iter().any(|r| &r.name == *t))
        .cloned()
        .collect();
    if present.is_empty() || present.len() == source.tables.len() {
        return Ok(source.clone());
    }
    Ok(Arc::new(source.with_tables(present)))
}

/// Checks the request against `source` and its database, and returns the job it is.
pub async fn prepare(
    config: &Config,
    request: &Request,
    source: &Source,
) -> Result<JobSpec, BackfillError> {
    let configured = &source.tables;
    let mut tables = Vec::new();
    for t in &request.tables {
        if !configured.contains(t) {
            return Err(BackfillError::Request(format!(
                "unknown table {t:?}: the configured tables are {}",
                configured.join(", ")
            )));
        }
        if !tables.contains(t) {
            tables.push(t.clone());
        }
    }
    let named = !tables.is_empty();
    if !named {
        tables = configured.clone();
    }
    let client = snapshot::connect(config, source).await?;
    let schema = &source.schema;
    let found = catalog::read_tables(&client, schema, &tables)
        .await
        .map_err(|e| BackfillError::Postgres {
            what: "reading the tables".into(),
            reason: e.reason,
        })?;
    // The default table list copies the tables that exist (trigger.dev's schema may not have
    // task_run_v2 yet); a table named here, or in a list of the operator's, must exist.
    if !named && !source.tables_required && found.iter().any(|r| tables.contains(&r.name)) {
        tables.retain(|t| {
            let exists = found.iter().any(|r| &r.name == t);
            if !exists {
                tracing::info!(source = %source.name, table = %t, "not copied: it does not exist (yet)");
            }
            exists
        });
    }
    for t in &tables {
        let Some(reading) = found.iter().find(|r| &r.name == t) else {
            return Err(BackfillError::Request(format!(
                "table {schema}.{t} does not exist"
            )));
        };
        let missing: Vec<&str> = Col::ALL
            .iter()
            .map(|c| c.pg_name())
            .filter(|c| !reading.has_column(c))
            .collect();
        if !missing.is_empty() {
            return Err(BackfillError::Request(format!(
                "table {schema}.{t} lacks columns the transform reads: {}",
                missing.join(", ")
            )));
        }
    }
    let window = Window {
        since: canonical_time(&client, "--since", request.since.as_deref()).await?,
        until: canonical_time(&client, "--until", request.until.as_deref()).await?,
        updated_since: canonical_time(&client, "updated since", request.updated_since.as_deref())
            .await?,
        shard: request.shard.clone(),
    };
    if let (Some(s), Some(u)) = (&window.since, &window.until)
        && s >= u
    {
        return Err(BackfillError::Request(format!(
            "--since {s} is not before --until {u}"
        )));
    }
    let url = &source.url;
    Ok(JobSpec {
        source: source.name.clone(),
        database: format!("{}:{}/{}", url.host, url.port, url.dbname),
        schema: schema.clone(),
        tables,
        window,
        payloads: request.payloads,
        owner: request.owed.as_ref().map(|o| o.owner.clone()),
    })
}

/// The checkpoints of the job `spec` as `request` and `config` see it: a dry run's own ledger,
/// and an owed copy's floor.
fn checkpoints(
    config: &Config,
    request: &Request,
    store: Arc<StateStore>,
    spec: &JobSpec,
) -> Checkpoints {
    Checkpoints::new(store, spec, Ledger::of(config.clickhouse.null_sink))
        .with_floor(request.owed.as_ref().map_or(0, |o| o.floor))
}

/// A time as Postgres reads it (`2026-11-20`, `2026-11-20T10:00:00Z`, …), in UTC, in one
/// canonical spelling, so equal windows are the same job.
async fn canonical_time(
    client: &tokio_postgres::Client,
    flag: &str,
    value: Option<&str>,
) -> Result<Option<String>, BackfillError> {
    let Some(value) = value else {
        return Ok(None);
    };
    let row = client
        .query_one(
            "SELECT to_char($1::text::timestamptz AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US')",
            &[&value],
        )
        .await
        .map_err(|e| {
            BackfillError::Request(format!(
                "invalid {flag} {value:?}: {}",
                crate::pg::describe(&e)
            ))
        })?;
    Ok(Some(row.get(0)))
}

/// The `backfill` command: for each source the request names, resumes (or with `restart`,
/// starts over) the job the request is, from a fresh snapshot. A finished job is left alone
/// unless `restart`. One summary; with several sources its tables are named `source.table`.
pub async fn run<S: Sink>(
    config: Arc<Config>,
    request: &Request,
    sink: Arc<S>,
    store: Arc<StateStore>,
) -> Result<Summary, BackfillError> {
    let sources = sources(&config, request)?;
    let mut specs = Vec::new();
    for source in &sources {
        specs.push(prepare(&config, request, source).await?);
    }
    let mut summaries = Vec::new();
    for (source, spec) in sources.iter().zip(specs) {
        let summary = run_source(
            config.clone(),
            request,
            source,
            spec,
            sink.clone(),
            store.clone(),
        )
        .await?;
        summaries.push((source.name.clone(), summary));
    }
    Ok(report::combine(summaries))
}

/// One source's job, from a fresh snapshot.
pub async fn run_source<S: Sink>(
    config: Arc<Config>,
    request: &Request,
    source: &Arc<Source>,
    spec: JobSpec,
    sink: Arc<S>,
    store: Arc<StateStore>,
) -> Result<Summary, BackfillError> {
    store.ensure().await?;
    let checkpoints = checkpoints(&config, request, store.clone(), &spec);
    if !request.restart
        && let Some(job) = checkpoints.load_job().await?
    {
        let done = checkpoints.done(&job).await?;
        if done.len() == job.chunks().len() {
            // The L its rows carry: the lowest of its chunks' (every chunk is at least that new).
            let lowest = done.values().map(|d| d.lsn).min();
            let highest = done.values().map(|d| d.lsn).max();
            let mut summary =
                Summary::new(checkpoints.job_id.clone(), Outcome::AlreadyComplete, lowest);
            summary.lsn_highest = highest
                .filter(|h| Some(*h) != lowest)
                .map(snapshot::lsn_text);
            summary.tables = report::table_summaries(&job, &done);
            summary.close(0.0);
            return Ok(summary);
        }
    }
    let waiting = request.owed.as_ref().and_then(|o| o.waiting.clone());
    let snapshot = Snapshot::open_reporting(
        &config,
        source,
        SnapshotSource::Fresh,
        request.parallel,
        waiting,
    )
    .await?;
    copy(config, source.clone(), spec, request, snapshot, sink, store).await
}

/// Copies the chunks of the job `spec` still to do from `snapshot`: plans the job first when it
/// has no plan yet (or `request.restart`), stamps every row with the snapshot's `L`, marks each
/// chunk done once its rows are stored.
pub async fn copy<S: Sink>(
    config: Arc<Config>,
    source: Arc<Source>,
    spec: JobSpec,
    request: &Request,
    snapshot: Snapshot,
    sink: Arc<S>,
    store: Arc<StateStore>,
) -> Result<Summary, BackfillError> {
    let started = Instant::now();
    store.ensure().await?;
    let checkpoints = checkpoints(&config, request, store, &spec);
    let existing = checkpoints.load_job().await?;
    let job = match existing {
        Some(job) if !request.restart => job,
        previous => {
            // Planned outside the copy snapshot, in bounded statements: the plan needs none.
            let planner = snapshot::connect(&config, &source).await?;
            let mut plans = Vec::new();
            for table in &spec.tables {
                plans.push(
                    chunks::plan_table(
                        &planner,
                        &spec.schema,
                        table,
                        &spec.window,
                        config.backfill.chunk_rows,
                    )
                    .await?,
                );
            }
            let job = JobRecord {
                spec: spec.clone(),
                epoch: previous.map_or(0, |p| p.epoch + 1),
                plans,
            };
            checkpoints.save_job(&job).await?;
            job
        }
    };
    let done_before = checkpoints.done(&job).await?;
    let pending: VecDeque<chunks::Chunk> = job
        .chunks()
        .into_iter()
        .filter(|c| !done_before.contains_key(&(c.table.clone(), c.index)))
        .collect();
    let lsn = snapshot.lsn;
    let shift = snapshot.shift;
    let mut summary = Summary::new(checkpoints.job_id.clone(), Outcome::Complete, Some(lsn));
    summary.snapshot_wait_s = (snapshot.waited.as_secs_f64() * 100.0).round() / 100.0;
    summary.tables = report::table_summaries(&job, &done_before);
    tracing::info!(
        job = %checkpoints.job_id,
        epoch = job.epoch,
        lsn = %snapshot::lsn_text(lsn),
        chunks = pending.len(),
        done_before = done_before.len(),
        "backfill: copying"
    );
    let progress = Arc::new(progress::Progress::new(
        request.display,
        pending.iter().map(|c| c.planned_rows).sum(),
        pending.len() as u64,
        done_before.len() as u64,
    ));
    let queue = Arc::new(Mutex::new(pending));
    let clock = lease::SnapshotClock::new("backfill");
    let waiting = request.owed.as_ref().and_then(|o| o.waiting.clone());
    let terms = lease::Terms::of(&config, clock.clone(), waiting);
    let mut tasks = JoinSet::new();
    for lease in snapshot.into_leases(&terms) {
        let worker = Worker {
            config: config.clone(),
            source: source.clone(),
            sink: sink.clone(),
            checkpoints: checkpoints.clone(),
            progress: progress.clone(),
            queue: queue.clone(),
            epoch: job.epoch,
            window: spec.window.clone(),
            payloads: spec.payloads,
            lsn,
            shift,
        };
        tasks.spawn(async move { worker.run(lease).await });
    }
    let mut results = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        let copied = joined.map_err(|e| BackfillError::Task(e.to_string()))??;
        results.extend(copied);
    }
    progress.finish();
    summary.longest_snapshot_s = (clock.longest().as_secs_f64() * 100.0).round() / 100.0;
    summary.snapshots = clock.count();
    summary.peak_rss_bytes = report::peak_rss_bytes();
    if let Some(highest) = results.iter().filter_map(|(_, d)| d.lsn_highest).max() {
        summary.lsn_highest = Some(snapshot::lsn_text(highest));
    }
    for (table, done) in results {
        if let Some(t) = summary.tables.iter_mut().find(|t| t.table == table) {
            t.add(&done);
        }
    }
    summary.close(started.elapsed().as_secs_f64());
    Ok(summary)
}

/// One copying connection: takes chunks from the shared queue until it is empty.
struct Worker<S: Sink> {
    config: Arc<Config>,
    source: Arc<Source>,
    sink: Arc<S>,
    checkpoints: Checkpoints,
    progress: Arc<progress::Progress>,
    queue: Arc<Mutex<VecDeque<chunks::Chunk>>>,
    epoch: u32,
    window: Window,
    payloads: bool,
    lsn: u64,
    /// `Snapshot::shift`: the rows' versions are `L + shift`, the chunks' records keep `L`.
    shift: u64,
}

impl<S: Sink> Worker<S> {
    async fn run(
        self,
        mut lease: lease::Lease,
    ) -> Result<Vec<(String, checkpoint::ChunkDone)>, BackfillError> {
        let config = &self.config;
        let transform = TransformOptions {
            fingerprint_errors: config.transform.fingerprint_errors,
        };
        let limits = copier::Limits {
            max_bytes: connection_bytes(config),
            max_rows: config.batch.max_rows,
        };
        let mut out = Vec::new();
        loop {
            let next = self
                .queue
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .pop_front();
            let Some(chunk) = next else { break };
            self.progress.chunk_started();
            let binding = TableBinding::selected(
                &self.source.schema,
                &chunk.table,
                self.source.generation(&chunk.table),
            );
            let mut adder = copier::RowAdder::new(
                binding,
                &transform,
                !config.clickhouse.payloads_table.is_empty(),
                self.payloads,
                self.lsn,
            )
            .with_shift(self.shift);
            let progress = self.progress.clone();
            let table = chunk.table.clone();
            let on_rows = move |n| progress.rows(&table, n);
            let done = copier::copy_chunk(
                &mut lease,
                &self.source.schema,
                &chunk,
                &self.window,
                &mut adder,
                &self.sink,
                limits,
                &on_rows,
            )
            .await?;
            // Written while the snapshot idles: bounded like any write.
            lease
                .during(self.checkpoints.mark_done(self.epoch, &chunk, &done))
                .await??;
            self.progress.chunk_done(&chunk, &done);
            out.push((chunk.table.clone(), done));
        }
        lease.release().await?;
        Ok(out)
    }
}

/// Bytes of rows one copying connection buffers before writing: its share of
/// `backfill.memory_bytes` (half of it: the rows built from the text cost about as much again),
/// at most `backfill.max_bytes`.
pub fn connection_bytes(config: &Config) -> usize {
    let b = &config.backfill;
    let share = b.memory_bytes / (2 * b.parallel.max(1) as u64);
    share.min(b.max_bytes).max(64 << 10) as usize
}

#[cfg(test)]
mod tests;
