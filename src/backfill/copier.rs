//! Copying one chunk: COPY rows → `SourceRow` → the transform input path
//! (`pipeline::changes::add_row`, the same call a streamed INSERT makes) → a `Transaction`
//! committed at `L` → a `Batch` → the `Sink`. No second transform, no second insert path.
//!
//! Memory is bounded by bytes: rows are buffered until their COPY text reaches `max_bytes` (or
//! `batch.max_rows` rows), then written, and the COPY stream is not read while a write is in
//! progress (Postgres waits on the socket). A run with megabytes of output therefore costs its
//! megabytes once, not a row slot among thousands.
//!
//! A chunk is copied in pages, in key order ([`copy_chunk`]): each page through the snapshot its
//! connection holds then (`lease`), so no snapshot is held longer than `backfill.snapshot_max_s`
//! however long the chunk takes; a page cut by that bound is read again from the last row stored,
//! from a fresh snapshot.

use std::borrow::Cow;
use std::pin::pin;
use std::sync::Arc;
use std::time::Instant;

use futures_util::StreamExt;
use tokio_postgres::Client;

use super::BackfillError;
use super::checkpoint::ChunkDone;
use super::chunks::{self, Chunk, Window};
use super::lease::Lease;
use super::snapshot::Snapshot;
use crate::config::{Config, Source};
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
    /// The id of the last row added (reused: no allocation per row).
    last_id: String,
    /// Rows buffered now (read, not yet taken).
    pending: u64,
    /// The id of the last row taken: where a copy in key order goes on from.
    pub taken_through: Option<String>,
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
            last_id: String::new(),
            pending: 0,
            taken_through: None,
        }
    }

    /// The `L` rows are stamped with from now on; only between pages (nothing buffered).
    pub fn restamp(&mut self, lsn: u64) {
        debug_assert_eq!(self.pending, 0);
        self.lsn = lsn;
        self.txn = Transaction::new(0, lsn).shifted(self.shift);
    }

    pub fn lsn(&self) -> u64 {
        self.lsn
    }

    /// Drops the rows buffered (a page cut short: they are read again).
    pub fn discard(&mut self) {
        self.txn = Transaction::new(0, self.lsn).shifted(self.shift);
        self.rows_read -= self.pending;
        self.pending = 0;
        self.bytes = 0;
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
        self.last_id.clear();
        self.last_id.push_str(row.get(Col::Id).unwrap_or_default());
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
        self.pending += 1;
        self.bytes += line.len() + ROW_OVERHEAD;
        Ok(())
    }

    /// The rows so far, committed at `L`: every row's `_version` is
    /// `generation << 56 | (L + shift)`.
    pub fn take(&mut self) -> Result<Committed, BackfillError> {
        let fresh = Transaction::new(0, self.lsn).shifted(self.shift);
        let txn = std::mem::replace(&mut self.txn, fresh);
        self.bytes = 0;
        if self.pending > 0 {
            self.taken_through = Some(self.last_id.clone());
        }
        self.pending = 0;
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

/// Run ids one COPY of listed runs names (a statement of ~140 KB at most).
const IDS_PER_COPY: usize = 5000;

/// Copies every row of `ids` in `source`'s tables (every copy; only those in `window` when one
/// is given) from `snapshot`, stamped with its `L` (shifted) as a backfill stamps them, into
/// `consumer`; with `payloads`, their payload rows too. What a repair, a re-check and a
/// timeline rewrite read: a few runs, in the backfill's own transform path.
pub async fn copy_listed<C: Consumer + Send>(
    config: &Config,
    snapshot: &Snapshot,
    source: &Source,
    ids: &[String],
    window: Option<&Window>,
    payloads: bool,
    consumer: &mut C,
) -> Result<(), BackfillError> {
    let transform = TransformOptions {
        fingerprint_errors: config.transform.fingerprint_errors,
    };
    let limits = Limits {
        max_bytes: super::connection_bytes(config),
        max_rows: config.batch.max_rows,
    };
    for table in &source.tables {
        for part in ids.chunks(IDS_PER_COPY) {
            let binding = TableBinding::selected(&source.schema, table, source.generation(table));
            let mut adder = RowAdder::new(binding, &transform, payloads, payloads, snapshot.lsn)
                .with_shift(snapshot.shift);
            let sql = chunks::ids_copy_sql(&source.schema, table, part, window);
            copy_rows(
                snapshot.first(),
                &sql,
                &mut adder,
                limits,
                &|_| {},
                consumer,
            )
            .await?;
        }
    }
    Ok(())
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
    read_copy(client, sql, adder, limits, on_rows, consumer).await?;
    if adder.buffered() > 0 {
        consumer.consume(adder.take()?).await?;
    }
    Ok(())
}

/// Maps a COPY's error: a cancelled statement ([`BackfillError::Cancelled`]) apart.
pub fn copy_error(table: &str) -> impl Fn(tokio_postgres::Error) -> BackfillError + '_ {
    move |e| {
        if e.code() == Some(&tokio_postgres::error::SqlState::QUERY_CANCELED) {
            return BackfillError::Cancelled {
                what: format!("the COPY of {table}"),
            };
        }
        BackfillError::Postgres {
            what: format!("copying {table}"),
            reason: crate::pg::describe(&e),
        }
    }
}

