//! Making sure a stream has its slot, and owes no copy, before it streams (SPEC §9; the
//! marker's rules are in `marker`).
//!
//! Decided from the slot as the catalog shows it and the stream's marker:
//! - **Exists** → it continues. Found without a marker it is adopted with no evidence of a safe
//!   time; one the marker was creating is safe from just before its creation. The copies still
//!   pending are made first (`bootstrap`).
//! - **Missing, and it existed** (the marker says so, or this process streamed from it) → lost:
//!   a hard stop naming the copy that fills the gap, or with `postgres.recreate_lost_slot` (or
//!   an operator who dropped the invalidated slot the stream stopped on) a new slot and that copy.
//! - **Invalidated** → a hard stop, or, with `recreate_lost_slot`, dropped and then as lost.
//! - **Missing, never made** (or its creation was interrupted) → created, owing the bootstrap
//!   copy with `backfill.on_slot_create`.
//!
//! A slot is only ever created after the marker recorded the intent and every copy the new slot
//! owes (intent first), with the snapshot of its consistent point, from which the newest copy
//! owed is made at once. Creating a logical slot waits, inside Postgres, for every transaction
//! in flight in the cluster to end: that wait is bounded by `backfill.snapshot_wait_timeout_s`
//! and `/readyz` names what it waits on.

use std::time::{Duration, Instant};

use super::control::{PgControl, bounded};
use super::marker::{self, Marker, MarkerError, Pending, SlotRecord};
use super::session_end::{SessionEnd, end_of};
use super::supervisor::Supervisor;
use crate::backfill::snapshot::{self as backfill_snapshot, Scope, lsn_text};
use crate::pg::catalog::{self, SlotReading};
use crate::pipeline::errors::{HardStop, PipelineError};
use crate::source::exported_slot::{self, ExportedSlot};

pub(super) fn clickhouse_end(error: impl ToString) -> SessionEnd {
    SessionEnd::Retry {
        cause: "clickhouse",
        error: error.to_string(),
    }
}

pub(super) fn postgres_end(error: impl ToString) -> SessionEnd {
    SessionEnd::Retry {
        cause: "postgres",
        error: error.to_string(),
    }
}

impl Supervisor {
    /// Makes sure the stream has its slot and owes no copy before it streams (see the module).
    pub(super) async fn ensure_slot(&mut self, control: &PgControl) -> Result<(), SessionEnd> {
        let config = self.config.clone();
        let stream = self.stream.clone();
        let timeout = control.timeout();
        // Read before the slot is: a slot found missing now and created later is younger.
        let observed_at = marker::unix_now();
        let identity = self
            .identity
            .clone()
            .expect("checked at the session's start");
        self.activity("reading the slot's marker");
        let found = match marker::load(&self.store, &stream, &identity).await {
            Ok(found) => found,
            Err(MarkerError::Store(e)) => return Err(clickhouse_end(e)),
            Err(e) => {
                return Err(SessionEnd::HardStop {
                    kind: "marker",
                    reason: e.to_string(),
                });
            }
        };
        let slot = bounded(
            "the replication slot",
            timeout,
            catalog::read_slot(control.session(), &stream.slot),
        )
        .await
        .map_err(postgres_end)?;
        match slot {
            Some(reading) if reading.is_lost() => {
                if !config.postgres.recreate_lost_slot {
                    return Err(end_of(PipelineError::HardStop(HardStop::SlotInvalidated {
                        slot: stream.slot.clone(),
                    })));
                }
                tracing::error!(stream = %stream.name, slot = %stream.slot, "the slot was invalidated; recreating it (postgres.recreate_lost_slot) and copying the gap");
                self.recreate(control, found, true, observed_at).await
            }
            Some(reading) => self.adopt(found, &reading).await,
            None => {
                let lost = match &found {
                    Some(m) => m.slot_state == SlotRecord::Exists,
                    None => self.slot_seen || self.recreate_requested,
                };
                if lost {
                    let recreate = config.postgres.recreate_lost_slot
                        || std::mem::take(&mut self.recreate_requested);
                    if !recreate {
                        return Err(self.lost_without_recreating(found.as_ref()));
                    }
                    return self.recreate(control, found, false, observed_at).await;
                }
                // Never made, or its creation was interrupted (the marker says `Creating`).
                if !stream.source.create_slot {
                    return Err(end_of(PipelineError::HardStop(HardStop::SlotMissing {
                        slot: stream.slot.clone(),
                    })));
                }
                let marker = match found {
                    Some(m) => m,
                    None => {
                        let mut m = Marker::new(&stream, &identity, SlotRecord::Exists);
                        if config.backfill.on_slot_create {
                            m.pending.push(Pending::new("bootstrap", None));
                        }
                        m
                    }
                };
                self.create(control, marker, false, observed_at).await
            }
        }
    }

