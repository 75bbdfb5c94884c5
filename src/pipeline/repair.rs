//! Repairing changes that were written while a table could not be replicated completely.
//!
//! Logical decoding reads the catalog as it was when each change was made. Changes made while a
//! table's replica identity was DEFAULT (or while a required column was missing) therefore keep
//! arriving incomplete even after an operator fixed the table: a DELETE carries only the run id,
//! an UPDATE has no old row to take unchanged TOASTed values from. The pipeline stops on such
//! changes while the table is still broken ([`defect`]); once it is fixed, it replays them
//! through [`change`]:
//!
//! - a missing value comes from the run's current row in Postgres. The current row is newer than
//!   the change, but every later change is still ahead in the stream, so the final state is
//!   right. If the row is gone, a later DELETE in the stream supersedes the change, which is
//!   skipped.
//! - a DELETE, or an UPDATE whose old row the stream does not carry whole, may leave rows of
//!   the run in ClickHouse under a key the stream cannot name (a deleted run's, or the old key
//!   of a run whose organization, project, environment or createdAt changed). The run is marked
//!   for a lookup, and every row ClickHouse shows of it under a key the transaction holds no row
//!   for is tombstoned. A committed transaction is held for that (`pipeline::held`), with the
//!   transactions behind it, and one lookup, on a task of its own, answers all of them once
//!   everything before is stored: the other streams are read meanwhile. Only a transaction
//!   large enough to be spilled resolves its parts here ([`resolve`]), waiting for everything in
//!   flight.

use super::apply::SourceState;
use super::changes::ChangeError;
use super::control::Control;
use super::errors::{HardStop, PipelineError};
use super::meters::StreamMeters;
use super::sink::Sink;
use super::writer::{Acks, BatchWriter};
use crate::rows::{Col, SourceRow};
use crate::source::pgoutput::{Message, OldTupleKind, Tuple};
use crate::source::relation::{RelationError, TableBinding};

/// A Relation whose rows would be incomplete: a hard stop unless the table is complete again
/// (then the changes made meanwhile are repaired as they replay).
pub async fn defect(
    control: &impl Control,
    binding: &TableBinding,
    defect: RelationError,
) -> Result<(), PipelineError> {
    let fixed = control
        .table_complete(&binding.schema, &binding.name)
        .await
        .map_err(|e| PipelineError::Stream(e.to_string()))?;
    if !fixed {
        return Err(PipelineError::HardStop(HardStop::Change(defect.into())));
    }
    tracing::warn!(
        table = %binding.table,
        defect = %defect,
        "replaying changes made while the table could not be replicated completely; it is fixed now, \
         so missing values come from its current rows and deletes tombstone what ClickHouse shows"
    );
    Ok(())
}

/// The pieces of the loop a repair works with.
pub struct Repair<'a, C: Control> {
    pub state: &'a mut SourceState,
    pub control: &'a C,
}

impl<'a, C: Control> Repair<'a, C> {
    pub fn new(state: &'a mut SourceState, control: &'a C) -> Self {
        Repair { state, control }
    }

    /// A change of a table whose stream shape is incomplete.
    pub async fn change(
        &mut self,
        binding: &TableBinding,
        message: &Message<'_>,
    ) -> Result<(), PipelineError> {
        match message {
            Message::Insert(i) => {
                if let Some(values) = self.complete(binding, &i.new, None).await? {
                    self.add(binding, &values, true)?;
                }
            }
            Message::Update(u) => {
                let old_full = u
                    .old
                    .as_ref()
                    .filter(|o| o.kind == OldTupleKind::Full)
                    .map(|o| &o.tuple);
                // Without the full old row, the stream does not say whether the run's identity
                // (organization, project, environment, createdAt) changed: whatever ClickHouse
                // shows of the run under another key is looked up before the commit.
                if let Some(old) = &u.old
                    && let Some(old_id) = binding.run_id(&old.tuple)
                    && binding.run_id(&u.new) != Some(old_id)
                {
                    let old_id = old_id.to_string();
                    self.tombstone_run(binding, &old_id);
                }
                if let Some(values) = self.complete(binding, &u.new, old_full).await? {
                    self.add(binding, &values, false)?;
                    if let Some(id) = binding.run_id(&u.new) {
                        self.look_up_later(binding, id);
                    }
                }
            }
            Message::Delete(d) => {
                if let Some(id) = binding.run_id(&d.old.tuple).map(str::to_string) {
                    self.tombstone_run(binding, &id);
                }
            }
            _ => {}
        }
        if let Some(txn) = self.state.txn_mut() {
            txn.changes += 1;
        }
        Ok(())
    }

