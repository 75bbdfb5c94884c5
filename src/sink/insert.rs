//! Inserting a sealed batch: runs first, then payloads, each retried with backoff, and a poison
//! row isolated instead of blocking or dropping its batch.
//!
//! Transient failures (network, timeouts, server overload, anything that is not about the data)
//! are retried with exponential backoff and jitter up to `insert_max_retries`; then the batch
//! fails, the pipeline restarts from the slot's acknowledged position, and nothing is lost.
//! ClickHouse refuses a whole INSERT when one row is bad, so a data error splits the batch in
//! halves until the bad rows are alone; each is retried with its JSON fields replaced by `{}`
//! one at a time, and a row ClickHouse still refuses is counted and logged with its run id.
//! No batch is ever retried forever for the same data.

use std::sync::Arc;
use std::time::{Duration, Instant};

use backon::{ExponentialBuilder, Retryable};
use clickhouse::RowOwned;

use super::client::{INSERT_SETTINGS, describe, exception_code};
use super::rowbinary::{self, EncodeRow};
use crate::config::Config;
use crate::health::Health;
use crate::metrics as m;
use crate::pipeline::sink::{Sink, SinkError, Written};
use crate::rows::{PayloadRow, RunRow};

/// ClickHouse exception codes that mean "this data cannot be inserted", as opposed to "this
/// attempt failed": parse errors, out-of-range values, type mismatches, a constraint or a
/// downstream materialized view refusing a row.
const DATA_ERRORS: &[u32] = &[
    6,   // CANNOT_PARSE_TEXT
    26,  // CANNOT_PARSE_QUOTED_STRING
    27,  // CANNOT_PARSE_INPUT_ASSERTION_FAILED
    38,  // CANNOT_PARSE_DATE
    41,  // CANNOT_PARSE_DATETIME
    53,  // TYPE_MISMATCH
    69,  // ARGUMENT_OUT_OF_BOUND
    70,  // CANNOT_CONVERT_TYPE
    72,  // CANNOT_PARSE_NUMBER
    117, // INCORRECT_DATA
    131, // TOO_LARGE_STRING_SIZE
    321, // VALUE_IS_OUT_OF_RANGE_OF_DATA_TYPE
    395, // FUNCTION_THROW_IF_VALUE_IS_NON_ZERO (a materialized view refusing a row)
    469, // VIOLATED_CONSTRAINT
];

/// A row the sink can insert and, when ClickHouse refuses it, neutralise field by field.
pub trait SinkRow: RowOwned + EncodeRow + Clone + Send + Sync + 'static {
    /// Replaces the `step`-th JSON field with `{}`; returns its column, or `None` when there is
    /// nothing left to neutralise.
    fn neutralise(&mut self, step: usize) -> Option<&'static str>;
    fn run_id(&self) -> &str;
}

impl SinkRow for RunRow {
    fn neutralise(&mut self, step: usize) -> Option<&'static str> {
        match step {
            0 => {
                self.output = "{}".into();
                Some("output")
            }
            1 => {
                self.error = "{}".into();
                self.error_fingerprint.clear();
                Some("error")
            }
            _ => None,
        }
    }

    fn run_id(&self) -> &str {
        &self.run_id
    }
}

impl SinkRow for PayloadRow {
    fn neutralise(&mut self, step: usize) -> Option<&'static str> {
        (step == 0).then(|| {
            self.payload = "{}".into();
            "payload"
        })
    }

    fn run_id(&self) -> &str {
        &self.run_id
    }
}

enum Attempt {
    /// ClickHouse refused the data.
    Data(String),
    /// Retries are used up on a failure that is not about the data.
    Exhausted(SinkError),
}

#[derive(Debug)]
struct InsertError {
    data: bool,
    text: String,
}

/// The ClickHouse implementation of the pipeline's [`Sink`].
pub struct ClickHouseSink {
    client: clickhouse::Client,
    runs_table: String,
    payloads_table: Option<String>,
    settings: Vec<(&'static str, &'static str)>,
    max_retries: u32,
    min_delay: Duration,
    max_delay: Duration,
    timeout: Duration,
    health: Arc<Health>,
    /// `--null-sink`: encode, then discard instead of sending.
    null: bool,
    /// `clickhouse.compression = "lz4"`.
    compress: bool,
    /// Encoding buffers, reused: a fresh multi-megabyte buffer per insert is fresh pages the
    /// kernel has to fault in and zero, which the drain's profile showed.
    buffers: std::sync::Mutex<Vec<Vec<u8>>>,
}

/// Uncompressed bytes per compressed block sent: the clickhouse crate's own chunk size.
const BLOCK: usize = 1 << 18;

impl Sink for ClickHouseSink {
    async fn write(&self, runs: &[RunRow], payloads: &[PayloadRow]) -> Result<Written, SinkError> {
        self.write_batch(runs, payloads).await
    }

