//! One source transaction, from Begin to Commit.
//!
//! Its changes are transformed as they arrive and collapsed per ClickHouse row, so a run inserted
//! and updated five times in one transaction becomes one row in its final state. The version is
//! only known at Commit (it is derived from the commit's end LSN), so rows carry their table's
//! generation until then and are stamped in [`Transaction::commit`].
//!
//! A transaction too large to hold (more rows than a batch) is spilled: its rows so far are
//! stamped and handed over before the Commit arrives. Their version then uses the LSN of the
//! commit record plus one, known from Begin, instead of its end: both lie strictly between the
//! end of the previous transaction's commit record and the end of this one's, so the version
//! orders the same way against every other transaction.

use super::collapse::{CollapsedRows, payload_bytes};
use crate::rows::{PayloadRow, RunRow};

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
    /// Rows were handed over before the Commit; all of them use the spilled version.
    spilled: bool,
    rows: CollapsedRows,
    payloads: Vec<PayloadRow>,
    /// [`payload_bytes`] of `payloads`.
    payloads_bytes: usize,
    /// Row changes seen, including skipped ones.
    pub changes: u64,
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
            spilled: false,
            rows: CollapsedRows::default(),
            payloads: Vec::new(),
            payloads_bytes: 0,
            changes: 0,
        }
    }

    /// Adds a row; a later row for the same ClickHouse key replaces an earlier one unless the
    /// earlier one came from a table with a higher generation (the v2 copy of a run beats the
    /// legacy copy whatever order they were written in).
    pub fn add_row(&mut self, generation: u8, mut row: RunRow) {
        row._version = (generation as u64) << 56;
        self.rows.upsert(row);
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
        self.spilled
    }

    /// Whether the spilled version (the commit LSN plus one) fits in `_version`; the commit's
    /// end LSN is checked by [`Self::commit`]. The pipeline calls it before a change enters the
    /// transaction, so [`Self::spill`] never meets an LSN that does not fit.
    pub fn check_lsn(&self) -> Result<(), LsnOverflow> {
        version(0, self.final_lsn.saturating_add(1)).map(drop)
    }

    /// Takes the rows so far, stamped with the spilled version, for insertion before the Commit.
    /// Only called after [`Self::check_lsn`] passed for a change of this transaction.
    pub fn spill(&mut self) -> (CollapsedRows, Vec<PayloadRow>) {
        self.spilled = true;
        let mut rows = std::mem::take(&mut self.rows);
        let stamped = Self::stamp(&mut rows, self.final_lsn.saturating_add(1));
        debug_assert!(stamped.is_ok(), "check_lsn passed before any row was added");
        self.payloads_bytes = 0;
        (rows, std::mem::take(&mut self.payloads))
    }

    /// Stamps the rows' versions; an error when the LSN does not fit in `_version`.
    pub fn commit(
        mut self,
        end_lsn: u64,
        commit_time_micros: i64,
    ) -> Result<Committed, LsnOverflow> {
        let lsn = if self.spilled {
            self.final_lsn.saturating_add(1)
        } else {
            end_lsn
        };
        Self::stamp(&mut self.rows, lsn)?;
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
