//! The streaming loop of a leader: replication events in, batches out, acknowledgements back.
//!
//! One task reads the stream ([`EventStream`]), applies each message to the source's state
//! ([`SourceState::apply`]), moves committed transactions into the [`BatchWriter`], and seals
//! the batch when it is full or old enough. Sealed batches are written by the [`Sink`] on up to
//! `max_inflight` tasks. When the batch is full and every insert slot is busy, the stream is not
//! read (backpressure): the reader's bounded channel fills, then the server waits, and memory
//! stays bounded.
//!
//! Acknowledgement: the slot's confirmed position moves only to the end LSN of a committed
//! transaction whose rows, and all earlier transactions' rows, the sink stored, or to a
//! keepalive's WAL position when nothing at all is pending.

use std::sync::Arc;
use std::time::{Duration, Instant};

use pgwire_replication::{Lsn, ReplicationEvent};
use tokio::sync::watch;

use super::apply::{Applied, SourceState};
use super::control::Control;
use super::errors::{HardStop, PipelineError};
use super::meters::Meters;
use super::repair::{self, Repair};
use super::sink::Sink;
use super::writer::BatchWriter;
use crate::config::Config;
use crate::metrics as m;
use crate::source::pgoutput;
use crate::source::stream::EventStream;

/// Events handled in a row before the loop looks at timers, inserts and shutdown again.
const BURST: usize = 256;

/// How long a shutdown waits for the last writes. A sink may wait out a ClickHouse outage
/// indefinitely; a stopping worker does not: what is not stored stays in the slot.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// The output of `future` if it is ready without waiting (mpsc `recv` is cancel-safe).
fn ready_now<F: std::future::Future>(future: F) -> Option<F::Output> {
    let mut future = std::pin::pin!(future);
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    match future.as_mut().poll(&mut cx) {
        std::task::Poll::Ready(output) => Some(output),
        std::task::Poll::Pending => None,
    }
}

pub struct Replicator<S: Sink> {
    config: Arc<Config>,
    source: SourceState,
    writer: BatchWriter<S>,
    meters: Meters,
}

impl<S: Sink> Replicator<S> {
    pub fn new(config: Arc<Config>, sink: Arc<S>) -> Replicator<S> {
        Replicator {
            source: SourceState::new(&config),
            writer: BatchWriter::new(sink, &config.batch),
            config,
            meters: Meters::default(),
        }
    }