    async fn visible_rows(&self, run_id: &str) -> Result<Vec<RunRow>, SinkError> {
        let query = self
            .client
            .query(&format!(
                "SELECT ?fields FROM {} FINAL WHERE run_id = ? AND _is_deleted = 0",
                self.runs_table
            ))
            .bind(run_id)
            .with_setting("output_format_binary_write_json_as_string", "1")
            .fetch_all::<RunRow>();
        super::catalog::answer("a run's rows", self.timeout, query)
            .await
            .map_err(|e| SinkError::Read {
                what: format!("run {run_id} from {}", self.runs_table),
                reason: e.reason,
            })
    }
}

impl ClickHouseSink {
    pub fn new(config: &Config, client: clickhouse::Client, health: Arc<Health>) -> ClickHouseSink {
        let ch = &config.clickhouse;
        let mut settings: Vec<(&str, &str)> = INSERT_SETTINGS.to_vec();
        // Synchronous by default; async inserts only with wait_for_async_insert, so a success
        // always means the rows are stored and the LSN may be acknowledged.
        if ch.async_insert {
            settings.extend([("async_insert", "1"), ("wait_for_async_insert", "1")]);
        } else {
            settings.push(("async_insert", "0"));
        }
        ClickHouseSink {
            client,
            runs_table: ch.runs_table.clone(),
            payloads_table: (!ch.payloads_table.is_empty()).then(|| ch.payloads_table.clone()),
            settings,
            max_retries: ch.insert_max_retries,
            min_delay: Duration::from_millis(ch.retry_min_delay_ms),
            max_delay: Duration::from_millis(ch.retry_max_delay_ms),
            timeout: Duration::from_millis(ch.request_timeout_ms),
            health,
            null: ch.null_sink,
            compress: ch.compression == crate::config::Compression::Lz4,
            buffers: std::sync::Mutex::new(Vec::new()),
        }
    }

    /// Inserts a batch. `Ok` means ClickHouse holds every row (or rejected ones were recorded).
    async fn write_batch(
        &self,
        runs: &[RunRow],
        payloads: &[PayloadRow],
    ) -> Result<Written, SinkError> {
        let started = Instant::now();
        let mut written = Written::default();
        let result = async {
            if !runs.is_empty() {
                let (ok, rejected) = self.insert_all(&self.runs_table, runs).await?;
                written.runs = ok;
                written.rejected += rejected;
            }
            if let Some(table) = &self.payloads_table
                && !payloads.is_empty()
            {
                let (ok, rejected) = self.insert_all(table, payloads).await?;
                written.payloads = ok;
                written.rejected += rejected;
            }
            Ok(written)
        }
        .await;
        metrics::histogram!(m::FLUSH_DURATION).record(started.elapsed().as_secs_f64());
        metrics::histogram!(m::BATCH_ROWS).record((runs.len() + payloads.len()) as f64);
        let label = if result.is_ok() { "ok" } else { "failed" };
        metrics::counter!(m::BATCHES, "result" => label).increment(1);
        if result.is_ok() {
            self.health.clickhouse_ok();
        }
        result
    }

    /// Inserts `rows`, isolating refused rows. Returns (rows stored, rows rejected).
    async fn insert_all<T: SinkRow>(
        &self,
        table: &str,
        rows: &[T],
    ) -> Result<(usize, usize), SinkError> {
        match self.insert_with_retry(table, rows).await {
            Ok(()) => {
                metrics::counter!(m::ROWS_INSERTED, "table" => table.to_string())
                    .increment(rows.len() as u64);
                Ok((rows.len(), 0))
            }
            Err(Attempt::Exhausted(e)) => Err(e),
            Err(Attempt::Data(reason)) => self.isolate(table, rows, reason).await,
        }
    }

    async fn isolate<T: SinkRow>(
        &self,
        table: &str,
        rows: &[T],
        reason: String,
    ) -> Result<(usize, usize), SinkError> {
        tracing::warn!(
            table,
            rows = rows.len(),
            error = %reason,
            "ClickHouse refused the batch's data; isolating the rows it refuses"
        );
        let (mut stored, mut rejected) = (0, 0);
        // Ranges known to contain a refused row; split until each is one row.
        let mut suspects = vec![(0..rows.len(), reason)];
        while let Some((range, reason)) = suspects.pop() {
            if range.len() == 1 {
                if self
                    .salvage(table, rows[range.start].clone(), reason)
                    .await?
                {
                    stored += 1;
                } else {
                    rejected += 1;
                }
                continue;
            }
            let mid = range.start + range.len() / 2;
            for half in [range.start..mid, mid..range.end] {
                match self.insert_with_retry(table, &rows[half.clone()]).await {
                    Ok(()) => {
                        metrics::counter!(m::ROWS_INSERTED, "table" => table.to_string())
                            .increment(half.len() as u64);
                        stored += half.len();
                    }
                    Err(Attempt::Data(reason)) => suspects.push((half, reason)),
                    Err(Attempt::Exhausted(e)) => return Err(e),
                }
            }
        }
        Ok((stored, rejected))
    }

