//! The worker's own durable state, in ClickHouse: small key/value records that must outlive the
//! process (a backfill's plan and the chunks it finished; each stream's slot marker, see
//! `daemon::marker`).
//!
//! It lives in ClickHouse rather than Postgres because the worker already writes there and a
//! least-privilege Postgres role cannot. The table (`config/clickhouse/004_runs_replicator_state.sql`,
//! and created here when missing) is generic: `(kind, key) → value`, a ReplacingMergeTree on
//! `_version`, read under FINAL, so a later `put` of the same key replaces the earlier one. A
//! caller picks a `kind` per feature and keeps its own value format (JSON text).
//!
//! Which record of a key wins is decided by `_version`, and that must follow the order of the
//! writes, not the writers' clocks: two instances, or one whose clock moved back, would otherwise
//! let an older record win. A write's version is the wall clock in microseconds or one more than
//! the highest version the key already has, whichever is larger ([`StateStore::put`]). A write
//! is retried a few times (the same record again: harmless) before its error reaches the caller.

use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};
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

    /// The highest version `(kind, key)` has (0 when it has none).
    async fn latest_version(&self, kind: &str, key: &str) -> Result<u64, SinkError> {
        answer(
            "reading the state table",
            self.timeout,
            self.client
                .query(&format!(
                    "SELECT max(_version) FROM {STATE_TABLE} WHERE kind = ? AND key = ?"
                ))
                .bind(kind)
                .bind(key)
                .fetch_one::<u64>(),
        )
        .await
        .map_err(Self::failed(STATE_TABLE))
    }

    /// Stores `value` under `(kind, key)`, replacing what was there: its version is above every
    /// earlier one of the key, whatever the clocks say. Durable when it returns: the insert is
    /// synchronous. Retried up to [`PUT_ATTEMPTS`] times over a few seconds.
    pub async fn put(&self, kind: &str, key: &str, value: &str) -> Result<(), SinkError> {
        let mut delays = ExponentialBuilder::default()
            .with_min_delay(Duration::from_millis(200))
            .with_max_delay(Duration::from_secs(2))
            .with_max_times(PUT_ATTEMPTS - 1)
            .build();
        loop {
            match self.put_once(kind, key, value).await {
                Ok(()) => return Ok(()),
                Err(e) => match delays.next() {
                    Some(delay) => {
                        tracing::debug!(kind, key, error = %e, "state write failed; retrying");
                        tokio::time::sleep(delay).await;
                    }
                    None => return Err(e),
                },
            }
        }
    }

    async fn put_once(&self, kind: &str, key: &str, value: &str) -> Result<(), SinkError> {
        let now = now_micros();
        let version = now.max(self.latest_version(kind, key).await? + 1);
        let row = StateRow {
            kind: kind.to_string(),
            key: key.to_string(),
            value: value.to_string(),
            updated_at: (now / 1000) as i64,
            _version: version,
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

/// How many times a state write is tried before its error is returned.
pub const PUT_ATTEMPTS: usize = 5;

fn now_micros() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}
