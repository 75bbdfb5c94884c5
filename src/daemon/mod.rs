//! The long-running daemon: serves the operator endpoint, then streams every configured stream
//! until SIGTERM/SIGINT.
//!
//! One process, one ClickHouse sink and one streaming loop (`pipeline::replicator`) shared by all
//! streams; per stream a supervisor (`supervisor`) that runs its sessions (`session`) and hands
//! each started stream to the loop. A stream that fails or is hard-stopped is restarted or held
//! on its own; the others keep streaming. The loop reaches Postgres' control plane through
//! `control::PgControl`.

mod bootstrap;
mod control;
mod marker;
mod session;
mod session_end;
mod share;
mod supervisor;

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;

use supervisor::{Outcome, Supervisor};

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
    crate::verify::continuous::spawn(&config, &ch, &stop);
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
            share,
        };
        supervisors.spawn(supervisor.run(stop.subscribe()));
    }
    drop(attach_tx);
    let supervise = async {
        let mut refused = None;
        while let Some(outcome) = supervisors.join_next().await {
            if let Ok(Outcome::RefusedToStart(summary)) = outcome {
                tracing::error!("preflight failed, not starting: {summary}");
                refused.get_or_insert(summary);
                let _ = stop.send(true);
            }
        }
        refused
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