    /// The hard stop of a lost slot the worker does not recreate: it names the copy that fills
    /// the gap (everything, when the marker has no evidence of a safe time).
    fn lost_without_recreating(&self, found: Option<&Marker>) -> SessionEnd {
        let stream = &self.stream;
        let since = marker::gap_since(found, self.config.backfill.gap_margin_s);
        SessionEnd::HardStop {
            kind: "slot_missing",
            reason: format!(
                "{}; once it is recreated, copy the gap: runs-replicator backfill --source {} --payloads{}",
                HardStop::SlotMissing {
                    slot: stream.slot.clone()
                },
                stream.source.name,
                since
                    .map(|t| format!(" --updated-since '{t}'"))
                    .unwrap_or_else(|| {
                        " (nothing proves how far the slot was safe: the gap is every run)".into()
                    })
            ),
        }
    }

    /// Continues with an existing slot: records it as existing (with its evidence) and makes
    /// the copies still pending.
    async fn adopt(
        &mut self,
        found: Option<Marker>,
        reading: &SlotReading,
    ) -> Result<(), SessionEnd> {
        let identity = self.identity.clone().expect("identified above");
        let mut m = match found {
            Some(m) => m,
            None => {
                tracing::warn!(
                    stream = %self.stream.name,
                    slot = %self.stream.slot,
                    "continuing with a slot the worker has no record of: until the stream proves \
                     how far it is safe (about a minute), losing it would mean copying every run"
                );
                Marker::new(&self.stream, &identity, SlotRecord::Exists)
            }
        };
        if let SlotRecord::Creating { since } = m.slot_state {
            // Created by an earlier session after `since`, which died before recording it.
            m.slot_state = SlotRecord::Exists;
            m.safe_since = Some(since);
        }
        let confirmed = reading.confirmed_flush_lsn.clone();
        for p in m.pending.iter_mut().filter(|p| p.floor.is_none()) {
            // Any fresh snapshot is taken after this: its `L` is past the slot's creation.
            p.floor = confirmed.clone();
        }
        m.move_to(identity.timeline);
        m.acknowledged = confirmed;
        marker::save(&self.store, &m)
            .await
            .map_err(clickhouse_end)?;
        self.marker = Some(m);
        self.copy_pending().await?;
        crate::failpoint::reached("slot.ensured").await;
        Ok(())
    }

    /// A lost (or invalidated, `drop_first`) slot replaced: the gap it leaves is recorded as
    /// owed, then the new slot is created and the gap copied.
    async fn recreate(
        &mut self,
        control: &PgControl,
        found: Option<Marker>,
        drop_first: bool,
        observed_at: u64,
    ) -> Result<(), SessionEnd> {
        let identity = self.identity.clone().expect("identified above");
        let since = marker::gap_since(found.as_ref(), self.config.backfill.gap_margin_s);
        let mut m =
            found.unwrap_or_else(|| Marker::new(&self.stream, &identity, SlotRecord::Exists));
        let reason = if since.is_some() { "gap" } else { "everything" };
        tracing::error!(
            stream = %self.stream.name,
            slot = %self.stream.slot,
            updated_since = since.as_deref().unwrap_or("(no evidence of a safe time: every run)"),
            pending_before = m.pending.len(),
            "the slot was lost; recording the copy of its gap, then creating a new one"
        );
        marker::owe(&mut m.pending, Pending::new(reason, since));
        self.create(control, m, drop_first, observed_at).await
    }

