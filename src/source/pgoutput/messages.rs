//! The pgoutput v1 messages, as decoded: one type per message tag, and the tuples and cells the
//! change messages carry.
//!
//! Cell values borrow from the frame they were decoded from (see the module documentation of
//! [`super`] for why); [`Message::into_owned`] detaches a message from its frame.

use bytes::Bytes;
use std::borrow::Cow;

/// One decoded pgoutput message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message<'a> {
    Begin(Begin),
    Commit(Commit),
    Origin(Origin),
    Relation(Relation),
    Type(TypeMessage),
    Insert(Insert<'a>),
    Update(Update<'a>),
    Delete(Delete<'a>),
    Truncate(Truncate),
    Message(LogicalMessage),
}

impl Message<'_> {
    /// The message's name, for logs and metric labels.
    pub fn name(&self) -> &'static str {
        match self {
            Message::Begin(_) => "Begin",
            Message::Commit(_) => "Commit",
            Message::Origin(_) => "Origin",
            Message::Relation(_) => "Relation",
            Message::Type(_) => "Type",
            Message::Insert(_) => "Insert",
            Message::Update(_) => "Update",
            Message::Delete(_) => "Delete",
            Message::Truncate(_) => "Truncate",
            Message::Message(_) => "Message",
        }
    }
}

/// `B`: start of a transaction's changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Begin {
    /// LSN of the transaction's commit record (equals the matching [`Commit::commit_lsn`]).
    pub final_lsn: u64,
    /// Microseconds since 2000-01-01 00:00:00 UTC, as on the wire.
    pub commit_time_micros: i64,
    pub xid: u32,
}

/// `C`: end of a transaction's changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Commit {
    /// Unused by the server (always 0 in v1); kept so nothing on the wire is dropped silently.
    pub flags: u8,
    pub commit_lsn: u64,
    /// End of the commit record: the LSN to acknowledge once the transaction is durable downstream.
    pub end_lsn: u64,
    /// Microseconds since 2000-01-01 00:00:00 UTC, as on the wire.
    pub commit_time_micros: i64,
}

/// `O`: the transaction was replayed from another node under a replication origin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    /// The commit LSN on the origin server.
    pub commit_lsn: u64,
    pub name: String,
}

/// `R`: the schema of a relation, sent before its first change in a decoding session and again
/// whenever its relcache entry is invalidated (DDL, TRUNCATE, ...). Later changes refer to it by
/// `id`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Relation {
    pub id: u32,
    /// Empty for `pg_catalog`.
    pub namespace: String,
    pub name: String,
    pub replica_identity: ReplicaIdentity,
    pub columns: Vec<RelationColumn>,
}

/// `pg_class.relreplident`: which old values UPDATE and DELETE carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReplicaIdentity {
    /// `d`: the primary key.
    Default,
    /// `n`: nothing.
    Nothing,
    /// `f`: the whole old row.
    Full,
    /// `i`: the columns of a chosen unique index.
    Index,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelationColumn {
    /// Part of the replica identity (every column under `FULL`).
    pub is_key: bool,
    pub name: String,
    pub type_oid: u32,
    /// `atttypmod`, -1 when the type has none.
    pub type_modifier: i32,
}

/// `Y`: a non-built-in type used by a column of the next Relation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TypeMessage {
    pub id: u32,
    /// Empty for `pg_catalog`.
    pub namespace: String,
    pub name: String,
}

/// `I`
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Insert<'a> {
    pub relation_id: u32,
    pub new: Tuple<'a>,
}

/// `U`
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Update<'a> {
    pub relation_id: u32,
    /// `None` when the replica identity did not change (and is not `FULL`).
    pub old: Option<OldTuple<'a>>,
    pub new: Tuple<'a>,
}

/// `D`
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delete<'a> {
    pub relation_id: u32,
    pub old: OldTuple<'a>,
}

/// The old row of an UPDATE or DELETE.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OldTuple<'a> {
    pub kind: OldTupleKind,
    pub tuple: Tuple<'a>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OldTupleKind {
    /// `K`: only the replica identity columns have values; every other cell is [`Cell::Null`].
    Key,
    /// `O`: the whole old row (`REPLICA IDENTITY FULL`).
    Full,
}

/// `T`
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Truncate {
    /// Bit set of [`Truncate::CASCADE`] and [`Truncate::RESTART_IDENTITY`].
    pub options: u8,
    pub relation_ids: Vec<u32>,
}

impl Truncate {
    pub const CASCADE: u8 = 1;
    pub const RESTART_IDENTITY: u8 = 2;
}

/// `M`: a message from `pg_logical_emit_message`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogicalMessage {
    /// Transactional messages arrive between Begin and Commit; the others arrive on their own,
    /// as soon as they are decoded.
    pub transactional: bool,
    pub lsn: u64,
    pub prefix: String,
    pub content: Bytes,
}

/// A row: one cell per column of the relation, in the Relation's column order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Tuple<'a>(pub Vec<Cell<'a>>);

/// One column's value. Values are borrowed from the frame when decoded; `Cow` lets a message that
/// outlives its frame ([`Message::into_owned`]) or one built by hand own them instead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cell<'a> {
    /// `n`: SQL NULL, or (in a `K` old tuple) a column outside the replica identity.
    Null,
    /// `u`: an out-of-line TOASTed value that the UPDATE did not change. The value itself is not
    /// sent; it has to come from an old tuple or from downstream state.
    UnchangedToast,
    /// `t`: the value in the type's text output format.
    Text(Cow<'a, [u8]>),
    /// `b`: the value in the type's binary send format (only with the `binary` option).
    Binary(Cow<'a, [u8]>),
}

impl Message<'_> {
    /// The same message, owning its cell values (for keeping it beyond its input buffer).
    pub fn into_owned(self) -> Message<'static> {
        match self {
            Message::Begin(m) => Message::Begin(m),
            Message::Commit(m) => Message::Commit(m),
            Message::Origin(m) => Message::Origin(m),
            Message::Relation(m) => Message::Relation(m),
            Message::Type(m) => Message::Type(m),
            Message::Insert(m) => Message::Insert(Insert {
                relation_id: m.relation_id,
                new: m.new.into_owned(),
            }),
            Message::Update(m) => Message::Update(Update {
                relation_id: m.relation_id,
                old: m.old.map(OldTuple::into_owned),
                new: m.new.into_owned(),
            }),
            Message::Delete(m) => Message::Delete(Delete {
                relation_id: m.relation_id,
                old: m.old.into_owned(),
            }),
            Message::Truncate(m) => Message::Truncate(m),
            Message::Message(m) => Message::Message(m),
        }
    }
}

impl OldTuple<'_> {
    pub fn into_owned(self) -> OldTuple<'static> {
        OldTuple {
            kind: self.kind,
            tuple: self.tuple.into_owned(),
        }
    }
}

impl Tuple<'_> {
    pub fn into_owned(self) -> Tuple<'static> {
        Tuple(self.0.into_iter().map(Cell::into_owned).collect())
    }
}

impl Cell<'_> {
    pub fn into_owned(self) -> Cell<'static> {
        match self {
            Cell::Null => Cell::Null,
            Cell::UnchangedToast => Cell::UnchangedToast,
            Cell::Text(v) => Cell::Text(Cow::Owned(v.into_owned())),
            Cell::Binary(v) => Cell::Binary(Cow::Owned(v.into_owned())),
        }
    }
}
