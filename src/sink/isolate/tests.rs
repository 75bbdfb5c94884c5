//! Isolation against a fake ClickHouse that refuses rows by rule: which rows end up stored,
//! neutralised, rejected, when the refusal counts as systemic, and how many inserts it takes.

use std::sync::Mutex;

use super::*;
use crate::rows::RunRow;
use crate::testing::runs::run_row;

/// Refuses an insert when any of its rows matches `refuses`; counts inserts and stored rows.
/// Its canary is a row it took before, when it took one.
struct Fake<F: Fn(&RunRow) -> bool + Sync> {
    refuses: F,
    inserts: Mutex<usize>,
    stored: Mutex<Vec<RunRow>>,
    canary: Option<RunRow>,
}

impl<F: Fn(&RunRow) -> bool + Sync> Fake<F> {
    fn new(refuses: F) -> Self {
        Fake {
            refuses,
            inserts: Mutex::new(0),
            stored: Mutex::new(Vec::new()),
            canary: Some(run_row("run_stored_before")),
        }
    }

    fn without_canary(mut self) -> Self {
        self.canary = None;
        self
    }
}

impl<F: Fn(&RunRow) -> bool + Sync + Send> TryInsert<RunRow> for Fake<F> {
    async fn try_insert(&self, rows: &[RunRow]) -> Result<(), Refused> {
        *self.inserts.lock().unwrap() += 1;
        if rows.iter().any(|r| (self.refuses)(r)) {
            return Err(Refused {
                text: "Code: 117. INCORRECT_DATA".into(),
            });
        }
        self.stored.lock().unwrap().extend(rows.iter().cloned());
        Ok(())
    }

    async fn canary(&self) -> Option<bool> {
        let row = self.canary.as_ref()?;
        *self.inserts.lock().unwrap() += 1;
        Some(!(self.refuses)(row))
    }
}

