//! What a verify reads from ClickHouse (SPEC §10): per hash range a count and a sum of row
//! hashes, the row hashes of a few ranges, and the rows of a few runs — under `FINAL`, within
//! a `created_at` window — plus the newest version of a run (and of each of its sorting keys)
//! including tombstones, whether runs have payload rows, and ClickHouse's own rendering of JSON
//! values.
//!
//! The hash expression comes from the caller (`verify::canonical`, where its Rust twin lives);
//! this file owns the tables, the window and the settings that make ClickHouse print JSON the
//! way the twin expects. Every query counts the rows ClickHouse read (its `X-ClickHouse-Summary`,
//! complete with `wait_end_of_query=1`), so a verify can show what it cost.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use clickhouse::Row;
use clickhouse::query::Query;
use serde::Deserialize;

use super::catalog::answer;
use super::client::INSERT_SETTINGS;
use crate::config::Config;
use crate::pipeline::sink::SinkError;
use crate::rows::RunRow;

/// Stands for "this run has a payload row" in a hash expression; replaced by the query over the
/// payloads table (within the window).
pub const PAYLOAD_PRESENT: &str = "{payload_present}";

/// How ClickHouse prints JSON in a verify's reads: 64-bit numbers unquoted and `/` escaped, set
/// explicitly because the defaults differ between server versions.
const JSON_OUTPUT: &[(&str, &str)] = &[
    ("output_format_json_quote_64bit_integers", "0"),
    ("output_format_json_quote_64bit_floats", "0"),
    ("output_format_json_escape_forward_slashes", "1"),
    ("output_format_binary_write_json_as_string", "1"),
];

/// Runs per `IN (…)` list: bounded statements whatever the number of runs asked about.
const IDS_PER_QUERY: usize = 5000;

/// Which rows of the runs table a verify looks at.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scope {
    /// `created_at` bounds in epoch milliseconds: since inclusive, until exclusive.
    pub since_ms: Option<i64>,
    pub until_ms: Option<i64>,
    /// Only rows whose `_version` carries one of these generations (one source's tables).
    pub generations: Option<Vec<u8>>,
}

impl Scope {
    /// This scope within `[lo, hi)` (epoch ms, open where `None`): a verify's slice.
    pub fn within(&self, lo: Option<i64>, hi: Option<i64>) -> Scope {
        let max = |a: Option<i64>, b: Option<i64>| match (a, b) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
        let min = |a: Option<i64>, b: Option<i64>| match (a, b) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        Scope {
            since_ms: max(self.since_ms, lo),
            until_ms: min(self.until_ms, hi),
            generations: self.generations.clone(),
        }
    }

    fn time(&self) -> Vec<String> {
        let mut out = Vec::new();
        if let Some(ms) = self.since_ms {
            out.push(format!(
                "created_at >= fromUnixTimestamp64Milli(toInt64({ms}))"
            ));
        }
        if let Some(ms) = self.until_ms {
            out.push(format!(
                "created_at < fromUnixTimestamp64Milli(toInt64({ms}))"
            ));
        }
        out
    }

    /// [`Scope::time`] as one condition (`1` without bounds).
    fn time_filter(&self) -> String {
        let time = self.time();
        if time.is_empty() {
            "1".into()
        } else {
            time.join(" AND ")
        }
    }

    /// The condition on the runs table. The generation is read from `_version`, a column outside
    /// the sorting key, so ClickHouse applies it after `FINAL` picked each run's newest row.
    fn runs(&self) -> String {
        let mut out = self.time();
        if let Some(gens) = &self.generations {
            let list: Vec<String> = gens.iter().map(u8::to_string).collect();
            out.push(format!(
                "bitShiftRight(_version, 56) IN ({})",
                list.join(", ")
            ));
        }
        if out.is_empty() {
            "1".into()
        } else {
            out.join(" AND ")
        }
    }
}

/// One hash range as ClickHouse sums it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Row, Deserialize)]
pub struct RangeSum {
    pub range: u32,
    pub runs: u64,
    /// Wrapping sum of the row hashes.
    pub sum: u64,
}

/// The newest row ClickHouse holds under one sorting key of a run, tombstones included: what a
/// row written under that key must outrank to be seen.
#[derive(Debug, Clone, PartialEq, Eq, Row, Deserialize)]
pub struct KeyVersion {
    pub run_id: String,
    pub organization_id: String,
    pub project_id: String,
    pub environment_id: String,
    /// Epoch milliseconds, as `RunRow::created_at`.
    pub created_at: i64,
    pub version: u64,
    /// 1: that newest row is a tombstone.
    pub deleted: u8,
}

