//! The long-running daemon: serves the operator endpoint, then runs streaming sessions until
//! SIGTERM/SIGINT.
//!
//! A session: control connection → publication reconciled → preflight → leader lock (standby
//! until acquired) → slot ensured → stream → replicator. A session that fails for a reason time
//! can fix (a server down, ClickHouse failing past its retries, the slot held by a lingering
//! walsender) is restarted with exponential backoff from the slot's acknowledged position, so
//! nothing is lost. A hard stop (something an operator must fix) keeps the process up with
//! `/readyz` failing, re-checks periodically, and resumes once the preflight passes again.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};
use tokio::sync::watch;

mod control;

use control::PgControl;

use crate::config::{Config, scrub};
use crate::health::{Health, Role};
use crate::leader::{Candidate, LeaderLock};
use crate::metrics as m;
use crate::pg::catalog::{self, SlotReading};
use crate::pipeline::errors::{HardStop, PipelineError};
use crate::pipeline::replicator::Replicator;
use crate::preflight::{self, Report};
use crate::sink::{self, insert::ClickHouseSink};
use crate::source::setup::{self, SlotState};
use crate::source::stream::{self, EventStream, StreamError};

/// How a session ended.
#[derive(Debug)]
enum SessionEnd {
    /// Shutdown was requested and everything was flushed.
    Shutdown,
    /// Worth retrying after a pause.
    Retry { cause: &'static str, error: String },
    /// An operator must act; `kind` labels the metric.
    HardStop { kind: &'static str, reason: String },
    /// The preflight failed.
    Preflight(String),
}

struct Daemon {
    config: Arc<Config>,
    health: Arc<Health>,
    /// The slot was streamed from in this process: if it disappears, that is a loss, not a setup.
    slot_seen: bool,
}

pub async fn run(config: Config) -> ExitCode {
    let config = Arc::new(config);
    let handle = match m::install() {
        Ok(h) => h,
        Err(e) => {
            tracing::error!("cannot set up metrics: {e}");
            return ExitCode::from(2);
        }
    };
    m::register_defaults(&config);
    let health = Arc::new(Health::new(Duration::from_millis(
        config.metrics.clickhouse_unready_after_ms,
    )));
    match crate::http::serve(config.metrics.listen, handle, health.clone()).await {
        Ok(addr) => tracing::info!(%addr, "serving /metrics, /healthz and /readyz"),
        Err(e) => {
            tracing::error!(
                "cannot listen on {} (metrics.listen): {e}",
                config.metrics.listen
            );
            return ExitCode::from(2);
        }
    }
    let (stop_tx, mut shutdown) = watch::channel(false);
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!("shutdown requested: flushing, acknowledging and closing the stream");
        let _ = stop_tx.send(true);
    });
    tracing::info!(
        postgres = %config.postgres.url,
        clickhouse = %config.clickhouse.url,
        slot = %config.postgres.slot,
        publication = %config.postgres.publication,
        tables = ?config.postgres.tables,
        "runs-replicator {} starting",
        env!("CARGO_PKG_VERSION")
    );
    let mut daemon = Daemon {
        config,
        health,
        slot_seen: false,
    };
    daemon.supervise(&mut shutdown).await
}

async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(mut term), Ok(mut int)) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        }
        _ => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

/// Sleeps for `d` unless shutdown is requested first; returns false on shutdown.
async fn pause(d: Duration, shutdown: &mut watch::Receiver<bool>) -> bool {
    if *shutdown.borrow() {
        return false;
    }
    tokio::select! {
        _ = tokio::time::sleep(d) => !*shutdown.borrow(),
        _ = shutdown.changed() => false,
    }
}

fn backoff() -> impl Iterator<Item = Duration> {
    ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(500))
        .with_max_delay(Duration::from_secs(30))
        .with_jitter()
        .without_max_times()
        .build()
}

