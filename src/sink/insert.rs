//! [`ClickHouseSink`]: the pipeline's [`Sink`] over ClickHouse. A batch is inserted runs first,
//! then payloads; the policy for each insert is in `sink::attempts` (transient failures and
//! outages) and `sink::isolate` (refused data), and on a payload table that keeps copies
//! `sink::payload_once` leaves out the payloads of runs it already holds.
//!
//! The daemon's sink never gives up on an insert: an outage is waited out (`attempts`), a
//! systemic refusal is retried with backoff, and either keeps the batch — and every position
//! after it — unacknowledged while `/readyz` says why. The only rows it does not store are poison
//! rows it isolated, each logged with its run id and counted. A one-shot command's sink
//! ([`ClickHouseSink::giving_up_after`]: `backfill`, `verify --repair`) waits the same way, but
//! only for `clickhouse.give_up_after_ms` per write: then the write fails
//! ([`SinkError::GaveUp`]) and the command exits 2 instead of hanging through the outage.

use std::sync::Arc;
use std::time::{Duration, Instant};

use backon::{BackoffBuilder, ExponentialBuilder};

use super::attempts::{Attempts, Failure, InsertError};
use super::client::{INSERT_SETTINGS, describe, exception_code};
use super::isolate::{self, Isolated, Refused, TryInsert};
use super::lost_history::LostHistory;
use super::payload_once::PayloadOnce;
use super::row::SinkRow;
use super::rowbinary::{self, BLOCK};
use crate::config::Config;
use crate::health::Health;
use crate::metrics as m;
use crate::pipeline::sink::{Sink, SinkError, Written};
use crate::rows::{PayloadRow, RunRow};

/// The longest pause between two attempts of a batch ClickHouse refuses systemically.
const REFUSAL_MAX_DELAY: Duration = Duration::from_secs(30);

/// Run ids per lookup query of [`Sink::visible_rows`]: 1,000 ids of ~25 bytes stay far below
/// ClickHouse's `max_query_size` (256 KiB).
const LOOKUP_CHUNK: usize = 1000;

/// The ClickHouse implementation of the pipeline's [`Sink`].
pub struct ClickHouseSink {
    pub(super) client: clickhouse::Client,
    pub(super) runs_table: String,
    payloads_table: Option<String>,
    /// Keeps a replay from writing a run's payload row twice on a payload table that keeps
    /// copies (trigger.dev's plain MergeTree); see `sink::payload_once`.
    payload_once: Option<PayloadOnce>,
    settings: Vec<(&'static str, String)>,
    attempts: Attempts,
    pub(super) timeout: Duration,
    /// How long one write may wait for ClickHouse to store it (one-shot commands); `None`: as
    /// long as it takes (the daemon).
    give_up_after: Option<Duration>,
    health: Arc<Health>,
    /// `--null-sink`: encode, then discard instead of sending.
    null: bool,
    /// `clickhouse.compression = "lz4"`.
    compress: bool,
    /// Encoding buffers, reused: a fresh multi-megabyte buffer per insert is fresh pages the
    /// kernel has to fault in and zero, which the drain's profile showed.
    buffers: std::sync::Mutex<Vec<Vec<u8>>>,
    /// A runs row ClickHouse stored recently, not a failed run's (the error views upstream
    /// ships count failed runs on every insert): the canary of `sink::isolate`.
    canary: std::sync::Mutex<Option<RunRow>>,
    /// Versions of a timeline history the source's server lost at a failover: left out of every
    /// write (`sink::lost_history`).
    pub lost: LostHistory,
}

impl Sink for ClickHouseSink {
    async fn write(
        &self,
        runs: &[Box<RunRow>],
        payloads: &[PayloadRow],
    ) -> Result<Written, SinkError> {
        // Counted from here until it ends (`LostHistory::forget` waits for it): rows of a lost
        // timeline's band are left out, whichever path the write takes.
        let (_writing, kept) = self.lost.begin(runs);
        let runs = kept.as_deref().unwrap_or(runs);
        let Some(limit) = self.give_up_after else {
            return Ok(self.write_patiently(runs, payloads).await);
        };
        // Every path of a write (an outage, a refusal, the isolation of poison rows) is bounded
        // at once. An insert abandoned mid-flight may still be stored: the rows of a backfill or
        // a repair are the same rows with the same version whenever they land.
        match tokio::time::timeout(limit, self.write_patiently(runs, payloads)).await {
            Ok(written) => Ok(written),
            Err(_) => Err(SinkError::GaveUp {
                waited: crate::config::duration_text(limit),
                reason: self
                    .health
                    .clickhouse_problem()
                    .unwrap_or_else(|| "no answer".into()),
            }),
        }
    }

