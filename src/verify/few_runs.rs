//! A few runs read in full from Postgres (the re-checks, the repair): every copy of each, from a
//! fresh snapshot of each source, through the backfill's COPY and `RowAdder` (the stream's own
//! transform input path), stamped with the snapshot's `L`. The snapshot is ended as soon as the
//! runs are read; the runs are few (a re-check batch), so it is held briefly.

use std::collections::HashMap;

use super::VerifyError;
use super::expected::Snap;
use super::window::VerifyWindow;
use crate::backfill::BackfillError;
use crate::backfill::copier::{self, Consumer};
use crate::backfill::lease::SnapshotClock;
use crate::backfill::{Snapshot, SnapshotSource};
use crate::config::{Config, Source};
use crate::pipeline::transaction::Committed;
use crate::rows::RunRow;

/// Keeps the committed rows of a COPY.
#[derive(Default)]
struct Rows(Vec<RunRow>);

impl Consumer for Rows {
    async fn consume(&mut self, mut rows: Committed) -> Result<(), BackfillError> {
        self.0.extend(rows.rows.drain().map(|r| *r));
        Ok(())
    }
}

/// The runs `ids` read in full from a fresh snapshot of every source: the winning copy of each
/// run present in the window (transformed rows, any copy rejected by the transform left out).
pub async fn read_runs(
    config: &Config,
    sources: &[std::sync::Arc<Source>],
    ids: &[String],
    window: Option<&VerifyWindow>,
    clock: &SnapshotClock,
) -> Result<RunsRead, VerifyError> {
    let mut winners: HashMap<String, RunRow> = HashMap::new();
    let mut snaps = Vec::new();
    let mut rows_read = 0;
    for source in sources {
        let (rows, snap) = copy_runs(config, source, ids, window, clock).await?;
        snaps.push(snap);
        rows_read += rows.len() as u64;
        for row in rows {
            match winners.get(&row.run_id) {
                Some(have) if have._version >> 56 >= row._version >> 56 => {}
                _ => {
                    winners.insert(row.run_id.clone(), row);
                }
            }
        }
    }
    Ok(RunsRead {
        winners,
        snapshots: snaps,
        rows_read,
    })
}

/// A few runs read in full.
#[derive(Debug, Default)]
pub struct RunsRead {
    /// The winning copy of each run that has one in the window.
    pub winners: HashMap<String, RunRow>,
    pub snapshots: Vec<Snap>,
    pub rows_read: u64,
}

/// Every row of `ids` in `source`'s tables (all copies) from one fresh snapshot.
pub async fn copy_runs(
    config: &Config,
    source: &Source,
    ids: &[String],
    window: Option<&VerifyWindow>,
    clock: &SnapshotClock,
) -> Result<(Vec<RunRow>, Snap), VerifyError> {
    let snapshot = Snapshot::open(config, source, SnapshotSource::Fresh, 1).await?;
    clock.taken();
    let snap = Snap {
        source: source.name.clone(),
        lsn: snapshot.lsn,
        upper: snapshot.upper,
        shift: snapshot.shift,
    };
    let since = snapshot.since;
    let rows = copy_runs_in(config, source, &snapshot, ids, window).await?;
    drop(snapshot);
    clock.held(since.elapsed());
    Ok((rows, snap))
}

/// Every row of `ids` in `source`'s tables (all copies) in `snapshot`, stamped with its `L`.
pub async fn copy_runs_in(
    config: &Config,
    source: &Source,
    snapshot: &Snapshot,
    ids: &[String],
    window: Option<&VerifyWindow>,
) -> Result<Vec<RunRow>, VerifyError> {
    let mut rows = Rows::default();
    copier::copy_listed(
        config,
        snapshot,
        source,
        ids,
        window.map(|w| &w.pg),
        false,
        &mut rows,
    )
    .await?;
    Ok(rows.0)
}
