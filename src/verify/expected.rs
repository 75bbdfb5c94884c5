//! The Postgres side of a verify: what ClickHouse should hold, from a snapshot of every source,
//! through the backfill's machinery — its snapshot (`L`, the transactions in flight waited for),
//! its chunk plan and COPY, and its `RowAdder`, which is the stream's own transform input path
//! (`pipeline::changes::add_row`). No second transform.
//!
//! [`read_window`] reads every run of the window and keeps only a hash per run;
//! [`read_runs`] reads a few runs in full (the re-checks).

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use tokio::task::JoinSet;
use tokio_postgres::Client;

use super::VerifyError;
use super::canonical;
use super::window::VerifyWindow;
use crate::backfill::chunks::{self, Chunk};
use crate::backfill::copier::{self, Consumer, Limits, RowAdder};
use crate::backfill::snapshot::lsn_text;
use crate::backfill::{BackfillError, Snapshot, SnapshotSource};
use crate::config::{Config, Source};
use crate::pipeline::transaction::Committed;
use crate::rows::RunRow;
use crate::source::relation::TableBinding;
use crate::transform::TransformOptions;

/// Runs per COPY of listed ids.
const IDS_PER_COPY: usize = 5000;

/// Rows transformed and hashed between two yields.
const HASH_BATCH: usize = 512;

/// A run as the window read found it: the generation of its winning copy and its row's hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Expected {
    pub generation: u8,
    pub digest: u64,
}

/// A source's snapshot, as a verify used it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Snap {
    pub source: String,
    /// Every transaction that commits before it is in the snapshot (backfill's `L`).
    #[serde(serialize_with = "as_lsn")]
    pub lsn: u64,
    /// Every transaction in the snapshot committed before it.
    #[serde(serialize_with = "as_lsn")]
    pub upper: u64,
    /// `Snapshot::shift`: versions compare with `lsn + shift` (0 unless the server failed over).
    #[serde(skip)]
    pub shift: u64,
}

impl Snap {
    /// `L`'s position in `_version`.
    pub fn version_lsn(&self) -> u64 {
        self.lsn.saturating_add(self.shift)
    }
}

fn as_lsn<S: serde::Serializer>(v: &u64, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&lsn_text(*v))
}

/// How the window is read.
#[derive(Debug, Clone, Copy)]
pub struct ReadOptions {
    /// Connections sharing each source's snapshot.
    pub parallel: usize,
    pub chunk_rows: u64,
    /// A sleep between chunks (the daemon's background verify).
    pub pause: Duration,
    /// Whether the hash carries the payload marker (every expected run has a payload row).
    pub payloads: bool,
}

/// Every run of the window, hashed.
#[derive(Debug, Default)]
pub struct WindowRead {
    pub runs: HashMap<String, Expected>,
    pub rows_read: u64,
    pub skipped: u64,
    pub snapshots: Vec<Snap>,
}

impl WindowRead {
    /// Keeps the higher generation's copy of a run present twice.
    fn add(&mut self, run_id: String, e: Expected) {
        match self.runs.get_mut(&run_id) {
            Some(have) if have.generation >= e.generation => {}
            Some(have) => *have = e,
            None => {
                self.runs.insert(run_id, e);
            }
        }
    }
}

fn binding(source: &Source, table: &str) -> TableBinding {
    TableBinding::selected(&source.schema, table, source.generation(table))
}

fn transform(config: &Config) -> TransformOptions {
    TransformOptions {
        fingerprint_errors: config.transform.fingerprint_errors,
    }
}

/// Hashes the committed rows of a COPY.
struct Digests {
    out: Vec<(String, Expected)>,
    payload: Option<bool>,
}

impl Consumer for Digests {
    async fn consume(&mut self, mut rows: Committed) -> Result<(), BackfillError> {
        for row in rows.rows.drain() {
            let e = Expected {
                generation: (row._version >> 56) as u8,
                digest: canonical::digest(&row, self.payload),
            };
            self.out.push((row.run_id, e));
        }
        // The daemon runs everything on one thread: let the stream in between.
        tokio::task::yield_now().await;
        Ok(())
    }
}

/// Keeps the committed rows of a COPY.
#[derive(Default)]
struct Rows(Vec<RunRow>);

impl Consumer for Rows {
    async fn consume(&mut self, mut rows: Committed) -> Result<(), BackfillError> {
        self.0.extend(rows.rows.drain().map(|r| *r));
        Ok(())
    }
}

/// Reads every run of `window` in every source, one snapshot per source.
pub async fn read_window(
    config: &Arc<Config>,
    sources: &[Arc<Source>],
    window: &VerifyWindow,
    options: ReadOptions,
) -> Result<WindowRead, VerifyError> {
    let mut read = WindowRead::default();
    for source in sources {
        let snapshot = Snapshot::open(
            config,
            source,
            SnapshotSource::Fresh,
            options.parallel.max(1),
        )
        .await?;
        read.snapshots.push(Snap {
            source: source.name.clone(),
            lsn: snapshot.lsn,
            upper: snapshot.upper,
            shift: snapshot.shift,
        });
        let mut queue = VecDeque::new();
        for table in &source.tables {
            let plan = chunks::plan_table(
                snapshot.first(),
                &source.schema,
                table,
                &window.pg,
                options.chunk_rows,
            )
            .await?;
            queue.extend(plan.chunks());
        }
        let queue = Arc::new(Mutex::new(queue));
        let (lsn, shift) = (snapshot.lsn, snapshot.shift);
        let mut tasks = JoinSet::new();
        for client in snapshot.into_connections() {
            let job = WindowJob {
                config: config.clone(),
                source: source.clone(),
                window: window.clone(),
                queue: queue.clone(),
                options,
                lsn,
                shift,
            };
            tasks.spawn(async move { job.run(client).await });
        }
        while let Some(joined) = tasks.join_next().await {
            let (rows, rows_read, skipped) =
                joined.map_err(|e| VerifyError::Task(e.to_string()))??;
            read.rows_read += rows_read;
            read.skipped += skipped;
            for (id, e) in rows {
                read.add(id, e);
            }
        }
    }
    Ok(read)
}

