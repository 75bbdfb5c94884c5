//! Listed runs put right from one snapshot: every copy Postgres has of them copied again (the
//! backfill's COPY → `RowAdder` → the sink, payloads included), and a tombstone for each row
//! ClickHouse shows of them that the snapshot does not hold — the run is gone, or the row sits
//! under a sorting key the run no longer has. All at the snapshot's version,
//! `generation << 56 | (L + shift)`: the rows a backfill and a delete at `L` would write, so a
//! live change after `L` still wins and everything the snapshot shows beats what came before
//! (ARCHITECTURE.md, "A backfilled row never beats a live change").
//!
//! The daemon uses it for the runs a failover's lost history touched (`daemon::timeline`).

use std::collections::HashSet;
use std::sync::Arc;

use super::BackfillError;
use super::copier::{self, Consumer, SinkWriter};
use super::snapshot::Snapshot;
use crate::config::{Config, Source};
use crate::pipeline::sink::Sink;
use crate::pipeline::transaction::{Committed, version};
use crate::rows::RunRow;

/// What a rewrite did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Rewritten {
    /// Rows copied again (every copy of a run, in each table that has it).
    pub rows: u64,
    pub payloads: u64,
    /// Tombstones written for rows the snapshot does not hold.
    pub tombstones: u64,
}

/// A row's identity in ClickHouse: its generation and sorting key.
fn identity(row: &RunRow) -> (u8, String) {
    ((row._version >> 56) as u8, format!("{:?}", row.sort_key()))
}

/// Writes through a [`SinkWriter`], remembering the identity of every row written.
struct Recording<'a, S: Sink> {
    writer: SinkWriter<'a, S>,
    written: HashSet<(u8, String)>,
}

impl<S: Sink> Consumer for Recording<'_, S> {
    async fn consume(&mut self, mut rows: Committed) -> Result<(), BackfillError> {
        for row in rows.rows.iter_mut() {
            self.written.insert(identity(row));
        }
        self.writer.consume(rows).await
    }
}

/// Rewrites `ids` of `source` as `snapshot` shows them, and tombstones the rows of `shown` (what
/// ClickHouse shows of those runs now) of `source`'s generations that the snapshot does not
/// hold. A shown row with a version at or above the rewrite's is newer than the snapshot and
/// left as it is.
pub async fn rewrite_runs<S: Sink>(
    config: &Config,
    source: &Source,
    snapshot: &Snapshot,
    ids: &[String],
    shown: &[RunRow],
    sink: &Arc<S>,
) -> Result<Rewritten, BackfillError> {
    let payloads_table = !config.clickhouse.payloads_table.is_empty();
    let mut recording = Recording {
        writer: SinkWriter::new(sink),
        written: HashSet::new(),
    };
    copier::copy_listed(
        config,
        snapshot,
        source,
        ids,
        None,
        payloads_table,
        &mut recording,
    )
    .await?;
    let generations: HashSet<u8> = source.generations.values().copied().collect();
    let mut tombstones = Vec::new();
    for row in shown {
        let g = (row._version >> 56) as u8;
        if !generations.contains(&g) || recording.written.contains(&identity(row)) {
            continue;
        }
        let v = version(g, snapshot.version_lsn())
            .map_err(|e| BackfillError::Request(e.to_string()))?;
        if row._version >= v {
            continue;
        }
        let mut tombstone = row.clone();
        tombstone._is_deleted = 1;
        tombstone._version = v;
        tombstones.push(Box::new(tombstone));
    }
    let mut done = Rewritten {
        rows: recording.writer.rows_written,
        payloads: recording.writer.payloads_written,
        tombstones: 0,
    };
    if !tombstones.is_empty() {
        tombstones.sort_by(|a, b| a.sort_key().cmp(&b.sort_key()));
        let written = sink.write(&tombstones, &[]).await?;
        done.tombstones = written.runs as u64;
    }
    Ok(done)
}
