//! What a failover would do to a stream, watched while it streams (PostgreSQL 17+ failover
//! slots): whether a standby holds a synchronized, usable copy of the slot and how far behind
//! (`runs_replicator_failover_ready`, `runs_replicator_failover_slot_lag_bytes`), and whether the
//! primary holds the stream's changes back for a standby that `synchronized_standby_slots` names
//! and that is down — then nothing arrives, and the worker says why (log, `/readyz`,
//! `runs_replicator_held_by_standby_slots`) instead of looking idle.
//!
//! It runs on a task of its own for the life of a session: asking standbys can take a connect
//! timeout, which must not delay the session's own work.

use std::sync::Arc;
use std::time::Duration;

use super::control::PgControl;
use crate::config::{Config, Stream};
use crate::health::Health;
use crate::metrics as m;
use crate::pg::catalog;
use crate::preflight::failover as verdict;

/// How long one round of reading the primary may take.
const QUERY_TIMEOUT: Duration = Duration::from_secs(10);

/// Watches `stream` every `postgres.slot_poll_interval_ms` until aborted.
pub(super) async fn watch(
    config: Arc<Config>,
    stream: Stream,
    health: Arc<Health>,
    control: Arc<PgControl>,
) {
    let every = Duration::from_millis(config.postgres.slot_poll_interval_ms.max(100));
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last = Seen::default();
    loop {
        tick.tick().await;
        let read = tokio::time::timeout(QUERY_TIMEOUT, read_primary(control.session(), &stream));
        let (version_num, slot, gating) = match read.await {
            Ok(Ok(found)) => found,
            Ok(Err(e)) => {
                tracing::debug!(stream = %stream.name, error = %e, "could not read the failover state");
                continue;
            }
            Err(_) => continue,
        };
        if !stream.source.failover_slot.wanted(version_num) {
            metrics::gauge!(m::FAILOVER_READY, "source" => stream.name.clone()).set(0.0);
            return;
        }
        let held = held_by(slot.as_ref(), &gating);
        last.held(&stream, &health, held);
        let standbys = verdict::probe_standbys(&config, &stream).await;
        let readiness = verdict::readiness(slot.as_ref(), &standbys);
        last.readiness(&stream, readiness);
    }
}

/// Clears what a watch published, when its session ends.
pub(super) fn clear(stream: &Stream, health: &Health) {
    health.set_held(&stream.name, None);
    metrics::gauge!(m::STANDBY_HOLD, "source" => stream.name.clone()).set(0.0);
}

async fn read_primary(
    session: &tokio_postgres::Client,
    stream: &Stream,
) -> Result<(i32, Option<catalog::SlotReading>, Vec<catalog::GatingSlot>), catalog::CatalogError> {
    let version_num = catalog::read_server(session).await?.version_num;
    let slot = catalog::read_slot(session, &stream.slot).await?;
    let gating = catalog::read_gating_slots(session).await?;
    Ok((version_num, slot, gating))
}

/// Why the primary holds back the changes of `slot`, a failover slot: every slot
/// `synchronized_standby_slots` names must confirm WAL before a failover slot's walsender sends
/// it, so one whose standby is down (or that is missing or invalidated) stops the stream.
fn held_by(slot: Option<&catalog::SlotReading>, gating: &[catalog::GatingSlot]) -> Option<String> {
    if slot.and_then(|s| s.failover) != Some(true) {
        return None;
    }
    let problems: Vec<String> = gating
        .iter()
        .filter_map(|g| verdict::gating_problem(g).map(|p| format!("standby slot {}: {p}", g.name)))
        .collect();
    (!problems.is_empty()).then(|| {
        format!(
            "the primary holds back this failover slot's changes until every slot in synchronized_standby_slots confirms them ({}); bring the standby back, or remove its slot from synchronized_standby_slots",
            problems.join("; ")
        )
    })
}

/// What was last published, so that a change is logged once.
#[derive(Default)]
struct Seen {
    held: Option<String>,
    ready: Option<bool>,
}

impl Seen {
    fn held(&mut self, stream: &Stream, health: &Health, held: Option<String>) {
        metrics::gauge!(m::STANDBY_HOLD, "source" => stream.name.clone()).set(if held.is_some() {
            1.0
        } else {
            0.0
        });
        if held == self.held {
            return;
        }
        match &held {
            Some(why) => tracing::warn!(stream = %stream.name, "nothing arrives: {why}"),
            None => {
                tracing::info!(stream = %stream.name, "synchronized_standby_slots no longer holds the stream back")
            }
        }
        health.set_held(&stream.name, held.clone());
        self.held = held;
    }

    fn readiness(&mut self, stream: &Stream, r: verdict::Readiness) {
        let source = stream.name.clone();
        metrics::gauge!(m::FAILOVER_READY, "source" => source.clone()).set(if r.ready {
            1.0
        } else {
            0.0
        });
        if let Some(lag) = r.lag_bytes {
            metrics::gauge!(m::FAILOVER_LAG, "source" => source).set(lag as f64);
        }
        if self.ready == Some(r.ready) {
            return;
        }
        let findings = r.findings.join("; ");
        if r.ready {
            tracing::info!(stream = %stream.name, "failover ready: {findings}");
        } else {
            tracing::warn!(stream = %stream.name, "not failover ready, a promotion would lose the slot: {findings}");
        }
        self.ready = Some(r.ready);
    }
}