    async fn visible_rows(&self, run_ids: &[String]) -> Result<Vec<RunRow>, SinkError> {
        let mut out = Vec::new();
        // The IN list is sent in the query text: chunks keep it well under max_query_size.
        for ids in run_ids.chunks(LOOKUP_CHUNK) {
            let query = self
                .client
                .query(&format!(
                    "SELECT ?fields FROM {} FINAL WHERE run_id IN ? AND _is_deleted = 0",
                    self.runs_table
                ))
                .bind(ids)
                .with_setting("output_format_binary_write_json_as_string", "1")
                // The skip index on run_id (config/clickhouse/002), also under FINAL: run_id is
                // part of the sorting key, so every version of a row is in the granules it keeps.
                .with_setting("use_skip_indexes_if_final", "1")
                .fetch_all::<RunRow>();
            let rows = super::catalog::answer("runs' rows", self.timeout, query)
                .await
                .map_err(|e| SinkError::Read {
                    what: format!("{} runs from {}", ids.len(), self.runs_table),
                    reason: e.reason,
                })?;
            out.extend(rows);
        }
        Ok(out)
    }
}

/// A refusal isolation could not explain with poison rows.
struct Systemic {
    table: String,
    reason: String,
}

/// A systemic refusal, with the rows of the attempt that were stored before it was recognised.
struct Refusal {
    systemic: Systemic,
    landed: Vec<bool>,
}

/// The inserts of one table, as isolation sees them.
struct TableInserts<'a> {
    sink: &'a ClickHouseSink,
    table: &'a str,
}

impl<T: SinkRow> TryInsert<T> for TableInserts<'_> {
    async fn try_insert(&self, rows: &[T]) -> Result<(), Refused> {
        self.sink.insert(self.table, rows).await
    }

    async fn canary(&self) -> Option<bool> {
        if self.table != self.sink.runs_table {
            return None;
        }
        let cached = self.sink.canary.lock().expect("not poisoned").clone();
        let row = match cached {
            Some(row) => row,
            None => self.sink.stored_canary().await?,
        };
        let taken = self
            .sink
            .insert(self.table, std::slice::from_ref(&row))
            .await
            .is_ok();
        tracing::debug!(table = self.table, run_id = %row.run_id, taken, "canary");
        Some(taken)
    }
}

impl ClickHouseSink {
    pub fn new(config: &Config, client: clickhouse::Client, health: Arc<Health>) -> ClickHouseSink {
        let ch = &config.clickhouse;
        let mut settings: Vec<(&str, String)> = INSERT_SETTINGS
            .iter()
            .map(|(k, v)| (*k, v.to_string()))
            .collect();
        // Synchronous by default; async inserts only with wait_for_async_insert, so a success
        // always means the rows are stored and the LSN may be acknowledged.
        if ch.async_insert {
            settings.extend([
                ("async_insert", "1".into()),
                ("wait_for_async_insert", "1".into()),
            ]);
        } else {
            settings.push(("async_insert", "0".into()));
        }
        let timeout = Duration::from_millis(ch.request_timeout_ms);
        // The server gives up on an insert before the client does: an insert this worker stopped
        // waiting for can then never be stored later, behind the retry that replaced it (which
        // would let an older part of a transaction win a version tie).
        let server_limit = timeout
            .saturating_sub(Duration::from_secs(2))
            .max(Duration::from_millis(500));
        settings.push((
            "max_execution_time",
            format!("{:.3}", server_limit.as_secs_f64()),
        ));
        ClickHouseSink {
            attempts: Attempts::new(config, client.clone(), health.clone()),
            client,
            runs_table: ch.runs_table.clone(),
            payloads_table: (!ch.payloads_table.is_empty()).then(|| ch.payloads_table.clone()),
            payload_once: (!ch.payloads_table.is_empty())
                .then(|| PayloadOnce::new(&ch.payloads_table, timeout)),
            settings,
            timeout,
            give_up_after: None,
            health,
            null: ch.null_sink,
            compress: ch.compression == crate::config::Compression::Lz4,
            buffers: std::sync::Mutex::new(Vec::new()),
            canary: std::sync::Mutex::new(None),
            lost: LostHistory::default(),
        }
    }

