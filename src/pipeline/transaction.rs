//! One source transaction, from Begin to Commit.
//!
//! Its changes are transformed as they arrive and collapsed per ClickHouse row, so a run inserted
//! and updated five times in one transaction becomes one row in its final state. The version is
//! only known at Commit (it is derived from the commit's end LSN), so rows carry their table's
//! generation until then and are stamped in [`Transaction::commit`].
//!
//! A transaction too large to hold (more rows than a batch) is spilled: its rows so far are
//! stamped and handed over before the Commit arrives, as parts. The versions a spilled row can
//! get lie strictly between the end of the previous transaction's commit record and the end of
//! this one's: the commit record's LSN (known from Begin) plus `1 + k`, and the rows left at the
//! Commit get its end LSN. So they order the same way against every other transaction. Inside
//! the transaction only the order of one ClickHouse row's own states matters (ReplacingMergeTree
//! compares versions per key), so `k` counts *that row's* spills: its first spill gets `+1`, its
//! second `+2`, and so on, whichever part each is in. Every later state of a row then has a
//! higher version than every earlier one, for any number of parts, and no intermediate state can
//! win under `FINAL` whatever the order its insert lands in: an insert whose client gave up but
//! which the server committed later (a timed-out async insert flushed after its retry) loses on
//! its version, not on timing. The room is the commit record's size: at least 40 bytes in
//! PostgreSQL (a 24-byte record header, a 2-byte data header and the 8-byte commit time, aligned
//! to 8), so a row uses at most [`SPILL_VERSIONS`] of it. A row spilled that often in one
//! transaction is not spilled again: it stays in the transaction until the Commit, where it gets
//! the end LSN, above all of them. What a row was spilled is remembered by its key's hash (a
//! collision only makes two rows share a counter, which still increases for each): about 16
//! bytes per row of a spilled transaction.

use std::collections::BTreeMap;

use rustc_hash::FxHashMap;

use super::collapse::{CollapsedRows, key_hash, payload_bytes};
use crate::rows::{PayloadRow, RunRow};

/// Distinct versions one row's spills may use after the commit record's LSN: fewer than the
/// smallest commit record (40 bytes), so the rows left at the Commit, stamped with its end,
/// stay above every spilled one.
pub const SPILL_VERSIONS: u64 = 32;

/// `_version` holds the LSN in its low 56 bits; the top 8 hold the generation.
const LSN_MASK: u64 = (1 << 56) - 1;

/// An LSN too large for `_version`'s 56 bits. Masking it would wrap the version to a small
/// number, and every later change of a run would lose to the copies stamped before: the
/// pipeline stops instead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "LSN {lsn:#X} does not fit in _version (generation << 56 | LSN, 56 bits): versions would wrap \
     and later changes would lose to earlier ones in ClickHouse; not replicating past it"
)]
pub struct LsnOverflow {
    pub lsn: u64,
}

/// `_version = generation << 56 | lsn`, or an error once `lsn` reaches 2^56.
pub fn version(generation: u8, lsn: u64) -> Result<u64, LsnOverflow> {
    if lsn > LSN_MASK {
        return Err(LsnOverflow { lsn });
    }
    Ok(((generation as u64) << 56) | lsn)
}

#[derive(Debug)]
pub struct Transaction {
    pub xid: u32,
    /// LSN of the commit record, from Begin.
    final_lsn: u64,
    /// Parts handed over before the Commit (spilled).
    parts: u64,
    /// Hash of the key of each row spilled so far → the offset its last spill used (`k`).
    spilled: FxHashMap<u64, u8>,
    rows: CollapsedRows,
    payloads: Vec<PayloadRow>,
    /// [`payload_bytes`] of `payloads`.
    payloads_bytes: usize,
    /// Row changes seen, including skipped ones.
    pub changes: u64,
    /// Runs whose rows in ClickHouse a repaired change may have made stale, without saying
    /// which: looked up together before the rows are handed over ([`Self::take_lookups`]).
    /// Run id → the generation of the table whose change asked.
    lookups: BTreeMap<String, u8>,
    /// Added to every version's LSN: the shift of the timeline segment this transaction
    /// commits in (`version_map`; 0 before any failover with lost history).
    shift: u64,
}

/// A committed transaction, its rows stamped with their versions.
#[derive(Debug)]
pub struct Committed {
    pub end_lsn: u64,
    /// Microseconds since 2000-01-01, as Postgres reports it.
    pub commit_time_micros: i64,
    pub rows: CollapsedRows,
    pub payloads: Vec<PayloadRow>,
    /// [`payload_bytes`] of `payloads`.
    pub payloads_bytes: usize,
}

impl Committed {
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty() && self.payloads.is_empty()
    }
}

impl Transaction {
    pub fn new(xid: u32, final_lsn: u64) -> Self {
        Transaction {
            xid,
            final_lsn,
            parts: 0,
            spilled: FxHashMap::default(),
            rows: CollapsedRows::default(),
            payloads: Vec::new(),
            payloads_bytes: 0,
            changes: 0,
            lookups: Default::default(),
            shift: 0,
        }
    }

    /// The same transaction with its versions shifted by `shift` (`VersionMap::shift_of_commit`).
    pub fn shifted(mut self, shift: u64) -> Self {
        self.shift = shift;
        self
    }

