//! One session of one stream, step by step: control connection → the server's identity and
//! timeline checked (`timeline`) → publication reconciled → preflight → leader lock (standby
//! until acquired) → a new timeline taken over (`timeline`) → slot ensured (`slot`) → the slot
//! free of other consumers (`slot_wait`) → tables that joined the publication copied
//! (`joining`) → stream started (on the server and timeline checked) → attached to the loop.
//! Each step that fails says how ([`SessionEnd`]) and the supervisor decides what comes next.
//! Every query of the setup is bounded by `postgres.query_timeout_ms` (`leader`, `preflight`),
//! and `/readyz` names the step a stream that is not streaming yet is at.

use std::time::Duration;

use tokio::sync::watch;

use super::control::PgControl;
use super::session_end::{SessionEnd, end_of};
use super::share::QUEUE_WAIT;
use super::supervisor::{Failing, Supervisor, Verdict, pause};
use crate::health::Role;
use crate::leader::share::Move;
use crate::leader::{Candidate, LeaderLock};
use crate::pipeline::errors::{HardStop, PipelineError};
use crate::preflight::{self, Report};
use crate::sink;
use crate::source::setup;
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

        self.activity("connecting to Postgres");
        let candidate = match Candidate::connect(&config, &stream).await {
            Ok(c) => c,
            Err(e) => return retry("postgres")(e.to_string()),
        };
        // Before anything is read from or written to it: who the server is, and whether it is
        // the history ClickHouse holds (an old primary back after a failover is refused).
        let standing = match self.check_server().await {
            Ok(s) => s,
            Err(end) => return end,
        };
        self.activity("reconciling the publication");
        let timeout = candidate.timeout();
        match tokio::time::timeout(
            timeout,
            setup::ensure_publication(candidate.client(), &stream),
        )
        .await
        {
            Ok(Ok(changes)) => {
                for sql in changes {
                    tracing::info!(stream = %stream.name, %sql, "publication reconciled");
                }
            }
            Ok(Err(e)) => return retry("postgres")(e.to_string()),
            Err(_) => {
                return retry("postgres")(format!(
                    "reconciling the publication: no answer within {} ms (postgres.query_timeout_ms)",
                    timeout.as_millis()
                ));
            }
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
        self.activity("running the preflight");
        let report = match async {
            let mut checks =
                preflight::postgres_checks(candidate.client(), &config, &stream, timeout).await?;
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
        self.verdict(Verdict::Passed);

        self.activity("waiting for the leader lock");
        let control = match self.elect(candidate, shutdown).await {
            Ok(Some(lock)) => PgControl::new(lock, &stream.slot),
            Ok(None) => return SessionEnd::Shutdown,
            Err(e) => return retry("postgres")(e),
        };
        if let Err(end) = self.take_over(&control, standing).await {
            return end;
        }
        if let Err(end) = self.ensure_slot(&control).await {
            return end;
        }
        // Another consumer may hold the slot (trigger.dev's own service during a cutover): wait
        // for it, by the catalog (`slot_wait`), before the publication is changed for a join.
        if let Err(end) = self.wait_for_slot(&control, shutdown).await {
            return end;
        }
        if let Err(end) = self.joins_at_start(&control).await {
            return end;
        }
        self.activity("starting the replication stream");
        let checked = self
            .identity
            .clone()
            .expect("checked at the session's start");
        let client = loop {
            match stream::start(&config, &stream, &checked).await {
                Ok(c) => break c,
                // Taken between the check and the start: wait again.
                Err(StreamError::SlotActive { .. }) if self.slot_is_held(&control).await => {
                    if let Err(end) = self.wait_for_slot(&control, shutdown).await {
                        return end;
                    }
                    self.activity("starting the replication stream");
                }
                Err(e @ StreamError::SlotActive { .. }) => {
                    return retry("slot_active")(e.to_string());
                }
                Err(StreamError::SlotMissing { slot }) => {
                    return end_of(PipelineError::HardStop(HardStop::SlotMissing { slot }));
                }
                Err(StreamError::SlotInvalidated { slot, .. }) => {
                    return end_of(PipelineError::HardStop(HardStop::SlotInvalidated { slot }));
                }
                Err(e) => return retry("postgres")(e.to_string()),
            }
        };
        self.slot_seen = true;
        self.health.set_activity(&stream.name, None);
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
            // Queueing waited already; without a fresh roster (the member session reconnects,
            // as after a Postgres restart) look again soon, so a stream nobody leads is not
            // left waiting a whole second once the roster is back.
            let idle = match next {
                Move::Queue => Duration::ZERO,
                _ if self.share.as_ref().is_some_and(|s| !s.sees_roster()) => {
                    Duration::from_millis(250)
                }
                _ => Duration::from_secs(1),
            };
            if !pause(idle, shutdown).await {
                return Ok(None);
            }
            if let Err(e) = candidate.ping().await {
                return Err(format!(
                    "the standby's Postgres session stopped answering, so it could not take over: {e}"
                ));
            }
        }
    }
}
