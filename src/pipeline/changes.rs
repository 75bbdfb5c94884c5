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
use crate::rows::{Col, SourceRow};
use crate::source::pgoutput::{OldTuple, OldTupleKind, Tuple};
use crate::source::relation::{RelationError, TableBinding};
use crate::transform::{self, SkipReason, TransformError, TransformOptions};

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
            if with_payload && s.payloads {
                txn.add_payload(transform::payload_row(row).map_err(fail)?);
            }
            txn.add_row(binding.generation, run);
        }
        Err(TransformError::Skip(reason)) => applied.skipped.push(reason),
        Err(e) => return Err(fail(e)),
    }
    Ok(())
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
