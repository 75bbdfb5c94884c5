//! The streaming loop's metric handles, resolved once.
//!
//! `metrics::counter!(name, labels)` hashes the name and labels and looks them up on every call;
//! at one call per change and three gauges per event, that showed in a drain's profile.

use std::sync::Arc;

use super::changes::Op;
use crate::metrics as m;
use crate::transform::SkipReason;

pub struct Meters {
    pub transactions: metrics::Counter,
    pub received_lsn: metrics::Gauge,
    pub backpressure: metrics::Gauge,
    pub buffered_rows: metrics::Gauge,
    pub inflight_batches: metrics::Gauge,
    pub commit_latency: metrics::Histogram,
    /// Per table: the changes counters for insert, update, delete.
    changes: Vec<(Arc<str>, [metrics::Counter; 3])>,
}

impl Default for Meters {
    fn default() -> Meters {
        Meters {
            transactions: metrics::counter!(m::TRANSACTIONS),
            received_lsn: metrics::gauge!(m::RECEIVED_LSN),
            backpressure: metrics::gauge!(m::BACKPRESSURE),
            buffered_rows: metrics::gauge!(m::BUFFERED_ROWS),
            inflight_batches: metrics::gauge!(m::INFLIGHT_BATCHES),
            commit_latency: metrics::histogram!(m::COMMIT_LATENCY),
            changes: Vec::new(),
        }
    }
}

impl Meters {
    /// The changes counter of `table` and `op`.
    pub fn change(&mut self, table: &Arc<str>, op: Op) -> &metrics::Counter {
        let i = match self.changes.iter().position(|(t, _)| t == table) {
            Some(i) => i,
            None => {
                let counter = |op: Op| metrics::counter!(m::CHANGES, "table" => table.to_string(), "operation" => op.label());
                self.changes.push((
                    table.clone(),
                    [
                        counter(Op::Insert),
                        counter(Op::Update),
                        counter(Op::Delete),
                    ],
                ));
                self.changes.len() - 1
            }
        };
        &self.changes[i].1[op as usize]
    }
}

/// Counts source rows that produced no ClickHouse row.
pub fn count_skips(reasons: &[SkipReason]) {
    for reason in reasons {
        metrics::counter!(m::ROWS_SKIPPED, "reason" => reason.label()).increment(1);
    }
}
