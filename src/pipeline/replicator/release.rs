//! The graceful end of one stream the daemon hands over to another instance: it is not read
//! any more, its open transaction is dropped (the next leader receives it again from the slot),
//! what it committed is written and acknowledged, and once its server was told, it is closed and
//! its session told `Ok`. The other streams are read meanwhile.
//!
//! Committed transactions held for repair lookups (`pipeline::held`) are committed too: their
//! lookups go on as for any stream (`lookups`), and the release waits for them, then for their
//! rows to be stored. A release that runs out of [`RELEASE_GRACE`] first leaves them unstored:
//! they were never in the batch, so the acknowledged position, which only ever covers what
//! ClickHouse stored, stays before them and the next leader receives them again from the slot.

use std::time::{Duration, Instant};

use pgwire_replication::Lsn;

use super::Replicator;
use crate::pipeline::attached::Attached;
use crate::pipeline::sink::Sink;
use crate::source::stream::EventStream;

/// How long a released stream may take to write and acknowledge what it received. Past it, the
/// stream is closed anyway: what is not stored stays in the slot for the next leader.
const RELEASE_GRACE: Duration = Duration::from_secs(10);

/// How often a release in progress checks whether the server was told the last position (sent
/// with the next standby status update).
pub(super) const RELEASE_POLL: Duration = Duration::from_millis(20);

/// Tokio's clock, the one the loop's timers run on (paused in the loop's tests).
fn now() -> Instant {
    tokio::time::Instant::now().into_std()
}

impl<S: Sink> Replicator<S> {
    /// Starts ending `id` gracefully, to hand it over: it is not read any more, its open
    /// transaction is dropped, and its committed rows are written now when an insert slot is
    /// free (else with the batch); its held transactions follow once looked up.
    /// [`Self::finish_releases`] closes it once they are all stored and acknowledged.
    pub(super) fn release<E: EventStream, C>(&mut self, streams: &mut [Attached<E, C>], id: u64) {
        let Some(stream) = streams.iter_mut().find(|s| s.id == id) else {
            return;
        };
        stream.releasing = Some(now() + RELEASE_GRACE);
        stream.behind = false;
        stream.state.abandon();
        stream.watch.abort();
        if self.writer.holds(id) && self.writer.has_free_slot() {
            self.writer.flush();
        }
        tracing::info!(stream = %stream.name, "releasing the stream: storing and acknowledging what it received");
    }

    /// Closes every released stream that holds no transaction for a lookup, whose rows are all
    /// stored and whose server was told the last acknowledged position (or whose
    /// [`RELEASE_GRACE`] is over), and tells its session.
    pub(super) async fn finish_releases<E: EventStream, C>(
        &mut self,
        streams: &mut Vec<Attached<E, C>>,
    ) {
        let now = now();
        let done: Vec<u64> = streams
            .iter()
            .filter(|s| {
                s.releasing.is_some_and(|deadline| {
                    let told = s.events.reported() >= self.writer.acknowledged(s.id);
                    (s.held.is_empty() && self.writer.settled(s.id) && told) || now >= deadline
                })
            })
            .map(|s| s.id)
            .collect();
        for id in done {
            let Some(i) = streams.iter().position(|s| s.id == id) else {
                continue;
            };
            let mut stream = streams.swap_remove(i);
            let target = self.writer.acknowledged(id);
            let complete = stream.held.is_empty()
                && self.writer.settled(id)
                && stream.events.reported() >= target;
            stream.events.close().await;
            self.writer.detach(id);
            if complete {
                tracing::info!(stream = %stream.name, acknowledged_lsn = %Lsn::from_u64(target), "stream released after storing and acknowledging what it received");
            } else {
                tracing::warn!(
                    stream = %stream.name,
                    acknowledged_lsn = %Lsn::from_u64(target),
                    held_transactions = stream.held.len(),
                    grace_s = RELEASE_GRACE.as_secs(),
                    "stream released with writes ClickHouse has not stored; they stay in the slot for the next leader"
                );
            }
            if let Some(ended) = stream.ended.take() {
                let _ = ended.send(Ok(()));
            }
        }
    }
}