    /// Stores the batch however long ClickHouse takes: outages are waited out, table-wide
    /// refusals retried (never storing again a row a refused attempt stored).
    async fn write_patiently(&self, runs: &[Box<RunRow>], payloads: &[PayloadRow]) -> Written {
        let started = Instant::now();
        let mut delays = ExponentialBuilder::default()
            .with_min_delay(Duration::from_secs(1))
            .with_max_delay(REFUSAL_MAX_DELAY)
            .with_jitter()
            .without_max_times()
            .build();
        let mut written = Written::default();
        // What each table still has to store: all of its rows at first; after a systemic
        // refusal, the rows isolation did not store. A retry never stores a row again (each
        // stored failed run is counted by upstream's error views, on every insert).
        let mut runs_left: Option<Vec<Box<RunRow>>> = None;
        let mut payloads_left: Option<Vec<PayloadRow>> = None;
        let written = loop {
            let Written {
                runs: stored_runs,
                payloads: stored_payloads,
                rejected,
            } = &mut written;
            let mut result = self
                .store(
                    &self.runs_table,
                    runs,
                    &mut runs_left,
                    stored_runs,
                    rejected,
                )
                .await;
            if result.is_ok()
                && let Some(table) = &self.payloads_table
            {
                result = self
                    .store(
                        table,
                        payloads,
                        &mut payloads_left,
                        stored_payloads,
                        rejected,
                    )
                    .await;
            }
            match result {
                Ok(()) => break written,
                Err(Systemic { table, reason }) => {
                    metrics::counter!(m::BATCHES, "result" => "refused").increment(1);
                    self.health.clickhouse_refusing(&table, &reason);
                    let delay = delays.next().unwrap_or(REFUSAL_MAX_DELAY);
                    tracing::error!(
                        table,
                        error = %reason,
                        retry_in_ms = delay.as_millis() as u64,
                        "ClickHouse refuses most rows of the batch: a table-wide refusal (a materialized \
                         view, a constraint, a column type?), not poison rows; nothing is dropped or \
                         acknowledged, the batch is retried until ClickHouse takes it"
                    );
                    tokio::time::sleep(delay).await;
                }
            }
        };
        self.health.clickhouse_accepting();
        metrics::histogram!(m::FLUSH_DURATION).record(started.elapsed().as_secs_f64());
        metrics::histogram!(m::BATCH_ROWS).record((runs.len() + payloads.len()) as f64);
        metrics::counter!(m::BATCHES, "result" => "ok").increment(1);
        written
    }

    /// The sink of a one-shot command (`backfill`, `verify --repair`): a write ClickHouse has not
    /// stored after `limit` fails with [`SinkError::GaveUp`] instead of waiting on.
    pub fn giving_up_after(mut self, limit: Duration) -> ClickHouseSink {
        self.give_up_after = Some(limit);
        self.attempts.give_up_after = Some(limit);
        self
    }

    /// A runs row ClickHouse already holds, as a reader sees it, for a canary when this process
    /// stored none yet (its first batch is the refused one).
    async fn stored_canary(&self) -> Option<RunRow> {
        let query = self
            .client
            .query(&format!(
                "SELECT ?fields FROM {} FINAL WHERE error_fingerprint = '' LIMIT 1",
                self.runs_table
            ))
            .with_setting("output_format_binary_write_json_as_string", "1")
            .fetch_optional::<RunRow>();
        super::catalog::answer("a canary row", self.timeout, query)
            .await
            .ok()
            .flatten()
    }

