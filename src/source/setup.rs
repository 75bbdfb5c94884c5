//! The publication and the slot the stream reads from: created or reconciled at start.
//!
//! With `create_publication`, a missing publication is created and an existing one is brought to
//! what the worker needs: every configured table in it (ALTER PUBLICATION … ADD TABLE), and
//! insert, update and delete published. With `create_slot`, a missing slot is created. Both are
//! idempotent and tolerate a second instance doing the same at the same moment.

use crate::config::Config;
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
    Exists { wal_status: Option<String> },
    Created { lsn: String },
    Missing,
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

/// Creates or reconciles the publication. Tables that do not exist are left out (the preflight
/// reports them). Returns what it changed, for the log.
pub async fn ensure_publication(
    client: &tokio_postgres::Client,
    config: &Config,
) -> Result<Vec<String>, SetupError> {
    let pgc = &config.postgres;
    let mut changes = Vec::new();
    if !pgc.create_publication {
        return Ok(changes);
    }
    let existing: Vec<String> = client
        .query(
            "SELECT c.relname::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE n.nspname = $1 AND c.relname = ANY($2) AND c.relkind = 'r'",
            &[&pgc.schema, &pgc.tables],
        )
        .await
        .map_err(err("list tables"))?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let qualified = |t: &str| format!("{}.{}", quote_ident(&pgc.schema), quote_ident(t));
    let publication = quote_ident(&pgc.publication);
    let row = client
        .query_opt(
            "SELECT pubinsert AND pubupdate AND pubdelete, pubtruncate FROM pg_publication WHERE pubname = $1",
            &[&pgc.publication],
        )
        .await
        .map_err(err("read publication"))?;
    match row {
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
        Some(row) => {
            let (actions_ok, truncate): (bool, bool) = (row.get(0), row.get(1));
            if !actions_ok {
                let sql = format!(
                    "ALTER PUBLICATION {publication} SET (publish = 'insert, update, delete{}')",
                    if truncate { ", truncate" } else { "" }
                );
                client
                    .batch_execute(&sql)
                    .await
                    .map_err(err("set publication actions"))?;
                changes.push(sql);
            }
            let members: Vec<String> = client
                .query(
                    "SELECT tablename::text FROM pg_publication_tables WHERE pubname = $1 AND schemaname = $2",
                    &[&pgc.publication, &pgc.schema],
                )
                .await
                .map_err(err("read publication tables"))?
                .iter()
                .map(|r| r.get(0))
                .collect();
            for table in existing.iter().filter(|t| !members.contains(t)) {
                let sql = format!(
                    "ALTER PUBLICATION {publication} ADD TABLE {}",
                    qualified(table)
                );
                match client.batch_execute(&sql).await {
                    Ok(()) => changes.push(sql),
                    Err(e) if is_duplicate(&e) => {}
                    Err(e) => return Err(err(format!("add {table} to {publication}"))(e)),
                }
            }
        }
    }
    Ok(changes)
}

/// Reads the slot, creating it when missing and `create` is set.
pub async fn ensure_slot(
    client: &tokio_postgres::Client,
    config: &Config,
    create: bool,
) -> Result<SlotState, SetupError> {
    let slot = &config.postgres.slot;
    let row = client
        .query_opt(
            "SELECT wal_status::text FROM pg_replication_slots WHERE slot_name = $1",
            &[slot],
        )
        .await
        .map_err(err("read slot"))?;
    if let Some(row) = row {
        return Ok(SlotState::Exists {
            wal_status: row.get(0),
        });
    }
    if !create {
        return Ok(SlotState::Missing);
    }
    let sql = format!(
        "SELECT lsn::text FROM pg_create_logical_replication_slot({}, 'pgoutput')",
        quote_literal(slot)
    );
    match client.query_one(sql.as_str(), &[]).await {
        Ok(row) => Ok(SlotState::Created { lsn: row.get(0) }),
        // Another instance created it between our read and our create.
        Err(e) if is_duplicate(&e) => Ok(SlotState::Exists { wal_status: None }),
        Err(e) => Err(err(format!("create slot {slot}"))(e)),
    }
}

/// Drops the slot (only for `recreate_lost_slot`). Terminates a walsender still holding it.
pub async fn drop_slot(client: &tokio_postgres::Client, config: &Config) -> Result<(), SetupError> {
    let slot = &config.postgres.slot;
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

/// One reading of `pg_replication_slots` for the slot, for metrics and invalidation checks.
#[derive(Debug, Clone, PartialEq)]
pub struct SlotReading {
    pub active: bool,
    pub wal_status: Option<String>,
    pub lag_bytes: Option<i64>,
    pub retained_bytes: Option<i64>,
    pub safe_wal_size: Option<i64>,
    pub confirmed_flush_lsn: Option<String>,
}

/// Reads the slot; `None` when it does not exist.
pub async fn read_slot(
    client: &tokio_postgres::Client,
    config: &Config,
) -> Result<Option<SlotReading>, SetupError> {
    let row = client
        .query_opt(
            "SELECT active, wal_status::text, \
                    (pg_current_wal_lsn() - confirmed_flush_lsn)::int8, \
                    (pg_current_wal_lsn() - restart_lsn)::int8, \
                    safe_wal_size::int8, confirmed_flush_lsn::text \
             FROM pg_replication_slots WHERE slot_name = $1",
            &[&config.postgres.slot],
        )
        .await
        .map_err(err("read slot"))?;
    Ok(row.map(|r| SlotReading {
        active: r.get(0),
        wal_status: r.get(1),
        lag_bytes: r.get(2),
        retained_bytes: r.get(3),
        safe_wal_size: r.get(4),
        confirmed_flush_lsn: r.get(5),
    }))
}

/// Publishes a reading as gauges.
pub fn record_slot_metrics(reading: &SlotReading) {
    use crate::metrics as m;
    metrics::gauge!(m::SLOT_ACTIVE).set(if reading.active { 1.0 } else { 0.0 });
    if let Some(lag) = reading.lag_bytes {
        metrics::gauge!(m::SLOT_LAG).set(lag.max(0) as f64);
    }
    if let Some(retained) = reading.retained_bytes {
        metrics::gauge!(m::SLOT_RETAINED).set(retained.max(0) as f64);
    }
    // NULL safe_wal_size means max_slot_wal_keep_size = -1: nothing bounds it.
    metrics::gauge!(m::SLOT_SAFE_WAL).set(reading.safe_wal_size.map_or(-1.0, |v| v as f64));
    for status in m::WAL_STATUSES {
        let on = reading.wal_status.as_deref() == Some(status);
        metrics::gauge!(m::SLOT_WAL_STATUS, "status" => *status).set(if on { 1.0 } else { 0.0 });
    }
}
