//! Copying one chunk: COPY rows → `SourceRow` → the transform input path
//! (`pipeline::changes::add_row`, the same call a streamed INSERT makes) → a `Transaction`
//! committed at `L` → a `Batch` → the `Sink`. No second transform, no second insert path.
//!
//! Memory is bounded by bytes: rows are buffered until their COPY text reaches `max_bytes` (or
//! `batch.max_rows` rows), then written, and the COPY stream is not read while a write is in
//! progress (Postgres waits on the socket). A run with megabytes of output therefore costs its
//! megabytes once, not a row slot among thousands.

use std::borrow::Cow;
use std::pin::pin;
use std::sync::Arc;
use std::time::Instant;

use futures_util::StreamExt;
use tokio_postgres::Client;

use super::BackfillError;
use super::checkpoint::ChunkDone;
use crate::pg::copy_text::{self, Lines};
use crate::pipeline::batch::Batch;
use crate::pipeline::changes::{self, Applied, Settings};
use crate::pipeline::meters::count_skips;
use crate::pipeline::sink::Sink;
use crate::pipeline::transaction::{Committed, Transaction};
use crate::rows::{Col, SourceRow};
use crate::source::relation::TableBinding;
use crate::transform::TransformOptions;

/// What a buffered row costs besides its text: a `RunRow` and its collapse slot.
const ROW_OVERHEAD: usize = 1024;

/// Rows of one table on their way into a transaction, with what they cost.
pub struct RowAdder<'s> {
    binding: TableBinding,
    settings: Settings<'s>,
    /// Payload rows too (`--payloads`).
    with_payload: bool,
    txn: Transaction,
    lsn: u64,
    /// Added to `lsn` in the versions (`Snapshot::shift`).
    shift: u64,
    pub bytes: usize,
    pub rows_read: u64,
    pub skipped: u64,
}

impl<'s> RowAdder<'s> {
    /// Rows of `binding`'s table, stamped at `lsn` when taken.
    pub fn new(
        binding: TableBinding,
        transform: &'s TransformOptions,
        payloads_table: bool,
        with_payload: bool,
        lsn: u64,
    ) -> RowAdder<'s> {
        RowAdder {
            binding,
            settings: Settings {
                transform,
                payloads: payloads_table,
            },
            with_payload,
            txn: Transaction::new(0, lsn),
            lsn,
            shift: 0,
            bytes: 0,
            rows_read: 0,
            skipped: 0,
        }
    }

    /// The same adder with its versions shifted by `shift`: `generation << 56 | (L + shift)`
    /// (the snapshot's [`Snapshot::shift`](super::Snapshot)).
    pub fn with_shift(mut self, shift: u64) -> Self {
        self.shift = shift;
        self.txn = Transaction::new(0, self.lsn).shifted(shift);
        self
    }

    /// One COPY row (without its `\n`).
    pub fn add_line(&mut self, line: &[u8]) -> Result<(), BackfillError> {
        // The decoded fields borrow from `line` (only escaped ones are copied).
        let mut fields: Vec<Option<Cow<'_, str>>> = Vec::with_capacity(Col::COUNT);
        copy_text::decode_row(line, Col::COUNT, &mut fields).map_err(|e| BackfillError::Copy {
            table: self.binding.table.to_string(),
            reason: e.to_string(),
        })?;
        let mut row = SourceRow::new();
        for (col, value) in Col::ALL.iter().zip(&fields) {
            row.set(*col, value.as_deref());
        }
        let mut applied = Applied::default();
        changes::add_row(
            &mut self.txn,
            &self.binding,
            &row,
            false,
            self.with_payload,
            &self.settings,
            &mut applied,
        )?;
        count_skips(&applied.skipped);
        self.skipped += applied.skipped.len() as u64;
        self.rows_read += 1;
        self.bytes += line.len() + ROW_OVERHEAD;
        Ok(())
    }

    /// The rows so far, committed at `L`: every row's `_version` is
    /// `generation << 56 | (L + shift)`.
    pub fn take(&mut self) -> Result<Committed, BackfillError> {
        let fresh = Transaction::new(0, self.lsn).shifted(self.shift);
        let txn = std::mem::replace(&mut self.txn, fresh);
        self.bytes = 0;
        txn.commit(self.lsn, 0)
            .map_err(|e| BackfillError::Request(e.to_string()))
    }

    pub fn buffered(&self) -> usize {
        self.txn.len()
    }
}

