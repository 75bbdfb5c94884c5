//! The streaming loop's metric handles, resolved once: the loop's own ([`Meters`]) and each
//! stream's, labelled with its name ([`StreamMeters`]).
//!
//! `metrics::counter!(name, labels)` hashes the name and labels and looks them up on every call;
//! at one call per change and three gauges per event, that showed in a drain's profile.

use super::changes::Op;
use crate::metrics as m;
use crate::transform::SkipReason;

/// The loop's gauges, shared by every stream.
pub struct Meters {
    pub backpressure: metrics::Gauge,
    pub buffered_rows: metrics::Gauge,
    pub inflight_batches: metrics::Gauge,
}

impl Default for Meters {
    fn default() -> Meters {
        Meters {
            backpressure: metrics::gauge!(m::BACKPRESSURE),
            buffered_rows: metrics::gauge!(m::BUFFERED_ROWS),
            inflight_batches: metrics::gauge!(m::INFLIGHT_BATCHES),
        }
    }
}

/// One stream's counters and gauges, labelled `source=<stream name>`.
pub struct StreamMeters {
    source: String,
    pub transactions: metrics::Counter,
    pub received_lsn: metrics::Gauge,
    pub acknowledged_lsn: metrics::Gauge,
    /// Per table (plain name): the changes counters for insert, update, delete.
    changes: Vec<(String, [metrics::Counter; 3])>,
    /// Changes replayed through a repair (their table was incomplete when they were made).
    pub repaired: metrics::Counter,
    repair_lookups: metrics::Counter,
    repair_lookup_runs: metrics::Counter,
    repair_tombstones: metrics::Counter,
    repair_lookup_seconds: metrics::Histogram,
}

impl StreamMeters {
    pub fn new(source: &str) -> StreamMeters {
        let source = source.to_string();
        StreamMeters {
            transactions: metrics::counter!(m::TRANSACTIONS, "source" => source.clone()),
            received_lsn: metrics::gauge!(m::RECEIVED_LSN, "source" => source.clone()),
            acknowledged_lsn: metrics::gauge!(m::ACKNOWLEDGED_LSN, "source" => source.clone()),
            changes: Vec::new(),
            repaired: metrics::counter!(m::REPAIRED_CHANGES, "source" => source.clone()),
            repair_lookups: metrics::counter!(m::REPAIR_LOOKUPS, "source" => source.clone()),
            repair_lookup_runs: metrics::counter!(m::REPAIR_LOOKUP_RUNS, "source" => source.clone()),
            repair_tombstones: metrics::counter!(m::REPAIR_TOMBSTONES, "source" => source.clone()),
            repair_lookup_seconds: metrics::histogram!(m::REPAIR_LOOKUP_SECONDS, "source" => source.clone()),
            source,
        }
    }

    /// One batched lookup of a repair: how many runs it read, how many rows it tombstoned, and
    /// how long it took (the flush before it included).
    pub fn repair_lookup(&self, runs: usize, tombstoned: usize, took: std::time::Duration) {
        self.repair_lookups.increment(1);
        self.repair_lookup_runs.increment(runs as u64);
        self.repair_tombstones.increment(tombstoned as u64);
        self.repair_lookup_seconds.record(took.as_secs_f64());
    }

    /// The changes counter of `table` and `op`.
    pub fn change(&mut self, table: &str, op: Op) -> &metrics::Counter {
        let i = match self.changes.iter().position(|(t, _)| t == table) {
            Some(i) => i,
            None => {
                let counter = |op: Op| {
                    metrics::counter!(
                        m::CHANGES,
                        "source" => self.source.clone(),
                        "table" => table.to_string(),
                        "operation" => op.label()
                    )
                };
                let counters = [
                    counter(Op::Insert),
                    counter(Op::Update),
                    counter(Op::Delete),
                ];
                self.changes.push((table.to_string(), counters));
                self.changes.len() - 1
            }
        };
        &self.changes[i].1[op as usize]
    }

    /// The TRUNCATE counter of `table`.
    pub fn truncate(&self, table: &str) {
        metrics::counter!(m::TRUNCATES, "source" => self.source.clone(), "table" => table.to_string())
            .increment(1);
    }
}

/// Counts source rows that produced no ClickHouse row.
pub fn count_skips(reasons: &[SkipReason]) {
    for reason in reasons {
        metrics::counter!(m::ROWS_SKIPPED, "reason" => reason.label()).increment(1);
    }
}
