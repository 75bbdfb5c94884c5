//! What each path of the operator's endpoint answers: `/metrics` (Prometheus text), `/healthz`
//! (the process is alive) and `/readyz` (200 when streaming and healthy, 503 with the reason
//! otherwise).

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::{Method, Request, Response, StatusCode};
use metrics_exporter_prometheus::PrometheusHandle;

use crate::health::Health;

pub fn respond<B>(
    req: &Request<B>,
    metrics: &PrometheusHandle,
    health: &Health,
) -> Response<Full<Bytes>> {
    let text = |status: StatusCode, body: String, content_type: &'static str| {
        Response::builder()
            .status(status)
            .header("content-type", content_type)
            .body(Full::new(Bytes::from(body)))
            .expect("static response parts")
    };
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return text(
            StatusCode::METHOD_NOT_ALLOWED,
            "GET only\n".into(),
            "text/plain",
        );
    }
    match req.uri().path() {
        "/metrics" => {
            // Readiness is also a gauge; refresh it so a scrape sees the current value.
            health.readiness();
            text(
                StatusCode::OK,
                metrics.render(),
                "text/plain; version=0.0.4",
            )
        }
        "/healthz" => text(StatusCode::OK, "ok\n".into(), "text/plain"),
        "/readyz" => {
            let r = health.readiness();
            let status = if r.ready {
                StatusCode::OK
            } else {
                StatusCode::SERVICE_UNAVAILABLE
            };
            text(status, format!("{}\n", r.detail), "text/plain")
        }
        _ => text(
            StatusCode::NOT_FOUND,
            "try /metrics, /healthz or /readyz\n".into(),
            "text/plain",
        ),
    }
}
