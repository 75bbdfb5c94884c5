//! Reaching the primary: among the servers a URL names (several hosts, or one name that moves at
//! a failover: DNS, a Kubernetes `-rw` Service, a cloud endpoint, a proxy), the one that is not in
//! recovery.
//!
//! A server enters recovery only through a restart, so a connection found on a primary stays on
//! one for its life; after a failover it breaks, and the next connection finds the new primary.
//! A name that still reaches the old server, now a standby, is passed over the same way, and the
//! worker tries again until it reaches a primary.

use std::time::Duration;

use super::{ConnectError, connect_server, describe};
use crate::config::PgUrl;

/// A connection to the primary, and the URL of that one server.
pub struct Primary {
    pub client: tokio_postgres::Client,
    /// `url` narrowed to the server that answered as primary.
    pub url: PgUrl,
}

/// Connects to the first of `url`'s hosts that answers and is not in recovery. With one host,
/// a failure to connect is reported as it is; a standby, or several hosts none of which is a
/// primary, is [`ConnectError::NoPrimary`], saying what each host was.
pub async fn connect(
    url: &PgUrl,
    timeout: Duration,
    options: Option<&str>,
) -> Result<Primary, ConnectError> {
    let mut tried = Vec::new();
    for (host, port) in &url.hosts {
        let one = url.at(host, *port);
        let client = match connect_server(&one, timeout, options).await {
            Ok(client) => client,
            Err(e @ ConnectError::Connect { .. }) if url.hosts.len() == 1 => return Err(e),
            Err(ConnectError::Connect { reason, .. }) => {
                tried.push(format!("{host}:{port}: {reason}"));
                continue;
            }
            Err(e) => return Err(e),
        };
        match in_recovery(&client, timeout).await {
            Ok(false) => return Ok(Primary { client, url: one }),
            Ok(true) => tried.push(format!("{host}:{port} is in recovery (a standby)")),
            Err(reason) => tried.push(format!("{host}:{port}: {reason}")),
        }
    }
    Err(ConnectError::NoPrimary {
        target: url.to_string(),
        tried: tried.join("; "),
    })
}

/// `pg_is_in_recovery()`: the server is a standby (or still replaying after a crash or a
/// promotion request).
pub async fn in_recovery(
    client: &tokio_postgres::Client,
    timeout: Duration,
) -> Result<bool, String> {
    match tokio::time::timeout(timeout, client.query_one("SELECT pg_is_in_recovery()", &[])).await {
        Ok(Ok(row)) => Ok(row.get(0)),
        Ok(Err(e)) => Err(describe(&e)),
        Err(_) => Err(format!("no answer within {} ms", timeout.as_millis())),
    }
}
