//! The publication and the slot the stream reads from: created or reconciled at start.
//!
//! With `create_publication`, a missing publication is created and an existing one is brought to
//! what the worker needs: insert, update and delete published, and — while the slot does not
//! exist yet — every configured table that exists in it (ALTER PUBLICATION … ADD TABLE). Once the
//! slot exists, a table that joins the publication has rows the slot never streamed: adding it
//! is `daemon::joins`' job, which copies them ([`add_table`] is its ALTER). With `create_slot`,
//! a missing slot is created, as a failover slot where `postgres.failover_slot` wants one (17+;
//! `failover_slot`). All of it is idempotent and tolerates a second instance doing the same at
//! the same moment.

use super::failover_slot;
use crate::config::Stream;
use crate::pg::catalog::{self, CatalogError};
use crate::pg::{self, quote_ident, quote_literal};

#[derive(Debug, thiserror::Error)]
#[error("{what}: {reason}")]
pub struct SetupError {
    pub what: String,
    pub reason: String,
}

/// What `ensure_slot` found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SlotState {
    /// `lost`: it can never stream again (`SlotReading::is_lost`: wal_status, invalidation_reason,
    /// conflicting).
    Exists {
        wal_status: Option<String>,
        lost: bool,
    },
    Created {
        lsn: String,
    },
    Missing,
}

impl From<CatalogError> for SetupError {
    fn from(e: CatalogError) -> Self {
        SetupError {
            what: e.what.to_string(),
            reason: e.reason,
        }
    }
}

fn err(what: impl Into<String>) -> impl FnOnce(tokio_postgres::Error) -> SetupError {
    let what = what.into();
    move |e| SetupError {
        what,
        reason: pg::describe(&e),
    }
}

fn is_duplicate(e: &tokio_postgres::Error) -> bool {
    e.code() == Some(&tokio_postgres::error::SqlState::DUPLICATE_OBJECT)
}

/// `server_version_num`.
async fn server_version(client: &tokio_postgres::Client) -> Result<i32, SetupError> {
    Ok(client
        .query_one("SELECT current_setting('server_version_num')::int", &[])
        .await
        .map_err(err("read server_version_num"))?
        .get(0))
}

/// Creates or reconciles the stream's publication. Tables that do not exist are left out (the
/// preflight reports them), and so are tables missing from an existing publication once the
/// slot exists (`daemon::joins` adds them with a copy). A shard's publication filters each table
/// by its row filter. Returns what it changed, for the log.
pub async fn ensure_publication(
    client: &tokio_postgres::Client,
    stream: &Stream,
) -> Result<Vec<String>, SetupError> {
    let src = &stream.source;
    let mut changes = Vec::new();
    if !src.create_publication {
        return Ok(changes);
    }
    let existing: Vec<String> = catalog::read_tables(client, &src.schema, &src.tables)
        .await?
        .into_iter()
        .filter(|t| t.is_ordinary())
        .map(|t| t.name)
        .collect();
    if stream.shard.is_some() && server_version(client).await? < 150_000 {
        // Row filters need 15: the preflight refuses the shards with one line.
        return Ok(changes);
    }
    let filter = stream
        .shard
        .map(|s| format!(" WHERE ({})", s.row_filter()))
        .unwrap_or_default();
    let qualified = |t: &str| format!("{}.{}{filter}", quote_ident(&src.schema), quote_ident(t));
    let publication = quote_ident(&stream.publication);
    match catalog::read_publication(client, &stream.publication).await? {
        None => {
            if existing.is_empty() {
                return Ok(changes);
            }
            let tables: Vec<String> = existing.iter().map(|t| qualified(t)).collect();
            let sql = format!(
                "CREATE PUBLICATION {publication} FOR TABLE {} WITH (publish = 'insert, update, delete, truncate')",
                tables.join(", ")
            );
            match client.batch_execute(&sql).await {
                Ok(()) => changes.push(sql),
                Err(e) if is_duplicate(&e) => {}
                Err(e) => return Err(err(format!("create publication {publication}"))(e)),
            }
        }
        Some(reading) => {
            if !reading.publishes_changes() {
                let sql = format!(
                    "ALTER PUBLICATION {publication} SET (publish = 'insert, update, delete{}')",
                    if reading.truncate { ", truncate" } else { "" }
                );
                client
                    .batch_execute(&sql)
                    .await
                    .map_err(err("set publication actions"))?;
                changes.push(sql);
            }
            if catalog::read_slot(client, &stream.slot).await?.is_some() {
                return Ok(changes);
            }
            for table in existing
                .iter()
                .filter(|t| reading.member(&src.schema, t).is_none())
            {
                if let Some(sql) = add_table(client, stream, table).await? {
                    changes.push(sql);
                }
            }
        }
    }
    Ok(changes)
}

/// `ALTER PUBLICATION … ADD TABLE` of one table (with the shard's row filter); the statement
/// when it ran, `None` when the table was a member already.
pub async fn add_table(
    client: &tokio_postgres::Client,
    stream: &Stream,
    table: &str,
) -> Result<Option<String>, SetupError> {
    let src = &stream.source;
    let filter = stream
        .shard
        .map(|s| format!(" WHERE ({})", s.row_filter()))
        .unwrap_or_default();
    let publication = quote_ident(&stream.publication);
    let sql = format!(
        "ALTER PUBLICATION {publication} ADD TABLE {}.{}{filter}",
        quote_ident(&src.schema),
        quote_ident(table)
    );
    match client.batch_execute(&sql).await {
        Ok(()) => Ok(Some(sql)),
        Err(e) if is_duplicate(&e) => Ok(None),
        Err(e) => Err(err(format!("add {table} to {publication}"))(e)),
    }
}

/// Reads the slot, creating it when missing and `create` is set.
pub async fn ensure_slot(
    client: &tokio_postgres::Client,
    stream: &Stream,
    create: bool,
) -> Result<SlotState, SetupError> {
    let slot = &stream.slot;
    if let Some(reading) = catalog::read_slot(client, slot).await? {
        return Ok(SlotState::Exists {
            lost: reading.is_lost(),
            wal_status: reading.wal_status,
        });
    }
    if !create {
        return Ok(SlotState::Missing);
    }
    let version = server_version(client).await?;
    let sql = failover_slot::create_sql(slot, stream.source.failover_slot.wanted(version));
    match client.query_one(sql.as_str(), &[]).await {
        Ok(row) => Ok(SlotState::Created { lsn: row.get(0) }),
        // Another instance created it between our read and our create.
        Err(e) if is_duplicate(&e) => Ok(SlotState::Exists {
            wal_status: None,
            lost: false,
        }),
        Err(e) => Err(err(format!("create slot {slot}"))(e)),
    }
}

/// Drops the slot (only for `recreate_lost_slot`). Terminates a walsender still holding it.
pub async fn drop_slot(client: &tokio_postgres::Client, stream: &Stream) -> Result<(), SetupError> {
    let slot = &stream.slot;
    client
        .query(
            "SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots \
             WHERE slot_name = $1 AND active_pid IS NOT NULL",
            &[slot],
        )
        .await
        .map_err(err("terminate the slot's walsender"))?;
    let sql = format!("SELECT pg_drop_replication_slot({})", quote_literal(slot));
    client
        .query(sql.as_str(), &[])
        .await
        .map_err(err(format!("drop slot {slot}")))?;
    Ok(())
}