impl KeyVersion {
    pub fn sort_key(&self) -> crate::rows::clickhouse::SortKey<'_> {
        (
            &self.organization_id,
            &self.project_id,
            &self.environment_id,
            self.created_at,
            &self.run_id,
        )
    }
}

/// The reads, with what they cost.
pub struct VerifyReads {
    client: clickhouse::Client,
    database: String,
    runs_table: String,
    payloads_table: Option<String>,
    timeout: Duration,
    rows_read: AtomicU64,
}

fn failed(what: String) -> impl Fn(super::catalog::ChReadError) -> SinkError {
    move |e| SinkError::Read {
        what: what.clone(),
        reason: e.reason,
    }
}

impl VerifyReads {
    pub fn new(config: &Config, client: clickhouse::Client) -> VerifyReads {
        let ch = &config.clickhouse;
        VerifyReads {
            client,
            database: ch.database.clone(),
            runs_table: ch.runs_table.clone(),
            payloads_table: (!ch.payloads_table.is_empty()).then(|| ch.payloads_table.clone()),
            timeout: Duration::from_millis(ch.request_timeout_ms),
            rows_read: AtomicU64::new(0),
        }
    }

    /// The partitions of the runs table with active parts (`YYYYMM` as shipped).
    pub async fn partitions(&self) -> Result<Vec<String>, SinkError> {
        let q = self
            .client
            .query(
                "SELECT DISTINCT partition FROM system.parts \
                 WHERE database = ? AND table = ? AND active ORDER BY partition",
            )
            .bind(&self.database)
            .bind(&self.runs_table);
        self.fetch_catalog("the runs table's partitions", q).await
    }

    /// The runs table's granules by the `created_at` of their first row (epoch ms) and the rows
    /// they hold, in scope, from its primary index (`mergeTreeIndex`: marks only, no data read):
    /// an estimate to plan a verify's slices by. `Err` on a server without the function or a
    /// table whose primary key lacks `created_at`.
    pub async fn granules(&self, scope: &Scope) -> Result<Vec<(i64, u64)>, SinkError> {
        let filter = scope.time_filter();
        let sql = format!(
            "SELECT toUnixTimestamp64Milli(created_at) AS v_at, toUInt64(rows_in_granule) \
             FROM mergeTreeIndex(?, ?) WHERE {filter} ORDER BY v_at"
        );
        let q = self.query(&sql).bind(&self.database).bind(&self.runs_table);
        self.fetch("the runs table's primary index", q).await
    }

    /// Rows per minute of `created_at` in scope (`(minute since the epoch, rows)`, in order),
    /// every version counted: an estimate to plan a verify's slices by.
    pub async fn minute_counts(&self, scope: &Scope) -> Result<Vec<(i64, u64)>, SinkError> {
        let filter = scope.time_filter();
        let sql = format!(
            "SELECT toInt64(floor(toUnixTimestamp64Milli(created_at) / 60000)) AS v_minute, \
                    count() FROM `{}` WHERE {filter} GROUP BY v_minute ORDER BY v_minute",
            self.runs_table
        );
        self.fetch("the runs per minute", self.query(&sql)).await
    }

    /// Whether the payloads table has a skip index on `created_at` (minmax), without which each
    /// of a verify's slices reads whole monthly partitions of it.
    pub async fn payloads_time_index(&self) -> Result<Option<bool>, SinkError> {
        let Some(table) = &self.payloads_table else {
            return Ok(None);
        };
        let q = self
            .client
            .query(
                "SELECT count() FROM system.data_skipping_indices \
                 WHERE database = ? AND table = ? AND expr = 'created_at' AND type = 'minmax'",
            )
            .bind(&self.database)
            .bind(table);
        let found: Vec<u64> = self
            .fetch_catalog("the payloads table's indexes", q)
            .await?;
        Ok(Some(found.first().copied().unwrap_or(0) > 0))
    }

    /// Whether the runs table exists: the first question, so an unreachable server or a wrong
    /// database fails before the Postgres side is read.
    pub async fn runs_table_exists(&self) -> Result<bool, SinkError> {
        let found = super::catalog::read_table(
            &self.client,
            &self.database,
            &self.runs_table,
            self.timeout,
        )
        .await
        .map_err(failed(format!(
            "table {}.{}",
            self.database, self.runs_table
        )))?;
        Ok(found.is_some())
    }

