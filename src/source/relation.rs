//! The relation cache: what each relation OID in the stream is, and how its tuples map onto the
//! transform's columns.
//!
//! pgoutput sends a Relation message before a relation's first change in a session and again
//! after any change to its definition, so every Relation message replaces the entry for its OID.
//! Columns are found by name, which makes column order and added columns irrelevant. A replicated
//! table whose Relation says its replica identity is not FULL, or that lacks a column the
//! transform reads, is refused: continuing would write incomplete rows.

use rustc_hash::FxHashMap;
use std::sync::Arc;

use super::pgoutput::{Cell, Relation, ReplicaIdentity, Tuple};
use crate::rows::{Col, SourceRow};

/// A replicated table as the stream currently describes it.
#[derive(Debug, Clone)]
pub struct TableBinding {
    /// `"schema"."table"`, for messages and metrics.
    pub table: Arc<str>,
    pub schema: String,
    pub name: String,
    /// The `_version` generation of rows from this table.
    pub generation: u8,
    /// The tuple position of each [`Col`]; `MISSING` when the relation lacks it.
    positions: [u16; Col::COUNT],
    /// The number of columns a tuple of this relation has.
    width: usize,
    /// Why rows of this shape are incomplete (replica identity not FULL, a column missing), if
    /// they are. Such a binding only serves [`TableBinding::row_partial`].
    pub defect: Option<RelationError>,
}

const MISSING: u16 = u16::MAX;

/// Why a relation or a change cannot be replicated safely. All are hard stops.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RelationError {
    #[error(
        "table {table} has REPLICA IDENTITY {identity} in the stream; deletes and unchanged \
         TOASTed values need FULL: run ALTER TABLE {table} REPLICA IDENTITY FULL"
    )]
    ReplicaIdentity {
        table: String,
        identity: &'static str,
    },
    #[error(
        "table {table} lacks columns the transform reads: {columns}; restore them (config/postgres/*.sql)"
    )]
    MissingColumns { table: String, columns: String },
    #[error("a change names relation {oid}, which no Relation message described")]
    UnknownRelation { oid: u32 },
    #[error("a tuple of {table} has {got} columns, its Relation message {expected}")]
    TupleWidth {
        table: String,
        got: usize,
        expected: usize,
    },
    #[error(
        "unchanged TOASTed column \"{column}\" of run {run_id} in {table} has no old value to \
         take it from (is REPLICA IDENTITY FULL?)"
    )]
    UnresolvedToast {
        table: String,
        column: &'static str,
        run_id: String,
    },
    #[error("column \"{column}\" of {table} arrived in binary format; the worker requests text")]
    BinaryValue { table: String, column: &'static str },
    #[error("column \"{column}\" of {table} is not valid UTF-8")]
    InvalidUtf8 { table: String, column: &'static str },
}

/// The tables to replicate, as (schema, table, generation).
#[derive(Debug, Clone)]
pub struct Replicated {
    pub schema: String,
    pub tables: Vec<(String, u8)>,
}

#[derive(Debug, Default)]
pub struct RelationCache {
    /// Looked up once per change: FxHash, as SipHash showed in the drain's profile.
    by_oid: FxHashMap<u32, Option<TableBinding>>,
}

fn identity_name(identity: ReplicaIdentity) -> &'static str {
    match identity {
        ReplicaIdentity::Default => "DEFAULT",
        ReplicaIdentity::Nothing => "NOTHING",
        ReplicaIdentity::Full => "FULL",
        ReplicaIdentity::Index => "USING INDEX",
    }
}

impl RelationCache {
    /// Records a Relation message. Relations of tables not replicated are remembered as ignored.
    /// A replicated table whose rows would be incomplete is recorded with its defect, which is
    /// also returned: the caller decides whether it can be repaired or is a hard stop.
    pub fn update(&mut self, rel: &Relation, replicated: &Replicated) -> Result<(), RelationError> {
        let generation = (rel.namespace == replicated.schema)
            .then(|| replicated.tables.iter().find(|(t, _)| *t == rel.name))
            .flatten()
            .map(|(_, g)| *g);
        let Some(generation) = generation else {
            self.by_oid.insert(rel.id, None);
            return Ok(());
        };
        let table = format!("\"{}\".\"{}\"", rel.namespace, rel.name);
        let mut positions = [MISSING; Col::COUNT];
        for (i, column) in rel.columns.iter().enumerate() {
            if let Some(col) = Col::from_pg_name(&column.name) {
                positions[col as usize] = i as u16;
            }
        }
        let missing: Vec<&str> = Col::ALL
            .iter()
            .filter(|c| positions[**c as usize] == MISSING)
            .map(|c| c.pg_name())
            .collect();
        let defect = if rel.replica_identity != ReplicaIdentity::Full {
            Some(RelationError::ReplicaIdentity {
                table: table.clone(),
                identity: identity_name(rel.replica_identity),
            })
        } else if !missing.is_empty() {
            Some(RelationError::MissingColumns {
                table: table.clone(),
                columns: missing.join(", "),
            })
        } else {
            None
        };
        self.by_oid.insert(
            rel.id,
            Some(TableBinding {
                table: table.into(),
                schema: rel.namespace.clone(),
                name: rel.name.clone(),
                generation,
                positions,
                width: rel.columns.len(),
                defect: defect.clone(),
            }),
        );
        match defect {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// The binding of a relation: `Ok(None)` for a relation that is not replicated.
    pub fn get(&self, oid: u32) -> Result<Option<&TableBinding>, RelationError> {
        match self.by_oid.get(&oid) {
            Some(b) => Ok(b.as_ref()),
            None => Err(RelationError::UnknownRelation { oid }),
        }
    }

    /// Some replicated table's rows would be incomplete (its changes are being repaired).
    pub fn has_defects(&self) -> bool {
        self.by_oid
            .values()
            .any(|b| b.as_ref().is_some_and(|b| b.defect.is_some()))
    }

    /// The name of a relation in messages (for TRUNCATE of tables that are not replicated, too).
    pub fn is_known(&self, oid: u32) -> bool {
        self.by_oid.contains_key(&oid)
    }
}

/// `bytes` as text. Nearly every cell is ASCII (ids, timestamps, enums, most JSON), and checking
/// that a word at a time costs a fraction of a full UTF-8 validation per cell, which was 9% of the
/// hot path's instructions (callgrind, 55 cells per row).
fn utf8(bytes: &[u8]) -> Result<&str, std::str::Utf8Error> {
    if bytes.is_ascii() {
        // SAFETY: ASCII is valid UTF-8.
        Ok(unsafe { std::str::from_utf8_unchecked(bytes) })
    } else {
        std::str::from_utf8(bytes)
    }
}

fn text<'a>(
    cell: &'a Cell<'_>,
    binding: &TableBinding,
    col: Col,
) -> Result<Option<&'a str>, RelationError> {
    match cell {
        Cell::Null => Ok(None),
        Cell::Text(bytes) => utf8(bytes)
            .map(Some)
            .map_err(|_| RelationError::InvalidUtf8 {
                table: binding.table.to_string(),
                column: col.pg_name(),
            }),
        Cell::Binary(_) => Err(RelationError::BinaryValue {
            table: binding.table.to_string(),
            column: col.pg_name(),
        }),
        // Resolved by the caller; reaching here means there was nothing to resolve it from.
        Cell::UnchangedToast => Ok(None),
    }
}