/// Reads the COPY `sql` through `adder`, handing the committed rows to `consumer` whenever
/// `limits` is reached; what is left buffered at the end stays in `adder`. Returns the rows read.
pub async fn read_copy<C: Consumer + Send>(
    client: &Client,
    sql: &str,
    adder: &mut RowAdder<'_>,
    limits: Limits,
    on_rows: &(dyn Fn(u64) + Send + Sync),
    consumer: &mut C,
) -> Result<u64, BackfillError> {
    let table = adder.binding.table.to_string();
    let copy_failed = copy_error(&table);
    let mut stream = pin!(client.copy_out(sql).await.map_err(&copy_failed)?);
    let mut lines = Lines::default();
    let started = adder.rows_read;
    let mut reported = adder.rows_read;
    while let Some(data) = stream.next().await {
        let data = data.map_err(&copy_failed)?;
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
            table: table.clone(),
            reason: "the COPY stream ended inside a row".into(),
        });
    }
    on_rows(adder.rows_read - reported);
    Ok(adder.rows_read - started)
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

/// Copies `chunk` through `adder` into `sink`, in pages of at most `limits.max_rows` rows (and
/// about half of `limits.max_bytes`) in key order, each read whole through the snapshot `lease`
/// holds then (a fresh one, with its own `L`, once the one held has less than half the bound
/// left). A page is written while the next one is read; a write still going once that read is
/// done goes on while the snapshot idles, and ends the snapshot if it outlasts the bound
/// (`Lease::during`). No write happens inside a COPY's statement, so none holds a snapshot beyond
/// the bound. A page whose rows pass its bytes ends there (the rest of it is read by the next
/// page); a page Postgres cancels at the bound is read again from a fresh snapshot. `on_rows`
/// hears of rows as they are read (progress).
#[allow(clippy::too_many_arguments)]
pub async fn copy_chunk<S: Sink>(
    lease: &mut Lease,
    schema: &str,
    chunk: &Chunk,
    window: &Window,
    adder: &mut RowAdder<'_>,
    sink: &Arc<S>,
    limits: Limits,
    on_rows: &(dyn Fn(u64) + Send + Sync),
) -> Result<ChunkDone, BackfillError> {
    let started = Instant::now();
    let mut writer = SinkWriter::new(sink);
    let mut after = chunk.lo.clone();
    let (mut lowest, mut highest) = (u64::MAX, 0);
    let max_rows = limits.max_rows.max(1);
    // Two pages at once: one written, one read.
    let page_bytes = (limits.max_bytes / 2).max(1);
    let mut page_rows = max_rows.min(256);
    // The page read last, written while the next one is read.
    let mut unwritten: Option<Committed> = None;
    loop {
        let held = lease.ensure(lease.bound() / 2).await?;
        adder.restamp(held.lsn);
        adder.taken_through = None;
        lease.limit_statement().await?;
        let sql = chunks::page_sql(schema, chunk, window, after.as_deref(), page_rows);
        let previous = unwritten.take();
        let write = async {
            match previous {
                Some(rows) => writer.consume(rows).await,
                None => Ok(()),
            }
        };
        tokio::pin!(write);
        let mut written = false;
        let read = {
            let read = read_page(lease.client(), &sql, adder, page_bytes, on_rows);
            tokio::pin!(read);
            loop {
                tokio::select! {
                    r = &mut read => break r,
                    w = &mut write, if !written => {
                        w?;
                        written = true;
                    }
                }
            }
        };
        if !written {
            lease.during(write.as_mut()).await??;
        }
        match read {
            Ok(page) => {
                let bytes = adder.bytes;
                if adder.buffered() > 0 {
                    lowest = lowest.min(held.lsn);
                    highest = highest.max(held.lsn);
                    unwritten = Some(adder.take()?);
                }
                if let Some(id) = adder.taken_through.take() {
                    after = Some(id);
                }
                if !page.full && (page.rows as usize) < page_rows {
                    break;
                }
                // About `page_bytes` a page, by what this one's rows weighed.
                if page.rows > 0 {
                    let per_row = (bytes / page.rows as usize).max(1);
                    page_rows = (page_bytes / per_row).clamp(16, max_rows);
                }
            }
            Err(BackfillError::Cancelled { .. }) => {
                // The bound ended the snapshot mid-page: nothing of this page was written; it is
                // read again, in smaller pages, from a fresh snapshot.
                adder.discard();
                lease.release().await?;
                page_rows = (page_rows / 2).max(1);
                tracing::debug!(table = %chunk.table, chunk = chunk.index, page_rows, "a page outlasted the snapshot bound: going on from a fresh snapshot");
            }
            Err(e) => return Err(e),
        }
    }
    if let Some(rows) = unwritten.take() {
        lease.during(writer.consume(rows)).await??;
    }
    Ok(ChunkDone {
        lsn: if lowest == u64::MAX {
            adder.lsn()
        } else {
            lowest
        },
        lsn_highest: (highest > lowest && lowest != u64::MAX).then_some(highest),
        rows_read: adder.rows_read,
        rows_written: writer.rows_written,
        skipped: adder.skipped,
        rejected: writer.rejected,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// One page read.
struct Page {
    rows: u64,
    /// It stopped at `max_bytes` before its last row: more of the chunk may follow.
    full: bool,
}

/// Reads the COPY `sql` (one page) into `adder`, up to `max_bytes` of rows: past it the rest of
/// the page is left unread (the connection drops it; the next page starts after the last row
/// kept).
async fn read_page(
    client: &Client,
    sql: &str,
    adder: &mut RowAdder<'_>,
    max_bytes: usize,
    on_rows: &(dyn Fn(u64) + Send + Sync),
) -> Result<Page, BackfillError> {
    let table = adder.binding.table.to_string();
    let copy_failed = copy_error(&table);
    let mut stream = pin!(client.copy_out(sql).await.map_err(&copy_failed)?);
    let mut lines = Lines::default();
    let started = adder.rows_read;
    let mut full = false;
    while let Some(data) = stream.next().await {
        let data = data.map_err(&copy_failed)?;
        // A row a line: the bytes bound is checked between rows.
        let mut over = false;
        lines.feed(&data, |line| {
            if over {
                return Ok::<(), BackfillError>(());
            }
            adder.add_line(line)?;
            over = adder.bytes >= max_bytes;
            Ok(())
        })?;
        if over {
            full = true;
            break;
        }
    }
    if !full && lines.pending() > 0 {
        return Err(BackfillError::Copy {
            table: table.clone(),
            reason: "the COPY stream ended inside a row".into(),
        });
    }
    on_rows(adder.rows_read - started);
    Ok(Page {
        rows: adder.rows_read - started,
        full,
    })
}
