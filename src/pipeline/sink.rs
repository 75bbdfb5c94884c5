//! The pipeline's seam to storage: [`Sink`], "store these rows durably", and the reads the
//! pipeline makes of what is stored.
//!
//! The pipeline owns this trait and `sink::insert::ClickHouseSink` implements it, so the data
//! flow's dependencies point one way (the sink knows the pipeline's contract, the pipeline knows
//! no ClickHouse). `testing::MemorySink` implements it in memory, with faults on demand, for the
//! loop's in-process tests.

use std::future::Future;

use crate::rows::{PayloadRow, RunRow};

/// What a write stored.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Written {
    pub runs: usize,
    pub payloads: usize,
    /// Rows the sink refused one by one (each logged and counted by the sink). They are not
    /// stored, and retrying them cannot help: the caller moves on.
    pub rejected: usize,
}

/// A sink gave up.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SinkError {
    /// An insert failed past its retries (an outage, a timeout, an overloaded server).
    #[error("insert into {table} failed {attempts} times; last error: {reason}")]
    Insert {
        table: String,
        attempts: u32,
        reason: String,
    },
    /// A read failed or did not answer in time.
    #[error("reading {what}: {reason}")]
    Read { what: String, reason: String },
    /// A one-shot command's write was not stored within its bound (an outage, a table-wide
    /// refusal); the daemon's sink never returns this.
    #[error(
        "gave up after {waited} without a write stored (clickhouse.give_up_after_ms); last error: {reason}"
    )]
    GaveUp { waited: String, reason: String },
}

/// Where committed rows are stored. The contract the streaming loop relies on:
///
/// - **Success means durable.** `write` returns `Ok` only once every row of `runs` and
///   `payloads` is stored, except the rows counted in [`Written::rejected`]: a partial refusal
///   is a success whose refused rows the sink isolated, recorded and gave up on. Only after `Ok`
///   may the positions of these rows be acknowledged to Postgres.
/// - **Failure promises nothing.** `Err` means any part of the write, all of it or none may be
///   stored. The caller must not acknowledge past it, and will write the same rows again later
///   (after a restart from the slot). Writing a row twice is harmless: rows carry their version,
///   and equal versions collapse.
/// - **Retries are the sink's.** Transient failures are retried inside `write`; `Err` is
///   returned only when the sink gave up. (The daemon's `ClickHouseSink` never gives up on an
///   insert: it waits out outages and table-wide refusals, so a write can take as long as they
///   last; the loop bounds only how long a shutdown waits for it. A one-shot command's gives up
///   after `clickhouse.give_up_after_ms`.)
/// - **Order.** Two writes in flight at once may land in either order; rows of one `write` land
///   runs first, then payloads. A caller that needs one write to land after another (parts of
///   one transaction that share a version) waits for the first to return.
pub trait Sink: Send + Sync + 'static {
    /// Stores `runs` (sorted by the runs table's ORDER BY) and `payloads`. Runs come boxed, as
    /// the batch collapsed them (`collapse::CollapsedRows`).
    fn write(
        &self,
        runs: &[Box<RunRow>],
        payloads: &[PayloadRow],
    ) -> impl Future<Output = Result<Written, SinkError>> + Send;

    /// The rows of the runs `run_ids` that a reader sees now (ClickHouse: under `FINAL`),
    /// tombstones excluded, in any order. Repairs tombstone those the stream cannot say a change
    /// removed. One call per batch of runs, answered within the sink's read timeout (an `Err`
    /// otherwise): the caller asks once for all the transactions a stream holds for it, not once
    /// per change. Called from a task of its own, beside the writes.
    fn visible_rows(
        &self,
        run_ids: &[String],
    ) -> impl Future<Output = Result<Vec<RunRow>, SinkError>> + Send;
}
