//! The copies a stream owes besides what its slot streams (SPEC §9), made before it streams:
//!
//! - **Bootstrap**: with `backfill.on_slot_create`, the rows before a slot the worker creates —
//!   copied from the snapshot the slot exports at its consistent point ([`copy_exported`]):
//!   exactly the rows the slot will not stream.
//! - **A lost slot's gap**: with `postgres.recreate_lost_slot`, the runs updated since the last
//!   time the marker knew safe (minus `backfill.gap_margin_s`), or every run without evidence.
//!   Deletes in the gap cannot be copied (the rows are gone); `verify --repair` tombstones them.
//!
//! Each is a [`Pending`] copy of the stream's marker, recorded before the slot that makes it
//! owed is created and removed only once it is done. Each is its own backfill job (`Owed`: the
//! job's identity names the pending copy, and only chunks at or above the slot's consistent
//! point count), so no other job — an operator's `backfill`, a `--null-sink` dry run, a copy an
//! earlier slot owed — stands in for it. Interrupted, it resumes at the next start from a fresh
//! snapshot ([`copy_pending`]): its chunks carry their own `L`, after the slot's point.
//!
//! [`copy_exported`]: Supervisor::copy_exported
//! [`copy_pending`]: Supervisor::copy_pending

use std::sync::Arc;

use super::marker::{self, Marker, Pending};
use super::session_end::SessionEnd;
use super::slot::{clickhouse_end, postgres_end};
use super::supervisor::Supervisor;
use crate::backfill::{self, BackfillError, Display, Owed, Request, Snapshot, SnapshotSource};
use crate::source::exported_slot::ExportedSlot;

/// A failed copy: ClickHouse's failures and Postgres' are retried as sessions are.
fn copy_end(e: BackfillError) -> SessionEnd {
    match e {
        BackfillError::Sink(_) | BackfillError::State(_) => clickhouse_end(e),
        e => postgres_end(e),
    }
}

/// `backfill::prepare` (a connection and a few catalog readings), bounded like the rest of a
/// session's setup.
async fn prepare(
    config: &crate::config::Config,
    request: &Request,
    source: &crate::config::Source,
) -> Result<backfill::JobSpec, SessionEnd> {
    let bound = config.connect_timeout_of(&source.url) + 4 * config.query_timeout();
    match tokio::time::timeout(bound, backfill::prepare(config, request, source)).await {
        Ok(r) => r.map_err(copy_end),
        Err(_) => Err(postgres_end(format!(
            "preparing the copy: no answer within {} ms",
            bound.as_millis()
        ))),
    }
}

impl Supervisor {
    /// Says on `/readyz` what the stream does before it streams.
    pub(super) fn activity(&self, what: &str) {
        self.health
            .set_activity(&self.stream.name, Some(what.to_string()));
    }

    /// The backfill request of the pending copy `pending` of marker `m`.
    fn copy_request(&self, m: &Marker, pending: &Pending) -> Request {
        let what = match &pending.updated_since {
            Some(t) => format!("the runs updated since {t}"),
            None => "every run".to_string(),
        };
        let doing = format!(
            "copying what the slot does not stream before streaming ({}: {what})",
            pending.reason
        );
        let health = self.health.clone();
        let name = self.stream.name.clone();
        let waiting: backfill::WaitReport = Arc::new(move |waiting: Option<String>| {
            let text = match waiting {
                Some(w) => format!("{doing}: {w}"),
                None => doing.clone(),
            };
            health.set_activity(&name, Some(text));
        });
        Request {
            source: Some(self.stream.source.name.clone()),
            tables: Vec::new(),
            since: None,
            until: None,
            updated_since: pending.updated_since.clone(),
            shard: self.stream.shard.map(|s| s.row_filter()),
            // The runs were never streamed, so their INSERT never wrote a payload row.
            payloads: true,
            parallel: self.config.backfill.parallel,
            restart: false,
            display: Display::Lines,
            owed: Some(Owed {
                owner: format!("{}/{}", m.key(), pending.id),
                floor: pending
                    .floor
                    .as_deref()
                    .and_then(marker::parse_lsn)
                    .unwrap_or(0),
                waiting: Some(waiting),
            }),
        }
    }

