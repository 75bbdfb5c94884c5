//! The summary a backfill ends with: per table, chunks (all, copied now, done before), rows read,
//! written, skipped and rejected, seconds and rate; the job and the `L` of this run. Text for a
//! person, one JSON object for scripts (`--format json`).

use serde::Serialize;

use super::checkpoint::{ChunkDone, JobRecord};
use super::snapshot::lsn_text;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Every chunk is copied now.
    Complete,
    /// A finished job run again: nothing was copied (`--restart` copies again).
    AlreadyComplete,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct TableSummary {
    pub table: String,
    pub chunks: u64,
    /// Chunks copied by this run.
    pub chunks_copied: u64,
    /// Chunks an earlier, interrupted run of the job had finished (not read again).
    pub chunks_done_before: u64,
    /// Rows those earlier runs read.
    pub rows_done_before: u64,
    /// Rows this run read (COPY), written, skipped and rejected.
    pub rows_read: u64,
    pub rows_written: u64,
    /// Rows the transform skips (no organizationId or environmentType), as the stream does.
    pub skipped: u64,
    /// Rows ClickHouse refused even with their JSON fields emptied.
    pub rejected: u64,
    /// Copy time of this run's chunks, summed over connections.
    pub seconds: f64,
    pub rows_per_s: f64,
}

impl TableSummary {
    pub fn add(&mut self, done: &ChunkDone) {
        self.chunks_copied += 1;
        self.rows_read += done.rows_read;
        self.rows_written += done.rows_written;
        self.skipped += done.skipped;
        self.rejected += done.rejected;
        self.seconds += done.seconds;
        self.rows_per_s = rate(self.rows_read, self.seconds);
    }
}

