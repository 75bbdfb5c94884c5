//! The batch being filled, the inserts in flight, and what each stream may acknowledge.
//!
//! Committed transactions of every attached stream collect in one [`Batch`]; a sealed batch is
//! written by the [`Sink`] on its own task, at most `max_inflight` at once. Inserts can finish in
//! any order, but a stream's position is only acknowledgeable once everything of that stream
//! before it is stored: each stream has its own [`AckTracker`], so a stream that is slow, down or
//! stopped never holds back another's acknowledgements by more than the batch they share. Each
//! method that can move a position returns the `(stream, position)` pairs that moved, and the
//! caller tells Postgres.
//!
//! A stream here is an *attachment*: one streaming session of one slot, numbered by the loop.
//! A session that ends takes its tracker with it; a new session of the same slot starts over
//! from the slot's confirmed position.
//!
//! **When a batch is sealed.** When it holds `max_rows` rows or its share of `max_bytes`
//! (a backlog: full batches, as few parts as possible), when its oldest row is
//! `flush_interval` old (the upper bound of any wait), and — the usual case under a steady
//! load — as soon as the loop finds every stream caught up, but never sooner than
//! `min_insert_interval` after the previous insert started, and never while an insert is still
//! in flight ([`BatchWriter::early_flush_at`]): a trickle of changes then costs at most one
//! insert per table per gap instead of one per transaction, and a ClickHouse slower than the gap
//! gets fewer, larger inserts rather than a queue of small ones.
//!
//! **Memory.** Rows are counted in bytes as well as rows (`collapse::run_bytes`, an estimate
//! from their strings), against the writer's half of the process's budget (`crate::budget`):
//! the batch is sealed at `1 / (max_inflight + 1)` of it, and the loop stops reading while the
//! batch and the inserts in flight together hold all of it ([`BatchWriter::must_wait`]); each
//! stream's open transaction is spilled at its own share of the budget. A run with a megabyte of
//! output then weighs a megabyte, not one row among ten thousand.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rustc_hash::FxHashMap;
use tokio::task::JoinSet;

use super::ack::AckTracker;
use super::batch::{Batch, Sealed};
use super::collapse::CollapsedRows;
use super::errors::PipelineError;
use super::sink::{Sink, SinkError, Written};
use super::transaction::{Committed, Transaction};
use crate::budget::Budget;
use crate::config::BatchConfig;
use crate::metrics as m;
use crate::rows::{PayloadRow, RunRow};

/// Microseconds between the Unix epoch and Postgres' epoch (2000-01-01).
const PG_EPOCH_OFFSET_MICROS: i64 = 946_684_800_000_000;

/// Positions that became acknowledgeable: (stream, position).
pub type Acks = Vec<(u64, u64)>;

/// A finished insert: the tracker entries it completes, commit times, the rows vector to reuse,
/// the outcome.
pub struct Finished {
    entries: Vec<(u64, u64)>,
    commit_times: Vec<i64>,
    #[allow(clippy::vec_box)] // rows stay boxed (`collapse`)
    runs: Vec<Box<RunRow>>,
    /// What the insert counted against `max_bytes`.
    bytes: usize,
    result: Result<Written, SinkError>,
}

pub struct BatchWriter<S: Sink> {
    sink: Arc<S>,
    batch: Batch,
    /// One per attached stream.
    trackers: FxHashMap<u64, AckTracker>,
    inserts: JoinSet<Finished>,
    max_rows: usize,
    max_inflight: usize,
    flush_interval: Duration,
    min_insert_interval: Duration,
    /// Bytes the batch and the inserts in flight may hold together.
    max_bytes: usize,
    /// A batch's share of `max_bytes`.
    share_bytes: usize,
    /// One stream's open transaction is spilled past this, and it is not read while it holds
    /// as much in transactions waiting for repair lookups (`crate::budget`).
    transaction_bytes: usize,
    /// Bytes of the rows being inserted.
    inflight_bytes: usize,
    /// When the last insert (a batch or a part of a transaction) started.
    last_insert: Option<Instant>,
    commit_latency: metrics::Histogram,
}

impl<S: Sink> BatchWriter<S> {
    pub fn new(sink: Arc<S>, config: &BatchConfig, budget: Budget) -> Self {
        let max_bytes = budget.writer;
        BatchWriter {
            sink,
            batch: Batch::default(),
            trackers: FxHashMap::default(),
            inserts: JoinSet::new(),
            max_rows: config.max_rows,
            max_inflight: config.max_inflight,
            flush_interval: Duration::from_millis(config.flush_interval_ms),
            // Never longer than flush_interval, the upper bound of any wait.
            min_insert_interval: Duration::from_millis(
                config.min_insert_interval_ms.min(config.flush_interval_ms),
            ),
            max_bytes,
            // The batch being filled plus max_inflight sealed ones fit in max_bytes.
            share_bytes: (max_bytes / (config.max_inflight + 1)).max(1),
            transaction_bytes: budget.transaction,
            inflight_bytes: 0,
            last_insert: None,
            commit_latency: metrics::histogram!(m::COMMIT_LATENCY),
        }
    }

