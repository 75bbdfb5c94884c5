//! The streaming loop: replication events of every stream in, batches out, acknowledgements
//! back.
//!
//! The daemon starts a session per stream (a source, or a shard of one) and *attaches* it
//! ([`Attach`]): its events, its control connection, and a channel on which the loop reports how
//! the session ended. One task reads every attached stream, applies each message to that stream's
//! state ([`SourceState::apply`]), moves committed transactions into the shared [`BatchWriter`],
//! and seals the batch when it is full, old enough, or the streams caught up; the [`Sink`]
//! writes sealed batches on up to `max_inflight` tasks while the next batch fills. When the
//! batch is full and every insert slot is busy, or the batch and the inserts in flight hold
//! `batch.max_bytes`, no stream is read (backpressure): the readers' bounded channels fill,
//! then the servers wait, and memory stays bounded.
//!
//! **Caught up.** A batch need not wait out `flush_interval` when nothing more is coming: when
//! no stream has an event ready even after its reader task had a turn ([`caught_up`]), the
//! batch is sealed at once — at most one insert per `min_insert_interval`, so a trickle of
//! changes does not become an insert per transaction, and not while an insert is in flight, so
//! a slow ClickHouse gets larger inserts instead of a queue of small ones. A stream whose
//! walsender sends transactions committed longer ago than `flush_interval` is draining a
//! backlog, not keeping up: it never counts as caught up (a gap in its data is the walsender
//! decoding, not the end of it), so a backlog drains in full batches. A keepalive from the walsender (which it sends when
//! it has no more WAL to decode) marks its stream live again.
//!
//! A stream that fails (its connection, a hard stop, lost leadership, its slot gone) is
//! detached alone: the others stream on, and its session is restarted by the daemon from its
//! slot. Each stream's slot moves only to the end LSN of its own committed transaction whose
//! rows, and all its earlier transactions' rows, the sink stored, or to a keepalive's WAL
//! position when nothing of it is pending. Leadership and the slot are watched by a task per
//! stream, so the checks run on time however busy the loop is.
//!
//! **Release.** A stream the daemon hands over to another instance is ended gracefully on its
//! own (`replicator::release`): it is no longer read, its open transaction is dropped (the next
//! leader receives it again from the slot), what it committed is written and acknowledged, and
//! once the server was told, it is closed and its session told `Ok`. The others stream on.

use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant};

use pgwire_replication::{Lsn, ReplicationEvent};
use tokio::sync::{mpsc, watch};

use super::apply::{Applied, SourceState};
use super::attached::{Alarm, Attach, Attached, Ended, deliver, next_event, watch_stream};
use super::control::Control;
use super::errors::PipelineError;
use super::meters::{Meters, StreamMeters};
use super::repair::{self, Repair};
use super::sink::Sink;
use super::writer::{Acks, BatchWriter};
use crate::budget::Budget;
use crate::config::Config;
use crate::metrics as m;
use crate::source::pgoutput;
use crate::source::stream::EventStream;

mod lookups;
mod release;

use lookups::Lookup;
use release::RELEASE_POLL;

/// Events of one stream handled in a row before the loop looks at timers, inserts, other
/// streams and shutdown again.
const BURST: usize = 256;

/// How long a shutdown waits for the last writes. A sink may wait out a ClickHouse outage
/// indefinitely; a stopping worker does not: what is not stored stays in the slots.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Resolves at `at`, and then only once the replication readers had their turn. The loop polls
/// the streams before this future (a biased select), so when it resolves, no stream had an
/// event ready even after its reader read what its socket held: the walsender has nothing more
/// to send right now.
async fn caught_up(at: Instant) {
    tokio::time::sleep_until(at.into()).await;
    // Twice: the loop may be the runtime's `block_on` future, which is polled before the tasks
    // the I/O driver has just woken; after the second yield every reader whose socket had data
    // has run.
    tokio::task::yield_now().await;
    tokio::task::yield_now().await;
}

/// The output of `future` if it is ready without waiting (mpsc `recv` is cancel-safe).
fn ready_now<F: std::future::Future>(future: F) -> Option<F::Output> {
    let mut future = std::pin::pin!(future);
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    match future.as_mut().poll(&mut cx) {
        Poll::Ready(output) => Some(output),
        Poll::Pending => None,
    }
}

pub struct Replicator<S: Sink> {
    config: Arc<Config>,
    writer: BatchWriter<S>,
    meters: Meters,
    next_id: u64,
    /// A stream whose changes are sent this long after their commit is draining a backlog.
    behind_after_micros: i64,
}

