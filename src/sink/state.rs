//! The worker's own durable state, in ClickHouse: small key/value records that must outlive the
//! process (a backfill's plan and the chunks it finished; later, markers such as "this slot
//! existed").
//!
//! It lives in ClickHouse rather than Postgres because the worker already writes there and a
//! least-privilege Postgres role cannot. The table (`config/clickhouse/004_runs_replicator_state.sql`,
//! and created here when missing) is generic: `(kind, key) → value`, a ReplacingMergeTree on
//! `_version`, read under FINAL, so a later `put` of the same key replaces the earlier one. A
//! caller picks a `kind` per feature and keeps its own value format (JSON text).

use std::time::Duration;

use clickhouse::Row;
use serde::{Deserialize, Serialize};

use super::catalog::answer;
use crate::pipeline::sink::SinkError;

/// The state table's name, in the configured ClickHouse database.
pub const STATE_TABLE: &str = "runs_replicator_state";

/// The DDL, for `CREATE … IF NOT EXISTS` at first use (the shipped .sql file has the same).
const CREATE: &str = "CREATE TABLE IF NOT EXISTS runs_replicator_state \
     (kind LowCardinality(String), key String, value String, updated_at DateTime64(3), _version UInt64) \
     ENGINE = ReplacingMergeTree(_version) ORDER BY (kind, key)";

#[derive(Debug, Clone, Row, Serialize, Deserialize)]
struct StateRow {
    kind: String,
    key: String,
    value: String,
    /// Unix milliseconds.
    updated_at: i64,
    _version: u64,
}

/// Reads and writes of the state table.
pub struct StateStore {
    client: clickhouse::Client,
    timeout: Duration,
}

impl StateStore {
    pub fn new(client: clickhouse::Client, timeout: Duration) -> StateStore {
        StateStore { client, timeout }
    }

    fn failed(what: &str) -> impl Fn(super::catalog::ChReadError) -> SinkError + '_ {
        move |e| SinkError::Read {
            what: what.to_string(),
            reason: e.reason,
        }
    }

    /// Creates the table when it is missing.
    pub async fn ensure(&self) -> Result<(), SinkError> {
        answer(
            "creating the state table",
            self.timeout,
            self.client.query(CREATE).execute(),
        )
        .await
        .map_err(Self::failed(STATE_TABLE))
    }

    /// The value of `(kind, key)`, if any.
    pub async fn get(&self, kind: &str, key: &str) -> Result<Option<String>, SinkError> {
        let rows: Vec<String> = answer(
            "reading the state table",
            self.timeout,
            self.client
                .query(&format!(
                    "SELECT value FROM {STATE_TABLE} FINAL WHERE kind = ? AND key = ?"
                ))
                .bind(kind)
                .bind(key)
                .fetch_all(),
        )
        .await
        .map_err(Self::failed(STATE_TABLE))?;
        Ok(rows.into_iter().next())
    }

    /// Every `(key, value)` of `kind` whose key starts with `prefix`, ordered by key.
    pub async fn scan(&self, kind: &str, prefix: &str) -> Result<Vec<(String, String)>, SinkError> {
        answer(
            "reading the state table",
            self.timeout,
            self.client
                .query(&format!(
                    "SELECT key, value FROM {STATE_TABLE} FINAL \
                     WHERE kind = ? AND startsWith(key, ?) ORDER BY key"
                ))
                .bind(kind)
                .bind(prefix)
                .fetch_all(),
        )
        .await
        .map_err(Self::failed(STATE_TABLE))
    }

    /// Stores `value` under `(kind, key)`, replacing what was there. Durable when it returns:
    /// the insert is synchronous.
    pub async fn put(&self, kind: &str, key: &str, value: &str) -> Result<(), SinkError> {
        let now = now_micros();
        let row = StateRow {
            kind: kind.to_string(),
            key: key.to_string(),
            value: value.to_string(),
            updated_at: (now / 1000) as i64,
            // Microseconds: a later put of the same key (a resumed run) has a higher version.
            _version: now,
        };
        let write = async {
            let mut insert = self
                .client
                .insert::<StateRow>(STATE_TABLE)
                .await?
                .with_setting("async_insert", "0");
            insert.write(&row).await?;
            insert.end().await
        };
        answer("writing the state table", self.timeout, write)
            .await
            .map_err(|e| SinkError::Insert {
                table: STATE_TABLE.to_string(),
                attempts: 1,
                reason: e.reason,
            })
    }
}

fn now_micros() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}
