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
use crate::transform::{Col, SourceRow};

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

    /// The name of a relation in messages (for TRUNCATE of tables that are not replicated, too).
    pub fn is_known(&self, oid: u32) -> bool {
        self.by_oid.contains_key(&oid)
    }
}

fn text<'a>(
    cell: &'a Cell<'_>,
    binding: &TableBinding,
    col: Col,
) -> Result<Option<&'a str>, RelationError> {
    match cell {
        Cell::Null => Ok(None),
        Cell::Text(bytes) => {
            std::str::from_utf8(bytes)
                .map(Some)
                .map_err(|_| RelationError::InvalidUtf8 {
                    table: binding.table.to_string(),
                    column: col.pg_name(),
                })
        }
        Cell::Binary(_) => Err(RelationError::BinaryValue {
            table: binding.table.to_string(),
            column: col.pg_name(),
        }),
        // Resolved by the caller; reaching here means there was nothing to resolve it from.
        Cell::UnchangedToast => Ok(None),
    }
}

impl TableBinding {
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
mod tests {
    use std::borrow::Cow;

    use super::*;
    use crate::source::pgoutput::RelationColumn;

    fn relation(identity: ReplicaIdentity, skip: Option<Col>, reversed: bool) -> Relation {
        let mut columns: Vec<RelationColumn> = Col::ALL
            .iter()
            .filter(|c| Some(**c) != skip)
            .map(|c| RelationColumn {
                is_key: true,
                name: c.pg_name().into(),
                type_oid: 25,
                type_modifier: -1,
            })
            .collect();
        columns.push(RelationColumn {
            is_key: true,
            name: "number".into(),
            type_oid: 23,
            type_modifier: -1,
        });
        if reversed {
            columns.reverse();
        }
        Relation {
            id: 42,
            namespace: "public".into(),
            name: "TaskRun".into(),
            replica_identity: identity,
            columns,
        }
    }

    fn replicated() -> Replicated {
        Replicated {
            schema: "public".into(),
            tables: vec![("TaskRun".into(), 0), ("task_run_v2".into(), 1)],
        }
    }

    /// A tuple for `rel` where every column holds its own name, except `overrides`.
    fn tuple(rel: &Relation, overrides: &[(&str, Cell<'static>)]) -> Tuple<'static> {
        Tuple(
            rel.columns
                .iter()
                .map(|c| {
                    overrides
                        .iter()
                        .find(|(n, _)| *n == c.name)
                        .map(|(_, cell)| cell.clone())
                        .unwrap_or_else(|| Cell::Text(Cow::Owned(c.name.clone().into_bytes())))
                })
                .collect(),
        )
    }

    #[test]
    fn maps_columns_by_name_whatever_their_order() {
        for reversed in [false, true] {
            let rel = relation(ReplicaIdentity::Full, None, reversed);
            let mut cache = RelationCache::default();
            cache.update(&rel, &replicated()).unwrap();
            let binding = cache.get(42).unwrap().unwrap();
            assert_eq!(binding.generation, 0);
            let t = tuple(&rel, &[("output", Cell::Null)]);
            let row = binding.row(&t, None).unwrap();
            assert_eq!(row.get(Col::Status), Some("status"));
            assert_eq!(row.get(Col::Id), Some("id"));
            assert_eq!(row.get(Col::Output), None);
        }
    }

    #[test]
    fn refuses_identity_other_than_full_and_replaces_the_old_shape() {
        let mut cache = RelationCache::default();
        cache
            .update(&relation(ReplicaIdentity::Full, None, false), &replicated())
            .unwrap();
        let err = cache
            .update(
                &relation(ReplicaIdentity::Default, None, false),
                &replicated(),
            )
            .unwrap_err();
        assert!(
            err.to_string().contains("REPLICA IDENTITY DEFAULT"),
            "{err}"
        );
        assert!(
            err.to_string()
                .contains("ALTER TABLE \"public\".\"TaskRun\" REPLICA IDENTITY FULL")
        );
        // The new shape replaces the old one, and refuses strict rows.
        let binding = cache.get(42).unwrap().unwrap();
        assert_eq!(binding.defect, Some(err.clone()));
        let rel = relation(ReplicaIdentity::Default, None, false);
        assert_eq!(binding.row(&tuple(&rel, &[]), None).unwrap_err(), err);
    }

    #[test]
    fn refuses_a_missing_column_but_can_list_it_for_repair() {
        let mut cache = RelationCache::default();
        let rel = relation(ReplicaIdentity::Full, Some(Col::Output), false);
        let err = cache.update(&rel, &replicated()).unwrap_err();
        assert_eq!(
            err,
            RelationError::MissingColumns {
                table: "\"public\".\"TaskRun\"".into(),
                columns: "output".into()
            }
        );
        let binding = cache.get(42).unwrap().unwrap();
        let t = tuple(&rel, &[]);
        let (row, unresolved) = binding.row_partial(&t, None).unwrap();
        assert_eq!(unresolved, [Col::Output]);
        assert_eq!(row.get(Col::Status), Some("status"));
    }

    #[test]
    fn ignores_tables_that_are_not_replicated() {
        let mut rel = relation(ReplicaIdentity::Default, None, false);
        rel.name = "Other".into();
        let mut cache = RelationCache::default();
        cache.update(&rel, &replicated()).unwrap();
        assert!(cache.get(42).unwrap().is_none());
        assert!(cache.get(7).is_err());
    }

    #[test]
    fn unchanged_toast_comes_from_the_old_tuple_or_is_an_error() {
        let rel = relation(ReplicaIdentity::Full, None, false);
        let mut cache = RelationCache::default();
        cache.update(&rel, &replicated()).unwrap();
        let binding = cache.get(42).unwrap().unwrap();
        let new = tuple(
            &rel,
            &[
                ("output", Cell::UnchangedToast),
                ("id", Cell::Text(Cow::Borrowed(b"run_1"))),
            ],
        );
        let old = tuple(
            &rel,
            &[("output", Cell::Text(Cow::Borrowed(br#"{"big":1}"#)))],
        );
        let row = binding.row(&new, Some(&old)).unwrap();
        assert_eq!(row.get(Col::Output), Some("{\"big\":1}"));
        assert_eq!(row.get(Col::Id), Some("run_1"));

        let err = binding.row(&new, None).unwrap_err();
        assert!(
            matches!(err, RelationError::UnresolvedToast { column: "output", ref run_id, .. } if run_id == "run_1")
        );
        let err = binding.row(&new, Some(&new)).unwrap_err();
        assert!(matches!(err, RelationError::UnresolvedToast { .. }));
    }

    #[test]
    fn rejects_tuples_of_the_wrong_width_binary_and_bad_utf8() {
        let rel = relation(ReplicaIdentity::Full, None, false);
        let mut cache = RelationCache::default();
        cache.update(&rel, &replicated()).unwrap();
        let binding = cache.get(42).unwrap().unwrap();
        let mut short = tuple(&rel, &[]);
        short.0.pop();
        assert!(matches!(
            binding.row(&short, None),
            Err(RelationError::TupleWidth { .. })
        ));
        let bin = tuple(&rel, &[("status", Cell::Binary(Cow::Borrowed(b"\x01")))]);
        assert!(matches!(
            binding.row(&bin, None),
            Err(RelationError::BinaryValue {
                column: "status",
                ..
            })
        ));
        let bad = tuple(&rel, &[("status", Cell::Text(Cow::Borrowed(b"\xff")))]);
        assert!(matches!(
            binding.row(&bad, None),
            Err(RelationError::InvalidUtf8 { .. })
        ));
    }
}