    pub fn sink(&self) -> &Arc<S> {
        &self.sink
    }

    /// A stream starts: positions are tracked for it from now on.
    pub fn attach(&mut self, stream: u64) {
        self.trackers.insert(stream, AckTracker::new(0));
    }

    /// A stream's session ended: nothing more is acknowledged to it. Its rows already in the
    /// batch or in flight are still written (harmless: its next session sends them again).
    pub fn detach(&mut self, stream: u64) {
        self.trackers.remove(&stream);
    }

    /// Rows waiting in the batch being filled.
    pub fn buffered(&self) -> usize {
        self.batch.len()
    }

    pub fn is_empty(&self) -> bool {
        self.batch.is_empty()
    }

    /// Estimated bytes of the rows in the batch being filled.
    pub fn buffered_bytes(&self) -> usize {
        self.batch.bytes()
    }

    /// Estimated bytes of the rows being inserted.
    pub fn inflight_bytes(&self) -> usize {
        self.inflight_bytes
    }

    /// The batch holds `max_rows` rows or its share of `max_bytes`.
    pub fn is_full(&self) -> bool {
        self.batch.len() >= self.max_rows || self.batch.bytes() >= self.share_bytes
    }

    /// The batch and the inserts in flight hold `max_bytes` between them: nothing more may be
    /// read until an insert finishes. (Never while nothing is in flight: the batch can always
    /// be sealed and written.)
    pub fn must_wait(&self) -> bool {
        !self.inserts.is_empty() && self.batch.bytes() + self.inflight_bytes >= self.max_bytes
    }

    /// An open transaction this large is inserted in parts before its Commit: past `max_rows`
    /// rows, or past a stream's transaction share of the budget.
    pub fn should_spill(&self, txn: &Transaction) -> bool {
        txn.len() >= self.max_rows || txn.bytes() >= self.transaction_bytes
    }

    /// When the batch may be sealed because the streams caught up: at once, or
    /// `min_insert_interval` after the last insert started. `None` while it is empty, and while
    /// an insert is in flight: as in Nagle's algorithm, a batch that is not full waits for the
    /// insert before it to finish (or for `flush_interval`). While ClickHouse answers within the
    /// gap this changes nothing; when an insert takes longer, the batches grow instead of small
    /// inserts queueing up behind it, each adding a part and its fixed cost to a server that is
    /// already the slowest stage.
    pub fn early_flush_at(&self) -> Option<Instant> {
        if self.batch.is_empty() || !self.inserts.is_empty() {
            return None;
        }
        Some(match self.last_insert {
            Some(t) => t + self.min_insert_interval,
            None => now(),
        })
    }

    /// Another insert may start.
    pub fn has_free_slot(&self) -> bool {
        self.inserts.len() < self.max_inflight
    }

    pub fn inflight(&self) -> usize {
        self.inserts.len()
    }

    /// When the batch must be flushed at the latest.
    pub fn deadline(&self) -> Option<Instant> {
        self.batch.deadline(self.flush_interval)
    }

    /// Everything of `stream` handed over so far is stored: none of its rows wait in the batch
    /// or in an insert in flight (nor positions behind them). Its acknowledged position is then
    /// final for what it handed over.
    pub fn settled(&self, stream: u64) -> bool {
        !self.batch.holds(stream) && self.trackers.get(&stream).is_none_or(AckTracker::is_idle)
    }

    /// The batch holds rows of `stream`.
    pub fn holds(&self, stream: u64) -> bool {
        self.batch.holds(stream)
    }

    /// What one stream may hold in transactions waiting for repair lookups before it is not
    /// read (`crate::budget`).
    pub fn held_bytes(&self) -> usize {
        self.transaction_bytes
    }

    /// The highest position acknowledged to `stream` so far.
    pub fn acknowledged(&self, stream: u64) -> u64 {
        self.trackers.get(&stream).map_or(0, AckTracker::acked)
    }

    /// Adds a committed transaction of `stream`. One without rows, while the batch holds nothing
    /// of that stream, is a position with nothing to store before it but what is in flight:
    /// returned when it can be acknowledged now.
    pub fn add(&mut self, stream: u64, committed: Committed) -> Option<u64> {
        if committed.is_empty() && !self.batch.holds(stream) {
            return self
                .trackers
                .get_mut(&stream)?
                .nothing_pending_until(committed.end_lsn);
        }
        if self.batch.is_empty() {
            self.batch.reserve(self.max_rows);
        }
        // The clock only when the transaction opens the batch: read per transaction, it was a
        // few percent of a drain's CPU on a VM whose clock source makes every read a system call.
        let at = self.batch.opened_at().unwrap_or_else(now);
        self.batch.add(stream, committed, at);
        None
    }

