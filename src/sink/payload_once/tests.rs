//! Which payload rows of an insert are written on a table that keeps copies.

use std::collections::HashSet;

use super::to_insert;
use crate::rows::PayloadRow;

fn row(run_id: &str, payload: &str) -> PayloadRow {
    PayloadRow {
        run_id: run_id.into(),
        created_at: 1_790_000_000_000,
        payload: payload.into(),
    }
}

#[test]
fn rows_of_runs_the_table_holds_are_left_out() {
    let rows = [row("a", "{}"), row("b", "{}"), row("c", "{}")];
    let stored: HashSet<String> = ["b".to_string()].into();
    assert_eq!(to_insert(&rows, &stored), vec![0, 2]);
}

#[test]
fn nothing_stored_keeps_every_row_in_order() {
    let rows = [row("c", "{}"), row("a", "{}"), row("b", "{}")];
    assert_eq!(to_insert(&rows, &HashSet::new()), vec![0, 1, 2]);
}

#[test]
fn of_several_rows_of_one_run_the_last_is_kept() {
    // An insert, a delete and an insert of one id in one batch: a ReplacingMergeTree would keep
    // the row inserted last.
    let rows = [
        row("a", r#"{"v":1}"#),
        row("b", "{}"),
        row("a", r#"{"v":2}"#),
    ];
    let keep = to_insert(&rows, &HashSet::new());
    assert_eq!(keep, vec![1, 2]);
    assert_eq!(rows[keep[1]].payload, r#"{"v":2}"#);
}

#[test]
fn a_fully_replayed_insert_writes_nothing() {
    let rows = [row("a", "{}"), row("b", "{}")];
    let stored: HashSet<String> = ["a".to_string(), "b".to_string()].into();
    assert!(to_insert(&rows, &stored).is_empty());
}
