//! The Postgres side of a verify's walk: the runs of one slice ([`SliceReader::read`]), read
//! through the backfill's machinery — a fresh snapshot per source (its `L`, the transactions in
//! flight waited for; `backfill::lease`), its COPY and `RowAdder`, which is the stream's own
//! transform input path (`pipeline::changes::add_row`) — and kept as a hash per run
//! ([`SliceRuns`]: the id, the generation of the winning copy, the row's hash; about 40 bytes a
//! run). No second transform.
//!
//! A slice's snapshots are ended once it is read, and a COPY runs with `statement_timeout` set to
//! what is left of `backfill.snapshot_max_s`. A slice that holds more runs than the reader may
//! keep, or that cannot be read within the bound, is not kept: the reader stops the COPY
//! (`pg_cancel_backend`), and hands back the `createdAt` of what it read so the walk can cut the
//! slice ([`Outcome::Split`]).

use std::sync::Arc;
use std::time::Instant;

use serde::Serialize;
use tokio_postgres::Client;

use super::VerifyError;
use super::canonical;
use super::slices::{self, Slice};
use super::window::VerifyWindow;
use crate::backfill::BackfillError;
use crate::backfill::chunks;
use crate::backfill::copier::{self, Consumer, Limits, RowAdder};
use crate::backfill::lease::{Lease, Terms};
use crate::backfill::snapshot::{self, lsn_text};
use crate::config::{Config, Source};
use crate::pipeline::transaction::Committed;
use crate::source::relation::TableBinding;
use crate::transform::TransformOptions;

/// Rows transformed and hashed between two yields.
const HASH_BATCH: usize = 512;

/// What a run costs the reader (its id, its hash and generation, its `createdAt`), beyond the id's
/// bytes.
pub const RUN_BYTES: usize = 32;

/// A run as Postgres has it: the generation of its winning copy and its row's hash.
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

#[derive(Debug, Clone, Copy)]
struct Entry {
    start: u32,
    len: u32,
    expected: Expected,
}

/// The runs of one slice, compactly: ids in one buffer, a hash and generation each; sorted by id
/// once [`SliceRuns::finish`]ed.
#[derive(Debug, Default)]
pub struct SliceRuns {
    ids: String,
    entries: Vec<Entry>,
    /// `createdAt` (epoch ms) of every row read, while reading: where to cut an overfull slice.
    created: Vec<i64>,
}

impl SliceRuns {
    pub fn push(&mut self, id: &str, e: Expected, created_at: i64) {
        let start = self.ids.len() as u32;
        self.ids.push_str(id);
        self.entries.push(Entry {
            start,
            len: id.len() as u32,
            expected: e,
        });
        self.created.push(created_at);
    }

    fn id(&self, e: &Entry) -> &str {
        &self.ids[e.start as usize..(e.start + e.len) as usize]
    }

    /// Sorts by id and keeps, of a run present twice (in two tables or sources), the copy of
    /// the higher generation, as ClickHouse's view of the run does.
    pub fn finish(&mut self) {
        self.created = Vec::new();
        let mut entries = std::mem::take(&mut self.entries);
        entries.sort_by(|a, b| {
            self.id(a)
                .cmp(self.id(b))
                .then(b.expected.generation.cmp(&a.expected.generation))
        });
        entries.dedup_by(|later, kept| self.id(later) == self.id(kept));
        self.entries = entries;
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Bytes held.
    pub fn bytes(&self) -> usize {
        self.ids.capacity()
            + self.entries.capacity() * std::mem::size_of::<Entry>()
            + self.created.capacity() * 8
    }

    /// The run `id` (after [`SliceRuns::finish`]).
    pub fn get(&self, id: &str) -> Option<Expected> {
        self.entries
            .binary_search_by(|e| self.id(e).cmp(id))
            .ok()
            .map(|i| self.entries[i].expected)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, Expected)> {
        self.entries.iter().map(|e| (self.id(e), e.expected))
    }

    fn take_created(&mut self) -> Vec<i64> {
        std::mem::take(&mut self.created)
    }
}

/// A slice read from Postgres.
#[derive(Debug)]
pub struct SliceRead {
    pub slice: Slice,
    pub runs: SliceRuns,
    /// The snapshot each source was read through.
    pub snaps: Vec<Snap>,
    pub rows_read: u64,
    pub skipped: u64,
    pub seconds: f64,
}

/// What reading a slice came to.
#[derive(Debug)]
pub enum Outcome {
    Read(SliceRead),
    /// It held more runs than a slice may, or could not be read within the snapshot bound: read
    /// these pieces instead.
    Split(Vec<Slice>),
}

/// Hashes the committed rows of a COPY into a slice's runs, up to `cap` runs.
struct Digests<'a> {
    runs: &'a mut SliceRuns,
    payload: Option<bool>,
    cap: usize,
    text: String,
}

