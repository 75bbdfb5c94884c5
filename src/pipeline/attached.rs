//! One attached stream as the loop holds it: its events, its decoding state and meters, where
//! it reports how its session ended, the repair episode `/readyz` hears of, and the task that
//! watches its leadership and slot (and hears when the daemon hands the stream over to another
//! instance). The loop itself is in `replicator`.

use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant};

use futures_util::FutureExt;
use pgwire_replication::ReplicationEvent;
use tokio::sync::{mpsc, oneshot};

use super::apply::SourceState;
use super::control::Control;
use super::errors::{HardStop, PipelineError};
use super::held::Held;
use super::meters::StreamMeters;
use super::version_map::VersionMap;
use super::writer::Acks;
use crate::config::Source;
use crate::health::Health;
use crate::metrics as m;
use crate::source::stream::EventStream;

/// How often `/readyz` hears how far a repair got.
const REPAIR_REPORT_EVERY: Duration = Duration::from_secs(1);

/// How a stream's session ended, as the loop reports it to the daemon: `Ok` after a graceful
/// end (a shutdown, or a release the daemon asked for).
pub type Ended = Result<(), PipelineError>;

/// What the task watching a stream tells the loop.
#[derive(Debug)]
pub(super) enum Alarm {
    /// Streaming must stop: leadership lost, the slot gone or invalidated.
    Stop(PipelineError),
    /// The daemon hands the stream over: end it gracefully (`pipeline::replicator::release`).
    Release,
}

/// A started stream, handed to the loop.
pub struct Attach<E, C> {
    /// The stream's name: its metrics' `source` label.
    pub name: String,
    pub slot: String,
    pub source: Arc<Source>,
    pub events: E,
    pub control: Arc<C>,
    /// Told how the session ended: a graceful stop or why it failed.
    pub ended: oneshot::Sender<Ended>,
    /// Where the loop reports the stream's repair progress for `/readyz` (none in tests that
    /// do not look at it).
    pub health: Option<Arc<Health>>,
    /// Where the stream's LSNs sit in `_version` on the timeline it reads.
    pub versions: VersionMap,
    /// Resolves when the daemon wants the stream ended gracefully, to hand it over to another
    /// instance: what was received and committed is stored and acknowledged, then the stream
    /// is closed and `ended` told `Ok`.
    pub release: Option<oneshot::Receiver<()>>,
}

/// An attached stream.
pub(super) struct Attached<E, C> {
    pub(super) id: u64,
    pub(super) name: String,
    pub(super) events: E,
    pub(super) control: Arc<C>,
    pub(super) state: SourceState,
    pub(super) meters: StreamMeters,
    pub(super) ended: Option<oneshot::Sender<Ended>>,
    pub(super) watch: tokio::task::JoinHandle<()>,
    /// Commit time of the open transaction (µs since 2000-01-01, the server's clock).
    pub(super) commit_time: i64,
    /// The walsender is sending a backlog: its last change was sent more than `flush_interval`
    /// after its transaction committed (both times by the server's clock).
    pub(super) behind: bool,
    pub(super) health: Option<Arc<Health>>,
    /// Changes repaired since the stream started replaying an incomplete table's changes.
    pub(super) repair: Option<RepairEpisode>,
    /// Committed transactions waiting for their repair lookups (and those behind them).
    pub(super) held: Held,
    /// Being released (not read any more) until this deadline: see `pipeline::replicator::release`.
    pub(super) releasing: Option<Instant>,
}

/// A stretch of repaired changes, reported to `/readyz` about once a second.
pub(super) struct RepairEpisode {
    repaired: u64,
    /// When `/readyz` last heard; `None` before the first report.
    reported: Option<Instant>,
    /// A change of the open transaction was repaired.
    in_txn: bool,
}

impl<E, C> Attached<E, C> {
    /// One more change repaired.
    pub(super) fn repaired(&mut self) {
        self.meters.repaired.increment(1);
        let episode = self.repair.get_or_insert(RepairEpisode {
            repaired: 0,
            reported: None,
            in_txn: false,
        });
        episode.repaired += 1;
        episode.in_txn = true;
        if episode
            .reported
            .is_none_or(|t| t.elapsed() >= REPAIR_REPORT_EVERY)
        {
            episode.reported = Some(Instant::now());
            if let Some(h) = &self.health {
                h.set_repair(&self.name, Some(episode.repaired));
            }
        }
    }

