//! `verify --repair`: puts the drifted runs right through the backfill path, with versions that
//! never beat a live change (ARCHITECTURE.md, "A repair never beats a live change").
//!
//! A batch of re-checked runs at a time (the walk's), from a fresh snapshot of every source (its
//! `L`), ended once the runs are read — no snapshot is held while ClickHouse is written:
//! - a drifted run Postgres has is copied again, every copy of it, exactly as a backfill copies
//!   it (COPY → `RowAdder` → the sink), stamped `generation << 56 | L`, with its payload row when
//!   that was missing;
//! - every row ClickHouse shows of a run that the run's table (by the row's generation) does not
//!   have in the snapshot — the run is gone, or that row sits under a sorting key the run no
//!   longer has — gets a tombstone built from it: the row with `_is_deleted = 1` and `_version =
//!   generation << 56 | L`. That is the row a stream delete committed at `L` would write.
//!
//! Before writing, ClickHouse's newest row under every key the repair writes is read, tombstones
//! included. One whose version is already above the repair's cannot be outranked by it (a
//! version from the future, e.g. written by another tool): a rewrite would stay hidden behind a
//! tombstone, a stale row would stay. Such a run is not written, and is reported as
//! unrepairable with the row's version and how to remove it — never as rewritten, never forced.
//! (On equal versions the later insert wins: the repair's.)

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use serde::Serialize;

use super::compare::Kind;
use super::settle::{Drifted, LSN_MASK};
use super::{Context, VerifyError};
use crate::backfill::copier::{self, Consumer};
use crate::backfill::snapshot::lsn_text;
use crate::backfill::{BackfillError, Snapshot, SnapshotSource};
use crate::config::Source;
use crate::pipeline::sink::Sink;
use crate::pipeline::transaction::{Committed, version};
use crate::rows::clickhouse::SortKey;
use crate::rows::{PayloadRow, RunRow};
use crate::sink::verify_reads::Scope;

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
    /// Runs left as they are, and why (the first `--max-report` of them by id).
    pub unrepairable: BTreeMap<String, String>,
    /// How many runs were left as they are.
    pub unrepairable_runs: u64,
}

impl Repaired {
    /// Adds another batch's repair, keeping the first `max_report` unrepairable runs by id.
    pub fn add(&mut self, other: Repaired, max_report: usize) {
        self.rewritten += other.rewritten;
        self.rows_written += other.rows_written;
        self.payloads_written += other.payloads_written;
        self.tombstoned += other.tombstoned;
        self.unrepairable_runs += other.unrepairable_runs;
        self.unrepairable.extend(other.unrepairable);
        while self.unrepairable.len() > max_report {
            self.unrepairable.pop_last();
        }
    }
}

/// A sorting key of the runs table, owned.
pub type Key = (String, String, String, i64, String);

pub fn key_of(k: SortKey<'_>) -> Key {
    (k.0.into(), k.1.into(), k.2.into(), k.3, k.4.into())
}

/// A `_version` for a person: its value, generation and LSN.
fn version_text(v: u64) -> String {
    format!(
        "{v} (generation {}, LSN {})",
        v >> 56,
        lsn_text(v & LSN_MASK)
    )
}