    /// Streams until shutdown (`Ok`) or an error. On shutdown everything received and committed
    /// is stored and acknowledged before the stream is closed.
    pub async fn run(
        &mut self,
        stream: &mut impl EventStream,
        control: &impl Control,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Result<(), PipelineError> {
        let mut checks = tokio::time::interval(Duration::from_millis(
            self.config.postgres.slot_poll_interval_ms,
        ));
        checks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let far = Instant::now() + Duration::from_secs(86_400 * 365);
        loop {
            if *shutdown.borrow() {
                return self.drain(stream).await;
            }
            let slots_free = self.writer.has_free_slot();
            let full = self.writer.is_full();
            if full && slots_free {
                self.writer.flush();
                continue;
            }
            // Backpressure: the batch is full and every insert slot is busy.
            let read = !full;
            self.meters.backpressure.set(if read { 0.0 } else { 1.0 });
            let deadline = self.writer.deadline();
            tokio::select! {
                biased;
                _ = shutdown.changed() => {}
                Some(done) = self.writer.next_finished(), if self.writer.inflight() > 0 => {
                    if let Some(lsn) = self.writer.finished(done?)? {
                        acknowledge(stream, lsn);
                    }
                }
                _ = tokio::time::sleep_until(deadline.unwrap_or(far).into()), if deadline.is_some() && slots_free => {
                    self.writer.flush();
                }
                event = stream.recv(), if read => {
                    let mut event = event;
                    let mut handled = 0;
                    loop {
                        match event {
                            Ok(Some(event)) => self.event(event, stream, control).await?,
                            Ok(None) => return Err(PipelineError::Stream("the server ended the stream".into())),
                            Err(e) => return Err(PipelineError::Stream(e)),
                        }
                        handled += 1;
                        // Events already received are handled here rather than through the select
                        // (its timer and wakers cost more than a small event, in the profile); a
                        // due flush, a finished insert or a shutdown waits at most BURST events.
                        // Once the reader task ended, recv awaits its exit status: that is
                        // left to the select, which does not drop it half-way.
                        if handled == BURST || self.writer.is_full() || !stream.is_running() {
                            break;
                        }
                        match ready_now(stream.recv()) {
                            Some(next) => event = next,
                            None => break,
                        }
                    }
                }
                _ = checks.tick() => self.check(control).await?,
            }
            self.meters.buffered_rows.set(self.writer.buffered() as f64);
            self.meters
                .inflight_batches
                .set(self.writer.inflight() as f64);
        }
    }

    async fn event(
        &mut self,
        event: ReplicationEvent,
        stream: &impl EventStream,
        control: &impl Control,
    ) -> Result<(), PipelineError> {
        match event {
            ReplicationEvent::Begin { xid, final_lsn, .. } => {
                self.source.begin(xid, final_lsn.as_u64());
            }
            ReplicationEvent::XLogData { data, .. } => {
                let message = pgoutput::decode(&data)?;
                match self.source.apply(&message, &mut self.meters)? {
                    Applied::Done => {}
                    Applied::Defect(binding, defect) => {
                        repair::defect(control, &binding, defect).await?
                    }
                    Applied::Repair(binding) => {
                        Repair {
                            state: &mut self.source,
                            writer: &mut self.writer,
                            stream,
                            control,
                        }
                        .change(&binding, &message)
                        .await?
                    }
                }
                self.spill_if_large(stream).await?;
            }
            ReplicationEvent::Commit {
                end_lsn,
                commit_time_micros,
                ..
            } => {
                self.meters.transactions.increment(1);
                self.meters.received_lsn.set(m::lsn_value(end_lsn.as_u64()));
                if self.source.txn().is_some_and(|t| t.is_spilled()) {
                    // The rest of a spilled transaction shares its parts' version: with equal
                    // versions ClickHouse keeps the row inserted last, so it goes in after them.
                    self.wait_for_inflight(stream).await?;
                }
                let committed = self.source.commit(end_lsn.as_u64(), commit_time_micros)?;
                if let Some(lsn) = self.writer.add(committed) {
                    acknowledge(stream, lsn);
                }
            }
            ReplicationEvent::KeepAlive { wal_end, .. } => {
                if self.source.txn().is_none()
                    && let Some(lsn) = self.writer.idle_at(wal_end.as_u64())
                {
                    acknowledge(stream, lsn);
                }
            }
            ReplicationEvent::Message { .. } | ReplicationEvent::StoppedAt { .. } => {}
        }
        Ok(())
    }

    /// Bounds the memory of one transaction: past `max_rows` rows, the rows so far are inserted
    /// before the Commit arrives (see `pipeline::transaction`). Parts of one transaction share a
    /// version, so each waits for everything in flight: ClickHouse keeps the row inserted last.
    async fn spill_if_large(&mut self, stream: &impl EventStream) -> Result<(), PipelineError> {
        let max_rows = self.config.batch.max_rows;
        if self.source.txn().is_none_or(|t| t.len() < max_rows) {
            return Ok(());
        }
        self.wait_for_inflight(stream).await?;
        let txn = self.source.txn_mut().expect("checked above");
        let (rows, payloads) = txn.spill();
        tracing::debug!(
            xid = txn.xid,
            rows = rows.len(),
            "inserting part of a large transaction before its commit"
        );
        self.writer.spill(rows, payloads);
        Ok(())
    }

    /// Waits until every batch in flight is inserted (and acknowledged where it can be).
    async fn wait_for_inflight(&mut self, stream: &impl EventStream) -> Result<(), PipelineError> {
        if let Some(lsn) = self.writer.wait_for_inflight().await? {
            acknowledge(stream, lsn);
        }
        Ok(())
    }

    /// Periodic checks: the leader lock is still held, the slot is still valid; slot gauges.
    async fn check(&self, control: &impl Control) -> Result<(), PipelineError> {
        if !control.leader_alive().await {
            return Err(PipelineError::LockLost);
        }
        let slot = self.config.postgres.slot.clone();
        match control.slot().await {
            Ok(Some(reading)) => {
                m::record_slot(&reading);
                if reading.is_lost() {
                    return Err(PipelineError::HardStop(HardStop::SlotInvalidated { slot }));
                }
            }
            Ok(None) => return Err(PipelineError::HardStop(HardStop::SlotMissing { slot })),
            Err(e) => tracing::debug!(error = %e, "could not read the slot"),
        }
        Ok(())
    }

    /// Graceful stop: an open transaction is dropped (the server sends it again after a restart),
    /// everything committed is inserted and acknowledged, and the stream is closed once the server
    /// has been told.
    async fn drain(&mut self, stream: &mut impl EventStream) -> Result<(), PipelineError> {
        self.source.abandon();
        match tokio::time::timeout(SHUTDOWN_GRACE, self.writer.flush_and_wait()).await {
            Ok(acked) => {
                if let Some(lsn) = acked? {
                    acknowledge(stream, lsn);
                }
            }
            Err(_) => tracing::warn!(
                grace_s = SHUTDOWN_GRACE.as_secs(),
                "stopping with batches ClickHouse has not stored; they stay in the slot and are \
                 sent again at the next start"
            ),
        }
        let target = self.writer.acknowledged();
        // Standby status updates go out every status_interval; wait for the last one so the
        // slot's confirmed position is exactly what ClickHouse holds.
        let deadline = Instant::now() + self.config.status_interval() * 3 + Duration::from_secs(2);
        while stream.reported() < target && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        stream.close().await;
        tracing::info!(acknowledged_lsn = %Lsn::from_u64(target), "stream closed after flushing and acknowledging");
        Ok(())
    }
}

fn acknowledge(stream: &impl EventStream, lsn: u64) {
    stream.acknowledge(lsn);
    metrics::gauge!(m::ACKNOWLEDGED_LSN).set(m::lsn_value(lsn));
}