fn batch(n: usize) -> Vec<RunRow> {
    (0..n)
        .map(|i| {
            let mut r = run_row(&format!("run_{i:05}"));
            r.output = format!(r#"{{"data":{i}}}"#);
            r
        })
        .collect()
}

fn refused() -> Refused {
    Refused {
        text: "first".into(),
    }
}

/// The documented bound: `(budget + 1) · (2·⌈log2 n⌉ + NEUTRALISABLE + 2)`.
fn bound(n: usize, budget: usize) -> usize {
    let levels = (n as f64).log2().ceil() as usize;
    (budget + 1) * (2 * levels + RunRow::NEUTRALISABLE + 2)
}

#[tokio::test]
async fn a_poison_output_is_neutralised_and_every_other_row_lands() {
    // The output of run 777 is what ClickHouse cannot take.
    let fake = Fake::new(|r: &RunRow| r.run_id == "run_00777" && r.output != "{}");
    let rows = batch(10_000);
    let result = isolate(&fake, &rows, refused(), 2).await;
    let Isolated::Done {
        stored,
        salvaged,
        inserts,
    } = result
    else {
        panic!("not systemic: {result:?}")
    };
    assert_eq!(stored, 10_000);
    assert_eq!(salvaged.len(), 1);
    assert_eq!(salvaged[0].run_id, "run_00777");
    assert_eq!(salvaged[0].neutralised, ["output"]);
    assert!(salvaged[0].stored);
    let kept = fake.stored.lock().unwrap();
    assert_eq!(kept.len(), 10_000);
    assert_eq!(
        kept.iter()
            .find(|r| r.run_id == "run_00777")
            .unwrap()
            .output,
        "{}"
    );
    assert!(inserts <= bound(10_000, 2), "{inserts} inserts");
    eprintln!("one poison output in 10,000 rows: {inserts} inserts");
}

#[tokio::test]
async fn rows_refused_even_when_emptied_are_rejected_up_to_the_budget() {
    let fake = Fake::new(|r: &RunRow| r.run_id == "run_00003" || r.run_id == "run_00800");
    let rows = batch(1_000);
    let Isolated::Done {
        stored, salvaged, ..
    } = isolate(&fake, &rows, refused(), 2).await
    else {
        panic!("two rejected rows fit a budget of two")
    };
    assert_eq!(stored, 998);
    let rejected: Vec<_> = salvaged.iter().filter(|s| !s.stored).collect();
    assert_eq!(rejected.len(), 2);
    assert_eq!(rejected[0].neutralised, ["output", "error"]);
    assert_eq!(fake.stored.lock().unwrap().len(), 998);
}

#[tokio::test]
async fn a_refusal_of_every_row_is_systemic_and_cheap() {
    // A materialized view that refuses every row, whatever its fields.
    let fake = Fake::new(|_: &RunRow| true);
    let rows = batch(10_000);
    let result = isolate(&fake, &rows, refused(), 2).await;
    let Isolated::Systemic { inserts, .. } = result else {
        panic!("a table that refuses everything is systemic: {result:?}")
    };
    assert!(inserts <= bound(10_000, 2), "{inserts} inserts");
    assert!(
        fake.stored.lock().unwrap().is_empty(),
        "nothing is stored, so nothing is lost"
    );
    eprintln!(
        "every row refused: systemic after {inserts} inserts (bound {})",
        bound(10_000, 2)
    );
}

#[tokio::test]
async fn a_refusal_of_a_large_share_is_systemic() {
    // A CHECK that a third of the rows break.
    let fake = Fake::new(|r: &RunRow| r.run_id.ends_with(['0', '3', '6']));
    let rows = batch(3_000);
    let result = isolate(&fake, &rows, refused(), 2).await;
    assert!(
        matches!(result, Isolated::Systemic { .. }),
        "a third of the rows: {result:?}"
    );
}

#[tokio::test]
async fn three_bad_runs_in_a_hundred_are_poison_not_a_table_wide_refusal() {
    let bad = ["run_00007", "run_00050", "run_00093"];
    let fake = Fake::new(|r: &RunRow| bad.contains(&r.run_id.as_str()));
    let rows = batch(100);
    let result = isolate(&fake, &rows, refused(), budget(rows.len())).await;
    let Isolated::Done {
        stored, salvaged, ..
    } = result
    else {
        panic!("3 bad rows in 100 are poison rows: {result:?}")
    };
    assert_eq!(stored, 97);
    assert_eq!(salvaged.iter().filter(|s| !s.stored).count(), 3);
    let kept = fake.stored.lock().unwrap();
    let mut ids: Vec<&str> = kept.iter().map(|r| r.run_id.as_str()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(kept.len(), 97, "each good row stored once");
    assert_eq!(ids.len(), 97);
    // The share, not a count: a fifth of a batch is the table, however the canary answers.
    assert_eq!(budget(100), 5);
    assert_eq!(budget(10), 2);
    assert_eq!(budget(10_000), 500);
}

#[tokio::test]
async fn a_systemic_refusal_reports_the_rows_it_stored_before_it_stopped() {
    // Rows refused past the budget after halves were stored: the sink retries only the rest.
    let fake = Fake::new(|r: &RunRow| r.run_id.ends_with('5'));
    let rows = batch(40);
    let result = isolate(&fake, &rows, refused(), 2).await;
    let Isolated::Systemic { landed, .. } = result else {
        panic!("four bad rows past a budget of two: {result:?}")
    };
    let stored = fake.stored.lock().unwrap();
    assert!(!stored.is_empty(), "some halves were stored first");
    for (row, landed) in rows.iter().zip(&landed) {
        assert_eq!(
            *landed,
            stored.iter().any(|s| s.run_id == row.run_id),
            "{} reported as it is",
            row.run_id
        );
    }
}

#[tokio::test]
async fn a_single_row_batch_is_salvaged_directly() {
    let fake = Fake::new(|r: &RunRow| r.output != "{}");
    let rows = batch(1);
    let Isolated::Done {
        stored,
        salvaged,
        inserts,
    } = isolate(&fake, &rows, refused(), 2).await
    else {
        panic!()
    };
    assert_eq!((stored, inserts), (1, 1));
    assert_eq!(salvaged[0].neutralised, ["output"]);
}

#[tokio::test]
async fn one_row_refused_like_any_other_is_systemic_not_poison() {
    // A single-row batch under a table that refuses everything looks like one poison row; the
    // canary (a row the table took before) tells them apart.
    let fake = Fake::new(|_: &RunRow| true);
    let result = isolate(&fake, &batch(1), refused(), 2).await;
    assert!(matches!(result, Isolated::Systemic { .. }), "{result:?}");

    // With no canary to try, giving the row up could lose it: systemic too.
    let fake = Fake::new(|r: &RunRow| r.run_id == "run_00000").without_canary();
    let result = isolate(&fake, &batch(1), refused(), 2).await;
    assert!(matches!(result, Isolated::Systemic { .. }), "{result:?}");

    // A canary the table still takes: the row is poison, rejected, its batch lands.
    let fake = Fake::new(|r: &RunRow| r.run_id == "run_00000");
    let result = isolate(&fake, &batch(1), refused(), 2).await;
    let Isolated::Done { salvaged, .. } = result else {
        panic!("{result:?}")
    };
    assert!(!salvaged[0].stored);
}

#[tokio::test]
async fn a_row_refused_just_before_the_table_is_fixed_is_stored_not_rejected() {
    // The table refuses everything until the canary: the fix lands in between.
    let fixed = std::sync::atomic::AtomicBool::new(false);
    struct Fixing<'a>(&'a std::sync::atomic::AtomicBool, Fake<fn(&RunRow) -> bool>);
    impl TryInsert<RunRow> for Fixing<'_> {
        async fn try_insert(&self, rows: &[RunRow]) -> Result<(), Refused> {
            if self.0.load(std::sync::atomic::Ordering::SeqCst) {
                self.1.stored.lock().unwrap().extend(rows.iter().cloned());
                return Ok(());
            }
            Err(refused())
        }
        async fn canary(&self) -> Option<bool> {
            self.0.store(true, std::sync::atomic::Ordering::SeqCst);
            Some(true)
        }
    }
    let ins = Fixing(&fixed, Fake::new(|_: &RunRow| true));
    let Isolated::Done {
        stored, salvaged, ..
    } = isolate(&ins, &batch(1), refused(), 2).await
    else {
        panic!("the table takes rows again")
    };
    assert_eq!(stored, 1);
    assert!(salvaged.is_empty(), "nothing rejected: {salvaged:?}");
    assert_eq!(
        ins.1.stored.lock().unwrap()[0].output,
        r#"{"data":0}"#,
        "the whole row"
    );
}

