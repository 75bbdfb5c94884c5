//! Builds pgoutput v1 wire bytes: the inverse of [`decode`](crate::source::pgoutput::decode).
//!
//! [`encode`] writes any [`Message`] (Begin, Commit, Relation, Type, Insert, Update, Delete,
//! Truncate, Origin, logical Message) exactly as the server would; [`text_relation`] and
//! [`text_tuple`] build the common case of a REPLICA IDENTITY FULL table of text columns. Used by
//! the decoder's property tests (round trips) and by `benches/hot_path.rs` (messages shaped like
//! `task_run_v2`).
//!
//! It panics on input the wire format cannot hold (a NUL in a name, more than 65 535 columns):
//! callers build their messages by hand, so that is a bug in the caller.

use bytes::{BufMut, Bytes, BytesMut};
use std::borrow::Cow;

use crate::source::pgoutput::{
    Cell, Message, OldTuple, OldTupleKind, Relation, RelationColumn, ReplicaIdentity, Tuple,
};

/// The wire bytes of `message`; `decode` of them gives `message` back.
pub fn encode(message: &Message) -> Bytes {
    let mut b = BytesMut::new();
    match message {
        Message::Begin(m) => {
            b.put_u8(b'B');
            b.put_u64(m.final_lsn);
            b.put_i64(m.commit_time_micros);
            b.put_u32(m.xid);
        }
        Message::Commit(m) => {
            b.put_u8(b'C');
            b.put_u8(m.flags);
            b.put_u64(m.commit_lsn);
            b.put_u64(m.end_lsn);
            b.put_i64(m.commit_time_micros);
        }
        Message::Origin(m) => {
            b.put_u8(b'O');
            b.put_u64(m.commit_lsn);
            put_str(&mut b, &m.name);
        }
        Message::Relation(m) => {
            b.put_u8(b'R');
            b.put_u32(m.id);
            put_str(&mut b, &m.namespace);
            put_str(&mut b, &m.name);
            b.put_u8(match m.replica_identity {
                ReplicaIdentity::Default => b'd',
                ReplicaIdentity::Nothing => b'n',
                ReplicaIdentity::Full => b'f',
                ReplicaIdentity::Index => b'i',
            });
            b.put_u16(u16::try_from(m.columns.len()).expect("too many columns"));
            for c in &m.columns {
                b.put_u8(c.is_key.into());
                put_str(&mut b, &c.name);
                b.put_u32(c.type_oid);
                b.put_i32(c.type_modifier);
            }
        }
        Message::Type(m) => {
            b.put_u8(b'Y');
            b.put_u32(m.id);
            put_str(&mut b, &m.namespace);
            put_str(&mut b, &m.name);
        }
        Message::Insert(m) => {
            b.put_u8(b'I');
            b.put_u32(m.relation_id);
            b.put_u8(b'N');
            put_tuple(&mut b, &m.new);
        }
        Message::Update(m) => {
            b.put_u8(b'U');
            b.put_u32(m.relation_id);
            if let Some(old) = &m.old {
                put_old(&mut b, old);
            }
            b.put_u8(b'N');
            put_tuple(&mut b, &m.new);
        }
        Message::Delete(m) => {
            b.put_u8(b'D');
            b.put_u32(m.relation_id);
            put_old(&mut b, &m.old);
        }
        Message::Truncate(m) => {
            b.put_u8(b'T');
            b.put_u32(u32::try_from(m.relation_ids.len()).expect("too many relations"));
            b.put_u8(m.options);
            for id in &m.relation_ids {
                b.put_u32(*id);
            }
        }
        Message::Message(m) => {
            b.put_u8(b'M');
            b.put_u8(m.transactional.into());
            b.put_u64(m.lsn);
            put_str(&mut b, &m.prefix);
            b.put_i32(i32::try_from(m.content.len()).expect("content too long"));
            b.put_slice(&m.content);
        }
    }
    b.freeze()
}

fn put_str(b: &mut BytesMut, s: &str) {
    assert!(!s.contains('\0'), "pgoutput strings cannot contain NUL");
    b.put_slice(s.as_bytes());
    b.put_u8(0);
}

fn put_old(b: &mut BytesMut, old: &OldTuple) {
    b.put_u8(match old.kind {
        OldTupleKind::Key => b'K',
        OldTupleKind::Full => b'O',
    });
    put_tuple(b, &old.tuple);
}

fn put_tuple(b: &mut BytesMut, tuple: &Tuple) {
    b.put_u16(u16::try_from(tuple.0.len()).expect("too many cells"));
    for cell in &tuple.0 {
        match cell {
            Cell::Null => b.put_u8(b'n'),
            Cell::UnchangedToast => b.put_u8(b'u'),
            Cell::Text(v) | Cell::Binary(v) => {
                b.put_u8(if matches!(cell, Cell::Text(_)) {
                    b't'
                } else {
                    b'b'
                });
                b.put_i32(i32::try_from(v.len()).expect("value too long"));
                b.put_slice(v);
            }
        }
    }
}

/// OID of the `text` type.
const TEXT_OID: u32 = 25;

/// A REPLICA IDENTITY FULL relation whose columns are all `text`, each flagged as part of the
/// identity as the server flags every column under FULL.
pub fn text_relation(id: u32, namespace: &str, name: &str, columns: &[&str]) -> Relation {
    Relation {
        id,
        namespace: namespace.into(),
        name: name.into(),
        replica_identity: ReplicaIdentity::Full,
        columns: columns
            .iter()
            .map(|c| RelationColumn {
                is_key: true,
                name: (*c).into(),
                type_oid: TEXT_OID,
                type_modifier: -1,
            })
            .collect(),
    }
}

/// A tuple of text cells borrowing `values`; `None` is SQL NULL.
pub fn text_tuple<S: AsRef<str>>(values: &[Option<S>]) -> Tuple<'_> {
    Tuple(
        values
            .iter()
            .map(|v| match v {
                None => Cell::Null,
                Some(s) => Cell::Text(Cow::Borrowed(s.as_ref().as_bytes())),
            })
            .collect(),
    )
}
