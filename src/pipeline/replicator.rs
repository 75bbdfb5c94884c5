//! The streaming loop of a leader: replication events in, batches out, acknowledgements back.
//!
//! One task reads the stream, decodes pgoutput, applies changes to the open transaction, moves
//! committed transactions into the batch, and seals the batch when it is full or old enough.
//! Sealed batches are inserted by up to `max_inflight` concurrent tasks. When the batch is full
//! and every insert slot is busy, the stream is not read (backpressure): pgwire-replication's
//! bounded channel fills, then the server waits, and memory stays bounded.
//!
//! Acknowledgement: the slot's confirmed position moves only to the end LSN of a committed
//! transaction whose rows, and all earlier transactions' rows, ClickHouse accepted (the
//! [`AckTracker`]), or to a keepalive's WAL position when nothing at all is pending.

use std::sync::Arc;
use std::time::{Duration, Instant};

use pgwire_replication::{Lsn, ReplicationClient, ReplicationEvent};
use tokio::sync::watch;
use tokio::task::JoinSet;

use super::ack::AckTracker;
use super::batch::{Batch, Sealed};
use super::changes::{self, ChangeError, Op, Settings};
use super::repair;
use super::transaction::Transaction;
use crate::config::Config;
use crate::leader::LeaderLock;
use crate::metrics as m;
use crate::sink::insert::{Sink, SinkError, Written};
use crate::source::pgoutput::{self, DecodeError, Message, OldTupleKind, Tuple};
use crate::source::relation::{RelationCache, RelationError, Replicated, TableBinding};
use crate::source::setup;
use crate::transform::{self, Col, RunRow, SourceRow, TransformError, TransformOptions};

/// Events handled in a row before the loop looks at timers, inserts and shutdown again.
const BURST: usize = 256;

/// The output of `future` if it is ready without waiting (mpsc `recv` is cancel-safe).
fn ready_now<F: std::future::Future>(future: F) -> Option<F::Output> {
    let mut future = std::pin::pin!(future);
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    match future.as_mut().poll(&mut cx) {
        std::task::Poll::Ready(output) => Some(output),
        std::task::Poll::Pending => None,
    }
}

/// Microseconds between the Unix epoch and Postgres' epoch (2000-01-01).
const PG_EPOCH_OFFSET_MICROS: i64 = 946_684_800_000_000;

/// Why streaming stopped.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// Replicating further would write wrong or incomplete rows: an operator must act.
    #[error("{0}")]
    HardStop(HardStop),
    #[error("replication stream: {0}")]
    Stream(String),
    #[error("ClickHouse: {0}")]
    Sink(#[from] SinkError),
    #[error("the leader lock's Postgres session was lost")]
    LockLost,
}

#[derive(Debug, thiserror::Error)]
pub enum HardStop {
    #[error(transparent)]
    Change(#[from] ChangeError),
    #[error("undecodable pgoutput message: {0}")]
    Decode(#[from] DecodeError),
    #[error(
        "replication slot {slot} was invalidated (wal_status = lost): Postgres removed WAL it still needed; \
         drop it (SELECT pg_drop_replication_slot('{slot}')) and the worker creates a new one; \
         then backfill the runs changed in the gap"
    )]
    SlotInvalidated { slot: String },
    #[error(
        "replication slot {slot} disappeared while the worker used it; changes since then are lost to it: \
         recreate it (or set postgres.recreate_lost_slot = true) and backfill the gap"
    )]
    SlotMissing { slot: String },
}

impl HardStop {
    /// A short label for the `reason` of the hard-stop gauge.
    pub fn kind(&self) -> &'static str {
        match self {
            HardStop::Change(ChangeError::Relation(RelationError::ReplicaIdentity { .. }))
            | HardStop::Change(ChangeError::KeyOnlyOldTuple { .. }) => "replica_identity",
            HardStop::Change(ChangeError::Relation(RelationError::MissingColumns { .. })) => {
                "missing_column"
            }
            HardStop::Change(ChangeError::Relation(RelationError::UnresolvedToast { .. })) => {
                "unresolved_toast"
            }
            HardStop::Change(_) => "bad_change",
            HardStop::Decode(_) => "decode",
            HardStop::SlotInvalidated { .. } => "slot_invalidated",
            HardStop::SlotMissing { .. } => "slot_missing",
        }
    }
}

