//! [`PgControl`]: the pipeline's [`Control`] over the leader's own Postgres session.
//!
//! The session that holds the leader lock doubles as the control connection on purpose: if it
//! dies, leadership is gone with it, and a query on it failing is the first sign of that.

use std::future::Future;
use std::time::Duration;

use crate::leader::LeaderLock;
use crate::pg::catalog::{self, CatalogError, SlotReading};
use crate::pipeline::control::Control;
use crate::rows::Col;

/// Runs a control-plane query for at most `timeout` (`postgres.query_timeout_ms`). A server that
/// does not answer in time is treated as gone (leadership) or as a failed read (the rest): the
/// loop must not hang on it.
pub async fn bounded<T>(
    what: &'static str,
    timeout: Duration,
    query: impl Future<Output = Result<T, CatalogError>>,
) -> Result<T, CatalogError> {
    tokio::time::timeout(timeout, query)
        .await
        .unwrap_or_else(|_| {
            Err(CatalogError {
                what,
                reason: format!(
                    "no answer within {} ms (postgres.query_timeout_ms)",
                    timeout.as_millis()
                ),
            })
        })
}

pub struct PgControl {
    lock: LeaderLock,
    slot: String,
}

impl PgControl {
    pub fn new(lock: LeaderLock, slot: &str) -> PgControl {
        PgControl {
            lock,
            slot: slot.to_string(),
        }
    }

    /// The session, for setup work before streaming starts.
    pub fn session(&self) -> &tokio_postgres::Client {
        &self.lock.client
    }

    /// How long one query on the session may take.
    pub fn timeout(&self) -> Duration {
        self.lock.timeout
    }
}

impl Control for PgControl {
    async fn leader_alive(&self) -> bool {
        self.lock.held().await
    }

    async fn slot(&self) -> Result<Option<SlotReading>, CatalogError> {
        bounded(
            "replication slot",
            self.lock.timeout,
            catalog::read_slot(&self.lock.client, &self.slot),
        )
        .await
    }

    async fn table_complete(&self, schema: &str, table: &str) -> Result<bool, CatalogError> {
        let tables = bounded(
            "tables",
            self.lock.timeout,
            catalog::read_tables(&self.lock.client, schema, &[table.to_string()]),
        )
        .await?;
        Ok(tables.first().is_some_and(|t| {
            t.identity_is_full() && Col::ALL.iter().all(|c| t.has_column(c.pg_name()))
        }))
    }

    async fn current_values(
        &self,
        schema: &str,
        table: &str,
        id: &str,
        columns: &[Col],
    ) -> Result<Option<Vec<Option<String>>>, CatalogError> {
        let names: Vec<&str> = columns.iter().map(|c| c.pg_name()).collect();
        bounded(
            "a run's current row",
            self.lock.timeout,
            catalog::read_row_values(&self.lock.client, schema, table, id, &names),
        )
        .await
    }
}
