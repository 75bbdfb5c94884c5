//! What a verify found, for a person (`render_text`: a summary, then the drifted runs with each
//! differing column, expected next to actual, then the unsettled runs) and for scripts
//! (`render_json`: the same as one object), and the exit code.
//!
//! Only what the verify proved is drift. A run it could not settle (the stream behind, or the run
//! changing through every re-check) is counted and listed apart, never as drift, and keeps the
//! verify from saying "in sync": [`Outcome`] and [`Report::exit_code`] (0 in sync, 1 drift, 2
//! nothing proven wrong but not every run could be checked).

use std::collections::BTreeMap;
use std::fmt::Write;

use serde::Serialize;

use super::compare::{Finding, Kind};
use super::expected::Snap;
use super::repair::Repaired;
use super::settle::{Reason, Unsettled};
use super::slots::SlotWait;

/// What a verify concluded.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Every run compared is equal on both sides.
    #[default]
    InSync,
    /// Some runs drifted (settled); others may be unsettled too.
    Drift,
    /// No drift proven, but some runs could not be settled: not known to be in sync.
    Unsettled,
}

/// Counts of unsettled runs, by reason.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct UnsettledCounts {
    pub runs: u64,
    pub stream_behind: u64,
    pub changing: u64,
}

impl UnsettledCounts {
    pub fn of(runs: &[Unsettled]) -> UnsettledCounts {
        let mut c = UnsettledCounts {
            runs: runs.len() as u64,
            ..UnsettledCounts::default()
        };
        for r in runs {
            match r.reason {
                Reason::StreamBehind => c.stream_behind += 1,
                Reason::Changing => c.changing += 1,
            }
        }
        c
    }

    pub fn get(&self, reason: Reason) -> u64 {
        match reason {
            Reason::StreamBehind => self.stream_behind,
            Reason::Changing => self.changing,
        }
    }
}

/// Counts of drifted runs by kind (a run may count under several), and stale runs by column.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct DriftCounts {
    pub runs: u64,
    pub missing: u64,
    pub extra: u64,
    pub stale: u64,
    pub missing_payload: u64,
    pub stale_columns: BTreeMap<String, u64>,
}

impl DriftCounts {
    pub fn of(findings: &[Finding]) -> DriftCounts {
        let mut c = DriftCounts {
            runs: findings.len() as u64,
            ..DriftCounts::default()
        };
        for f in findings {
            for k in &f.kinds {
                *c.count_mut(*k) += 1;
            }
            for col in &f.columns {
                *c.stale_columns.entry(col.column.to_string()).or_default() += 1;
            }
        }
        c
    }

    fn count_mut(&mut self, kind: Kind) -> &mut u64 {
        match kind {
            Kind::Missing => &mut self.missing,
            Kind::Extra => &mut self.extra,
            Kind::Stale => &mut self.stale,
            Kind::MissingPayload => &mut self.missing_payload,
        }
    }

    pub fn get(&self, kind: Kind) -> u64 {
        match kind {
            Kind::Missing => self.missing,
            Kind::Extra => self.extra,
            Kind::Stale => self.stale,
            Kind::MissingPayload => self.missing_payload,
        }
    }
}

/// The whole outcome.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    pub outcome: Outcome,
    /// `outcome` is `in_sync`.
    pub in_sync: bool,
    /// The window as a person reads it, and its bounds (canonical UTC, `null` when open).
    pub window: String,
    pub since: Option<String>,
    pub until: Option<String>,
    pub sources: Vec<String>,
    /// The first pass's snapshot of each source.
    pub snapshots: Vec<Snap>,
    /// The last wait for the slots.
    pub slots: Vec<SlotWait>,
    /// Runs on either side of the window.
    pub runs_compared: u64,
    pub runs_in_sync: u64,
    pub postgres_runs: u64,
    pub clickhouse_runs: u64,
    /// Rows Postgres sent (COPY), all passes; rows ClickHouse read (its own count), all queries.
    pub postgres_rows_read: u64,
    pub clickhouse_rows_read: u64,
    /// Postgres rows the transform skips (no organizationId or environmentType), as the stream.
    pub skipped: u64,
    pub ranges: u64,
    pub ranges_differing: u64,
    /// Runs whose hashes differed in the first pass, re-checked.
    pub rechecked: u64,
    pub rounds: u32,
    /// Re-checked runs found in sync: changes the stream delivered meanwhile.
    pub changed_meanwhile: u64,
    pub drift: DriftCounts,
    /// The first `--max-report` drifted runs, by id.
    pub drifted: Vec<Finding>,
    /// Runs that still differed after the last round without the difference being settled:
    /// not drift, not in sync, never repaired.
    pub unsettled: UnsettledCounts,
    /// The first `--max-report` of them, by id.
    pub unsettled_runs: Vec<Unsettled>,
    pub repair: Option<Repaired>,
    pub warnings: Vec<String>,
    pub seconds: f64,
    /// Where the time went.
    pub phases: Phases,
}