#[test]
fn the_refusing_view_is_read_from_clickhouses_exception() {
    // chDB 26.9, as the integration tests see it.
    let embedded = "Code: 469. DB::Exception: Constraint `short_titles` for table trigger_dev.errors_v1 \
         is violated at row 1. Expression: (length(error_message) <= 10): while pushing to view \
         trigger_dev.errors_mv_v1. (VIOLATED_CONSTRAINT)";
    assert_eq!(refusing_view(embedded), Some("trigger_dev.errors_mv_v1"));
    // A server names the view with its UUID; a view feeding another is named innermost first.
    let server = "Code: 395. DB::Exception: broken: while executing 'FUNCTION throwIf(...)': while \
         pushing to view db.inner_mv (5b8a1e0c-0c8f-4c47-9d3b-0d0f3c2c4f55): while pushing to view \
         db.outer_mv (0d0f3c2c-4f55-4c47-9d3b-5b8a1e0c0c8f). (FUNCTION_THROW_IF_VALUE_IS_NON_ZERO) \
         (version 26.9.2.1)";
    assert_eq!(refusing_view(server), Some("db.inner_mv"));
    assert_eq!(
        refusing_view("Code: 117. DB::Exception: Cannot parse JSON object. (INCORRECT_DATA)"),
        None
    );
}

#[tokio::test]
async fn a_view_refusing_some_rows_is_systemic_without_splitting() {
    // trigger.dev's errors_mv_v1 broken: it refuses the failed runs only, so the canary (a run
    // that did not fail) still goes in and would have the failed runs rejected as poison.
    let fake = Fake::new(|r: &RunRow| r.run_id.ends_with('7'));
    let first = Refused {
        text: "Code: 469. DB::Exception: Constraint `c` for table db.errors_v1 is violated at \
               row 1: while pushing to view db.errors_mv_v1. (VIOLATED_CONSTRAINT)"
            .into(),
    };
    let result = isolate(&fake, &batch(100), first, 2).await;
    let Isolated::Systemic {
        reason, inserts, ..
    } = result
    else {
        panic!("a view's refusal is not a poison row: {result:?}")
    };
    assert!(
        reason.starts_with("materialized view db.errors_mv_v1 refuses the rows: Code: 469."),
        "{reason}"
    );
    assert_eq!(inserts, 0, "no split insert feeds the other views again");
    assert_eq!(*fake.inserts.lock().unwrap(), 0);
    assert!(fake.stored.lock().unwrap().is_empty());
}
