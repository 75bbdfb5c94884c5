//! The replication connection: START_REPLICATION on the slot with pgoutput, through
//! pgwire-replication (tokio-postgres cannot open replication connections).
//!
//! The walsender's text rendering is pinned (DateStyle ISO, TimeZone UTC, full float precision)
//! so the transform reads the same text whatever the server's defaults are.

use std::time::Duration;

use pgwire_replication::{ReplicationClient, ReplicationConfig, TlsConfig};

use crate::config::{Config, SslMode};
use crate::pg::APPLICATION_NAME;

/// Session settings for the walsender; values in tuples are rendered with them.
pub const PINNED_OPTIONS: &str =
    "-c datestyle=ISO,YMD -c timezone=UTC -c intervalstyle=iso_8601 -c extra_float_digits=3";

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
    fn classify(config: &Config, e: pgwire_replication::PgWireError) -> StreamError {
        let slot = config.postgres.slot.clone();
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
                publication: config.postgres.publication.clone(),
            },
            Some("42704") => StreamError::SlotMissing { slot },
            Some("55000") if lower.contains("invalidated") || lower.contains("no longer") => {
                StreamError::SlotInvalidated { slot, detail }
            }
            _ => StreamError::Connection {
                target: config.postgres.url.to_string(),
                detail,
            },
        }
    }
}

/// Opens the replication connection and waits until the server accepted START_REPLICATION.
/// The stream resumes at the slot's confirmed position.
pub async fn start(config: &Config) -> Result<ReplicationClient, StreamError> {
    let url = &config.postgres.url;
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
    let cfg = ReplicationConfig::new(
        url.host.clone(),
        url.user.clone(),
        url.password.expose().to_string(),
        url.dbname.clone(),
        config.postgres.slot.clone(),
        config.postgres.publication.clone(),
    )
    .with_port(url.port)
    .with_tls(tls)
    .with_status_interval(config.status_interval())
    .with_wakeup_interval(config.status_interval().max(Duration::from_secs(1)))
    // Decoded events are small; a bounded channel is the first stage of backpressure.
    .with_buffer_size(4096)
    .with_options(PINNED_OPTIONS)
    .with_application_name(APPLICATION_NAME);
    let timeout = config.connect_timeout();
    let connect = async {
        let mut client = ReplicationClient::connect(cfg).await?;
        client.wait_started().await?;
        Ok::<_, pgwire_replication::PgWireError>(client)
    };
    match tokio::time::timeout(timeout + Duration::from_secs(1), connect).await {
        Ok(Ok(client)) => Ok(client),
        Ok(Err(e)) => Err(StreamError::classify(config, e)),
        Err(_) => Err(StreamError::Connection {
            target: url.to_string(),
            detail: format!(
                "START_REPLICATION not accepted within {} ms",
                timeout.as_millis()
            ),
        }),
    }
}
