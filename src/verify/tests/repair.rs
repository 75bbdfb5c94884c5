use std::collections::HashMap;

use crate::testing::runs::run_row;
use crate::verify::compare::{Finding, Kind};
use crate::verify::repair::{Key, Plan, key_of, plan};
use crate::verify::settle::{Drifted, Observation};

const TABLE: &str = "trigger_dev.task_runs_v2";
/// Generation 1's `L` for the repair.
const L: u64 = 0x5000;

fn v(generation: u64, lsn: u64) -> u64 {
    (generation << 56) | lsn
}

fn drifted(kind: Kind, actual: Vec<crate::rows::RunRow>) -> Drifted {
    Drifted {
        finding: Finding {
            run_id: "run_1".into(),
            kinds: vec![kind],
            columns: vec![],
            extra_rows: 0,
        },
        seen: Observation {
            actual,
            ..Observation::default()
        },
    }
}

/// The repair's copy of run_1, stamped at generation 1's `L`.
fn copy() -> crate::rows::RunRow {
    let mut r = run_row("run_1");
    r._version = v(1, L);
    r
}

fn held(rows: &[(crate::rows::RunRow, bool)]) -> HashMap<Key, (u64, bool)> {
    rows.iter()
        .map(|(r, deleted)| (key_of(r.sort_key()), (r._version, *deleted)))
        .collect()
}

fn lsns() -> HashMap<u8, u64> {
    HashMap::from([(0, 0x4000), (1, L)])
}

#[test]
fn a_tombstone_newer_than_the_repair_makes_the_run_unrepairable_with_its_version_and_fix() {
    let mut tomb = run_row("run_1");
    tomb._version = v(1, 0xF0_0000_0000);
    let d = drifted(Kind::Missing, vec![]);
    let got = plan(
        TABLE,
        &d,
        &[copy()],
        &held(&[(tomb.clone(), true)]),
        &lsns(),
    )
    .unwrap();
    let Plan::Unrepairable(why) = got else {
        panic!("a hidden run cannot be rewritten: {got:?}")
    };
    assert!(why.starts_with("a tombstone at _version"), "{why}");
    assert!(why.contains("(generation 1, LSN F0/0)"), "{why}");
    assert!(
        why.contains(&format!(
            "ALTER TABLE {TABLE} DELETE WHERE run_id = 'run_1' AND _version = {}",
            tomb._version
        )),
        "{why}"
    );
    // A live row above the repair's version is unrepairable too.
    let got = plan(TABLE, &d, &[copy()], &held(&[(tomb, false)]), &lsns()).unwrap();
    assert!(
        matches!(&got, Plan::Unrepairable(why) if why.starts_with("ClickHouse's row has _version")),
        "{got:?}"
    );
}

#[test]
fn a_tombstone_at_or_below_the_repairs_version_is_outranked() {
    for lsn in [L - 1, L] {
        let mut tomb = run_row("run_1");
        tomb._version = v(1, lsn);
        let d = drifted(Kind::Missing, vec![]);
        let got = plan(TABLE, &d, &[copy()], &held(&[(tomb, true)]), &lsns()).unwrap();
        assert_eq!(got, Plan::Repair(vec![]), "{lsn:#x}: the rewrite wins");
    }
    // A tombstone under another key hides nothing the repair writes.
    let mut elsewhere = run_row("run_1");
    elsewhere.created_at += 1;
    elsewhere._version = v(1, 0xF0_0000_0000);
    let d = drifted(Kind::Missing, vec![]);
    let got = plan(TABLE, &d, &[copy()], &held(&[(elsewhere, true)]), &lsns()).unwrap();
    assert_eq!(got, Plan::Repair(vec![]));
}

#[test]
fn a_row_postgres_does_not_have_gets_a_tombstone_at_its_generations_l_unless_it_outranks_it() {
    let mut extra = run_row("run_1");
    extra._version = v(0, 0x3000);
    let d = drifted(Kind::Extra, vec![extra.clone()]);
    let got = plan(TABLE, &d, &[], &held(&[(extra.clone(), false)]), &lsns()).unwrap();
    let Plan::Repair(tombstones) = got else {
        panic!("{got:?}")
    };
    assert_eq!(tombstones.len(), 1);
    assert_eq!(tombstones[0]._is_deleted, 1);
    assert_eq!(tombstones[0]._version, v(0, 0x4000), "generation 0's L");
    // ClickHouse's row is newer than that L: no tombstone can hide it.
    let mut future = extra.clone();
    future._version = v(0, 0x4001);
    let d = drifted(Kind::Extra, vec![future.clone()]);
    let got = plan(TABLE, &d, &[], &held(&[(future, false)]), &lsns()).unwrap();
    assert!(
        matches!(&got, Plan::Unrepairable(why) if why.contains("newer than the tombstone's")),
        "{got:?}"
    );
    // A generation no verified table has.
    let mut alien = extra;
    alien._version = v(7, 1);
    let d = drifted(Kind::Extra, vec![alien]);
    let got = plan(TABLE, &d, &[], &HashMap::new(), &lsns()).unwrap();
    assert!(
        matches!(&got, Plan::Unrepairable(why) if why.contains("generation 7")),
        "{got:?}"
    );
}

#[test]
fn a_row_under_the_key_a_copy_rewrites_is_replaced_not_tombstoned() {
    let mut stale = run_row("run_1");
    stale.status = "CRASHED".into();
    stale._version = v(1, 0x10);
    let d = drifted(Kind::Stale, vec![stale.clone()]);
    let got = plan(TABLE, &d, &[copy()], &held(&[(stale, false)]), &lsns()).unwrap();
    assert_eq!(got, Plan::Repair(vec![]));
}