/// One connection of the window read: takes chunks until none are left.
struct WindowJob {
    config: Arc<Config>,
    source: Arc<Source>,
    window: VerifyWindow,
    queue: Arc<Mutex<VecDeque<Chunk>>>,
    options: ReadOptions,
    lsn: u64,
    shift: u64,
}

type JobOutput = (Vec<(String, Expected)>, u64, u64);

impl WindowJob {
    async fn run(self, client: Client) -> Result<JobOutput, VerifyError> {
        let transform = transform(&self.config);
        // Hashed a few hundred rows at a time, yielding in between: in the daemon the stream
        // shares this thread.
        let limits = Limits {
            max_rows: HASH_BATCH,
            ..limits(&self.config)
        };
        let mut digests = Digests {
            out: Vec::new(),
            payload: self.options.payloads.then_some(true),
        };
        let (mut rows_read, mut skipped) = (0, 0);
        let mut first = true;
        loop {
            let next = self
                .queue
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .pop_front();
            let Some(chunk) = next else { break };
            if !first && !self.options.pause.is_zero() {
                tokio::time::sleep(self.options.pause).await;
            }
            first = false;
            let mut adder = RowAdder::new(
                binding(&self.source, &chunk.table),
                &transform,
                false,
                false,
                self.lsn,
            )
            .with_shift(self.shift);
            let sql = chunks::copy_sql(&self.source.schema, &chunk, &self.window.pg);
            copier::copy_rows(&client, &sql, &mut adder, limits, &|_| {}, &mut digests).await?;
            rows_read += adder.rows_read;
            skipped += adder.skipped;
        }
        Ok((digests.out, rows_read, skipped))
    }
}

fn limits(config: &Config) -> Limits {
    Limits {
        max_bytes: config.backfill.max_bytes as usize,
        max_rows: config.batch.max_rows,
    }
}

/// The runs `ids` read in full from a fresh snapshot of every source: the winning copy of each
/// run present in the window (transformed rows, any copy rejected by the transform left out).
pub async fn read_runs(
    config: &Config,
    sources: &[Arc<Source>],
    ids: &[String],
    window: Option<&VerifyWindow>,
) -> Result<RunsRead, VerifyError> {
    let mut winners: HashMap<String, RunRow> = HashMap::new();
    let mut snaps = Vec::new();
    let mut rows_read = 0;
    for source in sources {
        let (rows, snap) = copy_runs(config, source, ids, window).await?;
        snaps.push(snap);
        rows_read += rows.len() as u64;
        for row in rows {
            match winners.get(&row.run_id) {
                Some(have) if have._version >> 56 >= row._version >> 56 => {}
                _ => {
                    winners.insert(row.run_id.clone(), row);
                }
            }
        }
    }
    Ok(RunsRead {
        winners,
        snapshots: snaps,
        rows_read,
    })
}

/// A few runs read in full.
#[derive(Debug, Default)]
pub struct RunsRead {
    /// The winning copy of each run that has one in the window.
    pub winners: HashMap<String, RunRow>,
    pub snapshots: Vec<Snap>,
    pub rows_read: u64,
}

/// Every row of `ids` in `source`'s tables (all copies) from one fresh snapshot.
pub async fn copy_runs(
    config: &Config,
    source: &Source,
    ids: &[String],
    window: Option<&VerifyWindow>,
) -> Result<(Vec<RunRow>, Snap), VerifyError> {
    let snapshot = Snapshot::open(config, source, SnapshotSource::Fresh, 1).await?;
    let snap = Snap {
        source: source.name.clone(),
        lsn: snapshot.lsn,
        upper: snapshot.upper,
        shift: snapshot.shift,
    };
    let rows = copy_runs_in(config, source, &snapshot, ids, window).await?;
    Ok((rows, snap))
}

/// Every row of `ids` in `source`'s tables (all copies) in `snapshot`, stamped with its `L`.
pub async fn copy_runs_in(
    config: &Config,
    source: &Source,
    snapshot: &Snapshot,
    ids: &[String],
    window: Option<&VerifyWindow>,
) -> Result<Vec<RunRow>, VerifyError> {
    let transform = transform(config);
    let mut rows = Rows::default();
    for table in &source.tables {
        for part in ids.chunks(IDS_PER_COPY) {
            let mut adder = RowAdder::new(
                binding(source, table),
                &transform,
                false,
                false,
                snapshot.lsn,
            )
            .with_shift(snapshot.shift);
            let sql = chunks::ids_copy_sql(&source.schema, table, part, window.map(|w| &w.pg));
            copier::copy_rows(
                snapshot.first(),
                &sql,
                &mut adder,
                limits(config),
                &|_| {},
                &mut rows,
            )
            .await?;
        }
    }
    Ok(rows.0)
}
