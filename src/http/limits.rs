//! How much of the process one client of the metrics endpoint may hold: how long it may take to
//! send a request's headers, how long one connection may live, and how many connections are
//! served at once.
//!
//! The endpoint is usually reachable from a whole cluster network, and every connection it holds
//! is a file descriptor and a task the worker's Postgres and ClickHouse connections share the
//! process with; without these bounds a client that connects and sends nothing (or one byte at a
//! time) keeps its connection forever, and enough of them exhaust the descriptors.

use std::time::Duration;

/// A client must send a request's complete headers within this time, or the connection is closed.
/// hyper starts the clock when it waits for a request head, which includes a keep-alive
/// connection waiting for its next request, so this is also the idle timeout. Real clients
/// (Prometheus, kubelet probes, curl) send their headers in one packet; a scraper with a longer
/// interval than this simply opens a new connection per scrape.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// A connection is asked to close this long after it was accepted, even while it is busy (a
/// client sending requests forever, or one that does not read its responses).
pub const MAX_CONNECTION_AGE: Duration = Duration::from_secs(60);

/// After `MAX_CONNECTION_AGE`, a response in progress may finish for this long (so a scrape that
/// happens to straddle the age limit is not cut off); then the connection is dropped.
pub const CLOSE_GRACE: Duration = Duration::from_secs(10);

/// Connections served at once. A Prometheus server or two, probes and an operator's curl use a
/// handful; 64 leaves room for bursts while bounding descriptors and tasks.
pub const MAX_CONNECTIONS: usize = 64;

/// The bounds one server applies; `Limits::default()` is what the worker uses, tests shorten them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    pub header_read_timeout: Duration,
    pub max_connection_age: Duration,
    pub close_grace: Duration,
    pub max_connections: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            header_read_timeout: HEADER_READ_TIMEOUT,
            max_connection_age: MAX_CONNECTION_AGE,
            close_grace: CLOSE_GRACE,
            max_connections: MAX_CONNECTIONS,
        }
    }
}
