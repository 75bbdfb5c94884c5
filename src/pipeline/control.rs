//! The streaming loop's seam to the Postgres control plane: [`Control`], what the loop asks of
//! Postgres besides the stream — is leadership still ours, how is the slot, is a broken table
//! fixed, what is a run's current row.
//!
//! Implemented over the leader's own session by `daemon::control::PgControl`, and in memory by
//! `testing::FakeControl`.

use std::future::Future;

use crate::pg::catalog::{CatalogError, SlotReading};
use crate::rows::Col;

pub trait Control: Send + Sync + 'static {
    /// The session that holds the leader lock is still alive (so the lock is still ours).
    fn leader_alive(&self) -> impl Future<Output = bool> + Send;

    /// The slot, as `pg_replication_slots` shows it now; `None` when it does not exist.
    fn slot(&self) -> impl Future<Output = Result<Option<SlotReading>, CatalogError>> + Send;

    /// `schema.table` can now be replicated completely: REPLICA IDENTITY FULL and every column
    /// the transform reads.
    fn table_complete(
        &self,
        schema: &str,
        table: &str,
    ) -> impl Future<Output = Result<bool, CatalogError>> + Send;

    /// The current text values of `columns` of run `id` in `schema.table`; `None` when the run
    /// no longer exists.
    fn current_values(
        &self,
        schema: &str,
        table: &str,
        id: &str,
        columns: &[Col],
    ) -> impl Future<Output = Result<Option<Vec<Option<String>>>, CatalogError>> + Send;
}
