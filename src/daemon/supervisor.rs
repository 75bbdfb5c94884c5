//! One stream's sessions, started and restarted for as long as the worker runs.
//!
//! A session: control connection → publication reconciled → preflight → leader lock (standby
//! until acquired) → slot ensured → joined tables copied → stream → attached to the loop, until
//! the loop reports how it ended; meanwhile the slot's marker is refreshed and the tables are
//! watched for one that joins (`joining`). A session that fails for a reason time can fix (a server down, the slot held by a
//! lingering walsender, lost leadership) is restarted at once and then about every half second while
//! the failure lasts — so streaming resumes within a second or two of Postgres answering again —
//! with one log line when it starts failing and one a minute while it goes on. A hard stop (an
//! operator must act) keeps the stream down with `/readyz` failing and re-checks at a pace that
//! slows down to a minute; a stop that no restart can fix (an undecodable or untransformable
//! change, an LSN past `_version`'s 56 bits) resumes only once the slot was moved past it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use backon::{BackoffBuilder, ExponentialBuilder};
use pgwire_replication::ReplicationClient;
use tokio::sync::{mpsc, oneshot, watch};

use super::control::PgControl;
use super::joining::Joining;
use super::joins;
use super::marker;
use super::session_end::{SessionEnd, end_of};
use super::share::{self, StreamShare};
use crate::config::{Config, Stream, scrub};
use crate::health::{Health, Role};
use crate::metrics as m;
use crate::pg::catalog;
use crate::pipeline::attached::Attach;
use crate::pipeline::control::Control;
use crate::pipeline::version_map::VersionMap;
use crate::sink::insert::ClickHouseSink;
use crate::sink::state::StateStore;
use crate::source::identity::ServerIdentity;

/// What a stream's preflight said, for the daemon's rule at start: a stream whose preflight
/// fails is hard-stopped alone; only when every stream's preflight failed before any passed, the
/// worker refuses to start (exit 1).
#[derive(Debug, Clone)]
pub enum Verdict {
    Passed,
    Refused { stream: String, summary: String },
}

pub struct Supervisor {
    pub(super) config: Arc<Config>,
    pub(super) stream: Stream,
    pub(super) health: Arc<Health>,
    pub(super) attach: mpsc::Sender<Attach<ReplicationClient, PgControl>>,
    /// The ClickHouse sink and state table, for the copies a stream owes (`bootstrap`) and its
    /// slot's marker (`marker`).
    pub(super) sink: Arc<ClickHouseSink>,
    pub(super) store: Arc<StateStore>,
    /// The slot was streamed from in this process: if it disappears, that is a loss, not a setup
    /// (the marker says the same across restarts).
    pub(super) slot_seen: bool,
    /// An operator dropped the invalidated slot this stream stopped on: that asks for a new
    /// slot, and the worker copies the gap the lost one leaves (as with `recreate_lost_slot`).
    pub(super) recreate_requested: bool,
    /// The slot's marker as last read or written in this process.
    pub(super) marker: Option<marker::Marker>,
    pub(super) progress: marker::Progress,
    /// Who the server said it is at the start of the current session (the marker's key).
    pub(super) identity: Option<ServerIdentity>,
    /// Where the stream's LSNs sit in `_version` on the server's timeline (`timeline`).
    pub(super) versions: VersionMap,
    /// Unix seconds when this process started the stream, and the timelines whose switch it
    /// swept for rows of the lost history (`timeline`).
    pub(super) started_at: u64,
    pub(super) swept: std::collections::BTreeSet<u32>,
    /// Where each preflight's verdict goes.
    pub(super) verdicts: mpsc::UnboundedSender<Verdict>,
    /// Tables joining the publication (`joins`): what this stream said about them, and its
    /// coverage record as this session read it.
    pub(super) joins: joins::Joins,
    /// The stream's share among the instances (`leadership.share`); `None`: not shared.
    pub(super) share: Option<StreamShare>,
}

/// Sleeps for `d` unless shutdown is requested first; returns false on shutdown.
pub async fn pause(d: Duration, shutdown: &mut watch::Receiver<bool>) -> bool {
    if *shutdown.borrow() {
        return false;
    }
    tokio::select! {
        _ = tokio::time::sleep(d) => !*shutdown.borrow(),
        _ = shutdown.changed() => false,
    }
}

