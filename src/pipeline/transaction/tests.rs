//! Unit tests of `transaction`.

use super::*;
use crate::testing::runs::run_row;

#[test]
fn version_is_generation_over_the_low_56_bits_of_the_lsn() {
    assert_eq!(version(0, 0x16B_6C50), 0x16B_6C50);
    assert_eq!(version(1, 0x16B_6C50), (1 << 56) | 0x16B_6C50);
    assert_eq!(version(0, u64::MAX), LSN_MASK);
    assert!(version(1, 1) > version(0, LSN_MASK));
}

#[test]
fn the_final_state_of_each_run_wins_and_payloads_are_kept() {
    let mut t = Transaction::new(7, 0xF0);
    for status in ["PENDING", "EXECUTING", "COMPLETED_SUCCESSFULLY"] {
        t.add_row(0, run_row("run_1").with_status(status));
    }
    t.add_payload(PayloadRow {
        run_id: "run_1".into(),
        created_at: 0,
        payload: "{}".into(),
    });
    let c = t.commit(0x100, 5);
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
    let c = t.commit(0x540, 0);
    assert_eq!(
        c.end_lsn, 0x540,
        "acknowledged at the commit's end as always"
    );
    assert_eq!(c.rows.into_sorted()[0]._version, 0x501);
    // Between the previous transaction's end (at most 0x500) and this one's end.
    assert!(version(0, 0x500) < 0x501 && 0x501 < version(0, 0x540));
}

#[test]
fn a_higher_generation_wins_within_a_transaction_in_either_order() {
    for v2_first in [true, false] {
        let mut t = Transaction::new(1, 0x1F0);
        let v2 = run_row("run_1").with_status("EXECUTING");
        let legacy_tombstone = run_row("run_1").deleted();
        if v2_first {
            t.add_row(1, v2);
            t.add_row(0, legacy_tombstone);
        } else {
            t.add_row(0, legacy_tombstone);
            t.add_row(1, v2);
        }
        let rows = t.commit(0x200, 0).rows.into_sorted();
        assert_eq!(rows.len(), 1);
        assert_eq!(
            (rows[0]._is_deleted, rows[0]._version),
            (0, (1 << 56) | 0x200)
        );
    }
}
