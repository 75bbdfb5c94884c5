//! Held transactions resolved together: each sees what ClickHouse would show it.

use std::collections::BTreeMap;

use super::*;
use crate::pipeline::transaction::Transaction;
use crate::testing::runs::run_row;

/// A transaction committed at `end` holding `rows`, asking to look up `lookups`.
fn committed(end: u64, rows: Vec<RunRow>) -> Committed {
    let mut t = Transaction::new(1, end - 40);
    for row in rows {
        t.add_row(0, row);
    }
    t.commit(end, 0).unwrap()
}

fn ask(ids: &[&str]) -> BTreeMap<String, u8> {
    ids.iter().map(|id| (id.to_string(), 0)).collect()
}

fn in_project(id: &str, project: &str) -> RunRow {
    let mut r = run_row(id);
    r.project_id = project.into();
    r
}

#[test]
fn transactions_held_together_each_tombstone_what_the_ones_before_left() {
    let mut held = Held::default();
    // run_x is in proj_1 in ClickHouse; the first held transaction moves it to proj_2, the
    // second to proj_3; a transaction without lookups sits between them.
    held.push(
        committed(1000, vec![in_project("run_x", "proj_2")]),
        ask(&["run_x"]),
    );
    held.push(committed(1100, vec![run_row("run_other")]), BTreeMap::new());
    held.push(
        committed(1200, vec![in_project("run_x", "proj_3")]),
        ask(&["run_x"]),
    );
    let (round, ids) = held.start_lookup();
    assert_eq!(ids, ["run_x"], "one lookup for both");
    let mut shown = in_project("run_x", "proj_1");
    shown._version = 500;
    let resolved = held.resolve(round, vec![shown]).expect("its own round");
    assert!(held.is_empty() && held.bytes() == 0);
    assert_eq!(resolved.committed.len(), 3, "all three, in order");
    assert_eq!(resolved.tombstoned, 2);
    let rows = |i: usize| -> Vec<(String, u8, u64)> {
        let mut v: Vec<_> = resolved.committed[i]
            .rows
            .iter()
            .map(|r| (r.project_id.clone(), r._is_deleted, r._version))
            .collect();
        v.sort();
        v
    };
    assert_eq!(
        rows(0),
        [("proj_1".into(), 1, 1000), ("proj_2".into(), 0, 1000)],
        "the first tombstones the key ClickHouse shows"
    );
    assert_eq!(
        rows(2),
        [("proj_2".into(), 1, 1200), ("proj_3".into(), 0, 1200)],
        "the second tombstones the key the first left, not stored yet when the lookup ran"
    );
}

#[test]
fn an_answer_given_up_on_is_not_taken_for_the_next() {
    let mut held = Held::default();
    held.push(committed(1000, vec![run_row("run_x")]), ask(&["run_x"]));
    let (first, _) = held.start_lookup();
    held.give_up_lookup();
    let (second, _) = held.start_lookup();
    assert!(held.resolve(first, Vec::new()).is_none(), "stale");
    assert!(held.resolve(second, Vec::new()).is_some());
}