    /// Adds a row; a later row for the same ClickHouse key replaces an earlier one unless the
    /// earlier one came from a table with a higher generation (the v2 copy of a run beats the
    /// legacy copy whatever order they were written in).
    pub fn add_row(&mut self, generation: u8, mut row: RunRow) {
        row._version = (generation as u64) << 56;
        self.rows.upsert(row);
    }

    /// Marks run `id` for a lookup: before this transaction's rows are handed over, every row
    /// of the run that ClickHouse shows under a key this transaction holds no row for gets a
    /// tombstone ([`Self::tombstone_stale`]).
    pub fn look_up_later(&mut self, id: &str, generation: u8) {
        if !self.lookups.contains_key(id) {
            self.lookups.insert(id.to_string(), generation);
        }
    }

    /// The runs marked by [`Self::look_up_later`] since the last call, with the generation
    /// their tombstones get.
    pub fn take_lookups(&mut self) -> BTreeMap<String, u8> {
        std::mem::take(&mut self.lookups)
    }

    /// Tombstones each of `shown` (rows a reader sees now of the runs in `lookups`) whose key
    /// this transaction holds no row for: the transaction's rows are the run's latest state,
    /// any other key of the run is stale. Returns how many it tombstoned.
    pub fn tombstone_stale(&mut self, lookups: &BTreeMap<String, u8>, shown: Vec<RunRow>) -> usize {
        let mut n = 0;
        for mut row in shown {
            let Some(&generation) = lookups.get(&row.run_id) else {
                continue;
            };
            if self.rows.contains_key(&row) {
                continue;
            }
            row._is_deleted = 1;
            self.add_row(generation, row);
            n += 1;
        }
        n
    }

    pub fn add_payload(&mut self, payload: PayloadRow) {
        self.payloads_bytes += payload_bytes(&payload);
        self.payloads.push(payload);
    }

    /// Copies of this transaction's rows of run `id` that are not tombstones.
    pub fn visible_rows(&self, id: &str) -> Vec<RunRow> {
        self.rows.visible_rows(id)
    }

    pub fn len(&self) -> usize {
        self.rows.len() + self.payloads.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Estimated bytes of the rows held (`collapse::run_bytes`), counted as they are added.
    pub fn bytes(&self) -> usize {
        self.rows.bytes() + self.payloads_bytes
    }

    pub fn is_spilled(&self) -> bool {
        self.parts > 0
    }

    /// The version a row's spill number `k` is stamped with (its low bits).
    fn part_lsn(&self, k: u64) -> u64 {
        self.final_lsn.saturating_add(1 + k.min(SPILL_VERSIONS - 1))
    }

    /// Whether every spilled version fits in `_version`; the commit's end LSN is checked by
    /// [`Self::commit`]. The pipeline calls it before a change enters the transaction, so
    /// [`Self::spill`] never meets an LSN that does not fit.
    pub fn check_lsn(&self) -> Result<(), LsnOverflow> {
        version(0, self.part_lsn(SPILL_VERSIONS).saturating_add(self.shift)).map(drop)
    }

    /// Takes the rows so far, each stamped with its own next spill version, for insertion
    /// before the Commit; a row whose spill versions are used up stays (see the module's
    /// comment). Only called after [`Self::check_lsn`] passed for a change of this transaction.
    pub fn spill(&mut self) -> (CollapsedRows, Vec<PayloadRow>) {
        self.parts += 1;
        let mut out = CollapsedRows::default();
        let mut kept = CollapsedRows::default();
        for mut row in std::mem::take(&mut self.rows).drain() {
            let hash = key_hash(&row);
            let k = self.spilled.get(&hash).map_or(0, |k| u64::from(*k) + 1);
            if k >= SPILL_VERSIONS {
                kept.upsert_boxed(row);
                continue;
            }
            self.spilled.insert(hash, k as u8);
            let low = version(0, self.part_lsn(k).saturating_add(self.shift));
            debug_assert!(low.is_ok(), "check_lsn passed before any row was added");
            row._version |= low.unwrap_or(0);
            out.upsert_boxed(row);
        }
        self.rows = kept;
        self.payloads_bytes = 0;
        (out, std::mem::take(&mut self.payloads))
    }

    /// Stamps the rows' versions at the Commit; an error when the LSN does not fit in
    /// `_version`.
    pub fn commit(
        mut self,
        end_lsn: u64,
        commit_time_micros: i64,
    ) -> Result<Committed, LsnOverflow> {
        // Above every spilled version (see SPILL_VERSIONS). A commit record shorter than a
        // PostgreSQL one (never seen from a server) would put the rest at the highest spill
        // version: a tie ClickHouse breaks by insert order, which the pipeline keeps.
        let lsn = if self.is_spilled() {
            end_lsn.max(self.part_lsn(SPILL_VERSIONS - 1))
        } else {
            end_lsn
        };
        Self::stamp(&mut self.rows, lsn.saturating_add(self.shift))?;
        Ok(Committed {
            end_lsn,
            commit_time_micros,
            rows: self.rows,
            payloads: self.payloads,
            payloads_bytes: self.payloads_bytes,
        })
    }

    /// Every row gets the same low bits, so stamping in place keeps the collapse as it is.
    fn stamp(rows: &mut CollapsedRows, lsn: u64) -> Result<(), LsnOverflow> {
        let low = version(0, lsn)?;
        for row in rows.iter_mut() {
            row._version |= low;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