    /// Every value of a row whose stream shape is incomplete: what the tuples carry, the rest
    /// from the run's current Postgres row. `None` when the run is gone (a later change
    /// supersedes this one).
    async fn complete(
        &self,
        binding: &TableBinding,
        new: &Tuple<'_>,
        old: Option<&Tuple<'_>>,
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
        let current = self
            .control
            .current_values(&binding.schema, &binding.name, id, &unresolved)
            .await
            .map_err(|e| PipelineError::Stream(format!("run {id}: {e}")))?;
        let Some(current) = current else {
            return Ok(None);
        };
        for (col, value) in unresolved.iter().zip(current) {
            values[*col as usize] = value;
        }
        Ok(Some(values))
    }

    /// Adds a completed row to the open transaction, through the same transform as any change.
    fn add(
        &mut self,
        binding: &TableBinding,
        values: &[Option<String>],
        insert: bool,
    ) -> Result<(), PipelineError> {
        let mut row = SourceRow::new();
        for (col, value) in Col::ALL.iter().zip(values) {
            row.set(*col, value.as_deref());
        }
        self.state.add_completed(binding, &row, insert)
    }

    /// Tombstones the rows of run `id` this transaction holds now, and marks the run for a
    /// lookup of what the sink shows ([`resolve`]).
    fn tombstone_run(&mut self, binding: &TableBinding, id: &str) {
        let txn = self
            .state
            .txn_mut()
            .expect("a change is inside a transaction");
        for mut row in txn.visible_rows(id) {
            row._is_deleted = 1;
            txn.add_row(binding.generation, row);
        }
        txn.look_up_later(id, binding.generation);
    }

    /// Marks run `id` for a lookup when this transaction holds a row of it (the transform may
    /// have skipped it; then what ClickHouse shows stays as it is, as upstream leaves it).
    fn look_up_later(&mut self, binding: &TableBinding, id: &str) {
        let txn = self
            .state
            .txn_mut()
            .expect("a change is inside a transaction");
        if !txn.visible_rows(id).is_empty() {
            txn.look_up_later(id, binding.generation);
        }
    }
}

/// The lookups repaired changes of the open, spilled transaction asked for, done together:
/// once everything received before is stored, one read of the sink for all those runs, and a
/// tombstone for each row it shows under a key the transaction holds no row for. Called before
/// a spilled transaction's rows are handed over (a part, or the rest at its commit; the
/// stream's held transactions were settled before). Returns positions that became
/// acknowledgeable while it waited.
pub async fn resolve<S: Sink>(
    state: &mut SourceState,
    writer: &mut BatchWriter<S>,
    meters: &StreamMeters,
) -> Result<Acks, PipelineError> {
    let Some(lookups) = state
        .txn_mut()
        .map(|t| t.take_lookups())
        .filter(|l| !l.is_empty())
    else {
        return Ok(Acks::new());
    };
    let started = std::time::Instant::now();
    let acks = writer.flush_and_wait().await?;
    let ids: Vec<String> = lookups.keys().cloned().collect();
    let shown = writer.sink().visible_rows(&ids).await?;
    let txn = state.txn_mut().expect("checked above");
    let tombstoned = txn.tombstone_stale(&lookups, shown);
    meters.repair_lookup(ids.len(), tombstoned, started.elapsed());
    tracing::debug!(
        runs = ids.len(),
        tombstoned,
        elapsed_ms = started.elapsed().as_millis() as u64,
        "looked up the runs repaired changes may have left stale rows of"
    );
    Ok(acks)
}