impl Consumer for Digests<'_> {
    async fn consume(&mut self, mut rows: Committed) -> Result<(), BackfillError> {
        for row in rows.rows.drain() {
            let e = Expected {
                generation: (row._version >> 56) as u8,
                digest: canonical::digest_into(&mut self.text, &row, self.payload),
            };
            self.runs.push(&row.run_id, e, row.created_at);
        }
        if self.runs.len() > self.cap {
            return Err(BackfillError::Stopped(format!(
                "the slice holds more than {} runs",
                self.cap
            )));
        }
        // The daemon runs everything on one thread: let the stream in between.
        tokio::task::yield_now().await;
        Ok(())
    }
}

/// `COPY (SELECT <every Col> FROM schema.table WHERE <window> AND <slice>) TO STDOUT`.
pub fn slice_copy_sql(schema: &str, table: &str, window: &VerifyWindow, slice: &Slice) -> String {
    let mut conditions = window.pg.condition();
    conditions.extend(slices::pg_condition(slice));
    chunks::copy_where_sql(schema, table, &conditions)
}

/// One connection per source, reading slices: each through fresh snapshots.
pub struct SliceReader {
    config: Arc<Config>,
    sources: Vec<Arc<Source>>,
    window: VerifyWindow,
    leases: Vec<Lease>,
    pids: Vec<i32>,
    /// Per source, the connection that cancels this reader's COPY (opened when first needed).
    side: Vec<Option<Client>>,
    /// Runs a slice may hold; more and it is cut.
    pub cap: usize,
    payloads: bool,
}

fn pg_error(what: String) -> impl Fn(tokio_postgres::Error) -> VerifyError {
    move |e| VerifyError::Postgres {
        what: what.clone(),
        reason: crate::pg::describe(&e),
    }
}

impl SliceReader {
    pub async fn connect(
        config: Arc<Config>,
        sources: Vec<Arc<Source>>,
        window: VerifyWindow,
        terms: &Terms,
        cap: usize,
        payloads: bool,
    ) -> Result<SliceReader, VerifyError> {
        let mut leases = Vec::new();
        let mut pids = Vec::new();
        for source in &sources {
            let client = snapshot::connect(&config, source).await?;
            let pid: i32 = client
                .query_one("SELECT pg_backend_pid()", &[])
                .await
                .map_err(pg_error(format!("connecting to source {}", source.name)))?
                .get(0);
            pids.push(pid);
            let shift = snapshot::connection_shift(&config, source, &client).await?;
            leases.push(Lease::idle(client, terms.clone(), shift));
        }
        Ok(SliceReader {
            side: sources.iter().map(|_| None).collect(),
            config,
            sources,
            window,
            leases,
            pids,
            cap,
            payloads,
        })
    }