impl<S: Sink> Replicator<S> {
    pub fn new(config: Arc<Config>, sink: Arc<S>) -> Replicator<S> {
        Replicator {
            writer: BatchWriter::new(sink, &config.batch, Budget::of(&config)),
            behind_after_micros: config.batch.flush_interval_ms.saturating_mul(1000) as i64,
            config,
            meters: Meters::default(),
            next_id: 0,
        }
    }

    /// Streams every attached stream until shutdown. On shutdown everything received and
    /// committed is stored and acknowledged (within [`SHUTDOWN_GRACE`]) before the streams are
    /// closed; each session's `ended` is told.
    pub async fn run<E: EventStream, C: Control>(
        &mut self,
        attach: &mut mpsc::Receiver<Attach<E, C>>,
        shutdown: &mut watch::Receiver<bool>,
    ) {
        let (alarms_tx, mut alarms) = mpsc::unbounded_channel::<(u64, Alarm)>();
        let (lookups_tx, mut lookups) = mpsc::unbounded_channel::<Lookup>();
        let mut streams: Vec<Attached<E, C>> = Vec::new();
        let mut turn = 0usize;
        let far = Instant::now() + Duration::from_secs(86_400 * 365);
        loop {
            if *shutdown.borrow() {
                return self.drain(streams).await;
            }
            let slots_free = self.writer.has_free_slot();
            let full = self.writer.is_full();
            if full && slots_free {
                self.writer.flush();
                continue;
            }
            // Backpressure: the batch is full and every insert slot is busy, or the batch and
            // the inserts in flight hold max_bytes.
            let pressed = full || self.writer.must_wait();
            let read = !pressed && !streams.is_empty();
            self.meters
                .backpressure
                .set(if pressed { 1.0 } else { 0.0 });
            let deadline = self.writer.deadline();
            let held_limit = self.writer.held_bytes();
            // Sealed early only while reading (a stream not read may well have more) and when
            // no stream is draining a backlog. (`early_flush_at` is `None` while an insert is in
            // flight, so a slot is free whenever it is `Some`.)
            let early = self
                .writer
                .early_flush_at()
                .filter(|_| !pressed && streams.iter().all(|s| !s.behind));
            let releasing = streams.iter().any(|s| s.releasing.is_some());
            tokio::select! {
                biased;
                _ = shutdown.changed() => {}
                Some((id, alarm)) = alarms.recv() => match alarm {
                    Alarm::Stop(error) => self.detach(&mut streams, id, Err(error)),
                    Alarm::Release => self.release(&mut streams, id),
                },
                Some(new) = attach.recv() => {
                    let stream = self.attach(new, &alarms_tx);
                    streams.push(stream);
                }
                Some(done) = self.writer.next_finished(), if self.writer.inflight() > 0 => {
                    match done.and_then(|d| self.writer.finished(d)) {
                        Ok(acks) => deliver(&mut streams, acks),
                        Err(e) => self.fail_all(&mut streams, e),
                    }
                }
                Some(lookup) = lookups.recv() => {
                    let id = lookup.stream;
                    match self.looked_up(&mut streams, lookup) {
                        Ok(acks) => deliver(&mut streams, acks),
                        Err(e) => self.detach(&mut streams, id, Err(e)),
                    }
                }
                _ = tokio::time::sleep_until(deadline.unwrap_or(far).into()), if deadline.is_some() && slots_free => {
                    self.writer.flush();
                }
                (i, event) = next_event(&mut streams, turn, held_limit), if read => {
                    turn = i + 1;
                    match self.burst(&mut streams[i], event).await {
                        Ok(acks) => deliver(&mut streams, acks),
                        Err(e @ PipelineError::Sink(_)) => self.fail_all(&mut streams, e),
                        Err(e) => {
                            let id = streams[i].id;
                            self.detach(&mut streams, id, Err(e));
                        }
                    }
                }
                // After the streams: it resolves only when none of them had an event ready.
                _ = caught_up(early.unwrap_or(far)), if early.is_some() => {
                    self.writer.flush();
                }
                _ = tokio::time::sleep(RELEASE_POLL), if releasing => {}
            }
            if releasing {
                self.finish_releases(&mut streams).await;
            }
            self.start_lookups(&mut streams, &lookups_tx);
            self.meters.buffered_rows.set(self.writer.buffered() as f64);
            self.meters
                .inflight_batches
                .set(self.writer.inflight() as f64);
        }
    }