impl Daemon {
    async fn supervise(&mut self, shutdown: &mut watch::Receiver<bool>) -> ExitCode {
        let mut delays = backoff();
        let mut first = true;
        loop {
            let started = std::time::Instant::now();
            let end = self.session(shutdown).await;
            self.health.set_role(Role::Starting);
            match end {
                SessionEnd::Shutdown => return ExitCode::SUCCESS,
                SessionEnd::Preflight(summary) if first => {
                    tracing::error!("preflight failed, not starting: {summary}");
                    return ExitCode::from(1);
                }
                SessionEnd::Preflight(summary) => {
                    self.hard_stop("preflight", format!("preflight failed: {summary}"));
                    if !self.wait_until_fixed("preflight", shutdown).await {
                        return ExitCode::SUCCESS;
                    }
                    delays = backoff();
                }
                SessionEnd::HardStop {
                    kind: "slot_invalidated",
                    reason,
                } if self.config.postgres.recreate_lost_slot => {
                    tracing::error!("{reason}; recreating it (postgres.recreate_lost_slot)");
                }
                SessionEnd::HardStop { kind, reason } => {
                    self.hard_stop(kind, reason);
                    if !self.wait_until_fixed(kind, shutdown).await {
                        return ExitCode::SUCCESS;
                    }
                    delays = backoff();
                }
                SessionEnd::Retry { cause, error } => {
                    let error = scrub(&error, &self.config.secrets());
                    metrics::counter!(m::RECONNECTS, "cause" => cause).increment(1);
                    self.health.set_last_error(&error);
                    // A session that streamed for a while starts the backoff over.
                    if started.elapsed() > Duration::from_secs(60) {
                        delays = backoff();
                    }
                    let delay = delays.next().unwrap_or(Duration::from_secs(30));
                    tracing::warn!(cause, error = %error, retry_in_ms = delay.as_millis() as u64, "session ended; reconnecting");
                    if !pause(delay, shutdown).await {
                        return ExitCode::SUCCESS;
                    }
                }
            }
            first = false;
        }
    }

    fn hard_stop(&self, kind: &'static str, reason: String) {
        let reason = scrub(&reason, &self.config.secrets());
        tracing::error!(kind, "hard stop, not streaming until fixed: {reason}");
        self.health.hard_stop(kind, reason);
    }

    /// Re-checks every few seconds until what stopped streaming is fixed: the preflight passes
    /// and, for a lost slot, an operator recreated it (or dropped an invalidated one, which the
    /// worker then creates anew). Returns false on shutdown.
    async fn wait_until_fixed(&mut self, kind: &str, shutdown: &mut watch::Receiver<bool>) -> bool {
        loop {
            if !pause(Duration::from_secs(3), shutdown).await {
                return false;
            }
            let slot = match self.slot_state().await {
                Ok(s) => s,
                Err(e) => {
                    tracing::debug!(error = %e, "cannot re-check yet");
                    continue;
                }
            };
            let slot_fixed = match kind {
                "slot_missing" => slot.is_some(),
                "slot_invalidated" => slot
                    .as_ref()
                    .is_none_or(|s| s.wal_status.as_deref() != Some("lost")),
                _ => true,
            };
            if !slot_fixed {
                continue;
            }
            match preflight::run(&self.config).await {
                Ok(report) if report.passed() => {
                    if kind == "slot_invalidated" && slot.is_none() {
                        // The operator dropped the invalidated slot: a new one is what they asked for.
                        self.slot_seen = false;
                    }
                    tracing::info!("fixed: preflight passes again; resuming");
                    self.health.clear_hard_stop();
                    return true;
                }
                Ok(report) => tracing::debug!(failures = %report.summary(), "still failing"),
                Err(e) => tracing::debug!(
                    error = %scrub(&e.to_string(), &self.config.secrets()),
                    "cannot re-check yet"
                ),
            }
        }
    }

    async fn slot_state(&self) -> Result<Option<SlotReading>, String> {
        let client = crate::pg::connect(&self.config.postgres.url, self.config.connect_timeout())
            .await
            .map_err(|e| e.to_string())?;
        catalog::read_slot(&client, &self.config.postgres.slot)
            .await
            .map_err(|e| e.to_string())
    }