    /// Rows ClickHouse read for this verify so far, as it reports them.
    pub fn rows_read(&self) -> u64 {
        self.rows_read.load(Ordering::Relaxed)
    }

    pub fn runs_table(&self) -> &str {
        &self.runs_table
    }

    pub fn payloads_table(&self) -> Option<&str> {
        self.payloads_table.as_deref()
    }

    fn query(&self, sql: &str) -> Query {
        let mut q = self
            .client
            .query(sql)
            .with_setting("wait_end_of_query", "1");
        for (k, v) in JSON_OUTPUT {
            q = q.with_setting(*k, *v);
        }
        q
    }

    /// Fetches every row of `query`, adding the rows ClickHouse read to the count.
    async fn fetch<T>(&self, what: &str, query: Query) -> Result<Vec<T>, SinkError>
    where
        T: clickhouse::RowOwned + clickhouse::RowRead,
    {
        let (rows, read) = self.fetch_counted(what, query).await?;
        self.rows_read.fetch_add(read, Ordering::Relaxed);
        Ok(rows)
    }

    /// Fetches every row of a question about the catalog (system tables: not counted as rows
    /// the verify read).
    async fn fetch_catalog<T>(&self, what: &str, query: Query) -> Result<Vec<T>, SinkError>
    where
        T: clickhouse::RowOwned + clickhouse::RowRead,
    {
        Ok(self.fetch_counted(what, query).await?.0)
    }

    async fn fetch_counted<T>(&self, what: &str, query: Query) -> Result<(Vec<T>, u64), SinkError>
    where
        T: clickhouse::RowOwned + clickhouse::RowRead,
    {
        let read = async {
            let mut cursor = query.fetch::<T>()?;
            let mut out = Vec::new();
            while let Some(row) = cursor.next().await? {
                out.push(row);
            }
            let read = cursor.summary().and_then(|s| s.read_rows()).unwrap_or(0);
            Ok((out, read))
        };
        answer("a verify read", self.timeout, read)
            .await
            .map_err(failed(what.to_string()))
    }

    /// `digest_sql` with its payload marker bound to the payloads table within the scope's
    /// window (a run without a payloads table never has one).
    fn with_payloads(&self, digest_sql: &str, scope: &Scope) -> String {
        let present = match &self.payloads_table {
            Some(table) => {
                let time = scope.time();
                let filter = if time.is_empty() {
                    String::new()
                } else {
                    format!(" WHERE {}", time.join(" AND "))
                };
                format!("run_id IN (SELECT run_id FROM `{table}`{filter})")
            }
            None => "0".into(),
        };
        digest_sql.replace(PAYLOAD_PRESENT, &present)
    }

    /// Per hash range (`range_sql`): the runs under `FINAL` in scope and the wrapping sum of
    /// their `digest_sql`.
    pub async fn range_sums(
        &self,
        scope: &Scope,
        range_sql: &str,
        digest_sql: &str,
    ) -> Result<Vec<RangeSum>, SinkError> {
        let sql = format!(
            "SELECT v_range, count(), sumWithOverflow(v_digest) FROM (\
               SELECT toUInt32({range_sql}) AS v_range, {digest} AS v_digest \
               FROM `{table}` FINAL WHERE {scope}\
             ) GROUP BY v_range ORDER BY v_range",
            digest = self.with_payloads(digest_sql, scope),
            table = self.runs_table,
            scope = scope.runs(),
        );
        self.fetch("the range sums", self.query(&sql)).await
    }

    /// `(run_id, digest)` of every run in scope whose range is one of `ranges`.
    pub async fn run_digests(
        &self,
        scope: &Scope,
        range_sql: &str,
        ranges: &[u32],
        digest_sql: &str,
    ) -> Result<Vec<(String, u64)>, SinkError> {
        let mut out = Vec::new();
        for part in ranges.chunks(IDS_PER_QUERY) {
            let list: Vec<String> = part.iter().map(u32::to_string).collect();
            let sql = format!(
                "SELECT run_id, {digest} FROM `{table}` FINAL \
                 WHERE {scope} AND {range_sql} IN ({list})",
                digest = self.with_payloads(digest_sql, scope),
                table = self.runs_table,
                scope = scope.runs(),
                list = list.join(", "),
            );
            out.extend(self.fetch("the run hashes", self.query(&sql)).await?);
        }
        Ok(out)
    }

