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
//! - a DELETE (or a key change) tombstones the rows of that run that the sink shows, after
//!   everything before it has been stored.

use super::apply::SourceState;
use super::changes::{ChangeError, IDENTITY};
use super::control::Control;
use super::errors::{HardStop, PipelineError};
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
pub struct Repair<'a, S: Sink, C: Control> {
    /// The stream whose change this is.
    pub stream: u64,
    pub state: &'a mut SourceState,
    pub writer: &'a mut BatchWriter<S>,
    pub control: &'a C,
    /// Positions that became acknowledgeable while the repair waited for the writes before it.
    pub acks: Acks,
}

impl<'a, S: Sink, C: Control> Repair<'a, S, C> {
    pub fn new(
        stream: u64,
        state: &'a mut SourceState,
        writer: &'a mut BatchWriter<S>,
        control: &'a C,
    ) -> Self {
        Repair {
            stream,
            state,
            writer,
            control,
            acks: Acks::new(),
        }
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
                let new_id = binding.run_id(&u.new).map(str::to_string);
                if let Some(old) = &u.old {
                    let old_id = binding.run_id(&old.tuple).map(str::to_string);
                    let identity_changed = match old_full {
                        Some(old) => {
                            let (before, _) = binding.row_partial(old, None)?;
                            let (after, _) = binding.row_partial(&u.new, Some(old))?;
                            IDENTITY.iter().any(|c| before.get(*c) != after.get(*c))
                        }
                        None => old_id != new_id,
                    };
                    if identity_changed && let Some(old_id) = old_id {
                        self.tombstone_run(binding, &old_id).await?;
                    }
                }
                if let Some(values) = self.complete(binding, &u.new, old_full).await? {
                    self.add(binding, &values, false)?;
                }
            }
            Message::Delete(d) => {
                if let Some(id) = binding.run_id(&d.old.tuple).map(str::to_string) {
                    self.tombstone_run(binding, &id).await?;
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

    /// Tombstones every row of run `id` that this transaction or the sink shows, after
    /// everything received before it has been stored.
    async fn tombstone_run(
        &mut self,
        binding: &TableBinding,
        id: &str,
    ) -> Result<(), PipelineError> {
        let mut rows = self
            .state
            .txn()
            .map(|t| t.visible_rows(id))
            .unwrap_or_default();
        self.acks.extend(self.writer.flush_and_wait().await?);
        rows.extend(self.writer.sink().visible_rows(id).await?);
        let txn = self
            .state
            .txn_mut()
            .expect("a change is inside a transaction");
        for mut row in rows {
            row._is_deleted = 1;
            txn.add_row(binding.generation, row);
        }
        Ok(())
    }
}