    async fn session(&mut self, shutdown: &mut watch::Receiver<bool>) -> SessionEnd {
        let config = self.config.clone();
        let retry = |cause: &'static str| move |e: String| SessionEnd::Retry { cause, error: e };

        let candidate = match Candidate::connect(&config).await {
            Ok(c) => c,
            Err(e) => return retry("postgres")(e.to_string()),
        };
        match setup::ensure_publication(candidate.client(), &config).await {
            Ok(changes) => {
                for sql in changes {
                    tracing::info!(%sql, "publication reconciled");
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
            let mut checks = preflight::postgres_checks(candidate.client(), &config).await?;
            checks.extend(preflight::clickhouse_checks(&ch, &config).await?);
            Ok::<_, preflight::PreflightError>(Report {
                postgres: config.postgres.url.to_string(),
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
            tracing::warn!(check = check.check, target = %check.target, observed = %check.observed, fix = ?check.fix, "preflight warning");
        }
        // An invalidated slot is fixed at runtime (drop it; a new one is created), so it is a
        // hard stop rather than a refusal to start; with recreate_lost_slot it is handled below.
        let mut report = report;
        if report.failed().any(|c| c.check == "slot_wal_status") {
            if !config.postgres.recreate_lost_slot {
                return end_of(PipelineError::HardStop(HardStop::SlotInvalidated {
                    slot: config.postgres.slot.clone(),
                }));
            }
            report.checks.retain(|c| c.check != "slot_wal_status");
        }
        if !report.passed() {
            if config.preflight.ignore_failures {
                tracing::warn!(
                    "preflight failed, streaming anyway (preflight.ignore_failures): {}",
                    report.summary()
                );
            } else {
                return SessionEnd::Preflight(report.summary());
            }
        }

        let control = match self.elect(candidate, shutdown).await {
            Ok(Some(lock)) => PgControl::new(lock, &config.postgres.slot),
            Ok(None) => return SessionEnd::Shutdown,
            Err(e) => return retry("postgres")(e),
        };
        if let Err(end) = self.ensure_slot(control.session()).await {
            return end;
        }
        let mut client = match stream::start(&config).await {
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
        self.health.set_role(Role::Leader);
        tracing::info!(slot = %config.postgres.slot, "leader: streaming");
        let sink = Arc::new(ClickHouseSink::new(&config, ch, self.health.clone()));
        let mut replicator = Replicator::new(config.clone(), sink);
        let result = replicator.run(&mut client, &control, shutdown).await;
        self.health.set_role(Role::Starting);
        match result {
            Ok(()) => SessionEnd::Shutdown,
            Err(e) => {
                EventStream::abort(&mut client);
                end_of(e)
            }
        }
    }

    /// Waits as a standby until the leader lock is ours. `Ok(None)` on shutdown.
    async fn elect(
        &self,
        mut candidate: Candidate,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Result<Option<LeaderLock>, String> {
        let mut announced = false;
        loop {
            match candidate.try_acquire().await {
                Ok(Ok(lock)) => {
                    tracing::info!("leader lock acquired");
                    return Ok(Some(lock));
                }
                Ok(Err(c)) => candidate = c,
                Err(e) => return Err(e.to_string()),
            }
            if !announced {
                tracing::info!(
                    "standby: another instance holds the leader lock; waiting to take over"
                );
                announced = true;
            }
            self.health.set_role(Role::Standby);
            if !pause(Duration::from_secs(1), shutdown).await {
                return Ok(None);
            }
            if !candidate.ping().await {
                return Err("the standby's Postgres session was lost".into());
            }
        }
    }

    async fn ensure_slot(&self, session: &tokio_postgres::Client) -> Result<(), SessionEnd> {
        let config = &self.config;
        let slot = config.postgres.slot.clone();
        let may_create =
            config.postgres.create_slot && (!self.slot_seen || config.postgres.recreate_lost_slot);
        let state = setup::ensure_slot(session, config, may_create)
            .await
            .map_err(|e| SessionEnd::Retry {
                cause: "postgres",
                error: e.to_string(),
            })?;
        match state {
            SlotState::Created { lsn } => {
                tracing::warn!(
                    %slot, %lsn,
                    "created the replication slot: changes committed before {lsn} are not replicated: copy them with `runs-replicator backfill`"
                );
                Ok(())
            }
            SlotState::Exists { wal_status } if wal_status.as_deref() == Some("lost") => {
                if config.postgres.recreate_lost_slot {
                    tracing::error!(%slot, "the slot was invalidated; recreating it (postgres.recreate_lost_slot): changes in the gap must be backfilled (`runs-replicator backfill --since <time of the last acknowledged commit>`)");
                    setup::drop_slot(session, config)
                        .await
                        .map_err(|e| SessionEnd::Retry {
                            cause: "postgres",
                            error: e.to_string(),
                        })?;
                    return Box::pin(self.ensure_slot(session)).await;
                }
                Err(end_of(PipelineError::HardStop(HardStop::SlotInvalidated {
                    slot,
                })))
            }
            SlotState::Exists { .. } => Ok(()),
            SlotState::Missing => Err(end_of(PipelineError::HardStop(HardStop::SlotMissing {
                slot,
            }))),
        }
    }
}

fn end_of(e: PipelineError) -> SessionEnd {
    match e {
        PipelineError::HardStop(h) => SessionEnd::HardStop {
            kind: h.kind(),
            reason: h.to_string(),
        },
        PipelineError::Sink(e) => SessionEnd::Retry {
            cause: "clickhouse",
            error: e.to_string(),
        },
        PipelineError::Stream(e) => SessionEnd::Retry {
            cause: "postgres",
            error: e,
        },
        PipelineError::LockLost => SessionEnd::Retry {
            cause: "lock_lost",
            error: e.to_string(),
        },
    }
}
