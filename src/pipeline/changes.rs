//! One row change (INSERT, UPDATE or DELETE of a replicated table) into the transaction's rows.
//!
//! - INSERT: the run's row, plus its payload row.
//! - UPDATE: the new row; and when the run's ClickHouse identity changed (its id, organization,
//!   project, environment or created_at), a tombstone for the old identity, built from the old
//!   tuple, so the stale row does not linger under its old key.
//! - DELETE: a tombstone (`_is_deleted = 1`) built from the old tuple, which REPLICA IDENTITY
//!   FULL makes complete.
//!
//! Rows without organizationId or environmentType produce nothing and are counted.

use super::transaction::Transaction;
use crate::metrics as m;
use crate::rows::{Col, RunRow, SourceRow};
use crate::source::pgoutput::{OldTuple, OldTupleKind, Tuple};
use crate::source::relation::{RelationError, TableBinding};
use crate::transform::{self, EmptiedField, SkipReason, TransformError, TransformOptions};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Insert,
    Update,
    Delete,
}

impl Op {
    pub fn label(self) -> &'static str {
        match self {
            Op::Insert => "insert",
            Op::Update => "update",
            Op::Delete => "delete",
        }
    }
}

/// A change that cannot be replicated correctly: a hard stop.
#[derive(Debug, thiserror::Error)]
pub enum ChangeError {
    #[error(transparent)]
    Relation(#[from] RelationError),
    #[error("{table}, run {run_id}: {source}")]
    Transform {
        table: String,
        run_id: String,
        source: TransformError,
    },
    #[error(
        "{op} of run {run_id} in {table} carries only the key of the old row; REPLICA IDENTITY FULL is required"
    )]
    KeyOnlyOldTuple {
        op: &'static str,
        table: String,
        run_id: String,
    },
}

/// What a change produced, for metrics.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Applied {
    pub skipped: Vec<SkipReason>,
}

pub struct Settings<'a> {
    pub transform: &'a TransformOptions,
    pub payloads: bool,
}

/// Transforms `row` and adds it to the transaction (with its payload row when `with_payload`),
/// or records why it produces nothing. Every path from a source row to a ClickHouse row goes
/// through here: changes as they stream, and changes a repair completed.
pub fn add_row(
    txn: &mut Transaction,
    binding: &TableBinding,
    row: &SourceRow,
    deleted: bool,
    with_payload: bool,
    s: &Settings,
    applied: &mut Applied,
) -> Result<(), ChangeError> {
    let fail = |source| ChangeError::Transform {
        table: binding.table.to_string(),
        run_id: row.get(Col::Id).unwrap_or("?").to_string(),
        source,
    };
    match transform::run_row(row, deleted, s.transform) {
        Ok(run) => {
            let payload = if with_payload && s.payloads {
                Some(transform::payload_row(row).map_err(fail)?)
            } else {
                None
            };
            // A tombstone's fields are never read; its live row was reported when it came.
            if !deleted {
                report_emptied(
                    binding,
                    &run,
                    &transform::emptied_fields(row, &run, payload.as_ref()),
                );
            }
            if let Some(payload) = payload {
                txn.add_payload(payload);
            }
            txn.add_row(binding.generation, run);
        }
        Err(TransformError::Skip(reason)) => applied.skipped.push(reason),
        Err(e) => return Err(fail(e)),
    }
    Ok(())
}

/// One WARN line per emptied field, with the run and the reason (upstream logs these too), and
/// `runs_replicator_fields_emptied_total`: the value itself is not logged (it may be megabytes,
/// and it is the customer's data).
fn report_emptied(binding: &TableBinding, run: &RunRow, fields: &[EmptiedField]) {
    for f in fields {
        metrics::counter!(m::FIELDS_EMPTIED, "column" => f.column, "reason" => f.reason.label())
            .increment(1);
        tracing::warn!(
            table = %binding.table,
            run_id = %run.run_id,
            column = f.column,
            reason = f.reason.label(),
            "stored {{}} for a JSON field the transform cannot pass on"
        );
    }
}

/// The columns that make up a run's ClickHouse identity (the ORDER BY key).
pub const IDENTITY: [Col; 5] = [
    Col::Id,
    Col::OrganizationId,
    Col::ProjectId,
    Col::RuntimeEnvironmentId,
    Col::CreatedAt,
];

fn full_old<'a, 't>(
    old: &'a OldTuple<'t>,
    op: Op,
    binding: &TableBinding,
    new: Option<&Tuple<'_>>,
) -> Result<&'a Tuple<'t>, ChangeError> {
    match old.kind {
        OldTupleKind::Full => Ok(&old.tuple),
        OldTupleKind::Key => Err(ChangeError::KeyOnlyOldTuple {
            op: op.label(),
            table: binding.table.to_string(),
            run_id: binding
                .run_id(new.unwrap_or(&old.tuple))
                .unwrap_or("?")
                .to_string(),
        }),
    }
}

pub fn apply_insert(
    txn: &mut Transaction,
    binding: &TableBinding,
    new: &Tuple<'_>,
    s: &Settings,
) -> Result<Applied, ChangeError> {
    let row = binding.row(new, None)?;
    let mut applied = Applied::default();
    add_row(txn, binding, &row, false, true, s, &mut applied)?;
    txn.changes += 1;
    Ok(applied)
}

pub fn apply_update(
    txn: &mut Transaction,
    binding: &TableBinding,
    old: Option<&OldTuple<'_>>,
    new: &Tuple<'_>,
    s: &Settings,
) -> Result<Applied, ChangeError> {
    let old = old
        .map(|o| full_old(o, Op::Update, binding, Some(new)))
        .transpose()?;
    let row = binding.row(new, old)?;
    let mut applied = Applied::default();
    if let Some(old) = old {
        // Most updates keep the run's identity: read only those columns of the old row, and
        // the whole of it only for the tombstone (half of an update's decoding, in the profile).
        let mut changed = false;
        for c in IDENTITY {
            changed |= binding.text_of(old, c)? != row.get(c);
        }
        if changed {
            let before = binding.row(old, None)?;
            add_row(txn, binding, &before, true, false, s, &mut applied)?;
        }
    }
    add_row(txn, binding, &row, false, false, s, &mut applied)?;
    txn.changes += 1;
    Ok(applied)
}

pub fn apply_delete(
    txn: &mut Transaction,
    binding: &TableBinding,
    old: &OldTuple<'_>,
    s: &Settings,
) -> Result<Applied, ChangeError> {
    let old = full_old(old, Op::Delete, binding, None)?;
    let row = binding.row(old, None)?;
    let mut applied = Applied::default();
    add_row(txn, binding, &row, true, false, s, &mut applied)?;
    txn.changes += 1;
    Ok(applied)
}