    fn attach<E: EventStream, C: Control>(
        &mut self,
        new: Attach<E, C>,
        alarms: &mpsc::UnboundedSender<(u64, Alarm)>,
    ) -> Attached<E, C> {
        let id = self.next_id;
        self.next_id += 1;
        self.writer.attach(id);
        let every = Duration::from_millis(self.config.postgres.slot_poll_interval_ms);
        let watch = tokio::spawn(watch_stream(
            new.control.clone(),
            new.slot,
            new.name.clone(),
            every,
            id,
            new.release,
            alarms.clone(),
        ));
        tracing::info!(stream = %new.name, "streaming");
        let mut state = SourceState::new(&new.source, &self.config);
        state.set_versions(new.versions);
        Attached {
            id,
            state,
            meters: StreamMeters::new(&new.name),
            name: new.name,
            events: new.events,
            control: new.control,
            ended: Some(new.ended),
            watch,
            commit_time: 0,
            behind: false,
            health: new.health,
            repair: None,
            releasing: None,
            held: Default::default(),
        }
    }

    /// Ends one stream's session: nothing more is read from it or acknowledged to it.
    fn detach<E: EventStream, C>(
        &mut self,
        streams: &mut Vec<Attached<E, C>>,
        id: u64,
        end: Ended,
    ) {
        let Some(i) = streams.iter().position(|s| s.id == id) else {
            return;
        };
        let mut stream = streams.swap_remove(i);
        stream.watch.abort();
        stream.events.abort();
        self.writer.detach(id);
        if let Err(e) = &end {
            tracing::debug!(stream = %stream.name, error = %e, "stream detached");
        }
        if let Some(ended) = stream.ended.take() {
            let _ = ended.send(end);
        }
    }

    /// A write failed: nothing after it can be acknowledged to any stream, so every session
    /// restarts from its slot.
    fn fail_all<E: EventStream, C>(&mut self, streams: &mut Vec<Attached<E, C>>, e: PipelineError) {
        let text = e.to_string();
        let ids: Vec<u64> = streams.iter().map(|s| s.id).collect();
        for (n, id) in ids.into_iter().enumerate() {
            let end = if n == 0 {
                Err(match &e {
                    PipelineError::Sink(s) => PipelineError::Sink(s.clone()),
                    _ => PipelineError::Stream(text.clone()),
                })
            } else {
                Err(PipelineError::Stream(text.clone()))
            };
            self.detach(streams, id, end);
        }
        self.writer.reset();
    }

    /// One event of `stream`, then those already received after it (up to [`BURST`]).
    async fn burst<E: EventStream, C: Control>(
        &mut self,
        stream: &mut Attached<E, C>,
        event: Result<Option<ReplicationEvent>, String>,
    ) -> Result<Acks, PipelineError> {
        let mut acks = Acks::new();
        let mut event = event;
        let mut handled = 0;
        loop {
            match event {
                Ok(Some(event)) => acks.extend(self.event(stream, event).await?),
                Ok(None) => {
                    return Err(PipelineError::Stream("the server ended the stream".into()));
                }
                Err(e) => return Err(PipelineError::Stream(e)),
            }
            handled += 1;
            // Events already received are handled here rather than through the select (its
            // timer and wakers cost more than a small event, in the profile); a due flush, a
            // finished insert or a shutdown waits at most BURST events. Once the reader task
            // ended, recv awaits its exit status: that is left to the select, which does not
            // drop it half-way.
            if handled == BURST
                || self.writer.is_full()
                || self.writer.must_wait()
                || !stream.events.is_running()
            {
                return Ok(acks);
            }
            match ready_now(stream.events.recv()) {
                Some(next) => event = next,
                None => return Ok(acks),
            }
        }
    }