/// Repairs `drifted` (a batch of re-checked runs: few).
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
    // Each run's copies in Postgres now, stamped as they will be written (with their payload
    // rows), and each generation's L. Each snapshot ends once the runs are read: none is held
    // while ClickHouse is written.
    let mut copies: HashMap<String, Vec<RunRow>> = HashMap::new();
    let mut payloads: Vec<PayloadRow> = Vec::new();
    let mut lsn_of: HashMap<u8, u64> = HashMap::new();
    for source in &ctx.sources {
        ctx.doing(|| {
            format!(
                "repair: a snapshot of {} (which first waits for the transactions in flight to \
                 end) and its drifted runs",
                source.name
            )
        });
        let snapshot = Snapshot::open(&ctx.config, source, SnapshotSource::Fresh, 1).await?;
        ctx.clock.taken();
        for g in source.generations.values() {
            lsn_of.insert(*g, snapshot.version_lsn());
        }
        let (rows, found_payloads) = read_copies(ctx, source, &snapshot, &ids).await?;
        let since = snapshot.since;
        drop(snapshot);
        ctx.clock.held(since.elapsed());
        tracing::debug!(
            source = %source.name,
            runs = rows.len(),
            lsn = %lsn_text(lsn_of.values().copied().max().unwrap_or(0)),
            "repair: drifted runs read from a fresh snapshot"
        );
        for row in rows {
            copies.entry(row.run_id.clone()).or_default().push(row);
        }
        payloads.extend(found_payloads);
    }
    // What ClickHouse holds under each key of these runs now, tombstones included: a row the
    // repair writes is seen only if it outranks that.
    ctx.doing(|| "repair: reading ClickHouse's newest row per key".into());
    // Every key the repair writes, whatever the window: a copy may lie outside it.
    let times = copies
        .values()
        .flatten()
        .chain(drifted.iter().flat_map(|d| &d.seen.actual))
        .map(|r| r.created_at);
    let keys = Scope {
        since_ms: times.clone().min(),
        until_ms: times.max().map(|t| t + 1),
        generations: None,
    };
    let newest: HashMap<Key, (u64, bool)> = ctx
        .reads
        .newest_by_key(&keys, &ids)
        .await?
        .into_iter()
        .map(|k| (key_of(k.sort_key()), (k.version, k.deleted == 1)))
        .collect();
    let ch = &ctx.config.clickhouse;
    let table = format!("{}.{}", ch.database, ch.runs_table);
    let mut tombstones = Vec::new();
    let mut blocked: HashSet<String> = HashSet::new();
    for d in drifted {
        let id = &d.finding.run_id;
        let planned = copies.get(id).map(Vec::as_slice).unwrap_or(&[]);
        match plan(&table, d, planned, &newest, &lsn_of)? {
            Plan::Repair(mut more) => tombstones.append(&mut more),
            Plan::Unrepairable(why) => {
                blocked.insert(id.clone());
                done.unrepairable.insert(id.clone(), why);
                done.unrepairable_runs += 1;
            }
        }
    }
    let mut rows: Vec<Box<RunRow>> = Vec::new();
    for (id, list) in copies {
        if blocked.contains(&id) {
            continue;
        }
        done.rewritten += 1;
        rows.extend(list.into_iter().map(Box::new));
    }
    payloads.retain(|p| !blocked.contains(&p.run_id) && wants_payload.contains(p.run_id.as_str()));
    if !rows.is_empty() || !payloads.is_empty() {
        ctx.doing(|| {
            format!(
                "repair: rewriting {} run(s) into ClickHouse",
                done.rewritten
            )
        });
        tracing::info!(
            runs = done.rewritten,
            rows = rows.len(),
            payloads = payloads.len(),
            "repair: rewriting drifted runs from the snapshot"
        );
        rows.sort_by(|a, b| a.sort_key().cmp(&b.sort_key()));
        let written = sink.write(&rows, &payloads).await?;
        done.rows_written += written.runs as u64;
        done.payloads_written += written.payloads as u64;
    }
    if !tombstones.is_empty() {
        ctx.doing(|| format!("repair: writing {} tombstone(s)", tombstones.len()));
        tombstones.sort_by(|a, b| a.sort_key().cmp(&b.sort_key()));
        let tombstones: Vec<Box<RunRow>> = tombstones.into_iter().map(Box::new).collect();
        let written = sink.write(&tombstones, &[]).await?;
        done.tombstoned += written.runs as u64;
    }
    Ok(done)
}

/// Keeps the committed rows of a COPY, payload rows too.
#[derive(Default)]
struct Copies {
    runs: Vec<RunRow>,
    payloads: Vec<PayloadRow>,
}

impl Consumer for Copies {
    async fn consume(&mut self, mut rows: Committed) -> Result<(), BackfillError> {
        self.runs.extend(rows.rows.drain().map(|r| *r));
        self.payloads.append(&mut rows.payloads);
        Ok(())
    }
}

