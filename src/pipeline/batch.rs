//! The batch being filled: committed transactions waiting to be inserted together.
//!
//! Rows collapse across transactions (the highest version of each ClickHouse row wins), so a run
//! updated in many transactions between two flushes is written once. The batch remembers the end
//! LSN of the last transaction it holds: once ClickHouse has accepted it, that LSN may be
//! acknowledged. It is flushed when it holds `max_rows` rows or its oldest row is
//! `flush_interval` old.

use std::time::{Duration, Instant};

use super::rows::CollapsedRows;
use super::transaction::Committed;
use crate::transform::{PayloadRow, RunRow};

#[derive(Debug, Default)]
pub struct Batch {
    rows: CollapsedRows,
    payloads: Vec<PayloadRow>,
    end_lsn: u64,
    commit_times: Vec<i64>,
    opened_at: Option<Instant>,
    /// The rows vector of an inserted batch, for the next one: a batch's rows are megabytes, and
    /// growing a fresh vector for each batch was page faults in the kernel (zeroing pages was the
    /// largest single symbol of the worker's CPU in a drain's profile).
    spare: Option<Vec<RunRow>>,
}

/// A batch ready to insert, rows sorted by the runs table's ORDER BY key.
#[derive(Debug)]
pub struct Sealed {
    pub runs: Vec<RunRow>,
    pub payloads: Vec<PayloadRow>,
    pub end_lsn: u64,
    /// Commit time (µs since 2000-01-01) of each transaction in the batch.
    pub commit_times: Vec<i64>,
}

impl Batch {
    /// Adds a committed transaction. Transactions without rows only move `end_lsn`.
    pub fn add(&mut self, txn: Committed, now: Instant) {
        self.end_lsn = self.end_lsn.max(txn.end_lsn);
        if txn.is_empty() {
            return;
        }
        self.opened_at.get_or_insert(now);
        self.commit_times.push(txn.commit_time_micros);
        let mut rows = txn.rows;
        for row in rows.drain() {
            self.rows.upsert(row);
        }
        self.payloads.extend(txn.payloads);
    }

    /// Rows waiting, runs and payloads.
    pub fn len(&self) -> usize {
        self.rows.len() + self.payloads.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// When the batch must be flushed at the latest.
    pub fn deadline(&self, interval: Duration) -> Option<Instant> {
        self.opened_at.map(|t| t + interval)
    }

    /// Makes room for `rows` rows before the batch fills: grown by doubling instead, a batch of
    /// updates (all runs, no payloads) outgrew the recycled vector of a batch of inserts, and the
    /// fresh pages of every regrowth showed in the profile.
    pub fn reserve(&mut self, rows: usize) {
        self.rows.reserve(rows.saturating_sub(self.rows.len()));
    }

    /// Hands back the rows vector of an inserted batch (its rows are dropped here).
    pub fn recycle(&mut self, mut runs: Vec<RunRow>) {
        runs.clear();
        if self.rows.is_empty() {
            self.rows = CollapsedRows::with_buffer(runs);
        } else if self
            .spare
            .as_ref()
            .is_none_or(|s| s.capacity() < runs.capacity())
        {
            self.spare = Some(runs);
        }
    }

    /// Takes the rows out for insertion, leaving an empty batch.
    pub fn seal(&mut self) -> Sealed {
        let spare = self.spare.take();
        let mut taken = std::mem::take(self);
        if let Some(spare) = spare {
            self.rows = CollapsedRows::with_buffer(spare);
        }
        taken.spare = None;
        let mut payloads = taken.payloads;
        payloads.sort_by(|a, b| a.run_id.cmp(&b.run_id));
        Sealed {
            runs: taken.rows.into_sorted(),
            payloads,
            end_lsn: taken.end_lsn,
            commit_times: taken.commit_times,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::transaction::Transaction;
    use crate::transform::testing::run_row;

    fn committed(id: &str, status: &str, end_lsn: u64) -> Committed {
        let mut t = Transaction::new(1, 0);
        let mut r = run_row(id);
        r.status = status.into();
        t.add_row(0, r);
        t.commit(end_lsn, 0).unwrap()
    }

    #[test]
    fn later_transactions_win_and_the_end_lsn_is_the_last_commit() {
        let now = Instant::now();
        let mut b = Batch::default();
        b.add(committed("run_1", "EXECUTING", 10), now);
        b.add(committed("run_2", "PENDING", 20), now);
        b.add(committed("run_1", "COMPLETED_SUCCESSFULLY", 30), now);
        b.add(Transaction::new(2, 0).commit(40, 0).unwrap(), now);
        assert_eq!(b.len(), 2);
        assert_eq!(
            b.deadline(Duration::from_secs(1)),
            Some(now + Duration::from_secs(1))
        );
        let sealed = b.seal();
        assert_eq!(sealed.end_lsn, 40);
        assert_eq!(sealed.commit_times.len(), 3);
        let statuses: Vec<_> = sealed
            .runs
            .iter()
            .map(|r| (r.run_id.as_str(), r.status.as_str()))
            .collect();
        assert_eq!(
            statuses,
            [("run_1", "COMPLETED_SUCCESSFULLY"), ("run_2", "PENDING")]
        );
        assert!(b.is_empty() && b.deadline(Duration::from_secs(1)).is_none());
    }

    #[test]
    fn an_empty_transaction_opens_no_deadline() {
        let mut b = Batch::default();
        b.add(Transaction::new(1, 0).commit(5, 0).unwrap(), Instant::now());
        assert!(b.is_empty());
        assert_eq!(b.deadline(Duration::from_secs(1)), None);
    }
}