/// Reconnect delays: a tenth of a second, doubling to a quarter, plus up to as much again of
/// jitter: at most half a second between tries, so with a session's setup (well under a
/// second) streaming resumes within 2 s of Postgres answering again, also on a busy machine. A
/// session is cheap to try, and a connection refused costs Postgres nothing; waiting longer only
/// delays the resume. (Capped at one second, jitter doubling it, the resume took 2.0 s; at half
/// a second, 1.2 s alone and 2.5 s beside five other tests' clusters on two cores.)
fn reconnect_backoff() -> impl Iterator<Item = Duration> {
    ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(100))
        .with_max_delay(Duration::from_millis(250))
        .with_jitter()
        .without_max_times()
        .build()
}

/// Hard stops that the next session would hit again: the same change comes first.
fn stays_until_the_slot_moves(kind: &str) -> bool {
    matches!(
        kind,
        "bad_change" | "decode" | "unresolved_toast" | "lsn_overflow"
    )
}

/// A run of failed sessions, for rate-limited logging.
pub struct Failing {
    pub since: Instant,
    pub attempts: u64,
    last_log: Instant,
}

impl Supervisor {
    fn name(&self) -> &str {
        &self.stream.name
    }

    /// Reports a preflight's verdict to the daemon.
    pub(super) fn verdict(&self, verdict: Verdict) {
        let _ = self.verdicts.send(verdict);
    }

    pub async fn run(mut self, mut shutdown: watch::Receiver<bool>) {
        let mut delays = reconnect_backoff();
        let mut failing: Option<Failing> = None;
        loop {
            let started = Instant::now();
            let end = self.session(&mut shutdown, &mut failing).await;
            // A stream handed over stays ready: this instance is its standby now.
            let role = match end {
                SessionEnd::HandedOver => Role::Standby,
                _ => Role::Starting,
            };
            self.health.set_role(&self.stream.name, role);
            self.health.set_activity(&self.stream.name, None);
            match end {
                SessionEnd::Shutdown => return,
                SessionEnd::HandedOver if *shutdown.borrow() => return,
                SessionEnd::HandedOver => {
                    metrics::counter!(m::HANDOVERS, "source" => self.stream.name.clone())
                        .increment(1);
                    delays = reconnect_backoff();
                }
                SessionEnd::Preflight(summary) => {
                    // At the first start as later: this stream stops alone (the daemon exits
                    // only when every stream's preflight failed before any passed).
                    let reason = format!("preflight failed: {summary}");
                    let reason = self.report_hard_stop("preflight", reason);
                    self.verdict(Verdict::Refused {
                        stream: self.stream.name.clone(),
                        summary,
                    });
                    if !self.wait_fixed("preflight", reason, &mut shutdown).await {
                        return;
                    }
                    delays = reconnect_backoff();
                }
                SessionEnd::HardStop {
                    kind: "slot_invalidated" | "slot_missing",
                    reason,
                } if self.config.postgres.recreate_lost_slot => {
                    // The next session recreates it and backfills the gap (`bootstrap`).
                    tracing::error!(stream = %self.name(), "{reason}; recreating it (postgres.recreate_lost_slot)");
                }
                SessionEnd::HardStop { kind, reason } => {
                    if !self.hard_stop(kind, reason, &mut shutdown).await {
                        return;
                    }
                    delays = reconnect_backoff();
                }
                SessionEnd::Retry { cause, error } => {
                    // Say which server failed: a state-table read says only what it read.
                    let error = match cause {
                        "clickhouse" if !error.contains("ClickHouse") => {
                            format!("ClickHouse at {}: {error}", self.config.clickhouse.url)
                        }
                        _ => error,
                    };
                    let error = scrub(&error, &self.config.secrets());
                    metrics::counter!(m::RECONNECTS, "source" => self.stream.name.clone(), "cause" => cause)
                        .increment(1);
                    self.health.set_last_error(&self.stream.name, &error);
                    // A session that streamed for a while starts the backoff over.
                    if started.elapsed() > Duration::from_secs(60) {
                        delays = reconnect_backoff();
                    }
                    let delay = delays.next().unwrap_or(Duration::from_secs(1));
                    let now = Instant::now();
                    let f = failing.get_or_insert(Failing {
                        since: now,
                        attempts: 0,
                        last_log: now - Duration::from_secs(3600),
                    });
                    f.attempts += 1;
                    if now.duration_since(f.last_log) >= Duration::from_secs(60) {
                        f.last_log = now;
                        tracing::warn!(
                            stream = %self.stream.name,
                            cause,
                            error = %error,
                            failing_for_s = now.duration_since(f.since).as_secs(),
                            attempts = f.attempts,
                            "session ended; reconnecting about every half second (logged once a minute while it fails)"
                        );
                    } else {
                        tracing::debug!(stream = %self.stream.name, cause, error = %error, "session ended; reconnecting");
                    }
                    if !pause(delay, &mut shutdown).await {
                        return;
                    }
                }
            }
        }
    }

