//! Cross-check against an independent parser: `pg_walstream` (a dev-dependency) reads every
//! fixture message, and whatever the property tests accept, to the same message.

use std::borrow::Cow;

use super::*;

fn from_oracle(m: pg_walstream::LogicalReplicationMessage) -> Message<'static> {
    use pg_walstream::{ColumnData, LogicalReplicationMessage as L, TupleData};
    fn tuple(t: TupleData) -> Tuple<'static> {
        Tuple(
            t.columns
                .iter()
                .map(|c: &ColumnData| match c.data_type {
                    b'n' => Cell::Null,
                    b'u' => Cell::UnchangedToast,
                    b't' => Cell::Text(Cow::Owned(c.raw_bytes().to_vec())),
                    b'b' => Cell::Binary(Cow::Owned(c.raw_bytes().to_vec())),
                    other => panic!("oracle cell kind {other}"),
                })
                .collect(),
        )
    }
    fn old(key_type: char, t: TupleData) -> OldTuple<'static> {
        let kind = match key_type {
            'K' => OldTupleKind::Key,
            'O' => OldTupleKind::Full,
            other => panic!("oracle old tuple kind {other}"),
        };
        OldTuple {
            kind,
            tuple: tuple(t),
        }
    }
    match m {
        L::Begin {
            final_lsn,
            timestamp,
            xid,
        } => Message::Begin(Begin {
            final_lsn,
            commit_time_micros: timestamp,
            xid,
        }),
        L::Commit {
            flags,
            commit_lsn,
            end_lsn,
            timestamp,
        } => Message::Commit(Commit {
            flags,
            commit_lsn,
            end_lsn,
            commit_time_micros: timestamp,
        }),
        L::Origin {
            origin_lsn,
            origin_name,
        } => Message::Origin(Origin {
            commit_lsn: origin_lsn,
            name: origin_name,
        }),
        L::Relation {
            relation_id,
            namespace,
            relation_name,
            replica_identity,
            columns,
        } => Message::Relation(Relation {
            id: relation_id,
            namespace: namespace.to_string(),
            name: relation_name.to_string(),
            replica_identity: match replica_identity {
                b'd' => ReplicaIdentity::Default,
                b'n' => ReplicaIdentity::Nothing,
                b'f' => ReplicaIdentity::Full,
                b'i' => ReplicaIdentity::Index,
                other => panic!("oracle replica identity {other}"),
            },
            columns: columns
                .into_iter()
                .map(|c| RelationColumn {
                    is_key: c.is_key(),
                    name: c.name.to_string(),
                    type_oid: c.type_id,
                    type_modifier: c.type_modifier,
                })
                .collect(),
        }),
        L::Type {
            type_id,
            namespace,
            type_name,
        } => Message::Type(TypeMessage {
            id: type_id,
            namespace,
            name: type_name,
        }),
        L::Insert {
            relation_id,
            tuple: t,
        } => Message::Insert(Insert {
            relation_id,
            new: tuple(t),
        }),
        L::Update {
            relation_id,
            old_tuple,
            new_tuple,
            key_type,
        } => Message::Update(Update {
            relation_id,
            old: old_tuple.map(|t| old(key_type.expect("old tuple without kind"), t)),
            new: tuple(new_tuple),
        }),
        L::Delete {
            relation_id,
            old_tuple,
            key_type,
        } => Message::Delete(Delete {
            relation_id,
            old: old(key_type, old_tuple),
        }),
        L::Truncate {
            relation_ids,
            flags,
        } => Message::Truncate(Truncate {
            options: flags,
            relation_ids,
        }),
        L::Message {
            flags,
            lsn,
            prefix,
            content,
        } => Message::Message(LogicalMessage {
            transactional: flags & 1 != 0,
            lsn,
            prefix,
            content,
        }),
        other => panic!("oracle returned a non-v1 message: {other:?}"),
    }
}

pub(super) fn oracle(data: &Bytes) -> Option<Message<'static>> {
    let mut parser = pg_walstream::LogicalReplicationParser::with_protocol_version(1);
    parser
        .parse_wal_message(data)
        .ok()
        .map(|m| from_oracle(m.message))
}

#[test]
fn fixtures_agree_with_pg_walstream() {
    for (name, data) in all_raw() {
        assert_eq!(oracle(data), Some(decode(data).unwrap()), "{name}");
    }
}