    /// One refused row: neutralise its JSON fields one at a time until ClickHouse takes it.
    /// Returns false when it is refused even so (recorded as rejected).
    async fn salvage<T: SinkRow>(
        &self,
        table: &str,
        mut row: T,
        mut reason: String,
    ) -> Result<bool, SinkError> {
        let mut neutralised = Vec::new();
        let mut step = 0;
        while let Some(column) = row.neutralise(step) {
            step += 1;
            neutralised.push(column);
            match self
                .insert_with_retry(table, std::slice::from_ref(&row))
                .await
            {
                Ok(()) => {
                    for column in &neutralised {
                        metrics::counter!(m::FIELDS_NEUTRALISED, "table" => table.to_string(), "column" => *column)
                            .increment(1);
                    }
                    metrics::counter!(m::ROWS_INSERTED, "table" => table.to_string()).increment(1);
                    tracing::warn!(
                        table,
                        run_id = row.run_id(),
                        neutralised = ?neutralised,
                        error = %reason,
                        "stored a row with fields ClickHouse refused replaced by {{}}"
                    );
                    return Ok(true);
                }
                Err(Attempt::Data(r)) => reason = r,
                Err(Attempt::Exhausted(e)) => return Err(e),
            }
        }
        metrics::counter!(m::ROWS_REJECTED, "table" => table.to_string()).increment(1);
        tracing::error!(
            table,
            run_id = row.run_id(),
            error = %reason,
            "ClickHouse refused a row even with its JSON fields emptied; it is skipped"
        );
        Ok(false)
    }

    async fn insert_with_retry<T: SinkRow>(&self, table: &str, rows: &[T]) -> Result<(), Attempt> {
        let policy = ExponentialBuilder::default()
            .with_min_delay(self.min_delay)
            .with_max_delay(self.max_delay)
            .with_max_times(self.max_retries as usize)
            .with_jitter();
        let attempts = std::sync::atomic::AtomicU32::new(0);
        let result = (|| async {
            attempts.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            self.insert_once(table, rows).await
        })
        .retry(policy)
        .when(|e: &InsertError| !e.data)
        .notify(|e: &InsertError, delay: Duration| {
            metrics::counter!(m::INSERT_RETRIES, "table" => table.to_string()).increment(1);
            self.health.clickhouse_failed(&e.text);
            tracing::warn!(table, rows = rows.len(), error = %e.text, retry_in_ms = delay.as_millis() as u64, "insert failed; retrying");
        })
        .await;
        result.map_err(|e| {
            let kind = if e.data { "data" } else { "transient" };
            metrics::counter!(m::INSERT_ERRORS, "table" => table.to_string(), "kind" => kind)
                .increment(1);
            if e.data {
                Attempt::Data(e.text)
            } else {
                self.health.clickhouse_failed(&e.text);
                Attempt::Exhausted(SinkError::Insert {
                    table: table.to_string(),
                    attempts: attempts.load(std::sync::atomic::Ordering::Relaxed),
                    reason: e.text,
                })
            }
        })
    }

    /// Keeps an encoding buffer for a later insert; as many as can be in use at once (two tables
    /// per batch in flight) are worth keeping, more would only hold memory.
    fn recycle(&self, body: Vec<u8>) {
        let mut buffers = self.buffers.lock().expect("not poisoned");
        if buffers.len() < 4 {
            buffers.push(body);
        }
    }

    async fn insert_once<T: SinkRow>(&self, table: &str, rows: &[T]) -> Result<(), InsertError> {
        let mut body = self
            .buffers
            .lock()
            .expect("not poisoned")
            .pop()
            .unwrap_or_default();
        rowbinary::encode_all(rows, &mut body);
        if self.null {
            std::hint::black_box(&body);
            self.recycle(body);
            return Ok(());
        }
        let work = async {
            let mut insert = self.client.insert_formatted_with(format!(
                "INSERT INTO {table}({}) FORMAT RowBinary",
                T::columns()
            ));
            for (k, v) in &self.settings {
                insert = insert.with_setting(*k, *v);
            }
            for block in body.chunks(BLOCK) {
                if self.compress {
                    // Compressed straight from the buffer, without copying it first.
                    insert
                        .send_compressed(clickhouse::insert_formatted::CompressedData::new(
                            block,
                            clickhouse::Compression::Lz4,
                        )?)
                        .await?;
                } else {
                    insert.send(bytes::Bytes::copy_from_slice(block)).await?;
                }
            }
            insert.end().await
        };
        let result = tokio::time::timeout(self.timeout, work).await;
        self.recycle(body);
        match result {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(InsertError {
                data: exception_code(&e).is_some_and(|c| DATA_ERRORS.contains(&c)),
                text: describe(&e),
            }),
            Err(_) => Err(InsertError {
                data: false,
                text: format!("no answer within {} ms", self.timeout.as_millis()),
            }),
        }
    }
}
