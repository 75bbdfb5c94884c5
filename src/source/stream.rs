//! The replication connection: START_REPLICATION on the slot with pgoutput, through
//! pgwire-replication (tokio-postgres cannot open replication connections).
//!
//! The walsender's text rendering is pinned (DateStyle ISO, TimeZone UTC, full float precision)
//! so the transform reads the same text whatever the server's defaults are.

use std::future::Future;
use std::time::Duration;

use pgwire_replication::{Lsn, ReplicationClient, ReplicationConfig, ReplicationEvent, TlsConfig};

use crate::config::{Config, SslMode, Stream};
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

/// An event as large as the channel is sized for: an UPDATE under REPLICA IDENTITY FULL of a run
/// whose output is at trigger.dev's offload threshold (512 KB; larger packets go to object
/// storage) carries it twice, old and new row.
const LARGE_EVENT: u64 = 1 << 20;

/// How many events pgwire-replication may hold between its reader and the loop. Its channel is
/// bounded by a count, and while the loop does not read (backpressure) it fills with whatever
/// comes: 4096 events of a megabyte each would be 4 GiB. Sized so that a full channel of large
/// events is a quarter of `batch.max_bytes` (32 at the default 128 MiB), which costs nothing
/// measurable on small events (BENCHMARKS.md: the drain with 32 against 4096).
pub fn event_buffer(config: &Config) -> usize {
    (config.batch.max_bytes / 4 / LARGE_EVENT).clamp(16, 4096) as usize
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
    /// `wal_status = lost`: the server removed WAL the slot still needed.
    #[error("replication slot {slot} was invalidated and can no longer stream: {detail}")]
    SlotInvalidated { slot: String, detail: String },
    #[error("publication {publication} does not exist")]
    PublicationMissing { publication: String },
    #[error("replication connection to {target}: {detail}")]
    Connection { target: String, detail: String },
}

impl StreamError {
    pub(crate) fn classify(stream: &Stream, e: pgwire_replication::PgWireError) -> StreamError {
        let slot = stream.slot.clone();
        let detail = e
            .to_string()
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        let sqlstate = detail
            .rsplit("SQLSTATE ")
            .next()
            .map(|s| s.trim_end_matches(')').to_string())
            .filter(|s| s.len() == 5);
        let lower = detail.to_ascii_lowercase();
        match sqlstate.as_deref() {
            Some("55006") => StreamError::SlotActive { slot, detail },
            Some("42704") if lower.contains("publication") => StreamError::PublicationMissing {
                publication: stream.publication.clone(),
            },
            Some("42704") => StreamError::SlotMissing { slot },
            Some("55000") if lower.contains("invalidated") || lower.contains("no longer") => {
                StreamError::SlotInvalidated { slot, detail }
            }
            _ => StreamError::Connection {
                target: stream.source.url.to_string(),
                detail,
            },
        }
    }
}

/// The replication connection settings of `stream`: its server, slot and publication, TLS,
/// status interval, and the pinned text rendering.
pub(crate) fn replication_config(config: &Config, stream: &Stream) -> ReplicationConfig {
    let url = &stream.source.url;
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

/// Opens `stream`'s replication connection and waits until the server accepted
/// START_REPLICATION. The stream resumes at the slot's confirmed position.
pub async fn start(config: &Config, stream: &Stream) -> Result<ReplicationClient, StreamError> {
    let url = &stream.source.url;
    let cfg = replication_config(config, stream);
    let timeout = config.connect_timeout_of(url);
    let connect = async {
        let mut client = ReplicationClient::connect(cfg).await?;
        client.wait_started().await?;
        Ok::<_, pgwire_replication::PgWireError>(client)
    };
    match tokio::time::timeout(timeout + Duration::from_secs(1), connect).await {
        Ok(Ok(client)) => Ok(client),
        Ok(Err(e)) => Err(StreamError::classify(stream, e)),
        Err(_) => Err(StreamError::Connection {
            target: url.to_string(),
            detail: format!(
                "START_REPLICATION not accepted within {} ms",
                timeout.as_millis()
            ),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::publication_names;

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