impl From<RelationError> for PipelineError {
    fn from(e: RelationError) -> Self {
        ChangeError::from(e).into()
    }
}

impl From<ChangeError> for PipelineError {
    fn from(e: ChangeError) -> Self {
        PipelineError::HardStop(HardStop::Change(e))
    }
}

/// (ack sequence, commit times, the rows vector to reuse, the insert's outcome).
type FlushResult = (u64, Vec<i64>, Vec<RunRow>, Result<Written, SinkError>);

/// Metric handles resolved once. `metrics::counter!(name, labels)` hashes the name and labels and
/// looks them up on every call; at one call per change and three gauges per event, that showed
/// in a drain's profile.
struct Meters {
    transactions: metrics::Counter,
    received_lsn: metrics::Gauge,
    backpressure: metrics::Gauge,
    buffered_rows: metrics::Gauge,
    inflight_batches: metrics::Gauge,
    commit_latency: metrics::Histogram,
    /// Per table: the changes counters for insert, update, delete.
    changes: Vec<(Arc<str>, [metrics::Counter; 3])>,
}

impl Meters {
    fn new() -> Meters {
        Meters {
            transactions: metrics::counter!(m::TRANSACTIONS),
            received_lsn: metrics::gauge!(m::RECEIVED_LSN),
            backpressure: metrics::gauge!(m::BACKPRESSURE),
            buffered_rows: metrics::gauge!(m::BUFFERED_ROWS),
            inflight_batches: metrics::gauge!(m::INFLIGHT_BATCHES),
            commit_latency: metrics::histogram!(m::COMMIT_LATENCY),
            changes: Vec::new(),
        }
    }

    fn change(&mut self, table: &Arc<str>, op: Op) -> &metrics::Counter {
        let i = match self.changes.iter().position(|(t, _)| t == table) {
            Some(i) => i,
            None => {
                let counter = |op: Op| metrics::counter!(m::CHANGES, "table" => table.to_string(), "operation" => op.label());
                self.changes.push((
                    table.clone(),
                    [
                        counter(Op::Insert),
                        counter(Op::Update),
                        counter(Op::Delete),
                    ],
                ));
                self.changes.len() - 1
            }
        };
        &self.changes[i].1[op as usize]
    }
}

pub struct Replicator {
    config: Arc<Config>,
    replicated: Replicated,
    transform: TransformOptions,
    payloads: bool,
    relations: RelationCache,
    txn: Option<Transaction>,
    batch: Batch,
    acks: AckTracker,
    flushes: JoinSet<FlushResult>,
    sink: Arc<Sink>,
    meters: Meters,
}

impl Replicator {
    pub fn new(config: Arc<Config>, sink: Arc<Sink>) -> Replicator {
        let replicated = Replicated {
            schema: config.postgres.schema.clone(),
            tables: config
                .postgres
                .tables
                .iter()
                .map(|t| (t.clone(), config.generation(t)))
                .collect(),
        };
        Replicator {
            transform: TransformOptions {
                fingerprint_errors: config.transform.fingerprint_errors,
            },
            payloads: !config.clickhouse.payloads_table.is_empty(),
            replicated,
            relations: RelationCache::default(),
            txn: None,
            batch: Batch::default(),
            acks: AckTracker::new(0),
            flushes: JoinSet::new(),
            sink,
            config,
            meters: Meters::new(),
        }
    }