    /// Reports a hard stop and waits until it is fixed. Returns false on shutdown.
    async fn hard_stop(
        &mut self,
        kind: &'static str,
        reason: String,
        shutdown: &mut watch::Receiver<bool>,
    ) -> bool {
        let reason = self.report_hard_stop(kind, reason);
        self.wait_fixed(kind, reason, shutdown).await
    }

    /// Logs a hard stop and shows it on `/readyz` and the metrics; returns the scrubbed reason.
    fn report_hard_stop(&self, kind: &'static str, reason: String) -> String {
        let reason = scrub(&reason, &self.config.secrets());
        tracing::error!(stream = %self.name(), kind, "hard stop, not streaming until fixed: {reason}");
        self.health
            .hard_stop(&self.stream.name, kind, reason.clone());
        reason
    }

    /// Waits until a reported hard stop is fixed. Returns false on shutdown.
    async fn wait_fixed(
        &mut self,
        kind: &'static str,
        reason: String,
        shutdown: &mut watch::Receiver<bool>,
    ) -> bool {
        let fixed = self.wait_until_fixed(kind, &reason, shutdown).await;
        if fixed {
            self.health.clear_hard_stop(&self.stream.name);
        }
        fixed
    }

    /// Re-checks what stopped streaming, every 3 s at first and at most every minute later (5 s
    /// for a refused server), with one log line a minute: the preflight passes again; for a lost
    /// slot, an operator recreated it (or dropped an invalidated one, which the worker then
    /// creates anew, copying the gap); for a change that would stop the next session again, the
    /// slot was moved past it; for a refused server (`timeline`), the server reached now is
    /// accepted; for a slot past the fork, it was dropped. Returns false on shutdown.
    async fn wait_until_fixed(
        &mut self,
        kind: &str,
        reason: &str,
        shutdown: &mut watch::Receiver<bool>,
    ) -> bool {
        // A refused server is not read from, not even its catalog: only who it is is asked.
        let refused = kind == "timeline";
        let stopped_at = match refused {
            true => None,
            false => self.slot().await.ok().flatten(),
        };
        let mut every = Duration::from_secs(3);
        let mut last_log = Instant::now();
        loop {
            if !pause(every, shutdown).await {
                return false;
            }
            // A server that is refused resumes as soon as the name reaches the right one again:
            // asking who it is costs one short replication session.
            let cap = if refused { 5 } else { 60 };
            every = (every * 2).min(Duration::from_secs(cap));
            if last_log.elapsed() >= Duration::from_secs(60) {
                last_log = Instant::now();
                tracing::error!(stream = %self.name(), kind, "still hard-stopped: {reason}");
            }
            let slot = match if refused { Ok(None) } else { self.slot().await } {
                Ok(s) => s,
                Err(e) => {
                    tracing::debug!(stream = %self.name(), error = %e, "cannot re-check yet");
                    continue;
                }
            };
            let slot_fixed = match kind {
                // The slot's marker, or the tables' coverage record (`joins`).
                "marker" => match &self.identity {
                    Some(id) => {
                        marker::load(&self.store, &self.stream, id).await.is_ok()
                            && joins::read(&self.store, &joins::key(id, &self.stream))
                                .await
                                .is_ok()
                    }
                    None => true,
                },
                "slot_missing" => slot.is_some(),
                "timeline" => self.check_server().await.is_ok(),
                // Dropped by the operator: then it is a lost slot.
                "slot_past_fork" => slot.is_none(),
                "slot_invalidated" => slot.as_ref().is_none_or(|s| !s.is_lost()),
                k if stays_until_the_slot_moves(k) => {
                    let moved = |s: &catalog::SlotReading| s.confirmed_flush_lsn.clone();
                    slot.is_some() && slot.as_ref().map(moved) != stopped_at.as_ref().map(moved)
                }
                _ => true,
            };
            if !slot_fixed {
                continue;
            }
            match crate::preflight::run_stream(&self.config, &self.stream).await {
                Ok(checks)
                    if checks
                        .iter()
                        .all(|c| c.status != crate::preflight::Status::Fail) =>
                {
                    if kind == "slot_invalidated" && slot.is_none() {
                        // The operator dropped the invalidated slot: a new one is what they asked for.
                        self.recreate_requested = true;
                    }
                    tracing::info!(stream = %self.name(), "fixed: preflight passes again; resuming");
                    return true;
                }
                Ok(_) => tracing::debug!(stream = %self.name(), "still failing"),
                Err(e) => tracing::debug!(
                    stream = %self.name(),
                    error = %scrub(&e.to_string(), &self.config.secrets()),
                    "cannot re-check yet"
                ),
            }
        }
    }