    /// After a commit, or idle: the episode ends once every table's rows are complete again,
    /// or a transaction needed no repair, or the stream caught up.
    pub(super) fn repair_done_unless(&mut self, still: bool) {
        let Some(episode) = &mut self.repair else {
            return;
        };
        if still && std::mem::take(&mut episode.in_txn) && self.state.repairing() {
            if let Some(h) = &self.health {
                h.set_repair(&self.name, Some(episode.repaired));
            }
            return;
        }
        let repaired = episode.repaired;
        self.repair = None;
        tracing::info!(
            stream = %self.name,
            repaired,
            "repaired the changes made while a table could not be replicated completely"
        );
        if let Some(h) = &self.health {
            h.set_repair(&self.name, None);
        }
    }
}

/// The next event of any stream, the streams taken in turn from `start` so none starves; a
/// stream holding `held_limit` bytes of transactions waiting for repair lookups is not read
/// until they are answered, and a stream being released is not read again. Cancel-safe: each
/// `recv` is.
pub(super) async fn next_event<E: EventStream, C>(
    streams: &mut [Attached<E, C>],
    start: usize,
    held_limit: usize,
) -> (usize, Result<Option<ReplicationEvent>, String>) {
    std::future::poll_fn(|cx| {
        let n = streams.len();
        for k in 0..n {
            let i = (start + k) % n;
            // Not read: a stream being released, or one holding its share of transactions
            // waiting for lookups.
            if streams[i].releasing.is_some() || streams[i].held.bytes() >= held_limit {
                continue;
            }
            let recv = std::pin::pin!(streams[i].events.recv());
            if let Poll::Ready(event) = recv.poll(cx) {
                return Poll::Ready((i, event));
            }
        }
        Poll::Pending
    })
    .await
}

/// Tells each stream the positions it may now confirm.
pub(super) fn deliver<E: EventStream, C>(streams: &mut [Attached<E, C>], acks: Acks) {
    for (id, lsn) in acks {
        if let Some(stream) = streams.iter().find(|s| s.id == id) {
            stream.events.acknowledge(lsn);
            stream.meters.acknowledged_lsn.set(m::lsn_value(lsn));
        }
    }
}

/// Watches one stream's leadership and slot every `every`, on a task of its own so the checks
/// fire on time however busy the loop is; raises an alarm (and stops) when streaming must stop,
/// or when the daemon asks for the stream to be released.
pub(super) async fn watch_stream<C: Control>(
    control: Arc<C>,
    slot: String,
    name: String,
    every: Duration,
    id: u64,
    release: Option<oneshot::Receiver<()>>,
    alarms: mpsc::UnboundedSender<(u64, Alarm)>,
) {
    let stop = |e: PipelineError| (id, Alarm::Stop(e));
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // A dropped sender (a session that will never ask) is not a request; once answered, the
    // fused future stays pending.
    let release = async move {
        match release {
            Some(rx) => rx.await.is_ok(),
            None => false,
        }
    };
    let mut release = std::pin::pin!(release.fuse());
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            asked = &mut release => {
                if asked {
                    let _ = alarms.send((id, Alarm::Release));
                    return;
                }
                continue;
            }
        }
        if !control.leader_alive().await {
            let _ = alarms.send(stop(PipelineError::LockLost));
            return;
        }
        match control.slot().await {
            Ok(Some(reading)) => {
                m::record_slot(&name, &reading);
                if reading.is_lost() {
                    let _ = alarms.send(stop(PipelineError::HardStop(HardStop::SlotInvalidated {
                        slot,
                    })));
                    return;
                }
            }
            Ok(None) => {
                let _ = alarms.send(stop(PipelineError::HardStop(HardStop::SlotMissing {
                    slot,
                })));
                return;
            }
            Err(e) => tracing::debug!(stream = %name, error = %e, "could not read the slot"),
        }
    }
}
