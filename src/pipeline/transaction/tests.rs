//! Unit tests of `transaction`.

use super::*;
use crate::testing::runs::run_row;

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
    let mut t = Transaction::new(1, LSN_MASK - 0x30);
    assert_eq!(t.check_lsn(), Ok(()));
    t.add_row(1, run_row("run_1"));
    assert_eq!(
        t.commit(1 << 56, 0).unwrap_err(),
        LsnOverflow { lsn: 1 << 56 }
    );
    // Before a change enters a transaction whose highest spilled version would not fit.
    let t = Transaction::new(2, LSN_MASK - SPILL_VERSIONS + 1);
    assert_eq!(t.check_lsn(), Err(LsnOverflow { lsn: 1 << 56 }));
    let t = Transaction::new(3, u64::MAX);
    assert_eq!(t.check_lsn(), Err(LsnOverflow { lsn: u64::MAX }));
    // A spilled transaction's parts and its rest must fit too.
    let mut t = Transaction::new(4, LSN_MASK - SPILL_VERSIONS);
    assert_eq!(t.check_lsn(), Ok(()));
    t.add_row(0, run_row("run_2"));
    let (rows, _) = t.spill();
    assert_eq!(
        rows.into_sorted()[0]._version,
        LSN_MASK - SPILL_VERSIONS + 1
    );
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
fn spilled_parts_get_increasing_versions_and_the_rest_the_commit_end() {
    let mut t = Transaction::new(3, 0x500);
    t.add_row(0, run_row("run_1"));
    t.add_row(1, run_row("run_2"));
    let (early, _) = t.spill();
    let early = early.into_sorted();
    assert_eq!(early.len(), 2);
    assert_eq!(early[0]._version, 0x501);
    assert_eq!(early[1]._version, (1 << 56) | 0x501);
    assert!(t.is_empty() && t.is_spilled());
    // The same run again in the next part: a higher version, whatever order the parts land in.
    t.add_row(0, run_row("run_1").with_status("EXECUTING"));
    let (second, _) = t.spill();
    assert_eq!(second.into_sorted()[0]._version, 0x502);
    t.add_row(0, run_row("run_3"));
    let c = t.commit(0x528, 0).unwrap();
    assert_eq!(
        c.end_lsn, 0x528,
        "acknowledged at the commit's end as always"
    );
    assert_eq!(c.rows.into_sorted()[0]._version, 0x528, "the rest: the end");
    // Between the previous transaction's end (at most 0x500) and this one's end.
    assert!(version(0, 0x500).unwrap() < 0x501 && 0x502 < version(0, 0x528).unwrap());
}

#[test]
fn a_rows_spills_get_increasing_versions_in_any_number_of_parts() {
    let mut t = Transaction::new(3, 0x500);
    let mut hot = Vec::new();
    let mut other = Vec::new();
    for k in 0..(SPILL_VERSIONS + 8) {
        // run_hot in every part; run_cold only in parts 35 and 38.
        t.add_row(0, run_row("run_hot").with_status(format!("S{k}")));
        if k == 35 || k == 38 {
            t.add_row(0, run_row("run_cold").with_status(format!("S{k}")));
        }
        t.add_row(0, run_row(&format!("run_filler_{k}")));
        let (rows, _) = t.spill();
        for row in rows.into_sorted() {
            assert!(row._version > 0x500, "above the previous transaction");
            assert!(
                row._version < 0x500 + 40,
                "inside the smallest commit record"
            );
            match row.run_id.as_str() {
                "run_hot" => hot.push(row._version),
                "run_cold" => other.push(row._version),
                _ => assert_eq!(row._version, 0x501, "a row's first spill"),
            }
        }
    }
    assert_eq!(
        hot.len() as u64,
        SPILL_VERSIONS,
        "spilled until its room is used"
    );
    assert!(
        hot.windows(2).all(|w| w[0] < w[1]),
        "strictly increasing: {hot:x?}"
    );
    assert_eq!(
        other,
        vec![0x501, 0x502],
        "its own count, whatever the part"
    );
    let c = t.commit(0x500 + 40, 0).unwrap();
    let rest = c.rows.into_sorted();
    let hot_rest = rest.iter().find(|r| r.run_id == "run_hot").expect("held");
    assert_eq!(
        hot_rest.status,
        format!("S{}", SPILL_VERSIONS + 7),
        "its last state"
    );
    assert_eq!(
        hot_rest._version,
        0x500 + 40,
        "at the commit's end, above every spill"
    );
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