    /// Streams until shutdown (`Ok`) or an error. On shutdown everything received and committed
    /// is inserted and acknowledged before the stream is closed.
    pub async fn run(
        &mut self,
        client: &mut ReplicationClient,
        lock: &LeaderLock,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Result<(), PipelineError> {
        let interval = self.config.flush_interval();
        let max_rows = self.config.batch.max_rows;
        let max_inflight = self.config.batch.max_inflight;
        let mut checks = tokio::time::interval(Duration::from_millis(
            self.config.postgres.slot_poll_interval_ms,
        ));
        checks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let far = Instant::now() + Duration::from_secs(86_400 * 365);
        loop {
            if *shutdown.borrow() {
                return self.drain(client).await;
            }
            let slots_free = self.flushes.len() < max_inflight;
            let full = self.batch.len() >= max_rows;
            if full && slots_free {
                self.flush();
                continue;
            }
            // Backpressure: the batch is full and every insert slot is busy.
            let read = !full;
            self.meters.backpressure.set(if read { 0.0 } else { 1.0 });
            let deadline = self.batch.deadline(interval);
            tokio::select! {
                biased;
                _ = shutdown.changed() => {}
                Some(done) = self.flushes.join_next(), if !self.flushes.is_empty() => {
                    let done = done.map_err(|e| PipelineError::Stream(format!("insert task failed: {e}")))?;
                    self.flushed(done, client)?;
                }
                _ = tokio::time::sleep_until(deadline.unwrap_or(far).into()), if deadline.is_some() && slots_free => {
                    self.flush();
                }
                event = client.recv(), if read => {
                    let mut event = event;
                    let mut handled = 0;
                    loop {
                        match event {
                            Ok(Some(event)) => self.event(event, client, lock).await?,
                            Ok(None) => return Err(PipelineError::Stream("the server ended the stream".into())),
                            Err(e) => return Err(PipelineError::Stream(e.to_string())),
                        }
                        handled += 1;
                        // Events already received are handled here rather than through the select
                        // (its timer and wakers cost more than a small event, in the profile); a
                        // due flush, a finished insert or a shutdown waits at most BURST events.
                        // Once the reader task ended, recv awaits its exit status: that is
                        // left to the select, which does not drop it half-way.
                        if handled == BURST || self.batch.len() >= max_rows || !client.is_running() {
                            break;
                        }
                        match ready_now(client.recv()) {
                            Some(next) => event = next,
                            None => break,
                        }
                    }
                }
                _ = checks.tick() => self.check(lock).await?,
            }
            self.meters.buffered_rows.set(self.batch.len() as f64);
            self.meters.inflight_batches.set(self.flushes.len() as f64);
        }
    }

    async fn event(
        &mut self,
        event: ReplicationEvent,
        client: &ReplicationClient,
        lock: &LeaderLock,
    ) -> Result<(), PipelineError> {
        match event {
            ReplicationEvent::Begin { xid, final_lsn, .. } => {
                self.txn = Some(Transaction::new(xid, final_lsn.as_u64()));
            }
            ReplicationEvent::XLogData { data, .. } => {
                let message =
                    pgoutput::decode(&data).map_err(|e| PipelineError::HardStop(e.into()))?;
                self.message(message, client, lock).await?;
            }
            ReplicationEvent::Commit {
                end_lsn,
                commit_time_micros,
                ..
            } => {
                let Some(txn) = self.txn.take() else {
                    return Err(PipelineError::Stream("Commit without Begin".into()));
                };
                self.meters.transactions.increment(1);
                self.meters.received_lsn.set(m::lsn_value(end_lsn.as_u64()));
                if txn.is_spilled() {
                    // The rest of a spilled transaction shares its chunks' version: with equal
                    // versions ClickHouse keeps the row inserted last, so it goes in after them.
                    self.wait_for_inflight(client).await?;
                }
                let committed = txn.commit(end_lsn.as_u64(), commit_time_micros);
                if committed.is_empty() && self.batch.is_empty() {
                    if let Some(lsn) = self.acks.nothing_pending_until(end_lsn.as_u64()) {
                        acknowledge(client, lsn);
                    }
                } else {
                    if self.batch.is_empty() {
                        self.batch.reserve(self.config.batch.max_rows);
                    }
                    self.batch.add(committed, Instant::now());
                }
            }
            ReplicationEvent::KeepAlive { wal_end, .. } => {
                // Nothing received is unacknowledged: the server's position can be confirmed so
                // an idle slot (or one whose traffic is all other tables) does not retain WAL.
                if self.txn.is_none()
                    && self.batch.is_empty()
                    && let Some(lsn) = self.acks.nothing_pending_until(wal_end.as_u64())
                {
                    acknowledge(client, lsn);
                }
            }
            ReplicationEvent::Message { .. } | ReplicationEvent::StoppedAt { .. } => {}
        }
        Ok(())
    }

    async fn message(
        &mut self,
        message: Message<'_>,
        client: &ReplicationClient,
        lock: &LeaderLock,
    ) -> Result<(), PipelineError> {
        let (relation_id, op) = match &message {
            Message::Relation(rel) => return self.relation(rel, lock).await,
            Message::Insert(i) => (i.relation_id, Op::Insert),
            Message::Update(u) => (u.relation_id, Op::Update),
            Message::Delete(d) => (d.relation_id, Op::Delete),
            Message::Truncate(t) => {
                for oid in &t.relation_ids {
                    if let Ok(Some(binding)) = self.relations.get(*oid) {
                        metrics::counter!(m::TRUNCATES, "table" => binding.table.to_string())
                            .increment(1);
                        tracing::warn!(
                            table = %binding.table,
                            "TRUNCATE of a replicated table: not applied to ClickHouse (runs stay there); \
                             delete them in ClickHouse yourself if that was intended"
                        );
                    }
                }
                return Ok(());
            }
            _ => return Ok(()),
        };
        let binding = match self.relations.get(relation_id).map_err(ChangeError::from)? {
            Some(b) => b,
            None => return Ok(()),
        };
        if self.txn.is_none() {
            return Err(PipelineError::Stream(format!(
                "{} outside a transaction",
                op.label()
            )));
        }
        self.meters.change(&binding.table, op).increment(1);
        if binding.defect.is_some() {
            let binding = binding.clone();
            self.repair(binding, &message, client, lock).await?;
            return self.spill_if_large(client).await;
        }
        let settings = Settings {
            transform: &self.transform,
            payloads: self.payloads,
        };
        let txn = self.txn.as_mut().expect("checked above");
        let applied = match &message {
            Message::Insert(i) => changes::apply_insert(txn, binding, &i.new, &settings)?,
            Message::Update(u) => {
                changes::apply_update(txn, binding, u.old.as_ref(), &u.new, &settings)?
            }
            Message::Delete(d) => changes::apply_delete(txn, binding, &d.old, &settings)?,
            _ => unreachable!("only row changes get here"),
        };
        count_skips(&applied.skipped);
        self.spill_if_large(client).await
    }

    /// Bounds the memory of one transaction: past `max_rows` rows, the rows so far are inserted
    /// before the Commit arrives (see `pipeline::transaction`). Chunks of one transaction share a
    /// version, so each waits for everything in flight: ClickHouse keeps the row inserted last.
    async fn spill_if_large(&mut self, client: &ReplicationClient) -> Result<(), PipelineError> {
        if self
            .txn
            .as_ref()
            .is_none_or(|t| t.len() < self.config.batch.max_rows)
        {
            return Ok(());
        }
        self.wait_for_inflight(client).await?;
        let txn = self.txn.as_mut().expect("checked above");
        let (rows, mut payloads) = txn.spill();
        payloads.sort_by(|a, b| a.run_id.cmp(&b.run_id));
        tracing::debug!(
            xid = txn.xid,
            rows = rows.len(),
            "inserting part of a large transaction before its commit"
        );
        // Nothing is acknowledged for it: the position moves only at the Commit.
        let seq = self.acks.register(0);
        let sealed = Sealed {
            runs: rows.into_sorted(),
            payloads,
            end_lsn: 0,
            commit_times: Vec::new(),
        };
        let sink = self.sink.clone();
        self.flushes.spawn(async move {
            let result = sink.write(&sealed).await;
            (seq, Vec::new(), sealed.runs, result)
        });
        Ok(())
    }

    /// Seals what the batch holds and waits until everything is inserted.
    async fn flush_and_wait(&mut self, client: &ReplicationClient) -> Result<(), PipelineError> {
        if !self.batch.is_empty() {
            self.flush();
        }
        self.wait_for_inflight(client).await
    }

    /// Waits until every batch in flight is inserted (and acknowledged where it can be).
    async fn wait_for_inflight(&mut self, client: &ReplicationClient) -> Result<(), PipelineError> {
        while let Some(done) = self.flushes.join_next().await {
            let done =
                done.map_err(|e| PipelineError::Stream(format!("insert task failed: {e}")))?;
            self.flushed(done, client)?;
        }
        Ok(())
    }

    /// A Relation message. A replicated table whose rows would be incomplete is a hard stop
    /// while the table is still that way; once an operator fixed it, the changes made meanwhile
    /// (which the stream still describes with the old shape) are repaired as they replay.
    async fn relation(
        &mut self,
        rel: &pgoutput::Relation,
        lock: &LeaderLock,
    ) -> Result<(), PipelineError> {
        let Err(defect) = self.relations.update(rel, &self.replicated) else {
            return Ok(());
        };
        let hard_stop = || PipelineError::HardStop(ChangeError::from(defect.clone()).into());
        if matches!(&defect, RelationError::MissingColumns { columns, .. } if columns.split(", ").any(|c| c == "id"))
        {
            return Err(hard_stop());
        }
        let binding = self
            .relations
            .get(rel.id)
            .ok()
            .flatten()
            .expect("just recorded");
        let fixed = repair::table_is_fixed(&lock.client, binding)
            .await
            .map_err(PipelineError::Stream)?;
        if !fixed {
            return Err(hard_stop());
        }
        tracing::warn!(
            table = %binding.table,
            defect = %defect,
            "replaying changes made while the table could not be replicated completely; it is fixed now, \
             so missing values come from its current rows and deletes tombstone what ClickHouse shows"
        );
        Ok(())
    }

    /// A change of a table whose stream shape is incomplete (see `pipeline::repair`).
    async fn repair(
        &mut self,
        binding: TableBinding,
        message: &Message<'_>,
        client: &ReplicationClient,
        lock: &LeaderLock,
    ) -> Result<(), PipelineError> {
        let pg = &lock.client;
        match message {
            Message::Insert(i) => {
                if let Some(values) = complete(&binding, &i.new, None, pg).await? {
                    self.add_repaired(&binding, &values, false, true)?;
                }
            }
            Message::Update(u) => {
                let old_full = u
                    .old
                    .as_ref()
                    .filter(|o| o.kind == OldTupleKind::Full)
                    .map(|o| &o.tuple);
                let new_id = binding.run_id(&u.new).map(str::to_string);
                if let Some(old) = &u.old {
                    let old_id = binding.run_id(&old.tuple).map(str::to_string);
                    let identity_changed = match old_full {
                        Some(old) => {
                            let (before, _) = binding.row_partial(old, None)?;
                            let (after, _) = binding.row_partial(&u.new, Some(old))?;
                            changes::IDENTITY
                                .iter()
                                .any(|c| before.get(*c) != after.get(*c))
                        }
                        None => old_id != new_id,
                    };
                    if identity_changed && let Some(old_id) = old_id {
                        self.tombstone_run(&binding, &old_id, client).await?;
                    }
                }
                if let Some(values) = complete(&binding, &u.new, old_full, pg).await? {
                    self.add_repaired(&binding, &values, false, false)?;
                }
            }
            Message::Delete(d) => {
                if let Some(id) = binding.run_id(&d.old.tuple).map(str::to_string) {
                    self.tombstone_run(&binding, &id, client).await?;
                }
            }
            _ => {}
        }
        if let Some(txn) = self.txn.as_mut() {
            txn.changes += 1;
        }
        Ok(())
    }

    fn add_repaired(
        &mut self,
        binding: &TableBinding,
        values: &[Option<String>],
        deleted: bool,
        insert: bool,
    ) -> Result<(), PipelineError> {
        let mut row = SourceRow::new();
        for (col, value) in Col::ALL.iter().zip(values) {
            row.set(*col, value.as_deref());
        }
        let fail = |source| ChangeError::Transform {
            table: binding.table.to_string(),
            run_id: row.get(Col::Id).unwrap_or("?").to_string(),
            source,
        };
        let txn = self.txn.as_mut().expect("a change is inside a transaction");
        match transform::run_row(&row, deleted, &self.transform) {
            Ok(run) => {
                if insert && self.payloads {
                    txn.add_payload(transform::payload_row(&row).map_err(fail)?);
                }
                txn.add_row(binding.generation, run);
            }
            Err(TransformError::Skip(reason)) => count_skips(&[reason]),
            Err(e) => return Err(fail(e).into()),
        }
        Ok(())
    }

    /// Tombstones every row of run `id` that this transaction or ClickHouse shows, after
    /// everything received before it has been inserted.
    async fn tombstone_run(
        &mut self,
        binding: &TableBinding,
        id: &str,
        client: &ReplicationClient,
    ) -> Result<(), PipelineError> {
        let mut rows = self
            .txn
            .as_ref()
            .map(|t| t.visible_rows(id))
            .unwrap_or_default();
        self.flush_and_wait(client).await?;
        rows.extend(
            repair::tombstones(self.sink.client(), &self.config.clickhouse.runs_table, id)
                .await
                .map_err(|e| {
                    PipelineError::Stream(format!("reading run {id} from ClickHouse: {e}"))
                })?,
        );
        let txn = self.txn.as_mut().expect("a change is inside a transaction");
        for mut row in rows {
            row._is_deleted = 1;
            txn.add_row(binding.generation, row);
        }
        Ok(())
    }

    /// Seals the batch and starts inserting it.
    fn flush(&mut self) {
        let sealed: Sealed = self.batch.seal();
        let seq = self.acks.register(sealed.end_lsn);
        let sink = self.sink.clone();
        self.flushes.spawn(async move {
            let result = sink.write(&sealed).await;
            (seq, sealed.commit_times, sealed.runs, result)
        });
    }

    fn flushed(
        &mut self,
        (seq, commit_times, runs, result): FlushResult,
        client: &ReplicationClient,
    ) -> Result<(), PipelineError> {
        self.batch.recycle(runs);
        match result {
            Ok(_) => {
                let now_micros = unix_micros();
                for t in commit_times {
                    let latency = (now_micros - (t + PG_EPOCH_OFFSET_MICROS)).max(0) as f64 / 1e6;
                    self.meters.commit_latency.record(latency);
                }
                if let Some(lsn) = self.acks.complete(seq) {
                    acknowledge(client, lsn);
                }
                Ok(())
            }
            Err(e) => Err(PipelineError::Sink(e)),
        }
    }

    /// Periodic checks: the leader lock is still held, the slot is still valid; slot gauges.
    async fn check(&self, lock: &LeaderLock) -> Result<(), PipelineError> {
        if !lock.held().await {
            return Err(PipelineError::LockLost);
        }
        match setup::read_slot(&lock.client, &self.config).await {
            Ok(Some(reading)) => {
                setup::record_slot_metrics(&reading);
                if reading.wal_status.as_deref() == Some("lost") {
                    return Err(PipelineError::HardStop(HardStop::SlotInvalidated {
                        slot: self.config.postgres.slot.clone(),
                    }));
                }
            }
            Ok(None) => {
                return Err(PipelineError::HardStop(HardStop::SlotMissing {
                    slot: self.config.postgres.slot.clone(),
                }));
            }
            Err(e) => tracing::debug!(error = %e, "could not read the slot"),
        }
        Ok(())
    }

    /// Graceful stop: an open transaction is dropped (the server sends it again after a restart),
    /// everything committed is inserted and acknowledged, and the stream is closed once the server
    /// has been told.
    async fn drain(&mut self, client: &mut ReplicationClient) -> Result<(), PipelineError> {
        self.txn = None;
        self.flush_and_wait(client).await?;
        let target = self.acks.acked();
        // Standby status updates go out every status_interval; wait for the last one so the
        // slot's confirmed position is exactly what ClickHouse holds.
        let deadline = Instant::now() + self.config.status_interval() * 3 + Duration::from_secs(2);
        while client.metrics().last_applied_lsn().as_u64() < target && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let _ = client.shutdown().await;
        tracing::info!(acknowledged_lsn = %Lsn::from_u64(target), "stream closed after flushing and acknowledging");
        Ok(())
    }
}

fn count_skips(reasons: &[transform::SkipReason]) {
    for reason in reasons {
        metrics::counter!(m::ROWS_SKIPPED, "reason" => reason.label()).increment(1);
    }
}

/// Every value of a row whose stream shape is incomplete: what the tuples carry, the rest from
/// the run's current Postgres row. `None` when the run is gone (a later change supersedes this).
async fn complete(
    binding: &TableBinding,
    new: &Tuple<'_>,
    old: Option<&Tuple<'_>>,
    pg: &tokio_postgres::Client,
) -> Result<Option<Vec<Option<String>>>, PipelineError> {
    let (row, unresolved) = binding.row_partial(new, old).map_err(ChangeError::from)?;
    let mut values: Vec<Option<String>> = Col::ALL
        .iter()
        .map(|c| row.get(*c).map(str::to_string))
        .collect();
    if unresolved.is_empty() {
        return Ok(Some(values));
    }
    let Some(id) = row.get(Col::Id) else {
        return Ok(None);
    };
    let current = repair::current_values(pg, binding, id, &unresolved)
        .await
        .map_err(|e| PipelineError::Stream(format!("reading run {id} from Postgres: {e}")))?;
    let Some(current) = current else {
        return Ok(None);
    };
    for (col, value) in unresolved.iter().zip(current) {
        values[*col as usize] = value;
    }
    Ok(Some(values))
}

fn acknowledge(client: &ReplicationClient, lsn: u64) {
    client.update_applied_lsn(Lsn::from_u64(lsn));
    metrics::gauge!(m::ACKNOWLEDGED_LSN).set(m::lsn_value(lsn));
}

fn unix_micros() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0)
}
