//! The replication connection: START_REPLICATION on the slot with pgoutput, through
//! pgwire-replication (tokio-postgres cannot open replication connections).
//!
//! The walsender's text rendering is pinned (DateStyle ISO, TimeZone UTC, full float precision)
//! so the transform reads the same text whatever the server's defaults are.

use std::future::Future;
use std::time::Duration;

use pgwire_replication::{Lsn, ReplicationClient, ReplicationConfig, ReplicationEvent, TlsConfig};

use super::identity::ServerIdentity;
use super::{failover_slot, primary_session};
use crate::budget::{Budget, LARGE_EVENT};
use crate::config::{Config, PgUrl, SslMode, Stream};
use crate::pg::catalog::{self, SlotReading};
use crate::pg::{APPLICATION_NAME, DEAD_PEER_OPTIONS, quote_ident};

/// Session settings for the walsender; values in tuples are rendered with them.
pub const PINNED_OPTIONS: &str =
    "-c datestyle=ISO,YMD -c timezone=UTC -c intervalstyle=iso_8601 -c extra_float_digits=3";

/// The publication as START_REPLICATION's `publication_names` must name it. pgoutput reads that
/// option as a list of identifiers (`SplitIdentifierString`): an unquoted name is lower-cased and
/// split at commas, so a publication named `Runs` or `a,b` would not be found and the stream
/// would reconnect forever. Double-quoted, every name is kept whole. pgwire-replication puts the
/// value in a string literal and doubles its single quotes, which the walsender's parser undoes.
pub fn publication_names(publication: &str) -> String {
    quote_ident(publication)
}

/// How many events pgwire-replication may hold between its reader and the loop. Its channel is
/// bounded by a count, and while the loop does not read (backpressure) it fills with whatever
/// comes: 4096 events of a megabyte each would be 4 GiB. Sized so that the full channels of all
/// streams, of large events, are a quarter of `batch.max_bytes` (`budget`: 32 events for one
/// stream at the default 128 MiB, 8 each for four), which costs nothing measurable on small
/// events (BENCHMARKS.md: the drain with 32 against 4096). At least 2: the reader then still
/// reads ahead of the loop.
pub fn event_buffer(config: &Config) -> usize {
    (Budget::of(config).channel as u64 / LARGE_EVENT).clamp(2, 4096) as usize
}

/// What the streaming loop needs of a replication stream: events in, acknowledgements out.
/// Implemented by pgwire-replication's client, and by `testing::FrameFeed` for the loop's
/// in-process tests.
pub trait EventStream {
    /// The next event; `Ok(None)` when the server ended the stream. Cancel-safe: dropping the
    /// future loses no event.
    fn recv(&mut self) -> impl Future<Output = Result<Option<ReplicationEvent>, String>>;

    /// The reader is still receiving (false once the connection ended).
    fn is_running(&self) -> bool;

    /// Everything up to `lsn` is durable downstream: the server may forget it. Monotonic: a
    /// lower value than before is ignored.
    fn acknowledge(&self, lsn: u64);

    /// The position last reported to the server.
    fn reported(&self) -> u64;

    /// Closes the stream after the server was told the last acknowledgement.
    fn close(&mut self) -> impl Future<Output = ()>;

    /// Drops the connection at once (after an error).
    fn abort(&mut self);
}

impl EventStream for ReplicationClient {
    async fn recv(&mut self) -> Result<Option<ReplicationEvent>, String> {
        ReplicationClient::recv(self)
            .await
            .map_err(|e| e.to_string())
    }

    fn is_running(&self) -> bool {
        ReplicationClient::is_running(self)
    }

    fn acknowledge(&self, lsn: u64) {
        self.update_applied_lsn(Lsn::from_u64(lsn));
    }

    fn reported(&self) -> u64 {
        self.metrics().last_applied_lsn().as_u64()
    }

    async fn close(&mut self) {
        let _ = self.shutdown().await;
    }

    fn abort(&mut self) {
        ReplicationClient::abort(self);
    }
}

/// Why the stream could not start or stopped.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StreamError {
    /// Another session streams from the slot: a second instance, or our own previous walsender
    /// that the server has not noticed is gone yet. Worth retrying.
    #[error("replication slot {slot} is in use by another session: {detail}")]
    SlotActive { slot: String, detail: String },
    #[error("replication slot {slot} does not exist")]
    SlotMissing { slot: String },
    /// The catalog says the slot can never stream again (`SlotReading::is_lost`).
    #[error("replication slot {slot} was invalidated and can no longer stream: {detail}")]
    SlotInvalidated { slot: String, detail: String },
    #[error("publication {publication} does not exist")]
    PublicationMissing { publication: String },
    #[error("replication connection to {target}: {detail}")]
    Connection { target: String, detail: String },
}

