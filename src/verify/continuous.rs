//! The daemon's background verify (`verify.interval`): every interval, the runs created in the
//! last `verify.window` are verified as `runs-replicator verify --since <now - window>` would,
//! with `--repair` when `verify.repair`, and the outcome is published as metrics
//! (`runs_replicator_drift_rows{kind}` for settled drift only,
//! `runs_replicator_verify_unsettled_runs{reason}` for the runs it could not settle,
//! `runs_replicator_verify_last_success_timestamp_seconds`, …) and logged.
//!
//! Bounded: a verify still running after `verify.timeout` (a snapshot waiting for a forgotten
//! transaction, a read that never answers) is abandoned, logged with what it was waiting for,
//! and counted (`runs_replicator_verify_timeouts_total`); the next interval's verify runs as
//! planned. While one runs, `/readyz` says what it is doing and
//! `runs_replicator_verify_running_seconds` for how long.
//!
//! At low priority: one connection per source, a sleep of `verify.pause_ms` between COPY chunks of
//! `verify.chunk_rows` rows, a yield every few hundred rows (the stream shares the daemon's one
//! thread), and one verify at a time. A verify that fails is logged and retried at the next
//! interval; it never touches the streams. Shutdown abandons a verify in progress: it writes
//! nothing but its repair, and a repair's rows are harmless to write again.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::watch;

use super::compare::Kind;
use super::report::Outcome;
use super::settle::Reason;
use super::{Bound, Report, Request};
use crate::config::{Config, duration_text};
use crate::health::Health;
use crate::metrics as m;
use crate::sink::insert::ClickHouseSink;
use crate::sink::verify_reads::VerifyReads;

/// The first background verify starts this long after the daemon (or `verify.interval`, if
/// shorter): soon enough that the metrics say something, late enough for the streams to start.
const FIRST_AFTER: Duration = Duration::from_secs(60);

/// Drifted runs named in the log line of a verify that found drift.
const LOGGED_RUNS: usize = 10;

/// Starts the background verify when `verify.interval` is set; `health` is the daemon's, where
/// `/readyz` reads what a verify in progress is doing.
pub fn spawn(
    config: &Arc<Config>,
    client: &clickhouse::Client,
    stop: &watch::Sender<bool>,
    health: &Arc<Health>,
) {
    if config.verify.interval.is_zero() {
        return;
    }
    tokio::spawn(run(
        config.clone(),
        client.clone(),
        stop.subscribe(),
        health.clone(),
    ));
}

async fn run(
    config: Arc<Config>,
    client: clickhouse::Client,
    mut stop: watch::Receiver<bool>,
    progress: Arc<Health>,
) {
    let interval = config.verify.interval;
    let timeout = config.verify.timeout;
    tracing::info!(
        interval = %duration_text(interval),
        window = %duration_text(config.verify.window),
        repair = config.verify.repair,
        timeout = %duration_text(timeout),
        "background verify on"
    );
    // Its own health: a repair's inserts must not move the streams' /readyz.
    let health = Arc::new(Health::new(Duration::from_secs(3600), &[]));
    let sink = Arc::new(ClickHouseSink::new(&config, client.clone(), health));
    let mut wait = interval.min(FIRST_AFTER);
    loop {
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = stop.changed() => return,
        }
        wait = interval;
        let request = Request {
            source: None,
            since: Some(Bound::Ago(config.verify.window)),
            until: None,
            repair: config.verify.repair,
            parallel: 1,
            pause: Duration::from_millis(config.verify.pause_ms),
            max_report: LOGGED_RUNS,
            progress: Some(progress.clone()),
        };
        let reads = Arc::new(VerifyReads::new(&config, client.clone()));
        progress.verify_doing("starting: ClickHouse's runs table, the window from Postgres".into());
        // Dropping the verify on timeout closes its connections, which ends its snapshots.
        let outcome = tokio::select! {
            r = tokio::time::timeout(timeout, super::run(config.clone(), &request, reads, sink.clone())) => r,
            _ = stop.changed() => {
                progress.verify_ended();
                return;
            }
        };
        let doing = progress.verify_in_progress();
        progress.verify_ended();
        match outcome {
            Ok(Ok(report)) => record(&report),
            Ok(Err(e)) => tracing::warn!(
                error = %crate::config::scrub(&e.to_string(), &config.secrets()),
                "background verify could not check; next attempt in {}",
                duration_text(interval)
            ),
            Err(_) => {
                metrics::counter!(m::VERIFY_TIMEOUTS).increment(1);
                let what = doing.map_or_else(String::new, |(_, what)| what);
                tracing::warn!(
                    timeout = %duration_text(timeout),
                    waiting_on = %crate::config::scrub(&what, &config.secrets()),
                    "background verify abandoned after {} (verify.timeout): it reports nothing, \
                     the next one starts in {}",
                    duration_text(timeout),
                    duration_text(interval)
                );
            }
        }
    }
}

/// Publishes a verify's outcome as metrics and one log line.
pub fn record(report: &Report) {
    for kind in Kind::ALL {
        metrics::gauge!(m::DRIFT_ROWS, "kind" => kind.label()).set(report.drift.get(kind) as f64);
    }
    for reason in Reason::ALL {
        metrics::gauge!(m::VERIFY_UNSETTLED, "reason" => reason.label())
            .set(report.unsettled.get(reason) as f64);
    }
    metrics::gauge!(m::VERIFY_RUNS).set(report.runs_compared as f64);
    metrics::gauge!(m::VERIFY_DURATION).set(report.seconds);
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64());
    metrics::gauge!(m::VERIFY_LAST_SUCCESS).set(now);
    if let Some(r) = &report.repair {
        metrics::counter!(m::VERIFY_REPAIRS, "action" => "rewritten").increment(r.rewritten);
        metrics::counter!(m::VERIFY_REPAIRS, "action" => "tombstoned").increment(r.tombstoned);
    }
    let d = &report.drift;
    let u = &report.unsettled;
    match report.outcome {
        Outcome::InSync => {
            tracing::info!(
                runs = report.runs_compared,
                seconds = report.seconds,
                changed_meanwhile = report.changed_meanwhile,
                "background verify: ClickHouse equals Postgres ({})",
                report.window
            );
            return;
        }
        Outcome::Unsettled => {
            let runs: Vec<String> = report
                .unsettled_runs
                .iter()
                .map(|r| format!("{} ({})", r.run_id, r.reason.label()))
                .collect();
            tracing::warn!(
                runs = report.runs_compared,
                unsettled = u.runs,
                stream_behind = u.stream_behind,
                changing = u.changing,
                "background verify: no drift proven, but {} run(s) could not be settled ({}): \
                 not drift, not repaired: {}",
                u.runs,
                report.window,
                runs.join(", ")
            );
            return;
        }
        Outcome::Drift => {}
    }
    let runs: Vec<String> = report
        .drifted
        .iter()
        .map(|f| {
            let kinds: Vec<&str> = f.kinds.iter().map(|k| k.label()).collect();
            format!("{} ({})", f.run_id, kinds.join(", "))
        })
        .collect();
    tracing::warn!(
        drifted = d.runs,
        missing = d.missing,
        extra = d.extra,
        stale = d.stale,
        missing_payload = d.missing_payload,
        repaired = report
            .repair
            .as_ref()
            .map_or(0, |r| r.rewritten + r.tombstoned),
        unsettled = u.runs,
        "background verify: ClickHouse differs from Postgres ({}): {}",
        report.window,
        runs.join(", ")
    );
}
