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

/// How long a control-plane query may take. A server that does not answer in time is treated as
/// gone (leadership) or as a failed read (the rest): the loop must not hang on it.
const QUERY_TIMEOUT: Duration = Duration::from_secs(10);

async fn bounded<T>(
    what: &'static str,
    query: impl Future<Output = Result<T, CatalogError>>,
) -> Result<T, CatalogError> {
    tokio::time::timeout(QUERY_TIMEOUT, query)
        .await
        .unwrap_or_else(|_| {
            Err(CatalogError {
                what,
                reason: format!("no answer within {} s", QUERY_TIMEOUT.as_secs()),
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
}

impl Control for PgControl {
    async fn leader_alive(&self) -> bool {
        tokio::time::timeout(QUERY_TIMEOUT, self.lock.held())
            .await
            .unwrap_or(false)
    }

    async fn slot(&self) -> Result<Option<SlotReading>, CatalogError> {
        bounded(
            "replication slot",
            catalog::read_slot(&self.lock.client, &self.slot),
        )
        .await
    }

    async fn table_complete(&self, schema: &str, table: &str) -> Result<bool, CatalogError> {
        let tables = bounded(
            "tables",
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
            catalog::read_row_values(&self.lock.client, schema, table, id, &names),
        )
        .await
    }
}
