//! The batch being filled: committed transactions waiting to be inserted together.
//!
//! Rows collapse across transactions (the highest version of each ClickHouse row wins), so a run
//! updated in many transactions between two flushes is written once. A batch may hold the
//! transactions of several streams (sources, shards); for each it remembers the end LSN of the
//! last transaction it holds: once ClickHouse has accepted the batch, that LSN may be
//! acknowledged to that stream's slot. It is sealed when it holds `max_rows` rows or its share
//! of `max_bytes`, when its oldest row is `flush_interval` old, or earlier when the streams
//! caught up (`pipeline::writer`).

use std::time::{Duration, Instant};

use super::collapse::CollapsedRows;
use super::transaction::Committed;
use crate::rows::{PayloadRow, RunRow};

#[derive(Debug, Default)]
pub struct Batch {
    rows: CollapsedRows,
    payloads: Vec<PayloadRow>,
    /// `collapse::payload_bytes` of `payloads`.
    payloads_bytes: usize,
    /// (stream, end LSN of its last transaction here), one entry per stream.
    ends: Vec<(u64, u64)>,
    commit_times: Vec<i64>,
    opened_at: Option<Instant>,
    /// The rows vector of an inserted batch, for the next one to be sealed into: a batch's rows
    /// are megabytes, and a fresh vector for each batch was page faults in the kernel (zeroing
    /// pages was the largest single symbol of the worker's CPU in a drain's profile).
    /// Two of them: with two inserts in flight, the batches alternate between two vectors.
    #[allow(clippy::vec_box)] // rows stay boxed (`collapse`)
    spares: Vec<Vec<Box<RunRow>>>,
}

/// A batch ready to insert, rows sorted by the runs table's ORDER BY key.
#[derive(Debug)]
pub struct Sealed {
    /// Boxed as they were collapsed (`collapse::CollapsedRows`): sealing moves pointers.
    #[allow(clippy::vec_box)]
    pub runs: Vec<Box<RunRow>>,
    pub payloads: Vec<PayloadRow>,
    /// (stream, end LSN) of each stream's last transaction in the batch.
    pub ends: Vec<(u64, u64)>,
    /// Commit time (µs since 2000-01-01) of each transaction in the batch.
    pub commit_times: Vec<i64>,
    /// Estimated bytes of the rows (`collapse::run_bytes`), what the batch counted against
    /// `batch.max_bytes`; they stay counted while the batch is in flight.
    pub bytes: usize,
}

impl Batch {
    /// Adds a committed transaction of `stream`. Transactions without rows only move its end.
    pub fn add(&mut self, stream: u64, txn: Committed, now: Instant) {
        match self.ends.iter_mut().find(|(s, _)| *s == stream) {
            Some((_, end)) => *end = (*end).max(txn.end_lsn),
            None => self.ends.push((stream, txn.end_lsn)),
        }
        if txn.is_empty() {
            return;
        }
        self.opened_at.get_or_insert(now);
        self.commit_times.push(txn.commit_time_micros);
        let mut rows = txn.rows;
        for row in rows.drain() {
            self.rows.upsert_boxed(row);
        }
        self.payloads.extend(txn.payloads);
        self.payloads_bytes += txn.payloads_bytes;
    }

    /// Rows waiting, runs and payloads.
    pub fn len(&self) -> usize {
        self.rows.len() + self.payloads.len()
    }

    /// When it received its first row (its deadline runs from there); `None` while it has none.
    pub fn opened_at(&self) -> Option<Instant> {
        self.opened_at
    }

    /// Estimated bytes of the rows waiting (`collapse::run_bytes`).
    pub fn bytes(&self) -> usize {
        self.rows.bytes() + self.payloads_bytes
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A transaction of `stream` is in the batch (its position waits for the batch's insert).
    pub fn holds(&self, stream: u64) -> bool {
        self.ends.iter().any(|(s, _)| *s == stream)
    }

    /// When the batch must be flushed at the latest.
    pub fn deadline(&self, interval: Duration) -> Option<Instant> {
        self.opened_at.map(|t| t + interval)
    }

    /// Makes room for `rows` rows before the batch fills (and sizes its index once).
    pub fn reserve(&mut self, rows: usize) {
        self.rows.reserve(rows.saturating_sub(self.rows.len()));
    }

    /// Hands back the rows vector of an inserted batch (its rows are dropped here).
    #[allow(clippy::vec_box)] // rows stay boxed (`collapse`)
    pub fn recycle(&mut self, mut runs: Vec<Box<RunRow>>) {
        runs.clear();
        self.spares.push(runs);
        if self.spares.len() > 2 {
            self.spares.sort_by_key(|s| std::cmp::Reverse(s.capacity()));
            self.spares.truncate(2);
        }
    }

    /// Takes the rows out for insertion, leaving an empty batch.
    pub fn seal(&mut self) -> Sealed {
        let spare = self.spares.pop().unwrap_or_default();
        let spares = std::mem::take(&mut self.spares);
        let taken = std::mem::take(self);
        self.spares = spares;
        let bytes = taken.bytes();
        let mut payloads = taken.payloads;
        payloads.sort_by(|a, b| a.run_id.cmp(&b.run_id));
        Sealed {
            runs: taken.rows.into_sorted_with(spare),
            payloads,
            ends: taken.ends,
            commit_times: taken.commit_times,
            bytes,
        }
    }
}

#[cfg(test)]
mod tests;
