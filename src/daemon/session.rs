//! One session of one stream, step by step: control connection → publication reconciled →
//! preflight → leader lock (standby until acquired) → slot ensured → stream started → attached
//! to the loop. Each step that fails says how ([`SessionEnd`]) and the supervisor decides what
//! comes next.

use std::time::Duration;

use tokio::sync::watch;

use super::control::PgControl;
use super::marker;
use super::session_end::{SessionEnd, end_of};
use super::share::QUEUE_WAIT;
use super::supervisor::{Failing, Supervisor, pause};
use crate::health::Role;
use crate::leader::share::Move;
use crate::leader::{Candidate, LeaderLock};
use crate::pipeline::errors::{HardStop, PipelineError};
use crate::preflight::{self, Report};
use crate::sink;
use crate::source::setup::{self, SlotState};
use crate::source::stream::{self, StreamError};

impl Supervisor {
    pub(super) async fn session(
        &mut self,
        shutdown: &mut watch::Receiver<bool>,
        failing: &mut Option<Failing>,
    ) -> SessionEnd {
        let config = self.config.clone();
        let stream = self.stream.clone();
        let retry = |cause: &'static str| move |e: String| SessionEnd::Retry { cause, error: e };

        let candidate = match Candidate::connect(&config, &stream).await {
            Ok(c) => c,
            Err(e) => return retry("postgres")(e.to_string()),
        };
        match setup::ensure_publication(candidate.client(), &stream).await {
            Ok(changes) => {
                for sql in changes {
                    tracing::info!(stream = %stream.name, %sql, "publication reconciled");
                }
            }
            Err(e) => return retry("postgres")(e.to_string()),
        }
        let ch = match sink::client::build(&config) {
            Ok(c) => c,
            Err(e) => {
                return SessionEnd::HardStop {
                    kind: "config",
                    reason: e,
                };
            }
        };
        let report = match async {
            let mut checks = preflight::postgres_checks(candidate.client(), &stream).await?;
            checks.extend(preflight::clickhouse_checks(&ch, &config).await?);
            Ok::<_, preflight::PreflightError>(Report {
                postgres: stream.source.url.to_string(),
                clickhouse: config.clickhouse.url.to_string(),
                checks,
            })
        }
        .await
        {
            Ok(r) => r,
            Err(e @ preflight::PreflightError::ClickHouse { .. }) => {
                return retry("clickhouse")(e.to_string());
            }
            Err(e) => return retry("postgres")(e.to_string()),
        };
        for check in report.warnings() {
            tracing::warn!(stream = %stream.name, check = check.check, target = %check.target, observed = %check.observed, fix = ?check.fix, "preflight warning");
        }
        // An invalidated slot is fixed at runtime (drop it; a new one is created), so it is a
        // hard stop rather than a refusal to start; with recreate_lost_slot it is handled below.
        let mut report = report;
        if report.failed().any(|c| c.check == "slot_wal_status") {
            if !config.postgres.recreate_lost_slot {
                return end_of(PipelineError::HardStop(HardStop::SlotInvalidated {
                    slot: stream.slot.clone(),
                }));
            }
            report.checks.retain(|c| c.check != "slot_wal_status");
        }
        if !report.passed() {
            if config.preflight.ignore_failures {
                tracing::warn!(
                    stream = %stream.name,
                    "preflight failed, streaming anyway (preflight.ignore_failures): {}",
                    report.summary()
                );
            } else {
                return SessionEnd::Preflight(report.summary());
            }
        }

        let control = match self.elect(candidate, shutdown).await {
            Ok(Some(lock)) => PgControl::new(lock, &stream.slot),
            Ok(None) => return SessionEnd::Shutdown,
            Err(e) => return retry("postgres")(e),
        };
        if let Err(end) = self.ensure_slot(control.session()).await {
            return end;
        }
        let client = match stream::start(&config, &stream).await {
            Ok(c) => c,
            Err(e @ StreamError::SlotActive { .. }) => return retry("slot_active")(e.to_string()),
            Err(StreamError::SlotMissing { slot }) => {
                return end_of(PipelineError::HardStop(HardStop::SlotMissing { slot }));
            }
            Err(StreamError::SlotInvalidated { slot, .. }) => {
                return end_of(PipelineError::HardStop(HardStop::SlotInvalidated { slot }));
            }
            Err(e) => return retry("postgres")(e.to_string()),
        };
        self.slot_seen = true;
        self.health.set_role(&stream.name, Role::Leader);
        match failing.take() {
            Some(f) => tracing::info!(
                stream = %stream.name,
                slot = %stream.slot,
                after_s = f.since.elapsed().as_secs(),
                attempts = f.attempts,
                "leader: streaming again"
            ),
            None => tracing::info!(stream = %stream.name, slot = %stream.slot, "leader: streaming"),
        }
        self.stream_until_ended(client, control).await
    }