    /// One attempt at a table's rows still to store (`left`, all of `all` while `None`): all
    /// stored or isolated (`left` becomes empty), or a systemic refusal (`left` keeps the rows
    /// not stored). `stored` and `rejected` count the rows as they go.
    async fn store<T: SinkRow>(
        &self,
        table: &str,
        all: &[T],
        left: &mut Option<Vec<T>>,
        stored: &mut usize,
        rejected: &mut usize,
    ) -> Result<(), Systemic> {
        let rows = left.as_deref().unwrap_or(all);
        if rows.is_empty() {
            *left = Some(Vec::new());
            return Ok(());
        }
        match self.insert_all(table, rows).await {
            Ok((ok, lost)) => {
                *stored += ok;
                *rejected += lost;
                *left = Some(Vec::new());
                Ok(())
            }
            Err(Refusal { systemic, landed }) => {
                let landed_rows = landed.iter().filter(|l| **l).count();
                *stored += landed_rows;
                if landed_rows > 0 {
                    tracing::info!(
                        table,
                        stored = landed_rows,
                        "rows stored before the refusal was found systemic are not sent again"
                    );
                }
                *left = Some(
                    rows.iter()
                        .zip(&landed)
                        .filter(|(_, l)| !**l)
                        .map(|(r, _)| r.clone())
                        .collect(),
                );
                Err(systemic)
            }
        }
    }

    /// Inserts `rows`, isolating refused rows. Returns (rows stored, rows rejected).
    async fn insert_all<T: SinkRow>(
        &self,
        table: &str,
        rows: &[T],
    ) -> Result<(usize, usize), Refusal> {
        let refused = match self.insert(table, rows).await {
            Ok(()) => {
                metrics::counter!(m::ROWS_INSERTED, "table" => table.to_string())
                    .increment(rows.len() as u64);
                return Ok((rows.len(), 0));
            }
            Err(refused) => refused,
        };
        tracing::warn!(
            table,
            rows = rows.len(),
            error = %refused.text,
            "ClickHouse refused the batch's data; isolating the rows it refuses"
        );
        let inserts = TableInserts { sink: self, table };
        match isolate::isolate(&inserts, rows, refused, isolate::budget(rows.len())).await {
            Isolated::Systemic {
                reason,
                inserts,
                landed,
            } => {
                tracing::debug!(table, inserts, "isolation stopped: the refusal is systemic");
                let stored = landed.iter().filter(|l| **l).count();
                metrics::counter!(m::ROWS_INSERTED, "table" => table.to_string())
                    .increment(stored as u64);
                Err(Refusal {
                    systemic: Systemic {
                        table: table.to_string(),
                        reason,
                    },
                    landed,
                })
            }
            Isolated::Done {
                stored,
                salvaged,
                inserts,
            } => {
                let rejected = salvaged.iter().filter(|s| !s.stored).count();
                for s in &salvaged {
                    self.record_salvaged(table, s);
                }
                metrics::counter!(m::ROWS_INSERTED, "table" => table.to_string())
                    .increment(stored as u64);
                tracing::info!(table, stored, rejected, inserts, "isolation done");
                Ok((stored, rejected))
            }
        }
    }

    fn record_salvaged(&self, table: &str, s: &isolate::Salvaged) {
        if s.stored {
            for column in &s.neutralised {
                metrics::counter!(m::FIELDS_NEUTRALISED, "table" => table.to_string(), "column" => *column)
                    .increment(1);
            }
            tracing::warn!(
                table,
                run_id = %s.run_id,
                neutralised = ?s.neutralised,
                error = %s.reason,
                "stored a row with fields ClickHouse refused replaced by {{}}"
            );
        } else {
            metrics::counter!(m::ROWS_REJECTED, "table" => table.to_string()).increment(1);
            tracing::error!(
                table,
                run_id = %s.run_id,
                error = %s.reason,
                "ClickHouse refused a row even with its JSON fields emptied; it is skipped"
            );
        }
    }