    /// Reads `slice` from every source, each through a fresh snapshot ended before it returns.
    pub async fn read(&mut self, slice: &Slice) -> Result<Outcome, VerifyError> {
        let started = Instant::now();
        let transform = TransformOptions {
            fingerprint_errors: self.config.transform.fingerprint_errors,
        };
        let limits = Limits {
            max_rows: HASH_BATCH,
            max_bytes: crate::backfill::connection_bytes(&self.config),
        };
        // A slice that could not be cut is read whole, whatever it holds.
        let cap = if slice.estimate == u64::MAX {
            usize::MAX
        } else {
            self.cap
        };
        let mut runs = SliceRuns::default();
        let mut snaps = Vec::new();
        let (mut rows_read, mut skipped) = (0, 0);
        for i in 0..self.sources.len() {
            let source = self.sources[i].clone();
            let lease = &mut self.leases[i];
            let held = lease.ensure(lease.bound()).await?;
            snaps.push(Snap {
                source: source.name.clone(),
                lsn: held.lsn,
                upper: held.upper,
                shift: held.shift,
            });
            lease.limit_statement().await?;
            for table in &source.tables {
                let binding =
                    TableBinding::selected(&source.schema, table, source.generation(table));
                let mut adder = RowAdder::new(binding, &transform, false, false, held.lsn)
                    .with_shift(held.shift);
                let sql = slice_copy_sql(&source.schema, table, &self.window, slice);
                let mut digests = Digests {
                    runs: &mut runs,
                    payload: self.payloads.then_some(true),
                    cap,
                    text: String::new(),
                };
                let copied = copier::copy_rows(
                    lease.client(),
                    &sql,
                    &mut adder,
                    limits,
                    &|_| {},
                    &mut digests,
                )
                .await;
                rows_read += adder.rows_read;
                skipped += adder.skipped;
                match copied {
                    Ok(()) => {}
                    Err(BackfillError::Stopped(_)) => {
                        self.cancel(i).await?;
                        self.leases[i].release().await?;
                        return self.cut(slice, runs, false);
                    }
                    Err(BackfillError::Cancelled { .. }) => {
                        self.leases[i].release().await?;
                        return self.cut(slice, runs, true);
                    }
                    Err(e) => return Err(e.into()),
                }
            }
            self.leases[i].release().await?;
        }
        runs.finish();
        Ok(Outcome::Read(SliceRead {
            slice: *slice,
            runs,
            snaps,
            rows_read,
            skipped,
            seconds: started.elapsed().as_secs_f64(),
        }))
    }

    /// The pieces to read instead of `slice`, cut by what was read of it.
    fn cut(
        &self,
        slice: &Slice,
        mut runs: SliceRuns,
        timed_out: bool,
    ) -> Result<Outcome, VerifyError> {
        let seen = runs.take_created();
        let target = if timed_out {
            // Too slow for the bound: halves of what one snapshot could read.
            (seen.len() / 2).max(1)
        } else {
            self.cap / 2
        };
        let read = seen.len();
        match slices::split(slice, seen, target as u64) {
            Some(pieces) => {
                tracing::debug!(
                    ?slice,
                    read,
                    pieces = pieces.len(),
                    timed_out,
                    "verify: a slice cut in pieces"
                );
                Ok(Outcome::Split(pieces))
            }
            None if timed_out => Err(VerifyError::Request(format!(
                "the runs created in one millisecond ({:?}) cannot be read within \
                 backfill.snapshot_max_s ({} s): raise it",
                slice.lo, self.config.backfill.snapshot_max_s
            ))),
            None => {
                // Every run read shares one millisecond: read it whole, whatever it holds.
                tracing::warn!(
                    ?slice,
                    read,
                    "verify: more runs in one createdAt millisecond than a slice may hold; reading them at once"
                );
                Ok(Outcome::Split(vec![Slice {
                    estimate: u64::MAX,
                    ..*slice
                }]))
            }
        }
    }

    /// Stops the COPY running on source `i`'s connection.
    async fn cancel(&mut self, i: usize) -> Result<(), VerifyError> {
        if self.side[i].is_none() {
            self.side[i] = Some(snapshot::connect(&self.config, &self.sources[i]).await?);
        }
        let side = self.side[i].as_ref().expect("just opened");
        side.execute("SELECT pg_cancel_backend($1)", &[&self.pids[i]])
            .await
            .map_err(pg_error("stopping a COPY".into()))?;
        Ok(())
    }

    /// Ends every snapshot still held.
    pub async fn close(mut self) -> Result<(), VerifyError> {
        for lease in &mut self.leases {
            lease.release().await?;
        }
        Ok(())
    }
}