    /// Copies `pending` from the snapshot the slot just created exported, then removes it.
    pub(super) async fn copy_exported(
        &mut self,
        exported: ExportedSlot,
        pending: &Pending,
    ) -> Result<(), SessionEnd> {
        let config = self.config.clone();
        let source = self.stream.source.clone();
        let m = self
            .marker
            .clone()
            .expect("recorded before the slot was created");
        let request = self.copy_request(&m, pending);
        self.activity(&format!(
            "copying what the slot does not stream before streaming ({})",
            pending.reason
        ));
        let spec = match prepare(&config, &request, &source).await {
            Ok(spec) => spec,
            Err(end) => {
                exported.release();
                return Err(end);
            }
        };
        crate::failpoint::reached("copy.started").await;
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
        let summary = backfill::copy(
            config,
            source,
            spec,
            &request,
            snapshot.map_err(copy_end)?,
            self.sink.clone(),
            self.store.clone(),
        )
        .await
        .map_err(copy_end)?;
        tracing::info!(
            stream = %self.stream.name,
            reason = %pending.reason,
            job = %summary.job_id,
            rows = summary.total.rows_read,
            seconds = summary.total.seconds,
            "{} copied",
            pending.reason
        );
        self.copied(pending).await
    }

    /// Makes every copy the marker still owes, each from a fresh snapshot (its `L` is after the
    /// slot's point), removing each once it is done.
    pub(super) async fn copy_pending(&mut self) -> Result<(), SessionEnd> {
        let Some(m) = self.marker.clone() else {
            return Ok(());
        };
        for pending in &m.pending {
            tracing::warn!(
                stream = %self.stream.name,
                reason = %pending.reason,
                updated_since = ?pending.updated_since,
                floor = ?pending.floor,
                "copying what the slot does not stream before streaming"
            );
            self.activity(&format!(
                "copying what the slot does not stream before streaming ({})",
                pending.reason
            ));
            crate::failpoint::reached("copy.started").await;
            let request = self.copy_request(&m, pending);
            let source = self.stream.source.clone();
            let spec = prepare(&self.config, &request, &source).await?;
            let summary = backfill::run_source(
                self.config.clone(),
                &request,
                &source,
                spec,
                self.sink.clone(),
                self.store.clone(),
            )
            .await
            .map_err(|e| {
                tracing::warn!(stream = %self.stream.name, reason = %pending.reason, error = %e, "the copy stopped; it stays pending and is resumed by the next session");
                copy_end(e)
            })?;
            tracing::info!(
                stream = %self.stream.name,
                reason = %pending.reason,
                job = %summary.job_id,
                rows = summary.total.rows_read,
                "{} copied",
                pending.reason
            );
            self.copied(pending).await?;
        }
        Ok(())
    }

    /// Removes a copy that is done from the marker (read again first: only this copy goes). A
    /// `--null-sink` worker copies nothing for real, so its copies stay owed.
    async fn copied(&mut self, pending: &Pending) -> Result<(), SessionEnd> {
        self.health.set_activity(&self.stream.name, None);
        if self.config.clickhouse.null_sink {
            tracing::warn!(stream = %self.stream.name, reason = %pending.reason, "--null-sink: the copy was a dry run; it stays owed");
            return Ok(());
        }
        self.update_marker(|m| m.pending.retain(|p| p.id != pending.id))
            .await
    }

    /// Reads the marker again, changes it with `change`, and writes it (fail closed: a marker
    /// that cannot be read is not written over).
    pub(super) async fn update_marker(
        &mut self,
        change: impl FnOnce(&mut Marker),
    ) -> Result<(), SessionEnd> {
        let Some(identity) = self.identity.clone() else {
            return Ok(());
        };
        let stored = marker::load(&self.store, &self.stream, &identity)
            .await
            .map_err(|e| match e {
                marker::MarkerError::Store(e) => clickhouse_end(e),
                e => SessionEnd::HardStop {
                    kind: "marker",
                    reason: e.to_string(),
                },
            })?;
        let Some(mut m) = stored.or_else(|| self.marker.clone()) else {
            return Ok(());
        };
        m.move_to(identity.timeline);
        change(&mut m);
        marker::save(&self.store, &m)
            .await
            .map_err(clickhouse_end)?;
        self.marker = Some(m);
        Ok(())
    }
}
