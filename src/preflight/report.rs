//! The preflight's result: one [`Check`] per fact, and the two ways of showing them (a table a
//! person reads, JSON for scripts), plus the one-line summary the daemon logs when it refuses to
//! start.

use std::fmt::Write as _;

use serde::Serialize;

#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Pass,
    Warn,
    Fail,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Check {
    /// The stream (source or shard) a Postgres check is about, when there are several.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// A stable identifier, e.g. `replica_identity`.
    pub check: &'static str,
    /// What was checked: `server`, a table, the publication, the slot.
    pub target: String,
    pub status: Status,
    pub observed: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

impl Check {
    /// A check that passes when `ok`; `fix` is only asked for when it does not.
    pub fn new(
        check: &'static str,
        target: impl Into<String>,
        ok: bool,
        observed: impl Into<String>,
        fix: impl FnOnce() -> String,
    ) -> Check {
        Check {
            source: None,
            check,
            target: target.into(),
            status: if ok { Status::Pass } else { Status::Fail },
            observed: observed.into(),
            fix: (!ok).then(fix),
        }
    }

    /// A finding that does not stop replication but deserves an operator's attention.
    pub fn warn(
        check: &'static str,
        target: impl Into<String>,
        observed: impl Into<String>,
        fix: impl Into<String>,
    ) -> Check {
        Check {
            source: None,
            check,
            target: target.into(),
            status: Status::Warn,
            observed: observed.into(),
            fix: Some(fix.into()),
        }
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub postgres: String,
    pub clickhouse: String,
    pub checks: Vec<Check>,
}

impl Report {
    pub fn failed(&self) -> impl Iterator<Item = &Check> {
        self.checks.iter().filter(|c| c.status == Status::Fail)
    }

    pub fn warnings(&self) -> impl Iterator<Item = &Check> {
        self.checks.iter().filter(|c| c.status == Status::Warn)
    }

    pub fn passed(&self) -> bool {
        self.failed().next().is_none()
    }

    pub fn render_text(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "runs-replicator preflight: {} -> {}\n",
            self.postgres, self.clickhouse
        );
        let width = |f: fn(&Check) -> usize, min: usize| {
            self.checks.iter().map(f).max().unwrap_or(min).max(min)
        };
        let check_w = width(|c| c.check.len(), 5);
        let target_w = width(|c| c.target.len(), 6);
        let _ = writeln!(
            out,
            "  {:<6}  {:<check_w$}  {:<target_w$}  OBSERVED",
            "STATUS", "CHECK", "TARGET"
        );
        let mut section: Option<&str> = None;
        for c in &self.checks {
            let this = c.source.as_deref().unwrap_or("clickhouse");
            if self.checks.iter().any(|c| c.source.is_some()) && section != Some(this) {
                let _ = writeln!(
                    out,
                    "\n  [{}]",
                    match &c.source {
                        Some(s) => format!("source {s}"),
                        None => "clickhouse".into(),
                    }
                );
                section = Some(this);
            }
            let status = match c.status {
                Status::Pass => "ok",
                Status::Warn => "warn",
                Status::Fail => "FAIL",
            };
            let _ = writeln!(
                out,
                "  {status:<6}  {:<check_w$}  {:<target_w$}  {}",
                c.check, c.target, c.observed
            );
            if let Some(fix) = &c.fix {
                let _ = writeln!(out, "  {:<6}  fix: {fix}", "");
            }
        }
        let failed = self.failed().count();
        let warned = self.warnings().count();
        let passed = self.checks.len() - failed - warned;
        let _ = writeln!(
            out,
            "\n{failed} failed, {warned} warning{}, {passed} passed.",
            if warned == 1 { "" } else { "s" }
        );
        out
    }

    pub fn render_json(&self) -> String {
        #[derive(Serialize)]
        struct Out<'a> {
            ok: bool,
            failed: usize,
            #[serde(flatten)]
            report: &'a Report,
        }
        serde_json::to_string_pretty(&Out {
            ok: self.passed(),
            failed: self.failed().count(),
            report: self,
        })
        .expect("report serializes")
    }

    /// One line naming every failure, for the daemon's refusal to start.
    pub fn summary(&self) -> String {
        self.failed()
            .map(|c| {
                let fix = c
                    .fix
                    .as_deref()
                    .map(|f| format!(" (fix: {f})"))
                    .unwrap_or_default();
                let source = c
                    .source
                    .as_deref()
                    .map(|s| format!("source {s}: "))
                    .unwrap_or_default();
                format!("{source}{} {}: {}{fix}", c.check, c.target, c.observed)
            })
            .collect::<Vec<_>>()
            .join("; ")
    }
}