    /// Inserts `rows` until ClickHouse stores them or refuses their data; transient failures
    /// and outages are waited out (`attempts`).
    async fn insert<T: SinkRow>(&self, table: &str, rows: &[T]) -> Result<(), Refused> {
        let outcome = self
            .attempts
            .until_answered(table, rows.len(), || self.insert_once(table, rows))
            .await;
        match outcome {
            Ok(()) => {
                if let Some(run) = rows
                    .iter()
                    .rev()
                    .filter_map(SinkRow::as_run)
                    .find(|r| r.error_fingerprint.is_empty())
                {
                    *self.canary.lock().expect("not poisoned") = Some(run.clone());
                }
                Ok(())
            }
            Err(Failure::Refused(text)) => {
                metrics::counter!(m::INSERT_ERRORS, "table" => table.to_string(), "kind" => "data")
                    .increment(1);
                Err(Refused { text })
            }
        }
    }

    /// Keeps an encoding buffer for a later insert; as many as can be in use at once (two tables
    /// per batch in flight) are worth keeping, more would only hold memory. One grown past a few
    /// blocks by a huge row is let go: kept, it would hold that memory for good.
    fn recycle(&self, body: Vec<u8>) {
        let mut buffers = self.buffers.lock().expect("not poisoned");
        if buffers.len() < 4 && body.capacity() <= 4 * BLOCK {
            buffers.push(body);
        }
    }

    pub(super) async fn insert_once<T: SinkRow>(
        &self,
        table: &str,
        rows: &[T],
    ) -> Result<(), InsertError> {
        let keep = match &self.payload_once {
            Some(once) if !self.null && self.payloads_table.as_deref() == Some(table) => once
                .unstored(&self.client, rows)
                .await
                .map_err(|e| InsertError {
                    data: false,
                    text: e.to_string(),
                })?,
            _ => None,
        };
        if keep.as_ref().is_some_and(Vec::is_empty) {
            return Ok(());
        }
        let mut body = self
            .buffers
            .lock()
            .expect("not poisoned")
            .pop()
            .unwrap_or_default();
        // Only the payloads not stored yet (upstream's plain MergeTree, `payload_once`): a copy,
        // on that rare path, so that the body is still encoded a block at a time.
        let kept: Vec<T>;
        let rows: &[T] = match &keep {
            Some(keep) => {
                kept = keep.iter().map(|&i| rows[i].clone()).collect();
                &kept
            }
            None => rows,
        };
        if self.null {
            let mut rest = rows;
            while !rest.is_empty() {
                rest = &rest[rowbinary::encode_some(rest, &mut body, BLOCK)..];
                std::hint::black_box(&body);
            }
            self.recycle(body);
            return Ok(());
        }
        let work = async {
            let mut insert = self.client.insert_formatted_with(format!(
                "INSERT INTO {table}({}) FORMAT RowBinary",
                T::columns()
            ));
            for (k, v) in &self.settings {
                insert = insert.with_setting(*k, v.as_str());
            }
            // Encoded a block at a time into one small buffer, each block sent before the next
            // is encoded: memory per insert is a block, not the batch (see `encode_some`).
            let mut rest = rows;
            while !rest.is_empty() {
                rest = &rest[rowbinary::encode_some(rest, &mut body, BLOCK)..];
                if self.compress {
                    // Compressed straight from the buffer, without copying it first.
                    insert
                        .send_compressed(clickhouse::insert_formatted::CompressedData::new(
                            &body,
                            clickhouse::Compression::Lz4,
                        )?)
                        .await?;
                } else {
                    insert.send(bytes::Bytes::copy_from_slice(&body)).await?;
                }
            }
            insert.end().await
        };
        let result = tokio::time::timeout(self.timeout, work).await;
        self.recycle(body);
        match result {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(InsertError {
                data: exception_code(&e).is_some_and(super::attempts::is_data_error),
                text: describe(&e),
            }),
            Err(_) => Err(InsertError {
                data: false,
                text: format!("no answer within {} ms", self.timeout.as_millis()),
            }),
        }
    }
}
