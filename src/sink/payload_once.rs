//! [`PayloadOnce`]: payload rows stored once on a payload table that keeps copies.
//!
//! After a crash the slot sends again every transaction past its confirmed position, and
//! ClickHouse may already hold some of them: the worker writes them again (ARCHITECTURE.md,
//! "Replays are harmless"). A runs row written twice collapses with its first copy (same
//! `_version`). A payload row collapses only in a ReplacingMergeTree, the table this repository
//! ships; trigger.dev's own `raw_task_runs_payload_v1` is a plain MergeTree, which keeps every
//! copy, so a replay there would leave a run with two payload rows.
//!
//! So the payload table's engine is read once (`system.tables`, at the first payload insert of
//! the process). On an engine that collapses copies (`…ReplacingMergeTree`) nothing changes. On
//! any other, every insert attempt first asks which of its runs the table already holds, by
//! `run_id` (the table's sorting key) within the rows' `created_at` range (its partition key),
//! [`LOOKUP_CHUNK`] ids per query, and writes only the payloads of the others. Asking in every
//! attempt, not once per batch, also covers an attempt that failed on the wire after ClickHouse
//! had stored it. Within one insert a run keeps its last payload row, as a ReplacingMergeTree
//! would.
//!
//! Not covered: a run id inserted again later (an insert, a delete and an insert of the same id,
//! which trigger.dev's ids do not do) keeps its first payload here, where a ReplacingMergeTree
//! keeps the last; and two inserts in flight at once holding the same run id both find it
//! missing. Both need the same id inserted twice within a batch's lifetime. Nor an insert of a
//! killed process (or of a leader that just lost its lock) that ClickHouse stores only after its
//! successor looked the same runs up: a window of one insert's duration, which the shipped
//! ReplacingMergeTree closes.

use std::collections::HashSet;
use std::sync::Mutex;
use std::time::Duration;

use super::catalog::{ChReadError, answer};
use super::row::SinkRow;

/// Run ids per lookup query: 1,000 ids of ~30 bytes stay far below ClickHouse's
/// `max_query_size` (256 KiB), which a whole batch's ids (10,000 by default) would exceed.
const LOOKUP_CHUNK: usize = 1000;

/// Writes each run's payload row once on a payload table that keeps copies.
pub struct PayloadOnce {
    table: String,
    timeout: Duration,
    /// Whether the table keeps copies of a row, once read.
    keeps_copies: Mutex<Option<bool>>,
}

impl PayloadOnce {
    pub fn new(table: &str, timeout: Duration) -> PayloadOnce {
        PayloadOnce {
            table: table.to_string(),
            timeout,
            keeps_copies: Mutex::new(None),
        }
    }

    /// The positions in `rows` to insert, or `None` for all of them (the table collapses
    /// copies itself). Rows of runs the table holds are left out, and of several rows of one
    /// run the last is kept.
    pub async fn unstored<T: SinkRow>(
        &self,
        client: &clickhouse::Client,
        rows: &[T],
    ) -> Result<Option<Vec<usize>>, ChReadError> {
        if !self.keeps_copies(client).await? {
            return Ok(None);
        }
        let stored = self.stored_runs(client, rows).await?;
        let keep = to_insert(rows, &stored);
        if keep.len() < rows.len() {
            tracing::info!(
                table = self.table,
                rows = rows.len(),
                skipped = rows.len() - keep.len(),
                "payload rows of runs the table already holds (a replay) are not written again"
            );
        }
        Ok(Some(keep))
    }

    async fn keeps_copies(&self, client: &clickhouse::Client) -> Result<bool, ChReadError> {
        if let Some(known) = *self.keeps_copies.lock().expect("not poisoned") {
            return Ok(known);
        }
        let engine: Option<String> = answer(
            "the payload table's engine (system.tables)",
            self.timeout,
            client
                .query("SELECT engine FROM system.tables WHERE database = currentDatabase() AND name = ?")
                .bind(&self.table)
                .fetch_optional(),
        )
        .await?;
        let Some(engine) = engine else {
            return Err(ChReadError {
                what: "the payload table's engine (system.tables)",
                reason: format!("table {} not found", self.table),
            });
        };
        let keeps = !engine.ends_with("ReplacingMergeTree");
        tracing::info!(
            table = self.table,
            engine,
            "payload table engine read: {}",
            if keeps {
                "it keeps copies, so payload rows of runs it already holds are not written again"
            } else {
                "it collapses copies of a row"
            }
        );
        *self.keeps_copies.lock().expect("not poisoned") = Some(keeps);
        Ok(keeps)
    }

    /// The run ids of `rows` that the table holds.
    async fn stored_runs<T: SinkRow>(
        &self,
        client: &clickhouse::Client,
        rows: &[T],
    ) -> Result<HashSet<String>, ChReadError> {
        let mut stored = HashSet::new();
        for chunk in rows.chunks(LOOKUP_CHUNK) {
            let ids: Vec<&str> = chunk.iter().map(SinkRow::run_id).collect();
            let (from, to) = chunk
                .iter()
                .map(SinkRow::created_at)
                .fold((i64::MAX, i64::MIN), |(lo, hi), t| (lo.min(t), hi.max(t)));
            let found: Vec<String> = answer(
                "payload rows already stored",
                self.timeout,
                client
                    .query(&format!(
                        "SELECT DISTINCT run_id FROM {} WHERE run_id IN ? \
                         AND created_at BETWEEN fromUnixTimestamp64Milli(toInt64(?)) \
                         AND fromUnixTimestamp64Milli(toInt64(?))",
                        self.table
                    ))
                    .bind(ids)
                    .bind(from)
                    .bind(to)
                    .fetch_all(),
            )
            .await?;
            stored.extend(found);
        }
        Ok(stored)
    }
}

/// The positions in `rows` to insert: rows of runs not in `stored`, and of several rows of one run
/// only the last.
fn to_insert<T: SinkRow>(rows: &[T], stored: &HashSet<String>) -> Vec<usize> {
    let mut seen = HashSet::with_capacity(rows.len());
    let mut keep: Vec<usize> = (0..rows.len())
        .rev()
        .filter(|&i| {
            let id = rows[i].run_id();
            !stored.contains(id) && seen.insert(id)
        })
        .collect();
    keep.reverse();
    keep
}

#[cfg(test)]
mod tests;