fn rate(rows: u64, seconds: f64) -> f64 {
    if seconds > 0.0 {
        (rows as f64 / seconds).round()
    } else {
        0.0
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Summary {
    pub job_id: String,
    pub outcome: Outcome,
    /// The `L` this run's rows carry (`_version = generation << 56 | L`); for a job already
    /// complete, the lowest `L` its chunks were copied at (every chunk is at least that new).
    pub lsn: Option<String>,
    /// For a job already complete whose chunks were copied from several snapshots (a resumed
    /// job): the highest of their `L`s.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lsn_highest: Option<String>,
    /// How long the snapshot waited for transactions in flight at `L`.
    pub snapshot_wait_s: f64,
    pub tables: Vec<TableSummary>,
    /// Every table together; `seconds` is wall time here.
    pub total: TableSummary,
}

/// One summary of several sources' jobs: one of them alone as it is; several with their
/// tables named `source.table`, job ids and `L`s joined, and an outcome that is complete only
/// when every job already was.
pub fn combine(mut summaries: Vec<(String, Summary)>) -> Summary {
    if summaries.len() == 1 {
        return summaries.remove(0).1;
    }
    let all_complete = summaries
        .iter()
        .all(|(_, s)| s.outcome == Outcome::AlreadyComplete);
    let mut out = Summary::new(
        summaries
            .iter()
            .map(|(_, s)| s.job_id.clone())
            .collect::<Vec<_>>()
            .join(","),
        if all_complete {
            Outcome::AlreadyComplete
        } else {
            Outcome::Complete
        },
        None,
    );
    let lsns: Vec<String> = summaries
        .iter()
        .filter_map(|(name, s)| s.lsn.as_ref().map(|l| format!("{name}:{l}")))
        .collect();
    out.lsn = (!lsns.is_empty()).then(|| lsns.join(","));
    let mut wall = 0.0;
    for (name, s) in summaries {
        wall += s.total.seconds;
        out.snapshot_wait_s += s.snapshot_wait_s;
        out.tables.extend(s.tables.into_iter().map(|mut t| {
            t.table = format!("{name}.{}", t.table);
            t
        }));
    }
    out.close(wall);
    out
}

impl Summary {
    pub fn new(job_id: String, outcome: Outcome, lsn: Option<u64>) -> Summary {
        Summary {
            job_id,
            outcome,
            lsn: lsn.map(lsn_text),
            lsn_highest: None,
            snapshot_wait_s: 0.0,
            tables: Vec::new(),
            total: TableSummary {
                table: "total".into(),
                ..TableSummary::default()
            },
        }
    }

    /// Adds up the tables into `total`, with `wall_seconds` as its time.
    pub fn close(&mut self, wall_seconds: f64) {
        let mut total = TableSummary {
            table: "total".into(),
            ..TableSummary::default()
        };
        for t in &self.tables {
            total.chunks += t.chunks;
            total.chunks_copied += t.chunks_copied;
            total.chunks_done_before += t.chunks_done_before;
            total.rows_done_before += t.rows_done_before;
            total.rows_read += t.rows_read;
            total.rows_written += t.rows_written;
            total.skipped += t.skipped;
            total.rejected += t.rejected;
        }
        total.seconds = (wall_seconds * 100.0).round() / 100.0;
        total.rows_per_s = rate(total.rows_read, wall_seconds);
        self.total = total;
    }

    /// Rows ClickHouse refused: a finding (exit 1).
    pub fn has_findings(&self) -> bool {
        self.total.rejected > 0
    }

    pub fn render_json(&self) -> String {
        serde_json::to_string(self).expect("a Summary serialises")
    }

    pub fn render_text(&self) -> String {
        let mut out = String::new();
        let at = self.lsn.as_deref().unwrap_or("-");
        match self.outcome {
            Outcome::AlreadyComplete => out.push_str(&format!(
                "backfill job {} is already complete: its rows were copied at L = {at}{}; nothing \
                 to do (--restart copies again)\n",
                self.job_id,
                self.lsn_highest
                    .as_deref()
                    .map(|h| format!(" to {h} (resumed from several snapshots)"))
                    .unwrap_or_default()
            )),
            Outcome::Complete => out.push_str(&format!(
                "backfill job {} complete; rows copied now carry L = {at} (snapshot taken after waiting {:.2} s)\n",
                self.job_id, self.snapshot_wait_s
            )),
        }
        let header = [
            "table",
            "chunks",
            "copied",
            "before",
            "rows before",
            "rows read",
            "written",
            "skipped",
            "rejected",
            "seconds",
            "rows/s",
        ];
        let mut rows: Vec<[String; 11]> = Vec::new();
        for t in self.tables.iter().chain(std::iter::once(&self.total)) {
            rows.push([
                t.table.clone(),
                t.chunks.to_string(),
                t.chunks_copied.to_string(),
                t.chunks_done_before.to_string(),
                t.rows_done_before.to_string(),
                t.rows_read.to_string(),
                t.rows_written.to_string(),
                t.skipped.to_string(),
                t.rejected.to_string(),
                format!("{:.2}", t.seconds),
                format!("{:.0}", t.rows_per_s),
            ]);
        }
        let widths: Vec<usize> = (0..header.len())
            .map(|i| {
                rows.iter()
                    .map(|r| r[i].len())
                    .chain([header[i].len()])
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let line = |cells: Vec<&str>| {
            let mut l = String::new();
            for (i, cell) in cells.iter().enumerate() {
                if i == 0 {
                    l.push_str(&format!("{cell:<w$}", w = widths[i]));
                } else {
                    l.push_str(&format!("  {cell:>w$}", w = widths[i]));
                }
            }
            l.push('\n');
            l
        };
        out.push_str(&line(header.to_vec()));
        for r in &rows {
            out.push_str(&line(r.iter().map(String::as_str).collect()));
        }
        out.push_str(
            "(copied/before: chunks copied by this run / by an earlier run of the job; seconds: copy \
             time summed over connections per table, wall time for the total; skipped: rows \
             without organizationId or environmentType, as the stream skips them)\n",
        );
        out
    }
}

/// Per table: its chunks, and those in `done`.
pub fn table_summaries(
    job: &JobRecord,
    done: &std::collections::BTreeMap<(String, usize), ChunkDone>,
) -> Vec<TableSummary> {
    job.plans
        .iter()
        .map(|plan| {
            let mut t = TableSummary {
                table: plan.table.clone(),
                chunks: plan.bounds.len() as u64 + 1,
                ..TableSummary::default()
            };
            for ((table, _), d) in done {
                if *table == plan.table {
                    t.chunks_done_before += 1;
                    t.rows_done_before += d.rows_read;
                }
            }
            t
        })
        .collect()
}