/// The SQLSTATE of a server error as pgwire-replication reports it (`… (SQLSTATE 55006)`, the
/// code its error carries, in the one format the crate writes).
pub(crate) fn sqlstate(e: &pgwire_replication::PgWireError) -> Option<String> {
    let pgwire_replication::PgWireError::Server(text) = e else {
        return None;
    };
    let code = text
        .trim_end()
        .strip_suffix(')')?
        .rsplit_once("(SQLSTATE ")?
        .1;
    (code.len() == 5).then(|| code.to_string())
}

impl StreamError {
    /// A failure of a replication session to `url`, described, not yet classified.
    pub(crate) fn plain(url: &PgUrl, e: pgwire_replication::PgWireError) -> StreamError {
        StreamError::Connection {
            target: url.to_string(),
            detail: e
                .to_string()
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" "),
        }
    }

    /// What went wrong, without the target.
    pub fn detail(&self) -> String {
        match self {
            StreamError::SlotActive { detail, .. }
            | StreamError::SlotInvalidated { detail, .. }
            | StreamError::Connection { detail, .. } => detail.clone(),
            other => other.to_string(),
        }
    }

    /// What a replication command's failure means for `stream`, by SQLSTATE and the catalog,
    /// never by the message's text (PostgreSQL 18 reworded the invalidated slot's): a slot in use
    /// (55006) is retried; any other server error is explained by reading the slot and the
    /// publication on the primary (missing, invalidated: `wal_status`, `invalidation_reason`,
    /// `conflicting`); what the catalog does not explain stays a connection error, retried.
    pub(crate) async fn classify(
        config: &Config,
        stream: &Stream,
        e: pgwire_replication::PgWireError,
    ) -> StreamError {
        let code = sqlstate(&e);
        let plain = StreamError::plain(&stream.source.url, e);
        let slot = stream.slot.clone();
        match code.as_deref() {
            Some("55006") => StreamError::SlotActive {
                slot,
                detail: plain.detail(),
            },
            Some(_) => match read_slot_and_publication(config, stream).await {
                Ok((None, _)) => StreamError::SlotMissing { slot },
                Ok((Some(s), _)) if s.is_lost() => StreamError::SlotInvalidated {
                    slot,
                    detail: s.health(),
                },
                Ok((_, false)) => StreamError::PublicationMissing {
                    publication: stream.publication.clone(),
                },
                _ => plain,
            },
            None => plain,
        }
    }
}

/// The stream's slot and whether its publication exists, read on the primary.
async fn read_slot_and_publication(
    config: &Config,
    stream: &Stream,
) -> Result<(Option<SlotReading>, bool), String> {
    let url = &stream.source.url;
    let client = crate::pg::connect(url, config.connect_timeout_of(url))
        .await
        .map_err(|e| e.to_string())?;
    let slot = catalog::read_slot(&client, &stream.slot)
        .await
        .map_err(|e| e.to_string())?;
    let publication = catalog::read_publication(&client, &stream.publication)
        .await
        .map_err(|e| e.to_string())?;
    Ok((slot, publication.is_some()))
}

/// The replication connection settings of `stream` to the server `url` (one of its hosts):
/// slot and publication, TLS, status interval, and the pinned text rendering.
pub(crate) fn replication_config(
    config: &Config,
    stream: &Stream,
    url: &PgUrl,
) -> ReplicationConfig {
    let tls = match url.tls_mode() {
        SslMode::Disable => TlsConfig::disabled(),
        SslMode::Prefer => TlsConfig {
            mode: pgwire_replication::SslMode::Prefer,
            ..TlsConfig::disabled()
        },
        SslMode::Require => TlsConfig::require(),
        SslMode::VerifyCa => TlsConfig::verify_ca(url.sslrootcert.clone()),
        SslMode::VerifyFull => {
            TlsConfig::verify_full(url.sslrootcert.clone()).with_sni_hostname(url.host.clone())
        }
    };
    ReplicationConfig::new(
        url.host.clone(),
        url.user.clone(),
        url.password.expose().to_string(),
        url.dbname.clone(),
        stream.slot.clone(),
        publication_names(&stream.publication),
    )
    .with_port(url.port)
    .with_tls(tls)
    .with_status_interval(config.status_interval())
    .with_wakeup_interval(config.status_interval().max(Duration::from_secs(1)))
    // The first stage of backpressure, and memory the byte bound does not see: see `event_buffer`.
    .with_buffer_size(event_buffer(config))
    // A walsender of a vanished host ends as soon as its leader's lock session does
    // (`pg::DEAD_PEER_OPTIONS`), so the next leader's START_REPLICATION is not refused meanwhile.
    .with_options(format!("{PINNED_OPTIONS} {DEAD_PEER_OPTIONS}"))
    .with_application_name(APPLICATION_NAME)
}

