//! Finding the rows of a refused insert: poison rows are isolated, neutralised or skipped; a
//! refusal that hits many rows is *systemic* and loses nothing.
//!
//! ClickHouse refuses a whole INSERT when one row is bad. [`isolate`] splits the refused rows in
//! halves, depth first, until the refused rows are alone; each is retried with its JSON fields
//! replaced by `{}` one at a time ([`SinkRow::neutralise`]), which is what fixes a real poison row
//! (a JSON value ClickHouse cannot take). A row refused even with every JSON field emptied is
//! either a poison row of another kind or the table refusing everything — a broken materialized
//! view, a CHECK a DBA added, a column type changed — and the two look the same from one row. So
//! before such a row is given up, a *canary* is inserted: a row the table took before. Only if the
//! table still takes the canary is the row *rejected*; if it refuses the canary too, or there is
//! no canary to try, or more rows are rejected than a share of the batch ([`budget`]: a few bad
//! runs in a batch are poison, a twentieth of it is the table), isolation stops and reports
//! [`Isolated::Systemic`]: dropping the rows would lose the batch, so the sink treats it like an
//! outage (retry, never acknowledge). What isolation stored before it stopped is reported with
//! it (`landed`), and the sink's retries leave those rows out: a row is never stored twice by
//! retrying (upstream's error views count every stored failed run).
//!
//! A refusal raised inside a materialized view on the table ([`refusing_view`], such as
//! trigger.dev's `errors_mv_v1`, which reads every insert into the runs table) is systemic at
//! once, without splitting: the view is what is broken, not the row. The canary cannot tell,
//! since it is a row the view may never look at (the error views skip runs that did not fail),
//! so such rows would otherwise be rejected one by one; and every split insert that succeeds
//! feeds the healthy views again (they count inserted rows), at every retry.
//!
//! Bounds: each rejected row costs at most two inserts per level of halving, one per neutralisable
//! field, the canary and one last try of the row, and isolation stops at `budget + 1` rejected
//! rows, so a refused batch of `n` rows costs at most `(budget + 1) · (2·⌈log2 n⌉ +
//! NEUTRALISABLE + 2)` inserts; only the inserts that succeed create parts.

use std::future::Future;
use std::ops::Range;

use super::row::SinkRow;

/// ClickHouse refused the data of an insert.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    pub text: String,
}

/// Inserts rows, retrying transient failures itself: the only failure it returns is a refusal
/// of the data.
pub trait TryInsert<T: SinkRow> {
    fn try_insert(&self, rows: &[T]) -> impl Future<Output = Result<(), Refused>> + Send;

    /// Inserts again a row the table took before (storing it again changes nothing a reader
    /// sees): `Some(true)` when the table still takes it, `Some(false)` when it refuses it too,
    /// `None` when there is no such row to try.
    fn canary(&self) -> impl Future<Output = Option<bool>> + Send;
}

/// Rows a batch may lose as poison before the refusal counts as systemic: a share of the batch
/// (one in twenty), at least two. An absolute count made three bad runs in a batch of a hundred
/// a table-wide refusal, held forever.
pub fn budget(rows: usize) -> usize {
    (rows / 20).max(2)
}

/// A row stored only after some of its fields were emptied, or not at all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Salvaged {
    pub run_id: String,
    /// Columns replaced by `{}`, in order.
    pub neutralised: Vec<&'static str>,
    /// Stored (with `neutralised` emptied), or rejected even with every JSON field emptied.
    pub stored: bool,
    /// ClickHouse's last refusal.
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Isolated {
    /// Every row is stored, except the rejected ones in `salvaged`.
    Done {
        stored: usize,
        salvaged: Vec<Salvaged>,
        inserts: usize,
    },
    /// More rows were refused than poison rows explain: the table refuses the data.
    Systemic {
        reason: String,
        inserts: usize,
        /// Per row of the batch: stored before isolation stopped (whole, or neutralised).
        landed: Vec<bool>,
    },
}