/// Limits of one copying connection.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_bytes: usize,
    pub max_rows: usize,
}

/// Where the committed rows of a COPY go: into the sink (a backfill, a repair), or into a
/// digest (a verify). Called with at most `Limits` worth of rows at a time; the COPY stream is not
/// read while it runs.
pub trait Consumer {
    fn consume(
        &mut self,
        rows: Committed,
    ) -> impl std::future::Future<Output = Result<(), BackfillError>> + Send;
}

/// Reads the COPY `sql` through `adder` (the transform input path) and hands the committed rows
/// to `consumer` whenever `limits` is reached and at the end; `on_rows` hears of rows as they are
/// read. Returns the rows read and skipped (the consumer counts what it did with them).
pub async fn copy_rows<C: Consumer + Send>(
    client: &Client,
    sql: &str,
    adder: &mut RowAdder<'_>,
    limits: Limits,
    on_rows: &(dyn Fn(u64) + Send + Sync),
    consumer: &mut C,
) -> Result<(), BackfillError> {
    let table = adder.binding.table.to_string();
    let copy_failed = |e: tokio_postgres::Error| BackfillError::Postgres {
        what: format!("copying {table}"),
        reason: crate::pg::describe(&e),
    };
    let mut stream = pin!(client.copy_out(sql).await.map_err(copy_failed)?);
    let mut lines = Lines::default();
    let mut reported = adder.rows_read;
    while let Some(data) = stream.next().await {
        let data = data.map_err(copy_failed)?;
        lines.feed(&data, |line| adder.add_line(line))?;
        if adder.bytes >= limits.max_bytes || adder.buffered() >= limits.max_rows {
            consumer.consume(adder.take()?).await?;
        }
        if adder.rows_read - reported >= 256 {
            on_rows(adder.rows_read - reported);
            reported = adder.rows_read;
        }
    }
    if lines.pending() > 0 {
        return Err(BackfillError::Copy {
            table,
            reason: "the COPY stream ended inside a row".into(),
        });
    }
    if adder.buffered() > 0 {
        consumer.consume(adder.take()?).await?;
    }
    on_rows(adder.rows_read - reported);
    Ok(())
}

/// Writes committed rows through a batch (collapsed and sorted as every batch is) into a sink.
pub struct SinkWriter<'a, S: Sink> {
    sink: &'a Arc<S>,
    batch: Batch,
    pub rows_written: u64,
    pub payloads_written: u64,
    pub rejected: u64,
}

impl<'a, S: Sink> SinkWriter<'a, S> {
    pub fn new(sink: &'a Arc<S>) -> SinkWriter<'a, S> {
        SinkWriter {
            sink,
            batch: Batch::default(),
            rows_written: 0,
            payloads_written: 0,
            rejected: 0,
        }
    }
}

impl<S: Sink> Consumer for SinkWriter<'_, S> {
    async fn consume(&mut self, rows: Committed) -> Result<(), BackfillError> {
        self.batch.add(0, rows, Instant::now());
        let sealed = self.batch.seal();
        let written = self.sink.write(&sealed.runs, &sealed.payloads).await?;
        self.rows_written += written.runs as u64;
        self.payloads_written += written.payloads as u64;
        self.rejected += written.rejected as u64;
        self.batch.recycle(sealed.runs);
        Ok(())
    }
}

/// Copies the chunk that `sql` selects through `adder` into `sink`; `on_rows` hears of rows as
/// they are read (progress).
pub async fn copy_chunk<S: Sink>(
    client: &Client,
    sql: &str,
    adder: &mut RowAdder<'_>,
    sink: &Arc<S>,
    limits: Limits,
    on_rows: &(dyn Fn(u64) + Send + Sync),
) -> Result<ChunkDone, BackfillError> {
    let started = Instant::now();
    let mut writer = SinkWriter::new(sink);
    copy_rows(client, sql, adder, limits, on_rows, &mut writer).await?;
    Ok(ChunkDone {
        lsn: adder.lsn,
        rows_read: adder.rows_read,
        rows_written: writer.rows_written,
        skipped: adder.skipped,
        rejected: writer.rejected,
        seconds: started.elapsed().as_secs_f64(),
    })
}
