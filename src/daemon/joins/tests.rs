//! The join decisions, on catalog readings written out by hand.

use super::*;

fn t(name: &str, exists: bool, member: bool) -> TableNow {
    TableNow {
        name: name.into(),
        exists,
        member,
        unready: None,
    }
}

#[test]
fn the_first_record_covers_what_the_publication_has() {
    let tables = [t("TaskRun", true, true), t("task_run_v2", false, false)];
    let mut c = Coverage::baseline(&tables);
    assert_eq!(c.covered, ["TaskRun"]);
    let (steps, changed) = c.plan(&tables, true);
    assert_eq!(steps, [Step::Absent("task_run_v2".into())]);
    assert!(!changed);
}

#[test]
fn a_table_that_appears_joins_with_a_copy_or_waits_for_the_operator() {
    let mut c = Coverage {
        covered: vec!["TaskRun".into()],
        ..Coverage::default()
    };
    let now = [t("TaskRun", true, true), t("task_run_v2", true, false)];
    assert_eq!(
        c.clone().plan(&now, true).0,
        [Step::Join("task_run_v2".into())]
    );
    // The worker may not ALTER: it asks, and joins (copying) once the operator added it.
    assert_eq!(
        c.clone().plan(&now, false).0,
        [Step::AskOperator("task_run_v2".into())]
    );
    let added = [t("TaskRun", true, true), t("task_run_v2", true, true)];
    assert_eq!(c.plan(&added, false).0, [Step::Join("task_run_v2".into())]);
}

#[test]
fn a_table_failing_its_checks_waits_until_it_passes() {
    let mut c = Coverage {
        covered: vec!["TaskRun".into()],
        ..Coverage::default()
    };
    let mut v2 = t("task_run_v2", true, false);
    v2.unready = Some("replica_identity: default".into());
    let (steps, _) = c.plan(&[t("TaskRun", true, true), v2], true);
    assert_eq!(
        steps,
        [Step::NotReady(
            "task_run_v2".into(),
            "replica_identity: default".into()
        )]
    );
}

#[test]
fn an_interrupted_join_is_done_again_and_a_table_that_left_rejoins() {
    // Killed after the intent was written (before or after the ALTER): it joins again.
    let mut c = Coverage {
        covered: vec!["TaskRun".into()],
        pending: vec!["task_run_v2".into()],
        ..Coverage::default()
    };
    for member in [false, true] {
        let now = [t("TaskRun", true, true), t("task_run_v2", true, member)];
        assert_eq!(
            c.clone().plan(&now, true).0,
            [Step::Join("task_run_v2".into())]
        );
    }
    // A covered table dropped from the publication (or dropped and created again) is no
    // longer covered: when it is back, its rows are copied again.
    c.pending.clear();
    c.covered.push("task_run_v2".into());
    let (steps, changed) = c.plan(
        &[t("TaskRun", true, true), t("task_run_v2", true, false)],
        true,
    );
    assert!(changed);
    assert_eq!(c.covered, ["TaskRun"]);
    assert_eq!(steps, [Step::Join("task_run_v2".into())]);
    // A pending table that no longer exists is forgotten.
    let mut c = Coverage {
        covered: vec!["TaskRun".into()],
        pending: vec!["task_run_v2".into()],
        ..Coverage::default()
    };
    let (_, changed) = c.plan(
        &[t("TaskRun", true, true), t("task_run_v2", false, false)],
        true,
    );
    assert!(changed && c.pending.is_empty());
}