    async fn event<E: EventStream, C: Control>(
        &mut self,
        stream: &mut Attached<E, C>,
        event: ReplicationEvent,
    ) -> Result<Acks, PipelineError> {
        let id = stream.id;
        let mut acks = Acks::new();
        match event {
            ReplicationEvent::Begin {
                xid,
                final_lsn,
                commit_time_micros,
            } => {
                stream.state.begin(xid, final_lsn.as_u64());
                stream.commit_time = commit_time_micros;
            }
            ReplicationEvent::XLogData {
                data,
                server_time_micros,
                ..
            } => {
                stream.behind = server_time_micros.saturating_sub(stream.commit_time)
                    > self.behind_after_micros;
                let message = pgoutput::decode(&data)?;
                match stream.state.apply(&message, &mut stream.meters)? {
                    Applied::Done => {}
                    Applied::Defect(binding, defect) => {
                        repair::defect(&*stream.control, &binding, defect).await?
                    }
                    Applied::Repair(binding) => {
                        Repair::new(&mut stream.state, &*stream.control)
                            .change(&binding, &message)
                            .await?;
                        stream.repaired();
                    }
                }
                acks.extend(self.spill_if_large(stream).await?);
            }
            ReplicationEvent::Commit {
                end_lsn,
                commit_time_micros,
                ..
            } => {
                stream.meters.transactions.increment(1);
                stream
                    .meters
                    .received_lsn
                    .set(m::lsn_value(end_lsn.as_u64()));
                if stream.state.txn().is_some_and(|t| t.is_spilled()) {
                    // Its parts went out in order behind everything before; so does the rest
                    // (its version is above theirs anyway), its lookups resolved here.
                    acks.extend(self.settle_held(stream).await?);
                    acks.extend(
                        repair::resolve(&mut stream.state, &mut self.writer, &stream.meters)
                            .await?,
                    );
                    acks.extend(self.writer.wait_for_inflight().await?);
                }
                let lookups = stream
                    .state
                    .txn_mut()
                    .map(|t| t.take_lookups())
                    .unwrap_or_default();
                let committed = stream.state.commit(end_lsn.as_u64(), commit_time_micros)?;
                stream.repair_done_unless(true);
                if lookups.is_empty() && stream.held.is_empty() {
                    if let Some(lsn) = self.writer.add(id, committed) {
                        acks.push((id, lsn));
                    }
                } else {
                    // Held until its lookups are answered (`pipeline::held`), and with it
                    // every later transaction of the stream.
                    stream.held.push(committed, lookups);
                }
            }
            ReplicationEvent::KeepAlive { wal_end, .. } => {
                // The walsender sends a keepalive when it waits for more WAL (or to ask for a
                // reply): it has sent everything it had.
                stream.behind = false;
                if stream.state.txn().is_none() && stream.held.is_empty() {
                    stream.repair_done_unless(false);
                    if let Some(lsn) = self.writer.idle_at(id, wal_end.as_u64()) {
                        acks.push((id, lsn));
                    }
                }
            }
            ReplicationEvent::Message { .. } | ReplicationEvent::StoppedAt { .. } => {}
        }
        Ok(acks)
    }

    /// Bounds the memory of one transaction: past `max_rows` rows or a batch's share of
    /// `max_bytes`, the rows so far are inserted before the Commit arrives (see
    /// `pipeline::transaction`). Each later state of a row has a higher version than its earlier
    /// ones, whatever order the parts land in; each part also waits for everything in flight.
    async fn spill_if_large<E, C>(
        &mut self,
        stream: &mut Attached<E, C>,
    ) -> Result<Acks, PipelineError> {
        if stream
            .state
            .txn()
            .is_none_or(|t| !self.writer.should_spill(t))
        {
            return Ok(Acks::new());
        }
        let mut acks = self.settle_held(stream).await?;
        acks.extend(repair::resolve(&mut stream.state, &mut self.writer, &stream.meters).await?);
        acks.extend(self.writer.wait_for_inflight().await?);
        let txn = stream.state.txn_mut().expect("checked above");
        let (rows, payloads) = txn.spill();
        tracing::debug!(
            stream = %stream.name,
            xid = txn.xid,
            rows = rows.len(),
            "inserting part of a large transaction before its commit"
        );
        self.writer.spill(stream.id, rows, payloads);
        Ok(acks)
    }

    /// Graceful stop: open transactions are dropped (the servers send them again after a
    /// restart), everything committed is inserted and acknowledged, and each stream is closed
    /// once its server has been told.
    async fn drain<E: EventStream, C>(&mut self, mut streams: Vec<Attached<E, C>>) {
        for stream in &mut streams {
            stream.state.abandon();
            stream.watch.abort();
        }
        match tokio::time::timeout(SHUTDOWN_GRACE, self.writer.flush_and_wait()).await {
            Ok(Ok(acks)) => deliver(&mut streams, acks),
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "the last writes failed; they stay in the slots")
            }
            Err(_) => tracing::warn!(
                grace_s = SHUTDOWN_GRACE.as_secs(),
                "stopping with batches ClickHouse has not stored; they stay in the slots and are \
                 sent again at the next start"
            ),
        }
        // Standby status updates go out every status_interval; wait for the last one so each
        // slot's confirmed position is exactly what ClickHouse holds.
        let deadline = Instant::now() + self.config.status_interval() * 3 + Duration::from_secs(2);
        for stream in &mut streams {
            let target = self.writer.acknowledged(stream.id);
            while stream.events.reported() < target && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            stream.events.close().await;
            tracing::info!(stream = %stream.name, acknowledged_lsn = %Lsn::from_u64(target), "stream closed after flushing and acknowledging");
            if let Some(ended) = stream.ended.take() {
                let _ = ended.send(Ok(()));
            }
        }
    }
}
