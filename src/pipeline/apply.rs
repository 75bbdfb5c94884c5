//! One source's decoding state and [`SourceState::apply`]: a decoded pgoutput message applied
//! to the relation cache or the open transaction. Synchronous and without I/O, so the streaming
//! loop and the hot-path benchmark run the very same code; what needs I/O (a repair, a check of
//! whether a broken table was fixed) is handed back to the caller as [`Applied`].

use super::changes::{self, ChangeError, Op, Settings};
use super::errors::PipelineError;
use super::meters::{StreamMeters, count_skips};
use super::transaction::{Committed, Transaction};
use super::version_map::VersionMap;
use crate::config::{Config, Source};
use crate::rows::SourceRow;
use crate::source::pgoutput::{Message, Relation};
use crate::source::relation::{RelationCache, RelationError, Replicated, TableBinding};
use crate::transform::TransformOptions;

/// What applying a message leaves for the caller to do.
#[derive(Debug)]
pub enum Applied {
    /// Nothing.
    Done,
    /// A change of a table whose stream shape is incomplete: it must be completed from
    /// Postgres and ClickHouse (`pipeline::repair`).
    Repair(TableBinding),
    /// A replicated table's Relation says its rows would be incomplete. A hard stop while the
    /// table is still that way; once it is fixed, its changes are repaired as they replay.
    Defect(TableBinding, RelationError),
}

/// The decoding state of one stream: its relations and its open transaction.
pub struct SourceState {
    replicated: Replicated,
    pub transform: TransformOptions,
    /// Payload rows are written (a payloads table is configured).
    pub payloads: bool,
    relations: RelationCache,
    txn: Option<Transaction>,
    /// Where this stream's LSNs sit in `_version` (shifted past a failover's lost history).
    versions: VersionMap,
}

impl SourceState {
    /// The state of a stream of `source`; `config` gives the transform's switches.
    pub fn new(source: &Source, config: &Config) -> SourceState {
        SourceState {
            replicated: Replicated {
                schema: source.schema.clone(),
                tables: source
                    .tables
                    .iter()
                    .map(|t| (t.clone(), source.generation(t)))
                    .collect(),
            },
            transform: TransformOptions {
                fingerprint_errors: config.transform.fingerprint_errors,
            },
            payloads: !config.clickhouse.payloads_table.is_empty(),
            relations: RelationCache::default(),
            txn: None,
            versions: VersionMap::default(),
        }
    }

    /// The version map of the timeline this stream reads (`daemon::timeline` decides it).
    pub fn set_versions(&mut self, versions: VersionMap) {
        self.versions = versions;
    }

    /// Changes of some table are being repaired: its Relation said its rows are incomplete.
    pub fn repairing(&self) -> bool {
        self.relations.has_defects()
    }

    /// Opens a transaction (a Begin).
    pub fn begin(&mut self, xid: u32, final_lsn: u64) {
        let shift = self.versions.shift_of_commit(final_lsn);
        self.txn = Some(Transaction::new(xid, final_lsn).shifted(shift));
    }

    /// The open transaction, if any.
    pub fn txn(&self) -> Option<&Transaction> {
        self.txn.as_ref()
    }

    pub fn txn_mut(&mut self) -> Option<&mut Transaction> {
        self.txn.as_mut()
    }

    /// Drops the open transaction (on shutdown: the server sends it again after a restart).
    pub fn abandon(&mut self) {
        self.txn = None;
    }

    /// Closes the open transaction (a Commit) and stamps its rows' versions: a hard stop when
    /// its LSN does not fit in `_version`.
    pub fn commit(&mut self, end_lsn: u64, time_micros: i64) -> Result<Committed, PipelineError> {
        let txn = self
            .txn
            .take()
            .ok_or_else(|| PipelineError::Stream("Commit without Begin".into()))?;
        Ok(txn.commit(end_lsn, time_micros)?)
    }

    /// Applies one decoded message.
    pub fn apply(
        &mut self,
        message: &Message<'_>,
        meters: &mut StreamMeters,
    ) -> Result<Applied, PipelineError> {
        let (relation_id, op) = match message {
            Message::Relation(rel) => return self.relation(rel),
            Message::Insert(i) => (i.relation_id, Op::Insert),
            Message::Update(u) => (u.relation_id, Op::Update),
            Message::Delete(d) => (d.relation_id, Op::Delete),
            Message::Truncate(t) => {
                for oid in &t.relation_ids {
                    if let Ok(Some(binding)) = self.relations.get(*oid) {
                        meters.truncate(&binding.name);
                        tracing::warn!(
                            table = %binding.table,
                            "TRUNCATE of a replicated table: not applied to ClickHouse (runs stay there); \
                             delete them in ClickHouse yourself if that was intended"
                        );
                    }
                }
                return Ok(Applied::Done);
            }
            _ => return Ok(Applied::Done),
        };
        let binding = match self.relations.get(relation_id).map_err(ChangeError::from)? {
            Some(b) => b,
            None => return Ok(Applied::Done),
        };
        let Some(txn) = self.txn.as_mut() else {
            return Err(PipelineError::Stream(format!(
                "{} outside a transaction",
                op.label()
            )));
        };
        // Before anything enters the transaction: its rows may be spilled with a version from
        // its commit LSN, which must fit (a hard stop otherwise).
        txn.check_lsn()?;
        meters.change(&binding.name, op).increment(1);
        if binding.defect.is_some() {
            return Ok(Applied::Repair(binding.clone()));
        }
        let settings = Settings {
            transform: &self.transform,
            payloads: self.payloads,
        };
        let applied = match message {
            Message::Insert(i) => changes::apply_insert(txn, binding, &i.new, &settings)?,
            Message::Update(u) => {
                changes::apply_update(txn, binding, u.old.as_ref(), &u.new, &settings)?
            }
            Message::Delete(d) => changes::apply_delete(txn, binding, &d.old, &settings)?,
            _ => unreachable!("only row changes get here"),
        };
        count_skips(&applied.skipped);
        Ok(Applied::Done)
    }

    /// Adds a row completed outside the stream (by a repair) to the open transaction, through
    /// the same transform as every streamed change.
    pub fn add_completed(
        &mut self,
        binding: &TableBinding,
        row: &SourceRow<'_>,
        with_payload: bool,
    ) -> Result<(), PipelineError> {
        let settings = Settings {
            transform: &self.transform,
            payloads: self.payloads,
        };
        let txn = self
            .txn
            .as_mut()
            .ok_or_else(|| PipelineError::Stream("a change outside a transaction".into()))?;
        let mut applied = changes::Applied::default();
        changes::add_row(
            txn,
            binding,
            row,
            false,
            with_payload,
            &settings,
            &mut applied,
        )?;
        count_skips(&applied.skipped);
        Ok(())
    }

    fn relation(&mut self, rel: &Relation) -> Result<Applied, PipelineError> {
        let Err(defect) = self.relations.update(rel, &self.replicated) else {
            return Ok(Applied::Done);
        };
        // Without the id nothing can be repaired, not even which run a change was about.
        if matches!(&defect, RelationError::MissingColumns { columns, .. } if columns.split(", ").any(|c| c == "id"))
        {
            return Err(defect.into());
        }
        let binding = self
            .relations
            .get(rel.id)
            .ok()
            .flatten()
            .expect("just recorded")
            .clone();
        Ok(Applied::Defect(binding, defect))
    }
}

#[cfg(test)]
mod tests;