/// Opens `stream`'s replication connection on the primary among its hosts and waits until the
/// server accepted START_REPLICATION. The stream resumes at the slot's confirmed position (never
/// at a position of the worker's: on a new timeline that could be past its fork, and the server
/// would skip the new timeline's commits below it). Before the start, on the same session: the
/// server is not in recovery (`primary_session`), it is the server and timeline the session's
/// checks were made against (`checked`: `IDENTIFY_SYSTEM` again, so a name that moved in
/// between is caught), and the slot is made a failover slot when it should be one.
pub async fn start(
    config: &Config,
    stream: &Stream,
    checked: &ServerIdentity,
) -> Result<ReplicationClient, StreamError> {
    let mut primary = primary_session::open(config, stream).await?;
    let identity = primary.identity().await?;
    tracing::debug!(
        stream = %stream.name,
        server = %primary.url,
        system_id = %identity.system_identifier,
        timeline = identity.timeline,
        "replication session on the primary"
    );
    if !identity.same_history(checked) {
        primary.session.abort();
        return Err(StreamError::Connection {
            target: primary.url.to_string(),
            detail: format!(
                "the server changed while the session started (system identifier {}, timeline {}; \
                 the session's checks were made on system identifier {}, timeline {}): starting over",
                identity.system_identifier,
                identity.timeline,
                checked.system_identifier,
                checked.timeline
            ),
        });
    }
    match failover_slot::ensure(&mut primary, stream).await {
        Ok(true) => tracing::info!(
            stream = %stream.name,
            slot = %stream.slot,
            "the slot is now a failover slot (ALTER_REPLICATION_SLOT … (FAILOVER true)): standbys with sync_replication_slots keep a copy"
        ),
        Ok(false) => {}
        Err(e) if sqlstate(&e).as_deref() == Some("55006") => {
            return Err(StreamError::SlotActive {
                slot: stream.slot.clone(),
                detail: StreamError::plain(&primary.url, e).detail(),
            });
        }
        Err(e) => return Err(StreamError::plain(&primary.url, e)),
    }
    let timeout = config.connect_timeout_of(&primary.url);
    let mut client = primary.session;
    let started = async {
        client.start().await?;
        client.wait_started().await
    };
    match tokio::time::timeout(timeout + Duration::from_secs(1), started).await {
        Ok(Ok(())) => Ok(client),
        Ok(Err(e)) => Err(StreamError::classify(config, stream, e).await),
        Err(_) => Err(StreamError::Connection {
            target: primary.url.to_string(),
            detail: format!(
                "START_REPLICATION not accepted within {} ms",
                timeout.as_millis()
            ),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::{publication_names, sqlstate};
    use pgwire_replication::PgWireError;

    #[test]
    fn the_sqlstate_is_read_from_a_server_error_only() {
        let server = |text: &str| PgWireError::Server(text.into());
        assert_eq!(
            sqlstate(&server(
                "replication slot \"s\" is active for PID 7 (SQLSTATE 55006)"
            )),
            Some("55006".into())
        );
        // Whatever the words (PostgreSQL 18 reworded the invalidated slot's), the code decides.
        assert_eq!(
            sqlstate(&server(
                "can no longer access replication slot \"s\" (SQLSTATE 55000)"
            )),
            Some("55000".into())
        );
        assert_eq!(sqlstate(&server("no code here")), None);
        assert_eq!(
            sqlstate(&PgWireError::Protocol("x (SQLSTATE 55006)".into())),
            None
        );
    }

    /// Postgres's `SplitIdentifierString(rawstring, ',', ...)` (varlena.c), as pgoutput applies
    /// it to `publication_names`: whitespace around names is skipped, a double-quoted name is
    /// kept as written (`""` is one `"`), an unquoted one is lower-cased.
    fn split_identifier_string(raw: &str) -> Option<Vec<String>> {
        let mut names = Vec::new();
        let mut chars = raw.chars().peekable();
        loop {
            while chars.next_if(|c| c.is_whitespace()).is_some() {}
            let mut name = String::new();
            if chars.next_if_eq(&'"').is_some() {
                loop {
                    match chars.next()? {
                        '"' if chars.next_if_eq(&'"').is_some() => name.push('"'),
                        '"' => break,
                        c => name.push(c),
                    }
                }
            } else {
                while let Some(c) = chars.next_if(|c| *c != ',' && !c.is_whitespace()) {
                    name.extend(c.to_lowercase());
                }
                if name.is_empty() {
                    return None;
                }
            }
            names.push(name);
            while chars.next_if(|c| c.is_whitespace()).is_some() {}
            match chars.next() {
                None => return Some(names),
                Some(',') => {}
                Some(_) => return None,
            }
        }
    }

    #[test]
    fn every_publication_name_reaches_pgoutput_whole() {
        for name in [
            "task_runs_to_clickhouse_v1_publication",
            "RunsPub",
            "runs,pub",
            " Runs Pub ",
            "say \"hi\"",
            "it's",
            "\"",
            "Ünïcödé",
        ] {
            assert_eq!(
                split_identifier_string(&publication_names(name)),
                Some(vec![name.to_string()]),
                "{name:?} as {:?}",
                publication_names(name)
            );
        }
        // What the unquoted name became: another publication, or two.
        assert_eq!(
            split_identifier_string("RunsPub"),
            Some(vec!["runspub".to_string()])
        );
        assert_eq!(split_identifier_string("runs,pub").unwrap().len(), 2);
    }
}
