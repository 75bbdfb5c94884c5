//! Unit tests of `relation`.

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