/// Isolates the rows ClickHouse refuses in `rows`, whose insert as a whole was refused with
/// `first`. At most `budget` rows may be rejected before the refusal counts as systemic.
pub async fn isolate<T: SinkRow, I: TryInsert<T>>(
    ins: &I,
    rows: &[T],
    first: Refused,
    budget: usize,
) -> Isolated {
    let mut stored = 0;
    let mut inserts = 0;
    let mut salvaged = Vec::new();
    let mut rejected = 0;
    let mut landed = vec![false; rows.len()];
    // Ranges known to contain a refused row, the next to look at last; split until each is
    // one row, the left half first.
    let mut suspects: Vec<(Range<usize>, Refused)> = vec![(0..rows.len(), first)];
    while let Some((range, reason)) = suspects.pop() {
        if let Some(view) = refusing_view(&reason.text) {
            return Isolated::Systemic {
                reason: format!("materialized view {view} refuses the rows: {}", reason.text),
                inserts,
                landed,
            };
        }
        if range.len() == 1 {
            let (row, tries) = salvage(ins, &rows[range.start], reason).await;
            inserts += tries;
            if row.stored {
                stored += 1;
                landed[range.start] = true;
                salvaged.push(row);
                continue;
            }
            inserts += 1;
            if rejected >= budget || ins.canary().await != Some(true) {
                return Isolated::Systemic {
                    reason: row.reason,
                    inserts,
                    landed,
                };
            }
            // The table takes rows now. It may have been fixed since the row was refused: the
            // row itself, once more, decides.
            inserts += 1;
            if ins
                .try_insert(std::slice::from_ref(&rows[range.start]))
                .await
                .is_ok()
            {
                stored += 1;
                landed[range.start] = true;
                continue;
            }
            rejected += 1;
            salvaged.push(row);
            continue;
        }
        let mid = range.start + range.len() / 2;
        let mut refused_halves = Vec::new();
        for half in [range.start..mid, mid..range.end] {
            inserts += 1;
            match ins.try_insert(&rows[half.clone()]).await {
                Ok(()) => {
                    stored += half.len();
                    landed[half].fill(true);
                }
                Err(r) => refused_halves.push((half, r)),
            }
        }
        // The right half goes on the stack first, so the left is looked at first.
        suspects.extend(refused_halves.into_iter().rev());
    }
    Isolated::Done {
        stored,
        salvaged,
        inserts,
    }
}

/// The materialized view a refusal was raised in, as ClickHouse names it in the exception
/// ("…: while pushing to view db.view (uuid). (CODE)"); the innermost view comes first.
pub fn refusing_view(text: &str) -> Option<&str> {
    const MARK: &str = "while pushing to view ";
    let at = text.find(MARK)? + MARK.len();
    let name = text[at..]
        .split(|c: char| c.is_whitespace() || c == ':' || c == ',')
        .next()?
        .trim_end_matches('.');
    (!name.is_empty()).then_some(name)
}

/// One refused row: neutralise its JSON fields one at a time until ClickHouse takes it.
async fn salvage<T: SinkRow, I: TryInsert<T>>(
    ins: &I,
    row: &T,
    mut reason: Refused,
) -> (Salvaged, usize) {
    let mut row = row.clone();
    let mut neutralised = Vec::new();
    let mut tries = 0;
    let mut step = 0;
    while let Some(column) = row.neutralise(step) {
        step += 1;
        neutralised.push(column);
        tries += 1;
        match ins.try_insert(std::slice::from_ref(&row)).await {
            Ok(()) => {
                return (
                    Salvaged {
                        run_id: row.run_id().to_string(),
                        neutralised,
                        stored: true,
                        reason: reason.text,
                    },
                    tries,
                );
            }
            Err(r) => reason = r,
        }
    }
    (
        Salvaged {
            run_id: row.run_id().to_string(),
            neutralised,
            stored: false,
            reason: reason.text,
        },
        tries,
    )
}

#[cfg(test)]
mod tests;