    /// Records the intent (`Creating` and the copies owed), creates the slot with its snapshot,
    /// records it, and makes the copies: the newest from the slot's own snapshot, any older ones
    /// from fresh snapshots.
    async fn create(
        &mut self,
        control: &PgControl,
        mut m: Marker,
        drop_first: bool,
        observed_at: u64,
    ) -> Result<(), SessionEnd> {
        let stream = self.stream.clone();
        let identity = self.identity.clone().expect("identified above");
        m.slot_state = SlotRecord::Creating { since: observed_at };
        m.move_to(identity.timeline);
        marker::save(&self.store, &m)
            .await
            .map_err(clickhouse_end)?;
        self.marker = Some(m.clone());
        crate::failpoint::reached("slot.intent_recorded").await;
        if drop_first {
            bounded("dropping the invalidated slot", control.timeout(), async {
                crate::source::setup::drop_slot(control.session(), &stream)
                    .await
                    .map_err(|e| catalog::CatalogError {
                        what: "dropping the invalidated slot",
                        reason: e.to_string(),
                    })
            })
            .await
            .map_err(postgres_end)?;
        }
        let exported = self.create_exported(control).await?;
        crate::failpoint::reached("slot.created").await;
        let point = lsn_text(exported.lsn);
        m.slot_state = SlotRecord::Exists;
        m.safe_since = Some(observed_at);
        m.acknowledged = Some(point.clone());
        for p in m.pending.iter_mut().filter(|p| p.floor.is_none()) {
            p.floor = Some(point.clone());
        }
        if let Err(e) = marker::save(&self.store, &m).await {
            exported.release();
            return Err(clickhouse_end(e));
        }
        self.marker = Some(m.clone());
        let Some(newest) = m.pending.last().cloned() else {
            exported.release();
            tracing::warn!(
                stream = %stream.name,
                slot = %stream.slot,
                lsn = %point,
                "created the replication slot: changes committed before {point} are not replicated: copy them with `runs-replicator backfill` (or set backfill.on_slot_create)"
            );
            return Ok(());
        };
        match newest.reason.as_str() {
            "bootstrap" => tracing::info!(
                stream = %stream.name,
                slot = %stream.slot,
                lsn = %point,
                "created the slot with its snapshot; copying the rows it will not stream (backfill.on_slot_create)"
            ),
            _ => tracing::error!(
                stream = %stream.name,
                slot = %stream.slot,
                lsn = %point,
                updated_since = ?newest.updated_since,
                "the slot was lost; created a new one; copying the runs changed in the gap"
            ),
        }
        self.copy_exported(exported, &newest).await?;
        self.copy_pending().await?;
        crate::failpoint::reached("slot.ensured").await;
        Ok(())
    }

    /// Creates the slot with its exported snapshot. Postgres waits inside the creation for every
    /// transaction in flight in the cluster; this names them on `/readyz` and in the log while it
    /// waits, and gives up after `backfill.snapshot_wait_timeout_s` (ending the walsender that
    /// creates the slot, so no half-made slot is left): the session is then tried again.
    async fn create_exported(&self, control: &PgControl) -> Result<ExportedSlot, SessionEnd> {
        let stream = &self.stream;
        let limit = Duration::from_secs(self.config.backfill.snapshot_wait_timeout_s);
        let started = Instant::now();
        self.activity(&format!("creating slot {}", stream.slot));
        let create = exported_slot::create(&self.config, stream);
        tokio::pin!(create);
        let first = tokio::time::Instant::now() + Duration::from_secs(2);
        let mut tick = tokio::time::interval_at(first, Duration::from_secs(5));
        let mut next_log = started + Duration::from_secs(5);
        loop {
            tokio::select! {
                created = &mut create => return created.map_err(postgres_end),
                _ = tick.tick() => {
                    let waiting = match bounded(
                        "the transactions in flight",
                        control.timeout(),
                        async {
                            backfill_snapshot::in_flight(control.session(), Scope::Cluster, &[])
                                .await
                                .map_err(|e| catalog::CatalogError {
                                    what: "the transactions in flight",
                                    reason: crate::pg::describe(&e),
                                })
                        },
                    )
                    .await
                    {
                        Ok(list) if list.is_empty() => "none left (finishing)".to_string(),
                        Ok(list) => backfill_snapshot::describe_in_flight(&list),
                        Err(e) => format!("unknown ({e})"),
                    };
                    let waited = started.elapsed().as_secs();
                    if started.elapsed() >= limit {
                        let _ = bounded(
                            "ending the slot's creation",
                            control.timeout(),
                            async {
                                control
                                    .session()
                                    .execute(
                                        "SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots \
                                         WHERE slot_name = $1 AND active_pid IS NOT NULL",
                                        &[&stream.slot],
                                    )
                                    .await
                                    .map_err(|e| catalog::CatalogError {
                                        what: "ending the slot's creation",
                                        reason: crate::pg::describe(&e),
                                    })
                            },
                        )
                        .await;
                        return Err(postgres_end(format!(
                            "creating slot {} waited {waited} s (backfill.snapshot_wait_timeout_s) \
                             for the transactions in flight in the cluster to end (Postgres waits for \
                             all of them before a new slot has a consistent point), and they have \
                             not: {waiting}; end them (COMMIT PREPARED or ROLLBACK PREPARED a \
                             forgotten prepared transaction, pg_terminate_backend(pid) a session \
                             left open); trying again",
                            stream.slot
                        )));
                    }
                    self.activity(&format!(
                        "creating slot {}: Postgres waits for every transaction in flight in the \
                         cluster to end ({waited} s of at most {} s): {waiting}",
                        stream.slot,
                        limit.as_secs()
                    ));
                    if Instant::now() >= next_log {
                        tracing::warn!(
                            stream = %stream.name,
                            slot = %stream.slot,
                            waiting_s = waited,
                            limit_s = limit.as_secs(),
                            waiting_on = %waiting,
                            "creating the slot: waiting for the transactions in flight in the cluster to end"
                        );
                        next_log = Instant::now() + Duration::from_secs(30);
                    }
                }
            }
        }
    }
}