    /// The rows of `ids` a reader sees (`FINAL`, tombstones hidden) in scope.
    pub async fn visible_rows(
        &self,
        scope: &Scope,
        ids: &[String],
    ) -> Result<Vec<RunRow>, SinkError> {
        let mut out = Vec::new();
        for part in ids.chunks(IDS_PER_QUERY) {
            let sql = format!(
                "SELECT ?fields FROM `{}` FINAL WHERE {} AND run_id IN ?",
                self.runs_table,
                scope.runs()
            );
            let q = self.query(&sql).bind(part);
            out.extend(self.fetch("the runs' rows", q).await?);
        }
        Ok(out)
    }

    /// The highest `_version` of each of `ids` in the window, tombstones included (without
    /// `FINAL`, which hides them): how recent ClickHouse's knowledge of the run is.
    pub async fn newest_versions(
        &self,
        scope: &Scope,
        ids: &[String],
    ) -> Result<Vec<(String, u64)>, SinkError> {
        let time = Scope {
            generations: None,
            ..scope.clone()
        };
        let mut out = Vec::new();
        for part in ids.chunks(IDS_PER_QUERY) {
            let sql = format!(
                "SELECT run_id, max(_version) FROM `{}` WHERE {} AND run_id IN ? GROUP BY run_id",
                self.runs_table,
                time.runs()
            );
            let q = self.query(&sql).bind(part);
            out.extend(self.fetch("the runs' versions", q).await?);
        }
        Ok(out)
    }

    /// Per sorting key of each of `ids` in the window, the newest row, tombstones included
    /// (without `FINAL`): a repair's row under that key is seen only if its version outranks it.
    pub async fn newest_by_key(
        &self,
        scope: &Scope,
        ids: &[String],
    ) -> Result<Vec<KeyVersion>, SinkError> {
        let time = Scope {
            generations: None,
            ..scope.clone()
        };
        let mut out = Vec::new();
        for part in ids.chunks(IDS_PER_QUERY) {
            let sql = format!(
                "SELECT run_id, organization_id, project_id, environment_id, created_at, \
                        max(_version) AS version, argMax(_is_deleted, _version) AS deleted \
                 FROM `{}` WHERE {} AND run_id IN ? \
                 GROUP BY run_id, organization_id, project_id, environment_id, created_at",
                self.runs_table,
                time.runs()
            );
            let q = self.query(&sql).bind(part);
            out.extend(self.fetch("the runs' newest rows per key", q).await?);
        }
        Ok(out)
    }

    /// Which of `ids` have a payload row within the scope's window (the payloads table is
    /// partitioned by `created_at` and ordered by run id).
    pub async fn payload_runs(
        &self,
        scope: &Scope,
        ids: &[String],
    ) -> Result<HashSet<String>, SinkError> {
        let Some(table) = &self.payloads_table else {
            return Ok(HashSet::new());
        };
        let mut filter = scope.time();
        filter.push("run_id IN ?".into());
        let mut out = HashSet::new();
        for part in ids.chunks(IDS_PER_QUERY) {
            let sql = format!(
                "SELECT DISTINCT run_id FROM `{table}` WHERE {}",
                filter.join(" AND ")
            );
            let q = self.query(&sql).bind(part);
            let found: Vec<String> = self.fetch("the payload rows", q).await?;
            out.extend(found);
        }
        Ok(out)
    }

    /// ClickHouse's own rendering of JSON texts as the runs table's `column` would store them
    /// (parsed with the insert settings, printed as the hash prints them). `Err` when ClickHouse
    /// refuses one of them.
    pub async fn render_json(
        &self,
        column: &str,
        texts: &[String],
    ) -> Result<Vec<String>, SinkError> {
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        let what = format!("column {column} of {}", self.runs_table);
        let ty: String = answer(
            "a column's type",
            self.timeout,
            self.client
                .query(
                    "SELECT type FROM system.columns WHERE database = ? AND table = ? AND name = ?",
                )
                .bind(&self.database)
                .bind(&self.runs_table)
                .bind(column)
                .fetch_one(),
        )
        .await
        .map_err(failed(what.clone()))?;
        let mut q = self
            .query("SELECT arrayMap(v_text -> toJSONString(CAST(v_text, ?)), ?)")
            .bind(ty)
            .bind(texts);
        for (k, v) in INSERT_SETTINGS {
            q = q.with_setting(*k, *v);
        }
        let rendered: Vec<Vec<String>> = self.fetch(&what, q).await?;
        Ok(rendered.into_iter().next().unwrap_or_default())
    }
}
