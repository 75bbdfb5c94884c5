//! What may be acknowledged to Postgres.
//!
//! Batches are inserted concurrently and can finish out of order, but the slot's confirmed LSN
//! may only move past a transaction once it and every transaction before it are in ClickHouse.
//! Each sealed batch registers its end LSN in commit order; the acknowledged LSN is the end LSN
//! of the longest finished prefix.

use std::collections::VecDeque;

#[derive(Debug, Default)]
pub struct AckTracker {
    /// (sequence, end LSN, done), in registration order.
    pending: VecDeque<(u64, u64, bool)>,
    next_seq: u64,
    acked: u64,
}

impl AckTracker {
    /// Starts from a position already acknowledged (the slot's confirmed LSN).
    pub fn new(acked: u64) -> Self {
        AckTracker {
            acked,
            ..Default::default()
        }
    }

    /// Registers a batch in flight; returns its sequence number.
    pub fn register(&mut self, end_lsn: u64) -> u64 {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.pending.push_back((seq, end_lsn, false));
        seq
    }

    /// Marks a batch done; returns the new acknowledgeable LSN when it moved.
    pub fn complete(&mut self, seq: u64) -> Option<u64> {
        if let Some(entry) = self.pending.iter_mut().find(|(s, _, _)| *s == seq) {
            entry.2 = true;
        }
        let before = self.acked;
        while let Some(&(_, lsn, true)) = self.pending.front() {
            self.acked = self.acked.max(lsn);
            self.pending.pop_front();
        }
        (self.acked > before).then_some(self.acked)
    }

    /// A position with nothing to insert before it (an empty transaction, or a keepalive while
    /// idle). Acknowledgeable now when nothing is in flight, else after what is in flight.
    ///
    /// While an insert is slow, keepalives keep coming: each would add an entry, and completing
    /// an insert scans the entries. A position behind the last in-flight entry raises the marker
    /// already waiting there instead, so the tracker holds at most one entry more than inserts.
    pub fn nothing_pending_until(&mut self, lsn: u64) -> Option<u64> {
        if self.pending.is_empty() {
            if lsn > self.acked {
                self.acked = lsn;
                return Some(lsn);
            }
            return None;
        }
        if let Some((_, waiting, true)) = self.pending.back_mut() {
            *waiting = (*waiting).max(lsn);
            return None;
        }
        let seq = self.register(lsn);
        self.complete(seq)
    }

    /// Entries waiting: inserts in flight and at most one position behind them.
    pub fn waiting(&self) -> usize {
        self.pending.len()
    }

    pub fn in_flight(&self) -> usize {
        self.pending.iter().filter(|(_, _, done)| !done).count()
    }

    pub fn is_idle(&self) -> bool {
        self.pending.is_empty()
    }

    pub fn acked(&self) -> u64 {
        self.acked
    }
}

#[cfg(test)]
mod tests;