impl TableBinding {
    /// A table read outside the stream (a backfill's COPY), whose rows carry every [`Col`] in
    /// [`Col::ALL`] order: complete by construction.
    pub fn selected(schema: &str, name: &str, generation: u8) -> TableBinding {
        let mut positions = [MISSING; Col::COUNT];
        for (i, col) in Col::ALL.iter().enumerate() {
            positions[*col as usize] = i as u16;
        }
        TableBinding {
            table: format!("\"{schema}\".\"{name}\"").into(),
            schema: schema.to_string(),
            name: name.to_string(),
            generation,
            positions,
            width: Col::COUNT,
            defect: None,
        }
    }

    fn check_width(&self, tuple: &Tuple<'_>) -> Result<(), RelationError> {
        if tuple.0.len() != self.width {
            return Err(RelationError::TupleWidth {
                table: self.table.to_string(),
                got: tuple.0.len(),
                expected: self.width,
            });
        }
        Ok(())
    }

    /// The row a tuple describes. `'u'` (unchanged TOAST) cells of `new` are taken from `old`,
    /// which under REPLICA IDENTITY FULL always carries them; without one they are an error.
    pub fn row<'a>(
        &self,
        new: &'a Tuple<'_>,
        old: Option<&'a Tuple<'_>>,
    ) -> Result<SourceRow<'a>, RelationError> {
        if let Some(defect) = &self.defect {
            return Err(defect.clone());
        }
        let (row, unresolved) = self.row_partial(new, old)?;
        if let Some(col) = unresolved.first() {
            return Err(RelationError::UnresolvedToast {
                table: self.table.to_string(),
                column: col.pg_name(),
                run_id: self.run_id(new).unwrap_or("?").to_string(),
            });
        }
        Ok(row)
    }

    /// Like [`TableBinding::row`], but columns the relation lacks and unchanged-TOAST cells with
    /// no old value are left unset and listed, for a repair to fill in.
    pub fn row_partial<'a>(
        &self,
        new: &'a Tuple<'_>,
        old: Option<&'a Tuple<'_>>,
    ) -> Result<(SourceRow<'a>, Vec<Col>), RelationError> {
        self.check_width(new)?;
        if let Some(old) = old {
            self.check_width(old)?;
        }
        let mut row = SourceRow::new();
        let mut unresolved = Vec::new();
        for &col in Col::ALL {
            let pos = self.positions[col as usize];
            if pos == MISSING {
                unresolved.push(col);
                continue;
            }
            let pos = pos as usize;
            let mut cell = &new.0[pos];
            if *cell == Cell::UnchangedToast {
                match old.map(|o| &o.0[pos]) {
                    Some(c) if *c != Cell::UnchangedToast => cell = c,
                    _ => {
                        unresolved.push(col);
                        continue;
                    }
                }
            }
            row.set(col, text(cell, self, col)?);
        }
        Ok((row, unresolved))
    }

    /// The text of one column as the tuple carries it (an unchanged-TOAST cell reads as NULL).
    pub fn text_of<'a>(
        &self,
        tuple: &'a Tuple<'_>,
        col: Col,
    ) -> Result<Option<&'a str>, RelationError> {
        match tuple.0.get(self.positions[col as usize] as usize) {
            Some(cell) => text(cell, self, col),
            None => Ok(None),
        }
    }

    /// The run id in a tuple, for messages.
    pub fn run_id<'a>(&self, tuple: &'a Tuple<'_>) -> Option<&'a str> {
        match tuple.0.get(self.positions[Col::Id as usize] as usize) {
            Some(Cell::Text(b)) => std::str::from_utf8(b).ok(),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests;
