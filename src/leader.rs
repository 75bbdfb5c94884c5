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
//! says why. The one wait that is meant to block, a standby queueing for a lock
//! ([`Candidate::queue`]), is bounded by its own `lock_timeout`, and its statement and client
//! bounds are widened by that wait so they never cut it short.
//!
//! With several instances the streams are shared out (`leadership.share`): `roster` reads who is
//! alive and who leads what from the advisory locks, `share` decides who should lead each stream.

pub mod roster;
pub mod share;

use std::future::Future;
use std::time::Duration;

use sha2::{Digest, Sha256};
use tokio_postgres::error::SqlState;

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
        let client = pg::connect_with_options(
            url,
            config.connect_timeout_of(url),
            Some(pg::DEAD_PEER_OPTIONS),
        )
        .await?;
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

    /// Waits up to `wait` in the lock's queue, where the leader sees this session waiting
    /// (`roster`); `Err(self)` when the lock was not granted meanwhile. A lock released while
    /// this session waits is granted to it at once, before any other session can try it.
    ///
    /// The wait is ended by the server's `lock_timeout` (SQLSTATE 55P03, not an error). The
    /// session's `statement_timeout` (`postgres.query_timeout_ms`) could be shorter than `wait`
    /// and would cancel the wait as an error, so inside this transaction it is `wait` plus the
    /// query timeout; the client-side bound is the same, so it only fires on a server that
    /// stopped answering. Every other statement of the transaction keeps the query timeout.
    pub async fn queue(
        mut self,
        wait: Duration,
    ) -> Result<Result<LeaderLock, Candidate>, LockError> {
        let (key, timeout) = (self.key, self.timeout);
        let wait_ms = wait.as_millis().max(1);
        let attempt = async {
            let tx = bounded("the lock queue (BEGIN)", timeout, self.client.transaction()).await?;
            bounded(
                "the lock queue (lock_timeout)",
                timeout,
                tx.batch_execute(&format!(
                    "SET LOCAL lock_timeout = {wait_ms}; SET LOCAL statement_timeout = {}",
                    wait_ms + timeout.as_millis()
                )),
            )
            .await?;
            let waited = tokio::time::timeout(
                wait + timeout,
                tx.query_one("SELECT pg_advisory_lock($1)", &[&key]),
            )
            .await;
            match waited {
                // The lock is the session's: it outlives the transaction.
                Ok(Ok(_)) => bounded("the lock queue (COMMIT)", timeout, tx.commit())
                    .await
                    .map(|()| true),
                Ok(Err(e)) if e.code() == Some(&SqlState::LOCK_NOT_AVAILABLE) => {
                    bounded("the lock queue (ROLLBACK)", timeout, tx.rollback())
                        .await
                        .map(|()| false)
                }
                Ok(Err(e)) => Err(LockError::Query {
                    what: "the lock queue (pg_advisory_lock)",
                    reason: pg::describe(&e),
                }),
                Err(_) => Err(LockError::Query {
                    what: "the lock queue (pg_advisory_lock)",
                    reason: format!(
                        "no answer within {} ms (the wait plus postgres.query_timeout_ms)",
                        (wait + timeout).as_millis()
                    ),
                }),
            }
        };
        // On an error the candidate is dropped, its session closed: a lock granted at the last
        // moment goes with it.
        match attempt.await? {
            true => Ok(Ok(LeaderLock {
                client: self.client,
                timeout,
            })),
            false => Ok(Err(self)),
        }
    }

    /// Tags the session as instance `member`'s (`roster::TAG_SPACE`), so the other instances
    /// see which instance leads, or waits for, the stream. A shared lock nobody takes
    /// exclusively: it never waits.
    pub async fn tag(&self, member: u32) -> Result<(), LockError> {
        bounded(
            "tagging the session (pg_advisory_lock_shared)",
            self.timeout,
            self.client.execute(
                "SELECT pg_advisory_lock_shared($1::int4, $2::int4)",
                &[&roster::TAG_SPACE, &(member as i32)],
            ),
        )
        .await
        .map(drop)
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
