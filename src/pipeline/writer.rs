//! The batch being filled, the inserts in flight, and what may be acknowledged.
//!
//! Committed transactions collect in the [`Batch`]; a sealed batch is written by the [`Sink`] on
//! its own task, at most `max_inflight` at once. Inserts can finish in any order, but a position
//! is only acknowledgeable once everything before it is stored ([`AckTracker`]): each method that
//! can move it returns the new position, and the caller tells Postgres.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::task::JoinSet;

use super::ack::AckTracker;
use super::batch::{Batch, Sealed};
use super::collapse::CollapsedRows;
use super::errors::PipelineError;
use super::sink::{Sink, SinkError, Written};
use super::transaction::Committed;
use crate::config::BatchConfig;
use crate::metrics as m;
use crate::rows::{PayloadRow, RunRow};

/// Microseconds between the Unix epoch and Postgres' epoch (2000-01-01).
const PG_EPOCH_OFFSET_MICROS: i64 = 946_684_800_000_000;

/// A finished insert: (ack sequence, commit times, the rows vector to reuse, the outcome).
pub struct Finished(u64, Vec<i64>, Vec<RunRow>, Result<Written, SinkError>);

pub struct BatchWriter<S: Sink> {
    sink: Arc<S>,
    batch: Batch,
    acks: AckTracker,
    inserts: JoinSet<Finished>,
    max_rows: usize,
    max_inflight: usize,
    flush_interval: Duration,
    commit_latency: metrics::Histogram,
}

impl<S: Sink> BatchWriter<S> {
    pub fn new(sink: Arc<S>, config: &BatchConfig) -> Self {
        BatchWriter {
            sink,
            batch: Batch::default(),
            acks: AckTracker::new(0),
            inserts: JoinSet::new(),
            max_rows: config.max_rows,
            max_inflight: config.max_inflight,
            flush_interval: Duration::from_millis(config.flush_interval_ms),
            commit_latency: metrics::histogram!(m::COMMIT_LATENCY),
        }
    }

    pub fn sink(&self) -> &Arc<S> {
        &self.sink
    }

    /// Rows waiting in the batch being filled.
    pub fn buffered(&self) -> usize {
        self.batch.len()
    }

    pub fn is_empty(&self) -> bool {
        self.batch.is_empty()
    }

    /// The batch holds `max_rows` rows.
    pub fn is_full(&self) -> bool {
        self.batch.len() >= self.max_rows
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

    /// The highest position acknowledged so far.
    pub fn acknowledged(&self) -> u64 {
        self.acks.acked()
    }

    /// Adds a committed transaction. One without rows, while nothing is buffered, is a position
    /// with nothing to store before it: returned when it can be acknowledged now.
    pub fn add(&mut self, committed: Committed) -> Option<u64> {
        if committed.is_empty() && self.batch.is_empty() {
            return self.acks.nothing_pending_until(committed.end_lsn);
        }
        if self.batch.is_empty() {
            self.batch.reserve(self.max_rows);
        }
        self.batch.add(committed, Instant::now());
        None
    }

    /// A keepalive's WAL end, received with no transaction open: when nothing is buffered, the
    /// server's position can be confirmed (after what is in flight), so an idle slot (or one
    /// whose traffic is all other tables) does not retain WAL.
    pub fn idle_at(&mut self, wal_end: u64) -> Option<u64> {
        if !self.batch.is_empty() {
            return None;
        }
        self.acks.nothing_pending_until(wal_end)
    }

    /// Seals the batch and starts inserting it.
    pub fn flush(&mut self) {
        let sealed: Sealed = self.batch.seal();
        let seq = self.acks.register(sealed.end_lsn);
        self.spawn(seq, sealed);
    }

    /// Starts inserting part of a transaction larger than a batch, before its Commit. Nothing is
    /// acknowledged for it: the position moves only at the Commit.
    pub fn spill(&mut self, rows: CollapsedRows, mut payloads: Vec<PayloadRow>) {
        payloads.sort_by(|a, b| a.run_id.cmp(&b.run_id));
        let seq = self.acks.register(0);
        let sealed = Sealed {
            runs: rows.into_sorted(),
            payloads,
            end_lsn: 0,
            commit_times: Vec::new(),
        };
        self.spawn(seq, sealed);
    }

    fn spawn(&mut self, seq: u64, sealed: Sealed) {
        let sink = self.sink.clone();
        self.inserts.spawn(async move {
            let result = sink.write(&sealed.runs, &sealed.payloads).await;
            Finished(seq, sealed.commit_times, sealed.runs, result)
        });
    }

    /// The next insert to finish; `None` when none is in flight. Cancel-safe.
    pub async fn next_finished(&mut self) -> Option<Result<Finished, PipelineError>> {
        let joined = self.inserts.join_next().await?;
        Some(joined.map_err(|e| PipelineError::Stream(format!("insert task failed: {e}"))))
    }

    /// Records a finished insert; returns the position that became acknowledgeable, if any.
    pub fn finished(&mut self, done: Finished) -> Result<Option<u64>, PipelineError> {
        let Finished(seq, commit_times, runs, result) = done;
        self.batch.recycle(runs);
        result?;
        let now_micros = unix_micros();
        for t in commit_times {
            let latency = (now_micros - (t + PG_EPOCH_OFFSET_MICROS)).max(0) as f64 / 1e6;
            self.commit_latency.record(latency);
        }
        Ok(self.acks.complete(seq))
    }

    /// Waits until every insert in flight finished; returns the highest position that became
    /// acknowledgeable meanwhile.
    pub async fn wait_for_inflight(&mut self) -> Result<Option<u64>, PipelineError> {
        let mut acked = None;
        while let Some(done) = self.next_finished().await {
            if let Some(lsn) = self.finished(done?)? {
                acked = Some(lsn);
            }
        }
        Ok(acked)
    }

    /// Seals what the batch holds and waits until everything is inserted.
    pub async fn flush_and_wait(&mut self) -> Result<Option<u64>, PipelineError> {
        if !self.batch.is_empty() {
            self.flush();
        }
        self.wait_for_inflight().await
    }
}

fn unix_micros() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0)
}
