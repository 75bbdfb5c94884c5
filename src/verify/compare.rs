//! One run, column by column: the transform of its Postgres row (`expected`) against the rows
//! ClickHouse shows for it under `FINAL` (`actual`) and its payload row, as a [`Finding`] — which
//! kinds of drift, and each differing column with the expected value next to the actual one.
//!
//! Pure: JSON columns compare in ClickHouse's rendering, the emulated one (`canonical::json`) or,
//! for the values the emulation does not cover, the one ClickHouse itself gave (`rendered`).

use std::collections::HashMap;

use serde::Serialize;

use super::canonical::{self, Cell};
use crate::rows::RunRow;

/// A kind of drift.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// In Postgres, not visible in ClickHouse.
    Missing,
    /// Visible in ClickHouse, not in Postgres (or a second ClickHouse row of a run, under another
    /// sorting key).
    Extra,
    /// In both, some column differs.
    Stale,
    /// The run has no row in the payloads table.
    MissingPayload,
}

impl Kind {
    pub const ALL: [Kind; 4] = [
        Kind::Missing,
        Kind::Extra,
        Kind::Stale,
        Kind::MissingPayload,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Kind::Missing => "missing",
            Kind::Extra => "extra",
            Kind::Stale => "stale",
            Kind::MissingPayload => "missing_payload",
        }
    }
}

/// One column that differs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ColumnDiff {
    pub column: &'static str,
    pub expected: String,
    pub actual: String,
}

/// How one run differs.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Finding {
    pub run_id: String,
    pub kinds: Vec<Kind>,
    pub columns: Vec<ColumnDiff>,
    /// ClickHouse rows of the run whose sorting key is not the expected one's (extra copies).
    pub extra_rows: usize,
}

/// ClickHouse's rendering of expected JSON texts it was asked about.
pub type Rendered = HashMap<String, String>;

/// A JSON column's expected text as ClickHouse would print it.
pub fn json_expected<'a>(text: &'a str, rendered: &'a Rendered) -> std::borrow::Cow<'a, str> {
    match rendered.get(text) {
        Some(r) => std::borrow::Cow::Borrowed(r.as_str()),
        None => canonical::json_form(text),
    }
}

/// The expected JSON texts whose emulated rendering differs from what ClickHouse shows: the ones
/// to ask ClickHouse to render, by column, before [`compare`] (the emulation may not cover them).
pub fn json_to_render<'a>(expected: &'a RunRow, actual: &[RunRow]) -> Vec<(&'static str, &'a str)> {
    let Some(row) = same_key(expected, actual) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for (name, e, a) in [
        ("output", &expected.output, &row.output),
        ("error", &expected.error, &row.error),
    ] {
        if canonical::json_form(e) != a.as_str() {
            out.push((name, e.as_str()));
        }
    }
    out
}

fn same_key<'a>(expected: &RunRow, actual: &'a [RunRow]) -> Option<&'a RunRow> {
    actual
        .iter()
        .find(|a| a.sort_key() == expected.sort_key())
        .or_else(|| actual.first())
}

/// Compares one run; `None` when it is in sync. `payload` is whether its payload row exists, when
/// checked.
pub fn compare(
    run_id: &str,
    expected: Option<&RunRow>,
    actual: &[RunRow],
    payload: Option<bool>,
    rendered: &Rendered,
) -> Option<Finding> {
    let mut finding = Finding {
        run_id: run_id.to_string(),
        kinds: Vec::new(),
        columns: Vec::new(),
        extra_rows: 0,
    };
    match expected {
        None => {
            if actual.is_empty() {
                return None;
            }
            finding.kinds.push(Kind::Extra);
            finding.extra_rows = actual.len();
        }
        Some(e) => {
            match same_key(e, actual) {
                None => finding.kinds.push(Kind::Missing),
                Some(a) => {
                    finding.columns = columns(e, a, rendered);
                    finding.extra_rows = actual.len() - 1;
                    if !finding.columns.is_empty() {
                        finding.kinds.push(Kind::Stale);
                    }
                    if finding.extra_rows > 0 {
                        finding.kinds.push(Kind::Extra);
                    }
                }
            }
            if payload == Some(false) {
                finding.kinds.push(Kind::MissingPayload);
            }
        }
    }
    (!finding.kinds.is_empty()).then_some(finding)
}

/// Every column but `_version` whose values differ.
pub fn columns(expected: &RunRow, actual: &RunRow, rendered: &Rendered) -> Vec<ColumnDiff> {
    let mut out = Vec::new();
    for ((name, e), (_, a)) in canonical::cells(expected)
        .into_iter()
        .zip(canonical::cells(actual))
    {
        let differs = match (e, a) {
            (Cell::Json(e), Cell::Json(a)) => json_expected(e, rendered) != a,
            // Bit for bit, as the hash compares them (the transform never writes NaN).
            (Cell::Float(e), Cell::Float(a)) => e.to_bits() != a.to_bits(),
            (e, a) => e != a,
        };
        if differs {
            out.push(ColumnDiff {
                column: name,
                expected: show(e, rendered),
                actual: show(a, &Rendered::new()),
            });
        }
    }
    out
}

/// A cell as a person reads it: timestamps in UTC, NULL as `NULL`, JSON as ClickHouse prints it.
pub fn show(cell: Cell<'_>, rendered: &Rendered) -> String {
    match cell {
        Cell::Text(s) => s.to_string(),
        Cell::Json(s) => json_expected(s, rendered).into_owned(),
        Cell::UInt(v) => v.to_string(),
        Cell::Time(ms) => time(ms),
        Cell::OptTime(v) => v.map_or("NULL".into(), time),
        Cell::OptUInt(v) => v.map_or("NULL".into(), |v| v.to_string()),
        Cell::Float(v) => v.to_string(),
        Cell::Texts(items) => serde_json::to_string(items).unwrap_or_default(),
    }
}

/// Epoch milliseconds as `2026-11-20 10:00:00.123` (UTC), the proleptic Gregorian calendar.
pub fn time(ms: i64) -> String {
    let in_day = ms.rem_euclid(86_400_000);
    let (year, month, day) = crate::transform::civil_from_days(ms.div_euclid(86_400_000));
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}.{:03}",
        in_day / 3_600_000,
        in_day / 60_000 % 60,
        in_day / 1000 % 60,
        in_day % 1000
    )
}
