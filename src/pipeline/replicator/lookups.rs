//! The loop's repair lookups (`pipeline::held`): started once a stream's held transactions can
//! be looked up, answered on a task of their own while the loop reads the other streams, and
//! handed to the batch in order.

use std::time::Instant;

use tokio::sync::mpsc;

use super::Replicator;
use crate::pipeline::attached::Attached;
use crate::pipeline::errors::PipelineError;
use crate::pipeline::held::Resolved;
use crate::pipeline::meters::StreamMeters;
use crate::pipeline::sink::{Sink, SinkError};
use crate::pipeline::writer::Acks;
use crate::rows::RunRow;

/// The answer to one stream's repair lookup, from the task that read it.
pub(super) struct Lookup {
    pub(super) stream: u64,
    round: u64,
    runs: usize,
    started: Instant,
    shown: Result<Vec<RunRow>, SinkError>,
}

impl<S: Sink> Replicator<S> {
    /// Starts the repair lookup of each stream holding transactions for one, once everything
    /// of it before them is stored (sealing the batch at once when it holds some of it). The
    /// lookup runs on a task of its own: the loop reads the other streams meanwhile.
    pub(super) fn start_lookups<E, C>(
        &mut self,
        streams: &mut [Attached<E, C>],
        answers: &mpsc::UnboundedSender<Lookup>,
    ) {
        for stream in streams.iter_mut() {
            if stream.held.is_empty() || stream.held.lookup_in_flight() {
                continue;
            }
            if !self.writer.settled(stream.id) {
                if self.writer.holds(stream.id) && self.writer.has_free_slot() {
                    self.writer.flush();
                }
                continue;
            }
            let (round, ids) = stream.held.start_lookup();
            let sink = self.writer.sink().clone();
            let answers = answers.clone();
            let id = stream.id;
            tokio::spawn(async move {
                let started = Instant::now();
                let shown = if ids.is_empty() {
                    Ok(Vec::new())
                } else {
                    sink.visible_rows(&ids).await
                };
                let _ = answers.send(Lookup {
                    stream: id,
                    round,
                    runs: ids.len(),
                    started,
                    shown,
                });
            });
        }
    }

    /// A stream's lookup answered: its held transactions are completed and handed to the batch
    /// in order. Returns positions that became acknowledgeable.
    pub(super) fn looked_up<E, C>(
        &mut self,
        streams: &mut [Attached<E, C>],
        lookup: Lookup,
    ) -> Result<Acks, PipelineError> {
        let Some(stream) = streams.iter_mut().find(|s| s.id == lookup.stream) else {
            return Ok(Acks::new());
        };
        let shown = match lookup.shown {
            Ok(shown) => shown,
            Err(e) => {
                stream.held.give_up_lookup();
                return Err(PipelineError::Sink(e));
            }
        };
        let Some(resolved) = stream.held.resolve(lookup.round, shown) else {
            return Ok(Acks::new());
        };
        self.hand_over(
            stream.id,
            &stream.meters,
            resolved,
            lookup.runs,
            lookup.started,
        )
    }

    /// Resolved held transactions to the batch, in order.
    fn hand_over(
        &mut self,
        id: u64,
        meters: &StreamMeters,
        resolved: Resolved,
        runs: usize,
        started: Instant,
    ) -> Result<Acks, PipelineError> {
        if runs > 0 {
            meters.repair_lookup(runs, resolved.tombstoned, started.elapsed());
            tracing::debug!(
                runs,
                transactions = resolved.committed.len(),
                tombstoned = resolved.tombstoned,
                elapsed_ms = started.elapsed().as_millis() as u64,
                "looked up the runs repaired changes may have left stale rows of"
            );
        }
        let mut acks = Acks::new();
        for committed in resolved.committed {
            if let Some(lsn) = self.writer.add(id, committed) {
                acks.push((id, lsn));
            }
        }
        Ok(acks)
    }

    /// Resolves a stream's held transactions here and now (before a part of a large
    /// transaction is written: it must come after them): waits for everything in flight, looks
    /// up, hands them over. A rare path; the usual one is [`Self::start_lookups`].
    pub(super) async fn settle_held<E, C>(
        &mut self,
        stream: &mut Attached<E, C>,
    ) -> Result<Acks, PipelineError> {
        let mut acks = Acks::new();
        while !stream.held.is_empty() {
            stream.held.give_up_lookup();
            acks.extend(self.writer.flush_and_wait().await?);
            let (round, ids) = stream.held.start_lookup();
            let started = Instant::now();
            let shown = if ids.is_empty() {
                Vec::new()
            } else {
                self.writer.sink().visible_rows(&ids).await?
            };
            if let Some(resolved) = stream.held.resolve(round, shown) {
                acks.extend(self.hand_over(
                    stream.id,
                    &stream.meters,
                    resolved,
                    ids.len(),
                    started,
                )?);
            }
        }
        Ok(acks)
    }
}