    /// A keepalive's WAL end, received on `stream` with no transaction of it open: when the batch
    /// holds nothing of that stream, the server's position can be confirmed (after what is in
    /// flight), so an idle slot (or one whose traffic is all other tables) does not retain WAL.
    pub fn idle_at(&mut self, stream: u64, wal_end: u64) -> Option<u64> {
        if self.batch.holds(stream) {
            return None;
        }
        self.trackers
            .get_mut(&stream)?
            .nothing_pending_until(wal_end)
    }

    /// Seals the batch and starts inserting it.
    pub fn flush(&mut self) {
        let sealed: Sealed = self.batch.seal();
        let entries = sealed
            .ends
            .iter()
            .filter_map(|&(stream, lsn)| {
                let tracker = self.trackers.get_mut(&stream)?;
                Some((stream, tracker.register(lsn)))
            })
            .collect();
        self.spawn(entries, sealed);
    }

    /// Starts inserting part of a transaction of `stream` larger than a batch, before its
    /// Commit. Nothing is acknowledged for it, but the stream's later positions wait for it: the
    /// position moves only at the Commit.
    pub fn spill(&mut self, stream: u64, rows: CollapsedRows, mut payloads: Vec<PayloadRow>) {
        payloads.sort_by(|a, b| a.run_id.cmp(&b.run_id));
        let entries = self
            .trackers
            .get_mut(&stream)
            .map(|t| vec![(stream, t.register(0))])
            .unwrap_or_default();
        let bytes = rows.bytes()
            + payloads
                .iter()
                .map(super::collapse::payload_bytes)
                .sum::<usize>();
        let sealed = Sealed {
            runs: rows.into_sorted(),
            payloads,
            ends: Vec::new(),
            commit_times: Vec::new(),
            bytes,
        };
        self.spawn(entries, sealed);
    }

    fn spawn(&mut self, entries: Vec<(u64, u64)>, sealed: Sealed) {
        let sink = self.sink.clone();
        self.inflight_bytes += sealed.bytes;
        self.last_insert = Some(now());
        self.inserts.spawn(async move {
            let result = sink.write(&sealed.runs, &sealed.payloads).await;
            Finished {
                entries,
                commit_times: sealed.commit_times,
                runs: sealed.runs,
                bytes: sealed.bytes,
                result,
            }
        });
    }

    /// The next insert to finish; `None` when none is in flight. Cancel-safe.
    pub async fn next_finished(&mut self) -> Option<Result<Finished, PipelineError>> {
        let joined = self.inserts.join_next().await?;
        Some(joined.map_err(|e| PipelineError::Stream(format!("insert task failed: {e}"))))
    }

    /// Records a finished insert; returns the positions that became acknowledgeable.
    pub fn finished(&mut self, done: Finished) -> Result<Acks, PipelineError> {
        let Finished {
            entries,
            commit_times,
            runs,
            bytes,
            result,
        } = done;
        self.inflight_bytes = self.inflight_bytes.saturating_sub(bytes);
        self.batch.recycle(runs);
        result?;
        let now_micros = unix_micros();
        for t in commit_times {
            let latency = (now_micros - (t + PG_EPOCH_OFFSET_MICROS)).max(0) as f64 / 1e6;
            self.commit_latency.record(latency);
        }
        let mut acks = Vec::new();
        for (stream, seq) in entries {
            if let Some(lsn) = self.trackers.get_mut(&stream).and_then(|t| t.complete(seq)) {
                acks.push((stream, lsn));
            }
        }
        Ok(acks)
    }

    /// Waits until every insert in flight finished; returns the positions that became
    /// acknowledgeable meanwhile (the last of each stream).
    pub async fn wait_for_inflight(&mut self) -> Result<Acks, PipelineError> {
        let mut acks: Acks = Vec::new();
        while let Some(done) = self.next_finished().await {
            for (stream, lsn) in self.finished(done?)? {
                match acks.iter_mut().find(|(s, _)| *s == stream) {
                    Some(entry) => entry.1 = entry.1.max(lsn),
                    None => acks.push((stream, lsn)),
                }
            }
        }
        Ok(acks)
    }

    /// Seals what the batch holds and waits until everything is inserted.
    pub async fn flush_and_wait(&mut self) -> Result<Acks, PipelineError> {
        if !self.batch.is_empty() {
            self.flush();
        }
        self.wait_for_inflight().await
    }

    /// Gives up everything buffered and in flight (after a write failed: every stream restarts
    /// from its slot, which sends it all again).
    pub fn reset(&mut self) {
        self.inserts.abort_all();
        self.batch = Batch::default();
        self.trackers.clear();
        self.inflight_bytes = 0;
    }
}

/// Tokio's clock (the paused clock of the loop's tests; the system's monotonic clock otherwise),
/// the one the loop's timers run on.
fn now() -> Instant {
    tokio::time::Instant::now().into_std()
}

fn unix_micros() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0)
}