/// Every copy of `ids` in `source`'s tables, and their payload rows, in `snapshot`, stamped with
/// its `L` as a backfill stamps them.
async fn read_copies(
    ctx: &Context,
    source: &Source,
    snapshot: &Snapshot,
    ids: &[String],
) -> Result<(Vec<RunRow>, Vec<PayloadRow>), VerifyError> {
    let payloads_table = ctx.reads.payloads_table().is_some();
    let mut copies = Copies::default();
    copier::copy_listed(
        &ctx.config,
        snapshot,
        source,
        ids,
        None,
        payloads_table,
        &mut copies,
    )
    .await?;
    Ok((copies.runs, copies.payloads))
}

/// What repairing one drifted run takes.
#[derive(Debug, PartialEq)]
pub enum Plan {
    /// Its copies are rewritten, and these tombstones written besides.
    Repair(Vec<RunRow>),
    /// No repair can put it right, and why: a row ClickHouse holds under a key the repair writes,
    /// a tombstone included, has a version above the repair's (on a tie the later insert, the
    /// repair's, wins).
    Unrepairable(String),
}

/// The [`Plan`] for `d`, whose copies in Postgres are `planned` (stamped as a repair writes them),
/// given ClickHouse's `newest` row per key (version, tombstone) and each generation's `L`;
/// `table` is the runs table as the fix names it.
pub fn plan(
    table: &str,
    d: &Drifted,
    planned: &[RunRow],
    newest: &HashMap<Key, (u64, bool)>,
    lsn_of: &HashMap<u8, u64>,
) -> Result<Plan, VerifyError> {
    let id = &d.finding.run_id;
    let fix = |v: u64| {
        format!(
            "delete it (ALTER TABLE {table} DELETE WHERE run_id = '{id}' AND _version = {v}), \
             then repair again"
        )
    };
    for copy in planned {
        match newest.get(&key_of(copy.sort_key())) {
            Some(&(v, true)) if v > copy._version => {
                return Ok(Plan::Unrepairable(format!(
                    "a tombstone at _version {} hides it, newer than the repair's {}: the \
                     rewritten row cannot be seen through it; {}",
                    version_text(v),
                    version_text(copy._version),
                    fix(v)
                )));
            }
            Some(&(v, false)) if v > copy._version => {
                return Ok(Plan::Unrepairable(format!(
                    "ClickHouse's row has _version {}, newer than the repair's {}: the repair \
                     cannot replace it; {}",
                    version_text(v),
                    version_text(copy._version),
                    fix(v)
                )));
            }
            _ => {}
        }
    }
    let mut tombstones = Vec::new();
    for row in &d.seen.actual {
        // The rewrite of a copy under the same key replaces it.
        if planned.iter().any(|c| c.sort_key() == row.sort_key()) {
            continue;
        }
        // A row Postgres does not have (the run is gone, or it is under a sorting key the run
        // no longer has): a tombstone as a delete at L would write.
        let g = (row._version >> 56) as u8;
        let Some(lsn) = lsn_of.get(&g) else {
            return Ok(Plan::Unrepairable(format!(
                "its ClickHouse row has generation {g}, which no verified table has"
            )));
        };
        let v = version(g, *lsn).map_err(|e| VerifyError::Request(e.to_string()))?;
        let (held, deleted) = newest
            .get(&key_of(row.sort_key()))
            .copied()
            .unwrap_or((row._version, false));
        if deleted && held >= row._version {
            continue; // already tombstoned since the re-check saw it
        }
        if held > v {
            return Ok(Plan::Unrepairable(format!(
                "ClickHouse's row has _version {}, newer than the tombstone's {}: a tombstone \
                 cannot hide it; {}",
                version_text(held),
                version_text(v),
                fix(held)
            )));
        }
        let mut tombstone = row.clone();
        tombstone._is_deleted = 1;
        tombstone._version = v;
        tombstones.push(tombstone);
    }
    Ok(Plan::Repair(tombstones))
}
