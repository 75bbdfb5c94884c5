//! [`PgControl`]: the pipeline's [`Control`] over the leader's own Postgres session.
//!
//! The session that holds the leader lock doubles as the control connection on purpose: if it
//! dies, leadership is gone with it, and a query on it failing is the first sign of that.

use crate::leader::LeaderLock;
use crate::pg::catalog::{self, CatalogError, SlotReading};
use crate::pipeline::control::Control;
use crate::rows::Col;

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
        self.lock.held().await
    }

    async fn slot(&self) -> Result<Option<SlotReading>, CatalogError> {
        catalog::read_slot(&self.lock.client, &self.slot).await
    }

    async fn table_complete(&self, schema: &str, table: &str) -> Result<bool, CatalogError> {
        let tables = catalog::read_tables(&self.lock.client, schema, &[table.to_string()]).await?;
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
        catalog::read_row_values(&self.lock.client, schema, table, id, &names).await
    }
}
