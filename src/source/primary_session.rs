//! A replication session on the primary, opened before it streams or creates a slot.
//!
//! pgwire-replication connects to one host, so the worker tries the URL's hosts in order itself
//! and asks each, on the replication session it will use, `pg_is_in_recovery()`: a standby is
//! left at once. (Since PostgreSQL 16 a standby can decode and create logical slots, so without
//! this a name that still reached the old primary, now a standby, or the wrong host of a list,
//! would be streamed from.) The session is gated: nothing streams until `start`, and what is read
//! here describes the server the stream then opens on. This is where the server's identity
//! (`IDENTIFY_SYSTEM`, `TIMELINE_HISTORY`) is read before a stream starts.

use std::time::Duration;

use pgwire_replication::{PgWireError, ReplicationClient};

use super::identity::ServerIdentity;
use super::stream::{StreamError, replication_config};
use super::timeline;
use crate::config::{Config, PgUrl, Stream};

/// A gated replication session on a server that is not in recovery.
pub struct PrimarySession {
    pub session: ReplicationClient,
    /// The URL narrowed to that server.
    pub url: PgUrl,
    /// `server_version_num`, e.g. 170010.
    pub version_num: i32,
}

impl PrimarySession {
    /// `IDENTIFY_SYSTEM` on this session, and past timeline 1 the current timeline's
    /// `TIMELINE_HISTORY`: the server's system identifier, timeline, WAL position and the
    /// timelines it descends from, as the stream that starts on it will see them.
    pub async fn identity(&mut self) -> Result<ServerIdentity, StreamError> {
        let id = self
            .session
            .identify_system()
            .await
            .map_err(|e| StreamError::plain(&self.url, e))?;
        let ancestors = if id.timeline > 1 {
            let history = self
                .session
                .timeline_history(id.timeline)
                .await
                .map_err(|e| StreamError::plain(&self.url, e))?;
            timeline::parse_history(&history.content).map_err(|e| StreamError::Connection {
                target: self.url.to_string(),
                detail: format!("TIMELINE_HISTORY {}: {e}", id.timeline),
            })?
        } else {
            Vec::new()
        };
        Ok(ServerIdentity {
            system_identifier: id.system_id,
            timeline: id.timeline,
            flushed: id.xlogpos.as_u64(),
            ancestors,
        })
    }

    /// One text cell of the first row `sql` returns (`None` when there is no row or it is NULL).
    pub async fn query_cell(&mut self, sql: &str) -> Result<Option<String>, PgWireError> {
        let rows = self.session.simple_query(sql).await?;
        Ok(rows
            .first()
            .and_then(|r| r.first().cloned().flatten())
            .map(|b| String::from_utf8_lossy(&b).into_owned()))
    }
}

/// Opens a gated replication session on the first of `stream`'s hosts that answers and is not in
/// recovery. Each host is given the connection timeout.
pub async fn open(config: &Config, stream: &Stream) -> Result<PrimarySession, StreamError> {
    let url = &stream.source.url;
    let timeout = config.connect_timeout_of(url) + Duration::from_secs(1);
    let mut tried = Vec::new();
    let mut last = None;
    for (host, port) in &url.hosts {
        let one = url.at(host, *port);
        let attempt = tokio::time::timeout(timeout, async {
            let mut session =
                ReplicationClient::connect_gated(replication_config(config, stream, &one))
                    .await
                    .map_err(|e| StreamError::plain(&one, e))?;
            let rows = session
                .simple_query(
                    "SELECT pg_is_in_recovery()::text, current_setting('server_version_num')",
                )
                .await
                .map_err(|e| StreamError::plain(&one, e))?;
            let cell = |i: usize| {
                rows.first()
                    .and_then(|r| r.get(i).cloned().flatten())
                    .map(|b| String::from_utf8_lossy(&b).into_owned())
            };
            let in_recovery = cell(0).as_deref() != Some("false");
            let version_num = cell(1).and_then(|v| v.parse().ok()).unwrap_or(0);
            Ok::<_, StreamError>((session, in_recovery, version_num))
        })
        .await;
        match attempt {
            Ok(Ok((session, false, version_num))) => {
                return Ok(PrimarySession {
                    session,
                    url: one,
                    version_num,
                });
            }
            Ok(Ok((mut session, true, _))) => {
                session.abort();
                tried.push(format!("{host}:{port} is in recovery (a standby)"));
            }
            Ok(Err(e)) => {
                tried.push(format!("{host}:{port}: {}", e.detail()));
                last = Some(e);
            }
            Err(_) => tried.push(format!(
                "{host}:{port}: no answer within {} ms",
                timeout.as_millis()
            )),
        }
    }
    match (url.hosts.len(), last) {
        // One host that failed: its own error, as before hosts were lists.
        (1, Some(e)) if tried.len() == 1 => Err(e),
        _ => Err(StreamError::Connection {
            target: url.to_string(),
            detail: format!(
                "no primary ({}): the worker streams from a primary only; trying again",
                tried.join("; ")
            ),
        }),
    }
}
