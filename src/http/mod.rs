//! The operator's HTTP endpoint on `metrics.listen`: `/metrics`, `/healthz` and `/readyz`
//! (`routes` says what each answers). This module owns the listener: binding it, the accept loop,
//! and serving each connection within the bounds in `limits`; `accept_errors` decides what a
//! failed `accept()` costs.

mod accept_errors;
mod limits;
mod routes;
#[cfg(test)]
mod tests;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use metrics_exporter_prometheus::PrometheusHandle;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

use crate::health::Health;
use accept_errors::AcceptErrors;
pub use limits::Limits;

/// Binds the listener (so a taken port is reported at start) and serves it on a background task
/// with the default limits.
pub async fn serve(
    addr: SocketAddr,
    metrics: PrometheusHandle,
    health: Arc<Health>,
) -> std::io::Result<SocketAddr> {
    serve_with(addr, metrics, health, Limits::default()).await
}

/// `serve` with explicit limits.
pub async fn serve_with(
    addr: SocketAddr,
    metrics: PrometheusHandle,
    health: Arc<Health>,
    limits: Limits,
) -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    let upkeep = metrics.clone();
    tokio::spawn(async move {
        // Histograms and summaries are kept bounded by periodic upkeep when the handle is used
        // without the exporter's own listener.
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(5));
        loop {
            tick.tick().await;
            upkeep.run_upkeep();
        }
    });
    tokio::spawn(accept_loop(listener, metrics, health, limits));
    Ok(local)
}

async fn accept_loop(
    listener: TcpListener,
    metrics: PrometheusHandle,
    health: Arc<Health>,
    limits: Limits,
) {
    // A slot is taken before accept(), so at the cap the loop stops accepting and new
    // connections wait in the kernel's backlog until a served one ends, rather than being
    // accepted and closed: a probe or scrape that arrives during a burst is answered late
    // instead of failing, the wait is bounded by the served connections' own limits, and a
    // waiting connection costs the process no descriptor.
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let mut errors = AcceptErrors::new();
    loop {
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return; // the semaphore is never closed
        };
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                let verdict = errors.failed(e.kind(), Instant::now());
                if let Some(suppressed) = verdict.log {
                    let more = match suppressed {
                        0 => String::new(),
                        n => format!(" ({n} more times since the last such line)"),
                    };
                    tracing::warn!(
                        "metrics endpoint: accept() failed{more}, retrying every {} ms: {e}",
                        verdict.pause.as_millis()
                    );
                }
                drop(slot);
                tokio::time::sleep(verdict.pause).await;
                continue;
            }
        };
        let metrics = metrics.clone();
        let health = health.clone();
        tokio::spawn(async move {
            serve_connection(stream, metrics, health, limits).await;
            drop(slot);
        });
    }
}

/// Serves one connection until the client closes it, a header read times out, or it reaches its
/// age limit (then the response in progress gets `close_grace` to finish).
async fn serve_connection(
    stream: TcpStream,
    metrics: PrometheusHandle,
    health: Arc<Health>,
    limits: Limits,
) {
    let service = service_fn(move |req| {
        let response = routes::respond(&req, &metrics, &health);
        async move { Ok::<_, Infallible>(response) }
    });
    let mut builder = http1::Builder::new();
    // hyper enforces the header read timeout only when it has a timer.
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    let conn = builder.serve_connection(TokioIo::new(stream), service);
    tokio::pin!(conn);
    tokio::select! {
        _ = conn.as_mut() => return,
        _ = tokio::time::sleep(limits.max_connection_age) => {}
    }
    // Finish the request in progress and close, unless the client keeps even that from ending
    // (it does not read the response): then the connection is dropped after the grace.
    conn.as_mut().graceful_shutdown();
    let _ = tokio::time::timeout(limits.close_grace, conn).await;
}
