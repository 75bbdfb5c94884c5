//! The long-running daemon: serves the operator endpoint, then streams every configured stream
//! until SIGTERM/SIGINT.
//!
//! One process, one ClickHouse sink and one streaming loop (`pipeline::replicator`) shared by all
//! streams; per stream a supervisor (`supervisor`) that runs its sessions (`session`) and hands
//! each started stream to the loop. A stream that fails or is hard-stopped is restarted or held
//! on its own; the others keep streaming — also at the first start: a stream whose preflight
//! fails is hard-stopped alone, and the worker exits 1 only when every stream's first preflight
//! failed (a single-stream worker refuses to start, as before). The loop reaches Postgres'
//! control plane through `control::PgControl`.

mod bootstrap;
mod control;
mod failover;
mod joining;
mod joins;
mod marker;
mod session;
mod session_end;
mod share;
mod slot;
mod slot_wait;
mod standing;
mod supervisor;
mod timeline;

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;

use supervisor::{Supervisor, Verdict};

use crate::config::Config;
use crate::health::Health;
use crate::metrics as m;
use crate::pipeline::replicator::Replicator;
use crate::sink::state::StateStore;
use crate::sink::{self, insert::ClickHouseSink};

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
    let streams = config.streams();
    let names: Vec<String> = streams.iter().map(|s| s.name.clone()).collect();
    let health = Arc::new(Health::new(
        Duration::from_millis(config.metrics.clickhouse_unready_after_ms),
        &names,
    ));
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
    if !config.enabled {
        let why =
            "enabled = false (RUNS_REPLICATOR_ENABLED): not streaming until restarted with it on";
        health.disable(why);
        // A configuration warning: shown at every level.
        crate::logging::config_warning(&format!(
            "{why}; serving /healthz, /readyz and /metrics meanwhile"
        ));
        wait_for_signal().await;
        return ExitCode::SUCCESS;
    }
    let ch = match sink::client::build(&config) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!("cannot set up the ClickHouse client: {e}");
            return ExitCode::from(2);
        }
    };
    let stop = Arc::new(watch::channel(false).0);
    {
        let stop = stop.clone();
        tokio::spawn(async move {
            wait_for_signal().await;
            tracing::info!("shutdown requested: flushing, acknowledging and closing the streams");
            let _ = stop.send(true);
        });
    }
    tracing::info!(
        clickhouse = %config.clickhouse.url,
        streams = streams.len(),
        "runs-replicator {} starting",
        env!("CARGO_PKG_VERSION")
    );
    for stream in &streams {
        tracing::info!(
            stream = %stream.name,
            postgres = %stream.source.url,
            slot = %stream.slot,
            publication = %stream.publication,
            tables = ?stream.source.tables,
            "stream configured"
        );
    }

    // The background verify (verify.interval): a task of its own beside the streams it checks.
    crate::verify::continuous::spawn(&config, &ch, &stop, &health);
    let store = Arc::new(StateStore::new(
        ch.clone(),
        Duration::from_millis(config.clickhouse.request_timeout_ms),
    ));
    let sink = Arc::new(ClickHouseSink::new(&config, ch, health.clone()));
    let (attach_tx, mut attach_rx) = mpsc::channel(streams.len());
    let sharing = config
        .leadership
        .share
        .then(|| share::Sharing::start(&config, &streams, &stop));
    let (verdict_tx, mut verdict_rx) = mpsc::unbounded_channel();
    let stream_count = streams.len();
    let mut supervisors = JoinSet::new();
    for stream in streams {
        let share = sharing.as_ref().map(|s| s.stream(&stream));
        let supervisor = Supervisor {
            config: config.clone(),
            stream,
            health: health.clone(),
            attach: attach_tx.clone(),
            sink: sink.clone(),
            store: store.clone(),
            slot_seen: false,
            recreate_requested: false,
            marker: None,
            progress: marker::Progress::default(),
            identity: None,
            versions: Default::default(),
            started_at: marker::unix_now(),
            swept: Default::default(),
            verdicts: verdict_tx.clone(),
            joins: joins::Joins::default(),
            share,
        };
        supervisors.spawn(supervisor.run(stop.subscribe()));
    }
    drop(attach_tx);
    drop(verdict_tx);
    // The rule at start: a stream whose preflight fails is hard-stopped alone; the worker refuses
    // to start (exit 1) only when every stream's preflight failed before any stream's passed.
    let supervise = async {
        let mut refused: Vec<(String, String)> = Vec::new();
        let mut started = false;
        let mut verdicts_open = true;
        loop {
            tokio::select! {
                joined = supervisors.join_next() => if joined.is_none() { break },
                verdict = verdict_rx.recv(), if verdicts_open => match verdict {
                    None => verdicts_open = false,
                    Some(Verdict::Passed) => started = true,
                    Some(Verdict::Refused { .. }) if started => {}
                    Some(Verdict::Refused { stream, summary }) => {
                        if !refused.iter().any(|(s, _)| *s == stream) {
                            refused.push((stream.clone(), summary));
                        }
                        if refused.len() == stream_count {
                            for (stream, summary) in &refused {
                                tracing::error!(%stream, "preflight failed, not starting: {summary}");
                            }
                            let _ = stop.send(true);
                        } else {
                            tracing::error!(
                                %stream,
                                "preflight failed at the first start: this stream is hard-stopped \
                                 until it passes; the others start ({} of {stream_count} refused so far)",
                                refused.len()
                            );
                        }
                    }
                },
            }
        }
        (!started && refused.len() == stream_count).then_some(())
    };
    let mut replicator = Replicator::new(config.clone(), sink);
    let mut shutdown = stop.subscribe();
    let ((), refused) = tokio::join!(replicator.run(&mut attach_rx, &mut shutdown), supervise);
    match refused {
        Some(_) => ExitCode::from(1),
        None => ExitCode::SUCCESS,
    }
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
