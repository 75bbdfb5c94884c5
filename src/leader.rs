//! Single-consumer election: a Postgres session-level advisory lock derived from the slot name.
//!
//! The slot itself admits one walsender, but a second instance that merely retried
//! START_REPLICATION would spin on "slot is active" errors and could win the slot during the few
//! seconds the leader reconnects. The lock makes the roles explicit: the holder streams, others
//! wait as standbys. The lock lives as long as the session, so a leader that dies (even with
//! SIGKILL) releases it when Postgres notices the connection is gone.
//!
//! Every query on the session is bounded by `postgres.query_timeout_ms`, on both sides: the
//! session's `statement_timeout` (a query stuck behind a lock is cancelled by the server) and a
//! client-side timeout (a backend that stopped answering altogether). A standby whose session
//! does not answer in time is not a standby that can take over: its session ends and `/readyz`
//! says why.

use std::future::Future;
use std::time::Duration;

use sha2::{Digest, Sha256};

use crate::config::{Config, Stream};
use crate::pg::{self, ConnectError};

/// The lock key: stable across versions and instances for the same database and slot.
pub fn lock_key(dbname: &str, slot: &str) -> i64 {
    let digest = Sha256::digest(format!("runs-replicator:{dbname}:{slot}").as_bytes());
    i64::from_be_bytes(digest[..8].try_into().expect("8 bytes"))
}

/// A control connection that holds the leader lock. Dropping it closes the session, which
/// releases the lock.
pub struct LeaderLock {
    pub client: tokio_postgres::Client,
    /// How long one query on the session may take.
    pub timeout: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error(transparent)]
    Connect(#[from] ConnectError),
    #[error("{what}: {reason}")]
    Query { what: &'static str, reason: String },
}

/// Runs `query` for at most `timeout`; says which query and why when it fails.
pub async fn bounded<T>(
    what: &'static str,
    timeout: Duration,
    query: impl Future<Output = Result<T, tokio_postgres::Error>>,
) -> Result<T, LockError> {
    match tokio::time::timeout(timeout, query).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(LockError::Query {
            what,
            reason: pg::describe(&e),
        }),
        Err(_) => Err(LockError::Query {
            what,
            reason: format!(
                "no answer within {} ms (postgres.query_timeout_ms)",
                timeout.as_millis()
            ),
        }),
    }
}

/// A control connection that may take the lock.
pub struct Candidate {
    client: tokio_postgres::Client,
    key: i64,
    timeout: Duration,
}

impl Candidate {
    /// A control connection to `stream`'s database that may take the stream's lock, its
    /// statements bounded by `postgres.query_timeout_ms`.
    pub async fn connect(config: &Config, stream: &Stream) -> Result<Candidate, LockError> {
        let url = &stream.source.url;
        let client = pg::connect(url, config.connect_timeout_of(url)).await?;
        let timeout = config.query_timeout();
        bounded(
            "setting the control session's statement_timeout",
            timeout,
            client.batch_execute(&format!("SET statement_timeout = {}", timeout.as_millis())),
        )
        .await?;
        Ok(Candidate {
            client,
            key: lock_key(&url.dbname, &stream.slot),
            timeout,
        })
    }

    pub fn client(&self) -> &tokio_postgres::Client {
        &self.client
    }

    /// How long one query on the session may take.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Tries once; `Err(self)` when another session holds the lock.
    pub async fn try_acquire(self) -> Result<Result<LeaderLock, Candidate>, LockError> {
        let row = bounded(
            "the leader lock (pg_try_advisory_lock)",
            self.timeout,
            self.client
                .query_one("SELECT pg_try_advisory_lock($1)", &[&self.key]),
        )
        .await?;
        if row.get::<_, bool>(0) {
            Ok(Ok(LeaderLock {
                client: self.client,
                timeout: self.timeout,
            }))
        } else {
            Ok(Err(self))
        }
    }

    /// The session still answers (a standby is only healthy while it can take over).
    pub async fn ping(&self) -> Result<(), LockError> {
        bounded(
            "the standby's session",
            self.timeout,
            self.client.simple_query("SELECT 1"),
        )
        .await
        .map(|_| ())
    }
}

impl LeaderLock {
    /// The session (and with it the lock) is still there, and answers in time.
    pub async fn held(&self) -> bool {
        !self.client.is_closed()
            && bounded(
                "the leader's session",
                self.timeout,
                self.client.simple_query("SELECT 1"),
            )
            .await
            .is_ok()
    }
}

#[cfg(test)]
mod tests;