    /// Waits as a standby until the leader lock is ours. `Ok(None)` on shutdown. With
    /// sharing, it tries the lock only as the stream's share says (`share::StreamShare`).
    async fn elect(
        &mut self,
        mut candidate: Candidate,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Result<Option<LeaderLock>, String> {
        if let Some(share) = &mut self.share {
            candidate.tag(share.me()).await.map_err(|e| e.to_string())?;
            share.standby();
        }
        let mut announced = false;
        loop {
            let next = self.share.as_mut().map_or(Move::Take, |s| s.next_move());
            let attempt = match next {
                Move::Take => candidate.try_acquire().await,
                Move::Queue => candidate.queue(QUEUE_WAIT).await,
                Move::Wait => Ok(Err(candidate)),
            };
            match attempt {
                Ok(Ok(lock)) => {
                    tracing::info!(stream = %self.stream.name, "leader lock acquired");
                    return Ok(Some(lock));
                }
                Ok(Err(c)) => candidate = c,
                Err(e) => return Err(e.to_string()),
            }
            if !announced {
                tracing::info!(
                    stream = %self.stream.name,
                    "standby: another instance leads the stream (or it is another instance's share); waiting to take over"
                );
                announced = true;
            }
            self.health.set_role(&self.stream.name, Role::Standby);
            // Queueing waited already.
            let idle = match next {
                Move::Queue => Duration::ZERO,
                _ => Duration::from_secs(1),
            };
            if !pause(idle, shutdown).await {
                return Ok(None);
            }
            if !candidate.ping().await {
                return Err("the standby's Postgres session was lost".into());
            }
        }
    }

    /// Makes sure the stream has its slot, and owes no copy, before it streams.
    ///
    /// The slot's marker (`marker`) tells a slot never made from one that was lost: missing
    /// with a marker, it was lost — a hard stop, or with `recreate_lost_slot` a new slot and a
    /// backfill of the gap. Missing without one, it is created (with `on_slot_create`, together
    /// with a copy of everything before it). Present, it simply continues.
    async fn ensure_slot(&mut self, session: &tokio_postgres::Client) -> Result<(), SessionEnd> {
        let config = self.config.clone();
        let stream = self.stream.clone();
        let slot = stream.slot.clone();
        let clickhouse = |e: String| SessionEnd::Retry {
            cause: "clickhouse",
            error: e,
        };
        let postgres = |e: setup::SetupError| SessionEnd::Retry {
            cause: "postgres",
            error: e.to_string(),
        };
        self.store
            .ensure()
            .await
            .map_err(|e| clickhouse(e.to_string()))?;
        let mut marker = marker::read(&self.store, &stream)
            .await
            .map_err(clickhouse)?;
        let state = setup::ensure_slot(session, &stream, false)
            .await
            .map_err(postgres)?;
        let lost = match state {
            SlotState::Exists { wal_status } if wal_status.as_deref() == Some("lost") => {
                if !config.postgres.recreate_lost_slot {
                    return Err(end_of(PipelineError::HardStop(HardStop::SlotInvalidated {
                        slot,
                    })));
                }
                tracing::error!(stream = %stream.name, %slot, "the slot was invalidated; recreating it (postgres.recreate_lost_slot) and backfilling the gap");
                setup::drop_slot(session, &stream).await.map_err(postgres)?;
                true
            }
            SlotState::Exists { .. } | SlotState::Created { .. } => {
                let mut m = marker.take().unwrap_or_else(|| marker::new(&stream));
                self.copy_pending(&mut m).await.map_err(clickhouse)?;
                marker::write(&self.store, &stream, &m)
                    .await
                    .map_err(clickhouse)?;
                self.marker = Some(m);
                return Ok(());
            }
            SlotState::Missing => marker.is_some() || self.slot_seen || self.recreate_requested,
        };
        if lost {
            let mut m = marker.unwrap_or_else(|| marker::new(&stream));
            let recreate =
                config.postgres.recreate_lost_slot || std::mem::take(&mut self.recreate_requested);
            if !recreate {
                let since = m.safe_since.map(|t| {
                    marker::timestamp_text(t.saturating_sub(config.backfill.gap_margin_s))
                });
                return Err(SessionEnd::HardStop {
                    kind: "slot_missing",
                    reason: format!(
                        "{}; once it is recreated, copy the gap: runs-replicator backfill --source {} --payloads{}",
                        HardStop::SlotMissing { slot },
                        stream.source.name,
                        since
                            .map(|t| format!(" --updated-since '{t}'"))
                            .unwrap_or_default()
                    ),
                });
            }
            let created = setup::ensure_slot(session, &stream, true)
                .await
                .map_err(postgres)?;
            tracing::error!(stream = %stream.name, %slot, ?created, "the slot was lost; created a new one; copying the runs changed in the gap");
            m.pending = Some(self.gap(&m));
            m.safe_since = Some(marker::unix_now());
            marker::write(&self.store, &stream, &m)
                .await
                .map_err(clickhouse)?;
            self.copy_pending(&mut m).await.map_err(clickhouse)?;
            self.marker = Some(m);
            return Ok(());
        }
        // Never made (as far as anything durable says): the first start.
        if !stream.source.create_slot {
            return Err(end_of(PipelineError::HardStop(HardStop::SlotMissing {
                slot,
            })));
        }
        let mut m = marker::new(&stream);
        if config.backfill.on_slot_create {
            self.bootstrap(&mut m).await.map_err(clickhouse)?;
        } else {
            match setup::ensure_slot(session, &stream, true)
                .await
                .map_err(postgres)?
            {
                SlotState::Created { lsn } => tracing::warn!(
                    stream = %stream.name,
                    %slot, %lsn,
                    "created the replication slot: changes committed before {lsn} are not replicated: copy them with `runs-replicator backfill` (or set backfill.on_slot_create)"
                ),
                other => {
                    tracing::info!(stream = %stream.name, %slot, ?other, "the slot appeared meanwhile")
                }
            }
            marker::write(&self.store, &stream, &m)
                .await
                .map_err(clickhouse)?;
        }
        self.marker = Some(m);
        Ok(())
    }
}