    async fn slot(&self) -> Result<Option<catalog::SlotReading>, String> {
        let url = &self.stream.source.url;
        let client = crate::pg::connect(url, self.config.connect_timeout_of(url))
            .await
            .map_err(|e| e.to_string())?;
        super::control::bounded(
            "the replication slot",
            self.config.query_timeout(),
            catalog::read_slot(&client, &self.stream.slot),
        )
        .await
        .map_err(|e| e.to_string())
    }

    /// Attaches a started stream to the loop and waits until the loop says how it ended,
    /// refreshing the slot's marker meanwhile.
    pub(super) async fn stream_until_ended(
        &mut self,
        events: ReplicationClient,
        control: PgControl,
    ) -> SessionEnd {
        let (ended, mut ended_rx) = oneshot::channel();
        let (release, release_rx) = oneshot::channel();
        let control = Arc::new(control);
        let attach = Attach {
            name: self.stream.name.clone(),
            slot: self.stream.slot.clone(),
            source: self.stream.source.clone(),
            events,
            control: control.clone(),
            ended,
            health: Some(self.health.clone()),
            versions: self.versions.clone(),
            release: Some(release_rx),
        };
        if self.attach.send(attach).await.is_err() {
            return SessionEnd::Shutdown;
        }
        let watch = tokio::spawn(super::failover::watch(
            self.config.clone(),
            self.stream.clone(),
            self.health.clone(),
            control.clone(),
        ));
        let mut refresh = tokio::time::interval(marker::REFRESH);
        // The tables were checked at the session's start: next after one period.
        let every = Duration::from_millis(self.config.postgres.slot_poll_interval_ms);
        let mut tables = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        let mut joining: Option<Joining> = None;
        let led_since = Instant::now();
        let mut release = Some(release);
        let mut check = tokio::time::interval(share::HANDOVER_CHECK);
        let end = loop {
            tokio::select! {
                ended = &mut ended_rx => {
                    break match ended {
                        Ok(Ok(())) if release.is_none() => {
                            // Standby before the lock passes (with `control`), so no two
                            // instances ever say they lead the stream.
                            self.health.set_role(&self.stream.name, Role::Standby);
                            share::await_walsender_exit(&control).await;
                            tracing::info!(stream = %self.name(), "handed over: standby now");
                            SessionEnd::HandedOver
                        }
                        Ok(Ok(())) | Err(_) => SessionEnd::Shutdown,
                        Ok(Err(e)) => end_of(e),
                    };
                }
                _ = refresh.tick() => self.refresh_marker(&control).await,
                _ = tables.tick(), if joining.is_none() && release.is_some() => {
                    joining = self.watch_tables(&control).await;
                }
                (table, result) = async { joining.as_mut().expect("guarded").await }, if joining.is_some() => {
                    joining = None;
                    self.joined(table, result);
                }
                // Not while a table joins: the next leader would copy it again from the start.
                _ = check.tick(), if release.is_some() && self.share.is_some() && joining.is_none() => {
                    let to = self.share.as_ref().and_then(|s| s.hand_over(led_since.elapsed()));
                    if let Some(to) = to
                        && let Some(release) = release.take()
                    {
                        tracing::info!(stream = %self.name(), to = %format!("{to:08x}"), "handing the stream over to the instance it belongs to");
                        let _ = release.send(());
                    }
                }
            }
        };
        watch.abort();
        super::failover::clear(&self.stream, &self.health);
        end
    }

    /// Records how far the slot is safe and its acknowledged position (see `marker`): read
    /// again and changed only in those fields. A failure only delays the record.
    async fn refresh_marker(&mut self, control: &PgControl) {
        let Ok(Some(reading)) = control.slot().await else {
            return;
        };
        let proven = self.progress.observe(marker::unix_now(), &reading);
        let acknowledged = reading.confirmed_flush_lsn.clone();
        let refreshed = self
            .update_marker(|m| {
                if let Some(t) = proven {
                    m.safe_since = Some(m.safe_since.map_or(t, |s| s.max(t)));
                }
                if acknowledged.is_some() {
                    m.acknowledged = acknowledged;
                }
            })
            .await;
        if let Err(e) = refreshed {
            tracing::debug!(stream = %self.name(), error = ?e, "could not refresh the slot's marker");
        }
    }
}
