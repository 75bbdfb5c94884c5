//! Single-consumer election: a Postgres session-level advisory lock derived from the slot name.
//!
//! The slot itself admits one walsender, but a second instance that merely retried
//! START_REPLICATION would spin on "slot is active" errors and could win the slot during the few
//! seconds the leader reconnects. The lock makes the roles explicit: the holder streams, others
//! wait as standbys. The lock lives as long as the session, so a leader that dies (even with
//! SIGKILL) releases it when Postgres notices the connection is gone.

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
}

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error(transparent)]
    Connect(#[from] ConnectError),
    #[error("leader lock query failed: {0}")]
    Query(String),
}

/// A control connection that may take the lock.
pub struct Candidate {
    client: tokio_postgres::Client,
    key: i64,
}

impl Candidate {
    /// A control connection to `stream`'s database that may take the stream's lock.
    pub async fn connect(config: &Config, stream: &Stream) -> Result<Candidate, LockError> {
        let url = &stream.source.url;
        let client = pg::connect(url, config.connect_timeout_of(url)).await?;
        Ok(Candidate {
            client,
            key: lock_key(&url.dbname, &stream.slot),
        })
    }

    pub fn client(&self) -> &tokio_postgres::Client {
        &self.client
    }

    /// Tries once; `Err(self)` when another session holds the lock.
    pub async fn try_acquire(self) -> Result<Result<LeaderLock, Candidate>, LockError> {
        let row = self
            .client
            .query_one("SELECT pg_try_advisory_lock($1)", &[&self.key])
            .await
            .map_err(|e| LockError::Query(pg::describe(&e)))?;
        if row.get::<_, bool>(0) {
            Ok(Ok(LeaderLock {
                client: self.client,
            }))
        } else {
            Ok(Err(self))
        }
    }

    /// The session is still usable (a standby is only healthy while it can take over).
    pub async fn ping(&self) -> bool {
        self.client.simple_query("SELECT 1").await.is_ok()
    }
}

impl LeaderLock {
    /// The session (and with it the lock) is still there.
    pub async fn held(&self) -> bool {
        !self.client.is_closed() && self.client.simple_query("SELECT 1").await.is_ok()
    }
}

#[cfg(test)]
mod tests;
