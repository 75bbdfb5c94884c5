//! The Postgres control plane: plain SQL connections (tokio-postgres) for the preflight, the
//! publication and slot setup, the leader lock and slot monitoring. The replication stream itself
//! lives in `source::stream`.
//!
//! Every connection the worker works through is to a primary (`primary`): a URL's hosts are
//! tried in order and a server in recovery is passed over, so nothing is ever written to, or
//! streamed from, a standby. Only reading a standby's copy of the slot connects to one
//! ([`connect_server`]).

pub mod catalog;
pub mod copy_text;
pub mod primary;
pub mod slot_holder;
pub mod tls;

use std::time::Duration;

use tokio_postgres::config::SslMode as PgSslMode;

use crate::config::{PgUrl, SslMode};

/// The application_name of every session the worker opens, so operators can find them in
/// `pg_stat_activity` and `pg_stat_replication`.
pub const APPLICATION_NAME: &str = "runs-replicator";

/// Server-side TCP settings for the sessions whose life is leadership (a stream's lock session,
/// an instance's member session, the walsender): Postgres notices a peer whose host vanished
/// (a node lost, a partition) within about 25 s — 10 s idle, then 3 probes 5 s apart, or 25 s
/// of unacknowledged data — and ends the session, which releases its locks and the slot for the
/// next leader. Its defaults (the kernel's two hours of idleness) would keep a dead leader's
/// lock that long. A process that dies on a live host needs none of this: its sockets close at
/// once.
pub const DEAD_PEER_OPTIONS: &str = "-c tcp_keepalives_idle=10 -c tcp_keepalives_interval=5 \
                                     -c tcp_keepalives_count=3 -c tcp_user_timeout=25000";

#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("cannot connect to Postgres at {target}: {reason}")]
    Connect { target: String, reason: String },
    #[error("Postgres TLS setup for {target}: {reason}")]
    Tls { target: String, reason: String },
    /// Every server of the URL that answered is in recovery (a standby): the worker waits for a
    /// primary, as after a failover until the name moves or the standby is promoted.
    #[error(
        "no primary at {target} ({tried}): the worker streams from and writes to a primary only; trying again"
    )]
    NoPrimary { target: String, tried: String },
}

/// Opens a control connection to the primary among `url`'s hosts and drives it on a
/// background task.
pub async fn connect(
    url: &PgUrl,
    timeout: Duration,
) -> Result<tokio_postgres::Client, ConnectError> {
    connect_with_options(url, timeout, None).await
}

/// Like [`connect`], with session settings (`-c name=value …`) applied at startup, before any
/// statement runs.
pub async fn connect_with_options(
    url: &PgUrl,
    timeout: Duration,
    options: Option<&str>,
) -> Result<tokio_postgres::Client, ConnectError> {
    Ok(primary::connect(url, timeout, options).await?.client)
}

/// Opens a connection to `url`'s first server, whatever its role (a standby too), with session
/// settings when asked.
pub async fn connect_server(
    url: &PgUrl,
    timeout: Duration,
    options: Option<&str>,
) -> Result<tokio_postgres::Client, ConnectError> {
    let target = url.to_string();
    let mut cfg = tokio_postgres::Config::new();
    cfg.host(&url.host)
        .port(url.port)
        .user(&url.user)
        .dbname(&url.dbname)
        .application_name(APPLICATION_NAME)
        .connect_timeout(timeout)
        // TCP keepalives notice a dead peer (a host gone, a half-open connection) within a minute
        // — 30 s idle, then 3 probes 10 s apart — instead of the kernel default of two hours.
        .keepalives_idle(Duration::from_secs(30))
        .keepalives_interval(Duration::from_secs(10))
        .keepalives_retries(3);
    if let Some(options) = options {
        cfg.options(options);
    }
    if !url.password.is_empty() {
        cfg.password(url.password.expose());
    }
    let mode = url.tls_mode();
    cfg.ssl_mode(match mode {
        SslMode::Disable => PgSslMode::Disable,
        SslMode::Prefer => PgSslMode::Prefer,
        _ => PgSslMode::Require,
    });
    let tls = tls::client_config(mode, url.sslrootcert.as_deref()).map_err(|reason| {
        ConnectError::Tls {
            target: target.clone(),
            reason,
        }
    })?;
    let fail = |e: tokio_postgres::Error| ConnectError::Connect {
        target: target.clone(),
        reason: describe(&e),
    };
    // connect_timeout covers each connection attempt; the outer bound also covers a server that
    // accepts TCP and then never answers the startup handshake.
    let overall = timeout + Duration::from_secs(1);
    let timed_out = || ConnectError::Connect {
        target: target.clone(),
        reason: format!("no answer within {} ms", overall.as_millis()),
    };
    let connected = match tls {
        None => open(&cfg, tokio_postgres::NoTls, overall).await,
        Some(tls) => {
            open(
                &cfg,
                tokio_postgres_rustls::MakeRustlsConnect::new(tls),
                overall,
            )
            .await
        }
    };
    let client = connected.map_err(|_| timed_out())?.map_err(fail)?;
    Ok(client)
}

/// Connects with `tls` and drives the connection on a background task.
async fn open<T>(
    cfg: &tokio_postgres::Config,
    tls: T,
    overall: Duration,
) -> Result<Result<tokio_postgres::Client, tokio_postgres::Error>, tokio::time::error::Elapsed>
where
    T: tokio_postgres::tls::MakeTlsConnect<tokio_postgres::Socket>,
    T::Stream: Send + 'static,
{
    tokio::time::timeout(overall, async {
        let (client, conn) = cfg.connect(tls).await?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(client)
    })
    .await
}

/// A one-line description of a tokio-postgres error, with the server's message and SQLSTATE when
/// there is one (its `Display` alone says only "db error").
pub fn describe(e: &tokio_postgres::Error) -> String {
    if let Some(db) = e.as_db_error() {
        return format!("{} (SQLSTATE {})", db.message(), db.code().code());
    }
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        let s = s.to_string();
        if !text.contains(&s) {
            text = format!("{text}: {s}");
        }
        source = s_source(source);
    }
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn s_source<'a>(
    e: Option<&'a (dyn std::error::Error + 'static)>,
) -> Option<&'a (dyn std::error::Error + 'static)> {
    e.and_then(|e| e.source())
}

/// Quotes an identifier for SQL (`"TaskRun"`, `"a""b"`).
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Quotes a string literal for SQL.
pub fn quote_literal(value: &str) -> String {
    format!("'{}'", value.replace('\'', "''"))
}
