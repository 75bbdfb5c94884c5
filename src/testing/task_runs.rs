//! pgoutput messages of the runs tables, for feeding the streaming loop in-process: a Relation
//! of a table with every column the transform reads (text, as the worker requests), and
//! INSERT/UPDATE/DELETE messages of a run whose values a test sets column by column.

use bytes::Bytes;

use super::pgoutput::{encode, text_relation, text_tuple};
use crate::rows::Col;
use crate::source::pgoutput::{
    Delete, Insert, Message, OldTuple, OldTupleKind, ReplicaIdentity, Update,
};

/// The Relation message of `schema.table` (every [`Col`], in `Col::ALL` order) under OID `oid`.
pub fn relation(oid: u32, table: &str, identity: ReplicaIdentity) -> Bytes {
    let columns: Vec<&str> = Col::ALL.iter().map(|c| c.pg_name()).collect();
    let mut rel = text_relation(oid, "public", table, &columns);
    rel.replica_identity = identity;
    encode(&Message::Relation(rel))
}

/// The text values of one run's row, indexed by [`Col`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunValues(Vec<Option<String>>);

impl RunValues {
    /// A PENDING run `id` that the transform replicates, created at 2026-11-01 10:00.
    pub fn new(id: &str) -> RunValues {
        let mut v = RunValues(vec![None; Col::COUNT]);
        for (col, value) in [
            (Col::Id, id.to_string()),
            (Col::FriendlyId, format!("run_{id}")),
            (Col::Engine, "V2".into()),
            (Col::Status, "PENDING".into()),
            (Col::TaskIdentifier, "email".into()),
            (Col::IsTest, "f".into()),
            (Col::Payload, r#"{"to":"a@example.com"}"#.into()),
            (Col::PayloadType, "application/json".into()),
            (Col::TraceId, "trace".into()),
            (Col::SpanId, "span".into()),
            (Col::RuntimeEnvironmentId, "env_1".into()),
            (Col::EnvironmentType, "PRODUCTION".into()),
            (Col::ProjectId, "proj_1".into()),
            (Col::OrganizationId, "org_1".into()),
            (Col::Queue, "task/email".into()),
            (Col::MasterQueue, "main".into()),
            (Col::CreatedAt, "2026-11-01 10:00:00.000".into()),
            (Col::UpdatedAt, "2026-11-01 10:00:00.000".into()),
            (Col::UsageDurationMs, "0".into()),
            (Col::CostInCents, "0".into()),
            (Col::BaseCostInCents, "0".into()),
            (Col::Depth, "0".into()),
            (Col::BulkActionGroupIds, "{}".into()),
            (Col::OutputType, "application/json".into()),
        ] {
            v.0[col as usize] = Some(value);
        }
        v
    }

    /// The same run with `col` set (`None`: NULL).
    pub fn with(mut self, col: Col, value: Option<&str>) -> RunValues {
        self.0[col as usize] = value.map(str::to_string);
        self
    }

    pub fn status(self, status: &str) -> RunValues {
        self.with(Col::Status, Some(status))
    }

    pub fn get(&self, col: Col) -> Option<&str> {
        self.0[col as usize].as_deref()
    }
}

pub fn insert(oid: u32, new: &RunValues) -> Bytes {
    encode(&Message::Insert(Insert {
        relation_id: oid,
        new: text_tuple(&new.0),
    }))
}

/// An UPDATE with the whole old row (REPLICA IDENTITY FULL).
pub fn update(oid: u32, old: &RunValues, new: &RunValues) -> Bytes {
    encode(&Message::Update(Update {
        relation_id: oid,
        old: Some(OldTuple {
            kind: OldTupleKind::Full,
            tuple: text_tuple(&old.0),
        }),
        new: text_tuple(&new.0),
    }))
}

/// An UPDATE without an old row, as REPLICA IDENTITY DEFAULT sends it when the key did not
/// change (the run's other identity columns may have).
pub fn update_without_old(oid: u32, new: &RunValues) -> Bytes {
    encode(&Message::Update(Update {
        relation_id: oid,
        old: None,
        new: text_tuple(&new.0),
    }))
}

/// A DELETE with the whole old row (REPLICA IDENTITY FULL).
pub fn delete(oid: u32, old: &RunValues) -> Bytes {
    encode(&Message::Delete(Delete {
        relation_id: oid,
        old: OldTuple {
            kind: OldTupleKind::Full,
            tuple: text_tuple(&old.0),
        },
    }))
}

/// A DELETE that carries only the key, as REPLICA IDENTITY DEFAULT sends it.
pub fn delete_by_key(oid: u32, id: &str) -> Bytes {
    let mut key: Vec<Option<String>> = vec![None; Col::COUNT];
    key[Col::Id as usize] = Some(id.to_string());
    encode(&Message::Delete(Delete {
        relation_id: oid,
        old: OldTuple {
            kind: OldTupleKind::Key,
            tuple: text_tuple(&key),
        },
    }))
}
