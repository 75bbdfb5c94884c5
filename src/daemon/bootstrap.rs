//! The copies a stream owes besides what its slot streams (SPEC §9):
//!
//! - **Bootstrap** ([`bootstrap`]): with `backfill.on_slot_create`, a slot the worker creates is
//!   created together with the snapshot of its consistent point, and that snapshot is copied
//!   before the stream starts — exactly the rows the slot will not stream.
//! - **A lost slot's gap** ([`Supervisor::copy_pending`] with a `gap` job): with
//!   `postgres.recreate_lost_slot`, the recreated slot streams what changes from now on, and a
//!   backfill copies the runs updated since the last position the marker knew safe (minus
//!   `backfill.gap_margin_s`). Deletes in the gap cannot be copied (the rows are gone); `verify
//!   --repair` tombstones them.
//!
//! Either is recorded in the stream's marker as *pending* before it starts, so a crash half-way
//! resumes it at the next start (from a fresh snapshot: its chunks carry their own `L`).

use super::marker::{self, Pending};
use super::supervisor::Supervisor;
use crate::backfill::{self, Display, Request, Snapshot, SnapshotSource};
use crate::source::exported_slot;

impl Supervisor {
    /// The backfill request of one of this stream's copies.
    fn copy_request(&self, updated_since: Option<String>) -> Request {
        Request {
            source: Some(self.stream.source.name.clone()),
            tables: Vec::new(),
            since: None,
            until: None,
            updated_since,
            shard: self.stream.shard.map(|s| s.row_filter()),
            // The runs were never streamed, so their INSERT never wrote a payload row.
            payloads: true,
            parallel: self.config.backfill.parallel,
            restart: false,
            display: Display::Lines,
        }
    }

    /// Creates the slot with its exported snapshot and copies the snapshot. The marker records
    /// the copy as pending first: if the worker dies half-way, the next start finishes it.
    pub(super) async fn bootstrap(&mut self, marker: &mut marker::Marker) -> Result<(), String> {
        let config = self.config.clone();
        let stream = self.stream.clone();
        let source = stream.source.clone();
        let request = self.copy_request(None);
        let spec = backfill::prepare(&config, &request, &source)
            .await
            .map_err(|e| e.to_string())?;
        let exported = exported_slot::create(&config, &stream)
            .await
            .map_err(|e| e.to_string())?;
        marker.pending = Some(Pending {
            reason: "bootstrap".into(),
            updated_since: None,
        });
        marker::write(&self.store, &stream, marker).await?;
        tracing::info!(
            stream = %stream.name,
            slot = %stream.slot,
            lsn = %backfill::snapshot::lsn_text(exported.lsn),
            "created the slot with its snapshot; copying the rows it will not stream (backfill.on_slot_create)"
        );
        let snapshot = Snapshot::open(
            &config,
            &source,
            SnapshotSource::Exported {
                name: exported.snapshot.clone(),
                lsn: exported.lsn,
            },
            request.parallel,
        )
        .await;
        // Every copy connection imported the snapshot (or failed to): the session may go.
        exported.release();
        let snapshot = snapshot.map_err(|e| e.to_string())?;
        let summary = backfill::copy(
            config,
            source,
            spec,
            &request,
            snapshot,
            self.sink.clone(),
            self.store.clone(),
        )
        .await
        .map_err(|e| e.to_string())?;
        tracing::info!(stream = %stream.name, rows = summary.total.rows_read, seconds = summary.total.seconds, "bootstrap copied");
        marker.pending = None;
        marker::write(&self.store, &stream, marker).await
    }

    /// Runs the copy the marker says is pending (a bootstrap or a gap interrupted earlier, or a
    /// gap just recorded), from a fresh snapshot, then clears it.
    pub(super) async fn copy_pending(&mut self, marker: &mut marker::Marker) -> Result<(), String> {
        let Some(pending) = marker.pending.clone() else {
            return Ok(());
        };
        let stream = self.stream.clone();
        tracing::warn!(
            stream = %stream.name,
            reason = %pending.reason,
            updated_since = ?pending.updated_since,
            "copying what the slot does not stream before streaming"
        );
        let request = self.copy_request(pending.updated_since.clone());
        let spec = backfill::prepare(&self.config, &request, &stream.source)
            .await
            .map_err(|e| e.to_string())?;
        let summary = backfill::run_source(
            self.config.clone(),
            &request,
            &stream.source,
            spec,
            self.sink.clone(),
            self.store.clone(),
        )
        .await
        .map_err(|e| e.to_string())?;
        tracing::info!(stream = %stream.name, reason = %pending.reason, rows = summary.total.rows_read, "copied");
        marker.pending = None;
        marker::write(&self.store, &stream, marker).await
    }

    /// The gap of a lost slot: runs updated since the marker's safe time minus the margin, or
    /// every run when the marker never proved a safe time.
    pub(super) fn gap(&self, marker: &marker::Marker) -> Pending {
        let margin = self.config.backfill.gap_margin_s;
        Pending {
            reason: "gap".into(),
            updated_since: marker
                .safe_since
                .map(|t| marker::timestamp_text(t.saturating_sub(margin))),
        }
    }
}