/// Seconds per phase of a verify.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Phases {
    /// The window pass's Postgres side: snapshots, COPY, transform, hashes.
    pub postgres: f64,
    /// Waiting for the slots to confirm the snapshots.
    pub stream: f64,
    /// The window pass's ClickHouse side: range sums, run hashes.
    pub clickhouse: f64,
    /// The re-checks of the differing runs.
    pub recheck: f64,
    pub repair: f64,
}

impl Phases {
    /// Rounds `seconds` for the report.
    pub fn round(s: f64) -> f64 {
        (s * 100.0).round() / 100.0
    }
}

/// A value cut for one line of text.
fn cut(s: &str, max: usize) -> String {
    let s = s.replace('\n', "\\n");
    if s.chars().count() <= max {
        return s;
    }
    let head: String = s.chars().take(max.saturating_sub(1)).collect();
    format!("{head}…")
}

fn n(v: u64) -> String {
    let s = v.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

impl Report {
    /// The outcome of `drift` and `unsettled`.
    pub fn conclude(drift: &DriftCounts, unsettled: &UnsettledCounts) -> Outcome {
        match (drift.runs, unsettled.runs) {
            (0, 0) => Outcome::InSync,
            (0, _) => Outcome::Unsettled,
            _ => Outcome::Drift,
        }
    }

    /// 0 in sync; 1 drift found (repaired or not); 2 no drift found, but runs left unsettled:
    /// the verify could not check them (SPEC §2's "cannot check"), verify again once the
    /// stream keeps up.
    pub fn exit_code(&self) -> u8 {
        match self.outcome {
            Outcome::InSync => 0,
            Outcome::Drift => 1,
            Outcome::Unsettled => 2,
        }
    }

    pub fn render_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|_| "{}".into())
    }

    pub fn render_text(&self) -> String {
        let mut o = String::new();
        let d = &self.drift;
        let u = &self.unsettled;
        let headline = match self.outcome {
            Outcome::InSync => format!(
                "verify: in sync: ClickHouse equals Postgres for all {} runs",
                n(self.runs_compared)
            ),
            Outcome::Drift => format!(
                "verify: DRIFT: {} of {} runs differ between ClickHouse and Postgres{}",
                n(d.runs),
                n(self.runs_compared),
                match u.runs {
                    0 => String::new(),
                    k => format!("; {} more could not be settled", n(k)),
                }
            ),
            Outcome::Unsettled => format!(
                "verify: UNSETTLED: {} of {} runs could not be settled; no drift was proven",
                n(u.runs),
                n(self.runs_compared)
            ),
        };
        let _ = writeln!(o, "{headline}");
        let _ = writeln!(o, "  window     {}", self.window);
        for s in &self.snapshots {
            let _ = writeln!(o, "  snapshot   source {}, {}", s.source, s.lsn_text());
        }
        for w in &self.slots {
            let _ = writeln!(o, "  stream     {}", w.describe());
        }
        let mut stale = String::new();
        if !d.stale_columns.is_empty() {
            let cols: Vec<String> = d
                .stale_columns
                .iter()
                .map(|(c, k)| format!("{c} {k}"))
                .collect();
            stale = format!(" ({})", cols.join(", "));
        }
        let _ = writeln!(
            o,
            "  compared   {} runs: {} in sync, {} missing, {} extra, {} stale{stale}, {} missing payload",
            n(self.runs_compared),
            n(self.runs_in_sync),
            n(d.missing),
            n(d.extra),
            n(d.stale),
            n(d.missing_payload)
        );
        let _ = writeln!(
            o,
            "  read       Postgres {} rows (COPY), ClickHouse {} rows; {} of {} hash ranges differed",
            n(self.postgres_rows_read),
            n(self.clickhouse_rows_read),
            n(self.ranges_differing),
            n(self.ranges)
        );
        if self.rechecked > 0 {
            let _ = writeln!(
                o,
                "  re-checked {} runs over {} round(s): {} changed by the stream meanwhile (not drift)",
                n(self.rechecked),
                self.rounds,
                n(self.changed_meanwhile),
            );
        }
        if u.runs > 0 {
            let _ = writeln!(
                o,
                "  unsettled  {} runs: {} with the stream behind, {} changing; not drift, not repaired: \
                 verify again once the stream keeps up",
                n(u.runs),
                n(u.stream_behind),
                n(u.changing),
            );
        }
        for w in &self.warnings {
            let _ = writeln!(o, "  warning    {w}");
        }
        if let Some(r) = &self.repair {
            let _ = writeln!(
                o,
                "  repaired   {} runs rewritten ({} rows, {} payload rows), {} tombstones; {} left as they are",
                n(r.rewritten),
                n(r.rows_written),
                n(r.payloads_written),
                n(r.tombstoned),
                r.unrepairable.len()
            );
            for (id, why) in &r.unrepairable {
                let _ = writeln!(o, "             {id}: {why}");
            }
        }
        let p = &self.phases;
        let _ = writeln!(
            o,
            "  took       {:.2} s: Postgres {:.2}, waiting for the stream {:.2}, ClickHouse {:.2}, re-checks {:.2}{}",
            self.seconds,
            p.postgres,
            p.stream,
            p.clickhouse,
            p.recheck,
            match &self.repair {
                Some(_) => format!(", repair {:.2}", p.repair),
                None => String::new(),
            }
        );
        if !self.drifted.is_empty() {
            let _ = writeln!(
                o,
                "\ndrifted runs ({} of {}):",
                self.drifted.len(),
                n(d.runs)
            );
            for f in &self.drifted {
                let kinds: Vec<&str> = f.kinds.iter().map(|k| k.label()).collect();
                let _ = writeln!(o, "  {}  {}", f.run_id, kinds.join(", "));
                for k in &f.kinds {
                    let line = match k {
                        Kind::Missing => Some("not in ClickHouse".to_string()),
                        Kind::Extra if f.columns.is_empty() && f.extra_rows > 0 => Some(format!(
                            "in ClickHouse ({} row(s)), not in Postgres",
                            f.extra_rows
                        )),
                        Kind::Extra => Some(format!(
                            "{} more ClickHouse row(s) under another sorting key",
                            f.extra_rows
                        )),
                        Kind::MissingPayload => Some("no payload row".to_string()),
                        Kind::Stale => None,
                    };
                    if let Some(line) = line {
                        let _ = writeln!(o, "      {line}");
                    }
                }
                for c in &f.columns {
                    let _ = writeln!(
                        o,
                        "      {}: expected {}  actual {}",
                        c.column,
                        cut(&c.expected, 100),
                        cut(&c.actual, 100)
                    );
                }
            }
        }
        if !self.unsettled_runs.is_empty() {
            let _ = writeln!(
                o,
                "\nunsettled runs ({} of {}), not drift:",
                self.unsettled_runs.len(),
                n(u.runs)
            );
            for r in &self.unsettled_runs {
                let kinds: Vec<&str> = r.differed.iter().map(|k| k.label()).collect();
                let _ = writeln!(
                    o,
                    "  {}  {} (differed: {})",
                    r.run_id,
                    r.reason.describe(),
                    kinds.join(", ")
                );
            }
        }
        o
    }
}

impl Snap {
    fn lsn_text(&self) -> String {
        let text = crate::backfill::snapshot::lsn_text;
        match self.upper == self.lsn {
            true => format!("L = {}", text(self.lsn)),
            false => format!("L = {} (upper {})", text(self.lsn), text(self.upper)),
        }
    }
}
