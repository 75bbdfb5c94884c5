//! Single-consumer election: a Postgres session-level advisory lock derived from the slot name.
//!
//! The slot itself admits one walsender, but a second instance that merely retried
//! START_REPLICATION would spin on "slot is active" errors and could win the slot during the few
//! seconds the leader reconnects. The lock makes the roles explicit: the holder streams, others
//! wait as standbys. The lock lives as long as the session, so a leader that dies (even with
//! SIGKILL) releases it when Postgres notices the connection is gone.
//!
//! With several instances the streams are shared out (`leadership.share`): `roster` reads who is
//! alive and who leads what from the advisory locks, `share` decides who should lead each stream.

pub mod roster;
pub mod share;

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
        let client = pg::connect_with_options(
            url,
            config.connect_timeout_of(url),
            Some(pg::DEAD_PEER_OPTIONS),
        )
        .await?;
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

    /// Waits up to `wait` in the lock's queue, where the leader sees this session waiting
    /// (`roster`); `Err(self)` when the lock was not granted meanwhile. A lock released while
    /// this session waits is granted to it at once, before any other session can try it.
    pub async fn queue(
        mut self,
        wait: Duration,
    ) -> Result<Result<LeaderLock, Candidate>, LockError> {
        let failed = |e: tokio_postgres::Error| LockError::Query(pg::describe(&e));
        let key = self.key;
        let attempt = async {
            let tx = self.client.transaction().await.map_err(failed)?;
            tx.batch_execute(&format!(
                "SET LOCAL lock_timeout = {}",
                wait.as_millis().max(1)
            ))
            .await
            .map_err(failed)?;
            match tx.query_one("SELECT pg_advisory_lock($1)", &[&key]).await {
                // The lock is the session's: it outlives the transaction.
                Ok(_) => tx.commit().await.map(|()| true).map_err(failed),
                Err(e) if e.code() == Some(&SqlState::LOCK_NOT_AVAILABLE) => {
                    tx.rollback().await.map(|()| false).map_err(failed)
                }
                Err(e) => Err(failed(e)),
            }
        };
        // lock_timeout ends the wait; this bounds a server that stops answering.
        match tokio::time::timeout(wait + Duration::from_secs(10), attempt).await {
            Ok(Ok(true)) => Ok(Ok(LeaderLock {
                client: self.client,
            })),
            Ok(Ok(false)) => Ok(Err(self)),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(LockError::Query(
                "no answer while waiting for the lock".into(),
            )),
        }
    }

    /// Tags the session as instance `member`'s (`roster::TAG_SPACE`), so the other instances
    /// see which instance leads, or waits for, the stream.
    pub async fn tag(&self, member: u32) -> Result<(), LockError> {
        self.client
            .execute(
                "SELECT pg_advisory_lock_shared($1::int4, $2::int4)",
                &[&roster::TAG_SPACE, &(member as i32)],
            )
            .await
            .map(drop)
            .map_err(|e| LockError::Query(pg::describe(&e)))
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
