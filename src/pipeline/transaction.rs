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

use super::rows::CollapsedRows;
use crate::transform::{PayloadRow, RunRow};

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
mod tests {
    use super::*;
    use crate::transform::testing::run_row;

    #[test]
    fn version_is_generation_over_the_low_56_bits_of_the_lsn() {
        let v = |g, lsn| version(g, lsn).unwrap();
        assert_eq!(v(0, 0x16B_6C50), 0x16B_6C50);
        assert_eq!(v(1, 0x16B_6C50), (1 << 56) | 0x16B_6C50);
        assert_eq!(v(255, LSN_MASK), u64::MAX);
        assert!(v(1, 1) > v(0, LSN_MASK));
    }

    #[test]
    fn an_lsn_of_2_pow_56_or_more_is_refused_not_wrapped() {
        for lsn in [1 << 56, (1 << 56) + 0x10, u64::MAX] {
            assert_eq!(version(0, lsn), Err(LsnOverflow { lsn }));
        }
        // At commit: the end LSN.
        let mut t = Transaction::new(1, LSN_MASK - 0x10);
        assert_eq!(t.check_lsn(), Ok(()));
        t.add_row(1, run_row("run_1"));
        assert_eq!(
            t.commit(1 << 56, 0).unwrap_err(),
            LsnOverflow { lsn: 1 << 56 }
        );
        // Before a change enters a transaction whose spilled version would not fit.
        let t = Transaction::new(2, LSN_MASK);
        assert_eq!(t.check_lsn(), Err(LsnOverflow { lsn: 1 << 56 }));
        let t = Transaction::new(3, u64::MAX);
        assert_eq!(t.check_lsn(), Err(LsnOverflow { lsn: u64::MAX }));
        // A spilled transaction commits with its spilled version, which must fit too.
        let mut t = Transaction::new(4, LSN_MASK - 1);
        t.add_row(0, run_row("run_2"));
        let (rows, _) = t.spill();
        assert_eq!(rows.into_sorted()[0]._version, LSN_MASK);
        assert!(t.commit(LSN_MASK, 0).is_ok());
        let message = LsnOverflow { lsn: 1 << 56 }.to_string();
        assert!(
            message.contains("0x100000000000000") && !message.contains('\n'),
            "{message}"
        );
    }

    #[test]
    fn the_final_state_of_each_run_wins_and_payloads_are_kept() {
        let mut t = Transaction::new(7, 0xF0);
        for status in ["PENDING", "EXECUTING", "COMPLETED_SUCCESSFULLY"] {
            let mut r = run_row("run_1");
            r.status = status.into();
            t.add_row(0, r);
        }
        t.add_payload(PayloadRow {
            run_id: "run_1".into(),
            created_at: 0,
            payload: "{}".into(),
        });
        let c = t.commit(0x100, 5).unwrap();
        let rows = c.rows.into_sorted();
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].status, "COMPLETED_SUCCESSFULLY");
        assert_eq!(rows[0]._version, 0x100);
        assert_eq!(c.payloads.len(), 1);
    }

    #[test]
    fn a_spilled_transaction_uses_its_commit_lsn_plus_one_for_every_row() {
        let mut t = Transaction::new(3, 0x500);
        t.add_row(0, run_row("run_1"));
        t.add_row(1, run_row("run_2"));
        let (early, _) = t.spill();
        let early = early.into_sorted();
        assert_eq!(early.len(), 2);
        assert_eq!(early[0]._version, 0x501);
        assert_eq!(early[1]._version, (1 << 56) | 0x501);
        assert!(t.is_empty() && t.is_spilled());
        t.add_row(0, run_row("run_3"));
        let c = t.commit(0x540, 0).unwrap();
        assert_eq!(
            c.end_lsn, 0x540,
            "acknowledged at the commit's end as always"
        );
        assert_eq!(c.rows.into_sorted()[0]._version, 0x501);
        // Between the previous transaction's end (at most 0x500) and this one's end.
        assert!(version(0, 0x500).unwrap() < 0x501 && 0x501 < version(0, 0x540).unwrap());
    }

    #[test]
    fn a_higher_generation_wins_within_a_transaction_in_either_order() {
        for v2_first in [true, false] {
            let mut t = Transaction::new(1, 0x1F0);
            let mut v2 = run_row("run_1");
            v2.status = "EXECUTING".into();
            let mut legacy_tombstone = run_row("run_1");
            legacy_tombstone._is_deleted = 1;
            if v2_first {
                t.add_row(1, v2);
                t.add_row(0, legacy_tombstone);
            } else {
                t.add_row(0, legacy_tombstone);
                t.add_row(1, v2);
            }
            let rows = t.commit(0x200, 0).unwrap().rows.into_sorted();
            assert_eq!(rows.len(), 1);
            assert_eq!(
                (rows[0]._is_deleted, rows[0]._version),
                (0, (1 << 56) | 0x200)
            );
        }
    }
}
