//! Which server a stream reads from: `IDENTIFY_SYSTEM` on a replication session.
//!
//! The system identifier names a cluster (it survives a restart, a promotion of a physical
//! standby, and a restore from a physical backup; `initdb` and `pg_upgrade` make a new one), the
//! timeline says which history of it is current. Unlike a host name they do not change with the
//! spelling of a URL (a DNS alias, a failover endpoint), so what the worker records about a
//! stream's slot is keyed by them (`daemon::marker`). A REPLICATION role can run it; no
//! privilege on `pg_control_system()` is needed.

use std::time::Duration;

use super::stream::StreamError;
use crate::config::{Config, Stream};

/// What `IDENTIFY_SYSTEM` said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerIdentity {
    /// The cluster's system identifier (decimal text, as the server writes it).
    pub system_identifier: String,
    /// The server's current timeline.
    pub timeline: u32,
    /// Its WAL flush position when asked.
    pub flushed: u64,
}

/// Asks `stream`'s server who it is, within the connect timeout plus `query_timeout`.
pub async fn identify(
    config: &Config,
    stream: &Stream,
    query_timeout: Duration,
) -> Result<ServerIdentity, StreamError> {
    let url = &stream.source.url;
    let bound = config.connect_timeout_of(url) + query_timeout;
    // The primary among the source's hosts: a standby's identity is not the stream's.
    let ask = async {
        let mut primary = super::primary_session::open(config, stream).await?;
        let answer = primary.identify().await;
        primary.session.abort();
        answer
    };
    match tokio::time::timeout(bound, ask).await {
        Ok(Ok(id)) => Ok(ServerIdentity {
            system_identifier: id.system_id,
            timeline: id.timeline,
            flushed: id.xlogpos.as_u64(),
        }),
        Ok(Err(e)) => Err(e),
        Err(_) => Err(StreamError::Connection {
            target: url.to_string(),
            detail: format!(
                "IDENTIFY_SYSTEM not answered within {} ms",
                bound.as_millis()
            ),
        }),
    }
}
