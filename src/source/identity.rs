//! Which server a stream reads from: `IDENTIFY_SYSTEM` (and, past timeline 1, its
//! `TIMELINE_HISTORY`) on a replication session on the primary. The one path that asks: the
//! daemon's check at a session's start and the stream's own start both read [`ServerIdentity`]
//! through [`PrimarySession::identity`](super::primary_session::PrimarySession::identity).
//!
//! The system identifier names a cluster (it survives a restart, a promotion of a physical
//! standby, and a restore from a physical backup; `initdb` and `pg_upgrade` make a new one), the
//! timeline says which history of it is current. Unlike a host name they do not change with the
//! spelling of a URL (a DNS alias, a failover endpoint), so what the worker records about a
//! stream's slot is keyed by them (`daemon::marker`), and a session compares them with what it
//! recorded (`daemon::timeline`). A REPLICATION role can run both commands; no privilege on
//! `pg_control_system()` is needed.

use std::time::Duration;

use super::stream::StreamError;
use super::timeline::{Ancestor, Lineage};
use crate::config::{Config, Stream};

/// What `IDENTIFY_SYSTEM` and `TIMELINE_HISTORY` said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerIdentity {
    /// The cluster's system identifier (decimal text, as the server writes it).
    pub system_identifier: String,
    /// The server's current timeline.
    pub timeline: u32,
    /// Its WAL flush position when asked.
    pub flushed: u64,
    /// The timelines the current one descends from, with where each ended (empty on timeline 1).
    pub ancestors: Vec<Ancestor>,
}

impl ServerIdentity {
    pub fn lineage(&self) -> Lineage<'_> {
        Lineage {
            timeline: self.timeline,
            ancestors: &self.ancestors,
        }
    }

    /// The same cluster on the same timeline: what a stream may start on after its session's
    /// checks were made against `self`.
    pub fn same_history(&self, other: &ServerIdentity) -> bool {
        self.system_identifier == other.system_identifier && self.timeline == other.timeline
    }
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
        let answer = primary.identity().await;
        primary.session.abort();
        answer
    };
    match tokio::time::timeout(bound, ask).await {
        Ok(answer) => answer,
        Err(_) => Err(StreamError::Connection {
            target: url.to_string(),
            detail: format!(
                "IDENTIFY_SYSTEM not answered within {} ms",
                bound.as_millis()
            ),
        }),
    }
}
