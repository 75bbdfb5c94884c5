//! `verify --repair`: puts the drifted runs right through the backfill path, with versions that
//! never beat a live change (ARCHITECTURE.md, "A repair never beats a live change").
//!
//! From a fresh snapshot of every source (its `L`):
//! - a drifted run Postgres has is copied again, every copy of it, exactly as a backfill copies
//!   it (COPY → `RowAdder` → the sink), stamped `generation << 56 | L`, with its payload row when
//!   that was missing;
//! - every row ClickHouse shows of a run that the run's table (by the row's generation) does not
//!   have in the snapshot — the run is gone, or that row sits under a sorting key the run no
//!   longer has — gets a tombstone built from it: the row with `_is_deleted = 1` and `_version =
//!   generation << 56 | L`. That is the row a stream delete committed at `L` would write.
//!
//! A ClickHouse row whose version is already above the one a repair would write cannot be
//! outranked by it (a version from the future, e.g. written by another tool): it is left as it
//! is and reported, never forced. (On equal versions the later insert wins: the repair's.)

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use serde::Serialize;

use super::compare::Kind;
use super::expected::copy_runs_in;
use super::settle::Drifted;
use super::{Context, VerifyError};
use crate::backfill::chunks;
use crate::backfill::copier::{self, Limits, RowAdder, SinkWriter};
use crate::backfill::{Snapshot, SnapshotSource};
use crate::config::Source;
use crate::pipeline::sink::Sink;
use crate::pipeline::transaction::version;
use crate::rows::RunRow;
use crate::source::relation::TableBinding;
use crate::transform::TransformOptions;

/// What a repair did.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Repaired {
    /// Runs copied again from Postgres.
    pub rewritten: u64,
    /// Rows written for them (every copy of a run, in each table that has it).
    pub rows_written: u64,
    pub payloads_written: u64,
    /// Tombstones written for rows Postgres does not have.
    pub tombstoned: u64,
    /// Runs left as they are, and why.
    pub unrepairable: BTreeMap<String, String>,
}

/// Repairs `drifted`.
pub async fn repair<S: Sink>(
    ctx: &Context,
    sink: &Arc<S>,
    drifted: &[Drifted],
) -> Result<Repaired, VerifyError> {
    let mut done = Repaired::default();
    if drifted.is_empty() {
        return Ok(done);
    }
    let ids: Vec<String> = drifted.iter().map(|d| d.finding.run_id.clone()).collect();
    let wants_payload: HashSet<&str> = drifted
        .iter()
        .filter(|d| d.finding.kinds.contains(&Kind::MissingPayload))
        .map(|d| d.finding.run_id.as_str())
        .collect();
    // Each run's copies in Postgres now, stamped as they are written, and each generation's L.
    let mut copies: HashMap<String, Vec<RunRow>> = HashMap::new();
    let mut lsn_of: HashMap<u8, u64> = HashMap::new();
    for source in &ctx.sources {
        let snapshot = Snapshot::open(&ctx.config, source, SnapshotSource::Fresh, 1).await?;
        for g in source.generations.values() {
            lsn_of.insert(*g, snapshot.version_lsn());
        }
        let rows = copy_runs_in(&ctx.config, source, &snapshot, &ids, None).await?;
        let found: HashSet<String> = rows.iter().map(|r| r.run_id.clone()).collect();
        for row in rows {
            copies.entry(row.run_id.clone()).or_default().push(row);
        }
        let (with_payload, without): (Vec<String>, Vec<String>) = found
            .into_iter()
            .partition(|id| wants_payload.contains(id.as_str()));
        for (list, payloads) in [(with_payload, true), (without, false)] {
            if list.is_empty() {
                continue;
            }
            done.rewritten += list.len() as u64;
            let (rows, payloads_written) =
                rewrite(ctx, sink, source, &snapshot, &list, payloads).await?;
            done.rows_written += rows;
            done.payloads_written += payloads_written;
        }
    }
    let mut tombstones = Vec::new();
    for d in drifted {
        let id = &d.finding.run_id;
        let winner = copies
            .get(id)
            .and_then(|rows| rows.iter().max_by_key(|r| r._version >> 56));
        for row in &d.seen.actual {
            let g = (row._version >> 56) as u8;
            match winner {
                // The rewrite replaces it, unless its version is above the rewrite's (on a tie
                // the later insert wins).
                Some(w) if w.sort_key() == row.sort_key() => {
                    if row._version > w._version {
                        done.unrepairable.insert(
                            id.clone(),
                            format!(
                                "ClickHouse's row has version {:#x}, above the repair's {:#x}",
                                row._version, w._version
                            ),
                        );
                    }
                }
                // A row Postgres does not have (the run is gone, or it is under a sorting key
                // the run no longer has): a tombstone as a delete at L would write.
                _ => match lsn_of.get(&g).map(|lsn| version(g, *lsn)) {
                    Some(Ok(v)) if v >= row._version => {
                        let mut tombstone = row.clone();
                        tombstone._is_deleted = 1;
                        tombstone._version = v;
                        tombstones.push(tombstone);
                    }
                    Some(Ok(v)) => {
                        done.unrepairable.insert(
                            id.clone(),
                            format!(
                                "ClickHouse's row has version {:#x}, above the tombstone's {v:#x}",
                                row._version
                            ),
                        );
                    }
                    Some(Err(e)) => return Err(VerifyError::Request(e.to_string())),
                    None => {
                        done.unrepairable.insert(
                            id.clone(),
                            format!(
                                "its ClickHouse row has generation {g}, which no verified table has"
                            ),
                        );
                    }
                },
            }
        }
    }
    if !tombstones.is_empty() {
        tombstones.sort_by(|a, b| a.sort_key().cmp(&b.sort_key()));
        let tombstones: Vec<Box<RunRow>> = tombstones.into_iter().map(Box::new).collect();
        let written = sink.write(&tombstones, &[]).await?;
        done.tombstoned += written.runs as u64;
    }
    Ok(done)
}

/// Copies `ids` from each of `source`'s tables into the sink, stamped with the snapshot's `L`.
async fn rewrite<S: Sink>(
    ctx: &Context,
    sink: &Arc<S>,
    source: &Source,
    snapshot: &Snapshot,
    ids: &[String],
    payloads: bool,
) -> Result<(u64, u64), VerifyError> {
    let transform = TransformOptions {
        fingerprint_errors: ctx.config.transform.fingerprint_errors,
    };
    let limits = Limits {
        max_bytes: ctx.config.backfill.max_bytes as usize,
        max_rows: ctx.config.batch.max_rows,
    };
    let mut writer = SinkWriter::new(sink);
    for table in &source.tables {
        let mut adder = RowAdder::new(
            TableBinding::selected(&source.schema, table, source.generation(table)),
            &transform,
            payloads,
            payloads,
            snapshot.lsn,
        )
        .with_shift(snapshot.shift);
        let sql = chunks::ids_copy_sql(&source.schema, table, ids, None);
        copier::copy_rows(
            snapshot.first(),
            &sql,
            &mut adder,
            limits,
            &|_| {},
            &mut writer,
        )
        .await?;
    }
    Ok((writer.rows_written, writer.payloads_written))
}
