//! Decoder for pgoutput logical replication messages, protocol version 1.
//!
//! Owns the byte-level format of one pgoutput message (the payload of one XLogData frame, or of
//! one row of `pg_logical_slot_*_binary_changes`) and nothing else: no I/O, no relation cache, no
//! interpretation of column values. Begin/Commit/Message are also decoded by the transport
//! (`pgwire-replication`), but every tag is decoded here so tests and tools can work from raw
//! bytes alone.
//!
//! Tuple values borrow from the input: at tens of thousands of rows a second, a per-cell
//! allocation would be the dominant cost of decoding, and even a reference-counted `Bytes` slice
//! per cell (an atomic increment and decrement, ~130 cells per change) showed in the profile.
//!
//! Malformed input yields a [`DecodeError`] naming the byte offset and what was being read; it
//! never panics, and no count or length read from the wire sizes an allocation before the input
//! is known to hold that much data. Protocol v2+ messages (streaming, two-phase) are rejected as
//! unknown tags: the replicator only ever asks for `proto_version '1'`.

use bytes::Bytes;
use std::borrow::Cow;
use std::fmt;

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

/// Why a message could not be decoded. Offsets are byte offsets into the message, tag included.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error(
        "unexpected end of message at offset {offset} while reading {what}: \
         needed {needed} bytes, {available} left"
    )]
    UnexpectedEnd {
        offset: usize,
        what: &'static str,
        needed: usize,
        available: usize,
    },

    #[error(
        "unknown pgoutput message tag {} at offset 0: expected one of B C O R Y I U D T M \
         (protocol version 1)",
        ShowByte(*.tag)
    )]
    UnknownTag { tag: u8 },

    #[error(
        "unknown tuple cell kind {} at offset {offset}: expected 'n', 'u', 't' or 'b'",
        ShowByte(*.kind)
    )]
    UnknownCellKind { offset: usize, kind: u8 },

    #[error(
        "unknown replica identity {} at offset {offset}: expected 'd', 'n', 'f' or 'i'",
        ShowByte(*.value)
    )]
    UnknownReplicaIdentity { offset: usize, value: u8 },

    #[error(
        "unexpected tuple marker {} at offset {offset} in {message}: expected {expected}",
        ShowByte(*.found)
    )]
    UnexpectedTupleMarker {
        offset: usize,
        message: &'static str,
        found: u8,
        expected: &'static str,
    },

    #[error(
        "{what} starting at offset {offset} has no NUL terminator before the end of the message"
    )]
    UnterminatedString { offset: usize, what: &'static str },

    #[error("{what} starting at offset {offset} is not valid UTF-8: {source}")]
    InvalidUtf8 {
        offset: usize,
        what: &'static str,
        #[source]
        source: std::str::Utf8Error,
    },

    #[error("negative length {length} at offset {offset} for {what}")]
    NegativeLength {
        offset: usize,
        what: &'static str,
        length: i32,
    },

    #[error(
        "{what} count {count} at offset {offset} needs at least {needed} more bytes, \
         but only {available} are left"
    )]
    CountExceedsInput {
        offset: usize,
        what: &'static str,
        count: u64,
        needed: u64,
        available: usize,
    },

    #[error("{count} trailing bytes at offset {offset} after a complete {message} message")]
    TrailingBytes {
        offset: usize,
        count: usize,
        message: &'static str,
    },
}

/// Renders a wire byte as `'x' (0x78)` when printable, else as `0x07`.
struct ShowByte(u8);

impl fmt::Display for ShowByte {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_ascii_graphic() {
            write!(f, "'{}' ({:#04x})", self.0 as char, self.0)
        } else {
            write!(f, "{:#04x}", self.0)
        }
    }
}

/// Decodes exactly one pgoutput v1 message; bytes left over after it are an error.
pub fn decode(data: &Bytes) -> Result<Message<'_>, DecodeError> {
    let mut r = Reader {
        data,
        buf: data.as_ref(),
        pos: 0,
    };
    let tag = r.u8("message tag")?;
    let message = match tag {
        b'B' => Message::Begin(r.begin()?),
        b'C' => Message::Commit(r.commit()?),
        b'O' => Message::Origin(r.origin()?),
        b'R' => Message::Relation(r.relation()?),
        b'Y' => Message::Type(r.type_message()?),
        b'I' => Message::Insert(r.insert()?),
        b'U' => Message::Update(r.update()?),
        b'D' => Message::Delete(r.delete()?),
        b'T' => Message::Truncate(r.truncate()?),
        b'M' => Message::Message(r.logical_message()?),
        tag => return Err(DecodeError::UnknownTag { tag }),
    };
    let left = r.buf.len() - r.pos;
    if left != 0 {
        return Err(DecodeError::TrailingBytes {
            offset: r.pos,
            count: left,
            message: message.name(),
        });
    }
    Ok(message)
}

/// Minimum encoded size of one Relation column: flags, an empty name's NUL, type OID, typmod.
const MIN_RELATION_COLUMN_LEN: u64 = 1 + 1 + 4 + 4;
/// Minimum encoded size of one tuple cell: its kind byte (`n` and `u` carry nothing else).
const MIN_CELL_LEN: u64 = 1;

struct Reader<'a> {
    /// Kept beside `buf` so cell values can be sliced out without copying.
    data: &'a Bytes,
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N], DecodeError> {
        match self
            .buf
            .get(self.pos..)
            .and_then(|rest| rest.first_chunk::<N>())
        {
            Some(bytes) => {
                self.pos += N;
                Ok(*bytes)
            }
            None => Err(self.end_error(what, N)),
        }
    }

    fn end_error(&self, what: &'static str, needed: usize) -> DecodeError {
        DecodeError::UnexpectedEnd {
            offset: self.pos,
            what,
            needed,
            available: self.buf.len().saturating_sub(self.pos),
        }
    }

    fn u8(&mut self, what: &'static str) -> Result<u8, DecodeError> {
        self.take::<1>(what).map(|[b]| b)
    }

    fn u16(&mut self, what: &'static str) -> Result<u16, DecodeError> {
        self.take(what).map(u16::from_be_bytes)
    }

    fn u32(&mut self, what: &'static str) -> Result<u32, DecodeError> {
        self.take(what).map(u32::from_be_bytes)
    }

    fn i32(&mut self, what: &'static str) -> Result<i32, DecodeError> {
        self.take(what).map(i32::from_be_bytes)
    }

    fn u64(&mut self, what: &'static str) -> Result<u64, DecodeError> {
        self.take(what).map(u64::from_be_bytes)
    }

    fn i64(&mut self, what: &'static str) -> Result<i64, DecodeError> {
        self.take(what).map(i64::from_be_bytes)
    }

    /// A NUL-terminated UTF-8 string (names only: they are rare, so owning them is fine).
    fn string(&mut self, what: &'static str) -> Result<String, DecodeError> {
        let start = self.pos;
        let rest = &self.buf[start..];
        let Some(len) = rest.iter().position(|&b| b == 0) else {
            return Err(DecodeError::UnterminatedString {
                offset: start,
                what,
            });
        };
        let s = std::str::from_utf8(&rest[..len]).map_err(|source| DecodeError::InvalidUtf8 {
            offset: start,
            what,
            source,
        })?;
        self.pos = start + len + 1;
        Ok(s.to_owned())
    }

    /// An Int32 length followed by that many bytes, sliced from the input without copying.
    fn sized_slice(&mut self, what: &'static str) -> Result<&'a [u8], DecodeError> {
        let len_offset = self.pos;
        let length = self.i32(what)?;
        let Ok(len) = usize::try_from(length) else {
            return Err(DecodeError::NegativeLength {
                offset: len_offset,
                what,
                length,
            });
        };
        let start = self.pos;
        if self.buf.len() - start < len {
            return Err(self.end_error(what, len));
        }
        self.pos = start + len;
        Ok(&self.buf[start..start + len])
    }

    /// Fails unless `count` items of at least `min_len` bytes each can still fit, so that a
    /// forged count cannot size an allocation.
    fn check_count(
        &self,
        count_offset: usize,
        what: &'static str,
        count: u64,
        min_len: u64,
    ) -> Result<(), DecodeError> {
        let available = self.buf.len() - self.pos;
        let needed = count.saturating_mul(min_len);
        if needed > available as u64 {
            return Err(DecodeError::CountExceedsInput {
                offset: count_offset,
                what,
                count,
                needed,
                available,
            });
        }
        Ok(())
    }

    fn begin(&mut self) -> Result<Begin, DecodeError> {
        Ok(Begin {
            final_lsn: self.u64("Begin final LSN")?,
            commit_time_micros: self.i64("Begin commit timestamp")?,
            xid: self.u32("Begin xid")?,
        })
    }

    fn commit(&mut self) -> Result<Commit, DecodeError> {
        Ok(Commit {
            flags: self.u8("Commit flags")?,
            commit_lsn: self.u64("Commit LSN")?,
            end_lsn: self.u64("Commit end LSN")?,
            commit_time_micros: self.i64("Commit timestamp")?,
        })
    }

    fn origin(&mut self) -> Result<Origin, DecodeError> {
        Ok(Origin {
            commit_lsn: self.u64("Origin commit LSN")?,
            name: self.string("Origin name")?,
        })
    }

    fn relation(&mut self) -> Result<Relation, DecodeError> {
        let id = self.u32("Relation OID")?;
        let namespace = self.string("Relation namespace")?;
        let name = self.string("Relation name")?;
        let identity_offset = self.pos;
        let replica_identity = match self.u8("Relation replica identity")? {
            b'd' => ReplicaIdentity::Default,
            b'n' => ReplicaIdentity::Nothing,
            b'f' => ReplicaIdentity::Full,
            b'i' => ReplicaIdentity::Index,
            value => {
                return Err(DecodeError::UnknownReplicaIdentity {
                    offset: identity_offset,
                    value,
                });
            }
        };
        let count_offset = self.pos;
        // Int16 on the wire; the server's own reader (pq_getmsgint) treats it as unsigned.
        let count = self.u16("Relation column count")?;
        self.check_count(
            count_offset,
            "Relation column",
            count.into(),
            MIN_RELATION_COLUMN_LEN,
        )?;
        let mut columns = Vec::with_capacity(count.into());
        for _ in 0..count {
            columns.push(RelationColumn {
                is_key: self.u8("Relation column flags")? & 1 != 0,
                name: self.string("Relation column name")?,
                type_oid: self.u32("Relation column type OID")?,
                type_modifier: self.i32("Relation column type modifier")?,
            });
        }
        Ok(Relation {
            id,
            namespace,
            name,
            replica_identity,
            columns,
        })
    }

    fn type_message(&mut self) -> Result<TypeMessage, DecodeError> {
        Ok(TypeMessage {
            id: self.u32("Type OID")?,
            namespace: self.string("Type namespace")?,
            name: self.string("Type name")?,
        })
    }

    fn insert(&mut self) -> Result<Insert<'a>, DecodeError> {
        let relation_id = self.u32("Insert relation OID")?;
        self.expect_new_marker("Insert")?;
        Ok(Insert {
            relation_id,
            new: self.tuple()?,
        })
    }

    fn update(&mut self) -> Result<Update<'a>, DecodeError> {
        let relation_id = self.u32("Update relation OID")?;
        let marker_offset = self.pos;
        let old = match self.u8("Update tuple marker")? {
            b'N' => None,
            marker => {
                let kind = self.old_kind(marker, marker_offset, "Update", "'K', 'O' or 'N'")?;
                let tuple = self.tuple()?;
                self.expect_new_marker("Update")?;
                Some(OldTuple { kind, tuple })
            }
        };
        Ok(Update {
            relation_id,
            old,
            new: self.tuple()?,
        })
    }

    fn delete(&mut self) -> Result<Delete<'a>, DecodeError> {
        let relation_id = self.u32("Delete relation OID")?;
        let marker_offset = self.pos;
        let marker = self.u8("Delete tuple marker")?;
        let kind = self.old_kind(marker, marker_offset, "Delete", "'K' or 'O'")?;
        Ok(Delete {
            relation_id,
            old: OldTuple {
                kind,
                tuple: self.tuple()?,
            },
        })
    }

    fn old_kind(
        &self,
        marker: u8,
        offset: usize,
        message: &'static str,
        expected: &'static str,
    ) -> Result<OldTupleKind, DecodeError> {
        match marker {
            b'K' => Ok(OldTupleKind::Key),
            b'O' => Ok(OldTupleKind::Full),
            found => Err(DecodeError::UnexpectedTupleMarker {
                offset,
                message,
                found,
                expected,
            }),
        }
    }

    fn expect_new_marker(&mut self, message: &'static str) -> Result<(), DecodeError> {
        let offset = self.pos;
        match self.u8("new tuple marker")? {
            b'N' => Ok(()),
            found => Err(DecodeError::UnexpectedTupleMarker {
                offset,
                message,
                found,
                expected: "'N'",
            }),
        }
    }

    fn tuple(&mut self) -> Result<Tuple<'a>, DecodeError> {
        let count_offset = self.pos;
        // Int16 on the wire; the server's own reader (pq_getmsgint) treats it as unsigned.
        let count = self.u16("tuple column count")?;
        self.check_count(count_offset, "tuple column", count.into(), MIN_CELL_LEN)?;
        let mut cells = Vec::with_capacity(count.into());
        for _ in 0..count {
            let kind_offset = self.pos;
            cells.push(match self.u8("tuple cell kind")? {
                b'n' => Cell::Null,
                b'u' => Cell::UnchangedToast,
                b't' => Cell::Text(Cow::Borrowed(self.sized_slice("text cell value")?)),
                b'b' => Cell::Binary(Cow::Borrowed(self.sized_slice("binary cell value")?)),
                kind => {
                    return Err(DecodeError::UnknownCellKind {
                        offset: kind_offset,
                        kind,
                    });
                }
            });
        }
        Ok(Tuple(cells))
    }

    fn truncate(&mut self) -> Result<Truncate, DecodeError> {
        let count_offset = self.pos;
        let count = self.u32("Truncate relation count")?;
        let options = self.u8("Truncate options")?;
        self.check_count(count_offset, "Truncate relation", count.into(), 4)?;
        let mut relation_ids = Vec::with_capacity(count as usize);
        for _ in 0..count {
            relation_ids.push(self.u32("Truncate relation OID")?);
        }
        Ok(Truncate {
            options,
            relation_ids,
        })
    }

    fn logical_message(&mut self) -> Result<LogicalMessage, DecodeError> {
        // Bit 0 is the only flag the server defines (MESSAGE_TRANSACTIONAL).
        let transactional = self.u8("Message flags")? & 1 != 0;
        Ok(LogicalMessage {
            transactional,
            lsn: self.u64("Message LSN")?,
            prefix: self.string("Message prefix")?,
            content: self.data.slice_ref(self.sized_slice("Message content")?),
        })
    }
}

/// Test-only encoder, the inverse of [`decode`], so tests anywhere in the crate can build messages.
#[cfg(test)]
pub(crate) mod testing {
    use super::*;
    use bytes::{BufMut, BytesMut};

    pub(crate) fn encode(message: &Message) -> Bytes {
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
}

#[cfg(test)]
mod tests {
    use super::testing::encode;
    use super::*;
    use std::collections::{HashMap, HashSet};
    use std::sync::OnceLock;

    // ---------------------------------------------------------------------------------------
    // Fixtures: real PostgreSQL 15 output, see scripts/capture-pgoutput-fixtures.sh.

    macro_rules! fixtures {
        ($($name:literal),* $(,)?) => {
            const FIXTURES: &[(&str, &str)] = &[$(
                ($name, include_str!(concat!("../../tests/fixtures/pgoutput/", $name, ".txt"))),
            )*];
        };
    }

    fixtures!(
        "insert_full",
        "update_full",
        "insert_toast",
        "update_toast_unchanged",
        "insert_default",
        "update_default_no_old",
        "update_default_key_changed",
        "delete_full",
        "delete_default",
        "truncate",
        "origin",
        "logical_message",
        "binary_insert",
        "session_relation_resend",
    );

    fn unhex(s: &str) -> Vec<u8> {
        assert!(s.len().is_multiple_of(2), "odd hex length");
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    fn raw_fixture(name: &str) -> Vec<Bytes> {
        let (_, text) = FIXTURES
            .iter()
            .find(|(n, _)| *n == name)
            .expect("unknown fixture");
        let first = text.lines().next().unwrap_or_default();
        assert!(
            first.starts_with("# "),
            "{name}: the first line must say what produced it"
        );
        text.lines()
            .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
            .map(|l| Bytes::from(unhex(l.trim())))
            .collect()
    }

    fn fixture(name: &str) -> Vec<Message<'static>> {
        raw_fixture(name)
            .iter()
            .enumerate()
            .map(|(i, b)| {
                decode(b)
                    .unwrap_or_else(|e| panic!("{name} message {i}: {e}"))
                    .into_owned()
            })
            .collect()
    }

    /// Every message of every fixture, parsed once (the largest are tens of KB of hex).
    fn all_raw() -> &'static [(&'static str, Bytes)] {
        static ALL: OnceLock<Vec<(&'static str, Bytes)>> = OnceLock::new();
        ALL.get_or_init(|| {
            FIXTURES
                .iter()
                .flat_map(|(n, _)| raw_fixture(n).into_iter().map(move |b| (*n, b)))
                .collect()
        })
    }

    /// The message tags of a fixture, e.g. "BYRIC", for asserting the shape of a stream.
    fn tags(messages: &[Message]) -> String {
        messages
            .iter()
            .map(|m| match m {
                Message::Begin(_) => 'B',
                Message::Commit(_) => 'C',
                Message::Origin(_) => 'O',
                Message::Relation(_) => 'R',
                Message::Type(_) => 'Y',
                Message::Insert(_) => 'I',
                Message::Update(_) => 'U',
                Message::Delete(_) => 'D',
                Message::Truncate(_) => 'T',
                Message::Message(_) => 'M',
            })
            .collect()
    }

    fn relations<'a>(messages: &'a [Message<'_>]) -> Vec<&'a Relation> {
        messages
            .iter()
            .filter_map(|m| {
                if let Message::Relation(r) = m {
                    Some(r)
                } else {
                    None
                }
            })
            .collect()
    }

    fn relation<'a>(messages: &'a [Message], name: &str) -> &'a Relation {
        relations(messages)
            .into_iter()
            .find(|r| r.name == name)
            .unwrap_or_else(|| panic!("no Relation {name}"))
    }

    fn types<'a>(messages: &'a [Message<'_>]) -> Vec<&'a TypeMessage> {
        messages
            .iter()
            .filter_map(|m| {
                if let Message::Type(t) = m {
                    Some(t)
                } else {
                    None
                }
            })
            .collect()
    }

    fn inserts<'a, 'm>(messages: &'a [Message<'m>]) -> Vec<&'a Insert<'m>> {
        messages
            .iter()
            .filter_map(|m| {
                if let Message::Insert(i) = m {
                    Some(i)
                } else {
                    None
                }
            })
            .collect()
    }

    fn updates<'a, 'm>(messages: &'a [Message<'m>]) -> Vec<&'a Update<'m>> {
        messages
            .iter()
            .filter_map(|m| {
                if let Message::Update(u) = m {
                    Some(u)
                } else {
                    None
                }
            })
            .collect()
    }

    fn deletes<'a, 'm>(messages: &'a [Message<'m>]) -> Vec<&'a Delete<'m>> {
        messages
            .iter()
            .filter_map(|m| {
                if let Message::Delete(d) = m {
                    Some(d)
                } else {
                    None
                }
            })
            .collect()
    }

    fn truncates<'a>(messages: &'a [Message<'_>]) -> Vec<&'a Truncate> {
        messages
            .iter()
            .filter_map(|m| {
                if let Message::Truncate(t) = m {
                    Some(t)
                } else {
                    None
                }
            })
            .collect()
    }

    fn begin<'a>(messages: &'a [Message<'_>]) -> &'a Begin {
        match &messages[0] {
            Message::Begin(b) => b,
            other => panic!("expected Begin first, got {other:?}"),
        }
    }

    /// The cell of column `name` (looked up in the Relation, as the replicator will).
    fn cell<'a, 't>(rel: &Relation, tuple: &'a Tuple<'t>, name: &str) -> &'a Cell<'t> {
        let i = rel
            .columns
            .iter()
            .position(|c| c.name == name)
            .unwrap_or_else(|| panic!("no column {name}"));
        &tuple.0[i]
    }

    #[track_caller]
    fn text<'a>(rel: &Relation, tuple: &'a Tuple, name: &str) -> &'a str {
        match cell(rel, tuple, name) {
            Cell::Text(b) => std::str::from_utf8(b).expect("text cell is UTF-8"),
            other => panic!("column {name}: expected a text cell, got {other:?}"),
        }
    }

    #[track_caller]
    fn assert_null(rel: &Relation, tuple: &Tuple, name: &str) {
        assert_eq!(cell(rel, tuple, name), &Cell::Null, "column {name}");
    }

    const TEXT_OID: u32 = 25;
    const TEXT_ARRAY_OID: u32 = 1009;
    const INT4_OID: u32 = 23;
    const INT8_OID: u32 = 20;
    const BOOL_OID: u32 = 16;
    const FLOAT8_OID: u32 = 701;
    const TIMESTAMP_OID: u32 = 1114;
    const JSONB_OID: u32 = 3802;
    /// First OID of user-created objects (FirstNormalObjectId). pgoutput sends a Type message for
    /// any column type at or above FirstGenbkiObjectId (10000), so for every user type.
    const FIRST_NORMAL_OID: u32 = 16384;
    /// Seconds from 1970-01-01 to 2000-01-01, the pgoutput timestamp epoch.
    const PG_EPOCH_UNIX_SECS: i64 = 946_684_800;

    #[test]
    fn every_fixture_file_is_listed() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/pgoutput");
        let mut on_disk: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| n.ends_with(".txt"))
            .map(|n| n.trim_end_matches(".txt").to_owned())
            .collect();
        on_disk.sort();
        let mut listed: Vec<String> = FIXTURES.iter().map(|(n, _)| (*n).to_owned()).collect();
        listed.sort();
        assert_eq!(on_disk, listed);
    }

    /// Protocol invariants that hold across every fixture: transactions pair up, changes refer
    /// to a Relation already seen in the stream and have one cell per column, Type messages
    /// precede the Relation that needs them, old-tuple kinds match the replica identity.
    #[test]
    fn fixture_streams_are_consistent() {
        for (name, _) in FIXTURES {
            let messages = fixture(name);
            assert!(!messages.is_empty(), "{name} is empty");
            let mut rels: HashMap<u32, &Relation> = HashMap::new();
            let mut types_seen: HashSet<u32> = HashSet::new();
            let mut open: Option<&Begin> = None;
            let mut last_commit_lsn = 0;
            fn arity<'m>(
                name: &str,
                rels: &HashMap<u32, &'m Relation>,
                id: u32,
                tuple: &Tuple,
            ) -> &'m Relation {
                let rel = rels
                    .get(&id)
                    .unwrap_or_else(|| panic!("{name}: change before Relation {id}"));
                assert_eq!(
                    tuple.0.len(),
                    rel.columns.len(),
                    "{name}: cells vs columns of {}",
                    rel.name
                );
                rel
            }
            let check_old = |rel: &Relation, old: &OldTuple| match old.kind {
                OldTupleKind::Full => {
                    assert_eq!(rel.replica_identity, ReplicaIdentity::Full, "{name}")
                }
                OldTupleKind::Key => {
                    assert!(
                        matches!(
                            rel.replica_identity,
                            ReplicaIdentity::Default | ReplicaIdentity::Index
                        ),
                        "{name}"
                    );
                    for (col, cell) in rel.columns.iter().zip(&old.tuple.0) {
                        if !col.is_key {
                            assert_eq!(
                                cell,
                                &Cell::Null,
                                "{name}: non-key {} in a 'K' tuple",
                                col.name
                            );
                        }
                    }
                }
            };
            for m in &messages {
                let in_txn = open.is_some();
                match m {
                    Message::Begin(b) => {
                        assert!(!in_txn, "{name}: nested Begin");
                        assert!(b.xid > 0 && b.final_lsn > last_commit_lsn, "{name}: {b:?}");
                        open = Some(b);
                    }
                    Message::Commit(c) => {
                        let b = open
                            .take()
                            .unwrap_or_else(|| panic!("{name}: Commit without Begin"));
                        assert_eq!(c.commit_lsn, b.final_lsn, "{name}");
                        assert_eq!(c.commit_time_micros, b.commit_time_micros, "{name}");
                        assert!(c.end_lsn > c.commit_lsn, "{name}: {c:?}");
                        assert_eq!(c.flags, 0, "{name}");
                        last_commit_lsn = c.commit_lsn;
                        types_seen.clear();
                    }
                    Message::Message(msg) => {
                        assert_eq!(msg.transactional, in_txn, "{name}: {msg:?}")
                    }
                    other => {
                        assert!(in_txn, "{name}: {} outside a transaction", other.name());
                        match other {
                            Message::Type(t) => {
                                assert!(
                                    t.id >= FIRST_NORMAL_OID,
                                    "{name}: Type for built-in {t:?}"
                                );
                                types_seen.insert(t.id);
                            }
                            Message::Relation(r) => {
                                for c in &r.columns {
                                    if c.type_oid >= FIRST_NORMAL_OID {
                                        assert!(
                                            types_seen.contains(&c.type_oid),
                                            "{name}: {} before its Type",
                                            r.name
                                        );
                                    }
                                    if r.replica_identity == ReplicaIdentity::Full {
                                        assert!(c.is_key, "{name}: FULL marks every column as key");
                                    }
                                }
                                rels.insert(r.id, r);
                            }
                            Message::Insert(i) => {
                                arity(name, &rels, i.relation_id, &i.new);
                            }
                            Message::Update(u) => {
                                let rel = arity(name, &rels, u.relation_id, &u.new);
                                if let Some(old) = &u.old {
                                    arity(name, &rels, u.relation_id, &old.tuple);
                                    check_old(rel, old);
                                } else {
                                    assert_ne!(
                                        rel.replica_identity,
                                        ReplicaIdentity::Full,
                                        "{name}"
                                    );
                                }
                            }
                            Message::Delete(d) => {
                                let rel = arity(name, &rels, d.relation_id, &d.old.tuple);
                                check_old(rel, &d.old);
                            }
                            Message::Truncate(t) => {
                                for id in &t.relation_ids {
                                    assert!(
                                        rels.contains_key(id),
                                        "{name}: Truncate of unseen relation {id}"
                                    );
                                }
                            }
                            Message::Origin(_) => {}
                            Message::Begin(_) | Message::Commit(_) | Message::Message(_) => {
                                unreachable!()
                            }
                        }
                    }
                }
            }
            assert!(open.is_none(), "{name}: unterminated transaction");
        }
    }

    /// Column names and types of a table, read from its CREATE TABLE in config/postgres.
    fn columns_from_sql(sql: &str) -> Vec<(String, String)> {
        sql.lines()
            .filter_map(|l| l.strip_prefix("    \""))
            .map(|rest| {
                let (name, ty) = rest.split_once("\" ").unwrap();
                let ty = ty.split(" NOT NULL").next().unwrap();
                let ty = ty.split(" DEFAULT").next().unwrap().trim_end_matches(',');
                (name.to_owned(), ty.to_owned())
            })
            .collect()
    }

    /// The Relation matches the shipped DDL column for column, with the expected type OIDs
    /// (custom enums resolved through the Type messages sent before it).
    fn assert_relation_matches_sql(messages: &[Message], rel: &Relation, sql: &str) {
        let type_ids: HashMap<&str, u32> = types(messages)
            .iter()
            .map(|t| (t.name.as_str(), t.id))
            .collect();
        let expected = columns_from_sql(sql);
        assert_eq!(rel.columns.len(), expected.len());
        assert_eq!(rel.columns.len(), 83);
        for (col, (name, ty)) in rel.columns.iter().zip(&expected) {
            assert_eq!(&col.name, name);
            assert!(col.is_key, "REPLICA IDENTITY FULL flags {name}");
            let (oid, typmod) = match ty.as_str() {
                "TEXT" => (TEXT_OID, -1),
                "TEXT[]" => (TEXT_ARRAY_OID, -1),
                "INTEGER" => (INT4_OID, -1),
                "BOOLEAN" => (BOOL_OID, -1),
                "DOUBLE PRECISION" => (FLOAT8_OID, -1),
                "JSONB" => (JSONB_OID, -1),
                // TIMESTAMP(3): the precision is the type modifier.
                "TIMESTAMP(3)" => (TIMESTAMP_OID, 3),
                quoted => (type_ids[quoted.trim_matches('"')], -1),
            };
            assert_eq!(
                (col.type_oid, col.type_modifier),
                (oid, typmod),
                "column {name} {ty}"
            );
        }
    }

    #[test]
    fn insert_into_both_full_tables() {
        let m = fixture("insert_full");
        assert_eq!(tags(&m), "BYYYRIYYYRIC");

        let b = begin(&m);
        // Committed while capturing: somewhere between 2020 and 2100 after the 2000-01-01 epoch.
        let year_micros = 365 * 86_400 * 1_000_000_i64;
        assert!(
            (20 * year_micros..100 * year_micros).contains(&b.commit_time_micros),
            "{b:?}"
        );

        let ty = types(&m);
        let names: Vec<_> = ty
            .iter()
            .map(|t| (t.namespace.as_str(), t.name.as_str()))
            .collect();
        assert_eq!(
            names[..3],
            [
                ("public", "RunEngineVersion"),
                ("public", "TaskRunStatus"),
                ("public", "RuntimeEnvironmentType")
            ]
        );
        // Types are re-sent before the second Relation even though the ids are the same.
        assert_eq!(ty[..3], ty[3..]);

        let task_run = relation(&m, "TaskRun");
        assert_eq!(task_run.namespace, "public");
        assert_eq!(task_run.replica_identity, ReplicaIdentity::Full);
        assert_relation_matches_sql(
            &m,
            task_run,
            include_str!("../../config/postgres/002_task_run.sql"),
        );
        let v2 = relation(&m, "task_run_v2");
        assert_eq!(v2.replica_identity, ReplicaIdentity::Full);
        assert_ne!(v2.id, task_run.id);
        assert_relation_matches_sql(
            &m,
            v2,
            include_str!("../../config/postgres/003_task_run_v2.sql"),
        );

        let ins = inserts(&m);
        assert_eq!(ins[0].relation_id, task_run.id);
        let row = &ins[0].new;
        let t = |name| text(task_run, row, name);
        assert_eq!(t("id"), "run_full_1");
        assert_eq!(t("number"), "42");
        assert_eq!(t("engine"), "V2");
        assert_eq!(t("status"), "COMPLETED_WITH_ERRORS");
        assert_eq!(t("environmentType"), "PRODUCTION");
        assert_null(task_run, row, "statusReason");
        assert_eq!(t("idempotencyKeyExpiresAt"), "2026-01-02 03:04:05.678");
        assert_eq!(t("createdAt"), "2026-01-02 03:04:05.001");
        assert_eq!(t("updatedAt"), "2026-01-02 03:04:06.999");
        assert_null(task_run, row, "startedAt");
        // jsonb is normalised by the server; text is sent verbatim (UTF-8 included).
        assert_eq!(
            t("idempotencyKeyOptions"),
            r#"{"key": "idem-1", "scope": "run"}"#
        );
        assert_eq!(t("payload"), r#"{"hello":"wörld","n":[1,2.5,null]}"#);
        assert_eq!(t("traceContext"), "{}");
        assert_null(task_run, row, "context");
        assert_eq!(
            t("error"),
            r#"{"type": "BUILT_IN_ERROR", "message": "tab\there \"quoted\" \\ newline\nend"}"#
        );
        assert_eq!(t("isTest"), "t");
        assert_eq!(t("isWarmStart"), "f");
        assert_eq!(t("resumeParentOnCompletion"), "f");
        assert_eq!(t("costInCents"), "1.5");
        assert_eq!(t("baseCostInCents"), "0.1");
        assert_eq!(t("attemptNumber"), "3");
        assert_null(task_run, row, "maxDurationInSeconds");
        assert_eq!(t("runTags"), r#"{"tag a","b,\"c\"",NULL,""}"#);
        assert_eq!(t("bulkActionGroupIds"), "{}");
        assert_eq!(t("realtimeStreams"), "{v1,v2}");
        // An empty string is a zero-length text cell, not NULL.
        assert_eq!(
            cell(task_run, row, "output"),
            &Cell::Text(Cow::Borrowed(b""))
        );
        assert_eq!(t("masterQueue"), "main");
        assert_eq!(t("taskEventStore"), "taskEvent");

        assert_eq!(ins[1].relation_id, v2.id);
        let sparse = &ins[1].new;
        assert_eq!(text(v2, sparse, "id"), "2Yx0sparse");
        assert_eq!(text(v2, sparse, "engine"), "V1");
        assert_eq!(text(v2, sparse, "status"), "PENDING");
        assert_eq!(text(v2, sparse, "updatedAt"), "2026-06-30 23:59:59.5");
        assert_eq!(text(v2, sparse, "payload"), "");
        assert_null(v2, sparse, "organizationId");
        assert_null(v2, sparse, "environmentType");
        assert_null(v2, sparse, "runTags");
        // Only the NOT NULL columns were given values, so exactly the nullable columns without a
        // DEFAULT are NULL.
        let sql = include_str!("../../config/postgres/003_task_run_v2.sql");
        let no_value: Vec<bool> = sql
            .lines()
            .filter(|l| l.starts_with("    \""))
            .map(|l| !l.contains(" NOT NULL") && !l.contains(" DEFAULT "))
            .collect();
        let nulls: Vec<bool> = sparse.0.iter().map(|c| *c == Cell::Null).collect();
        assert_eq!(nulls, no_value);
        assert_eq!(nulls.iter().filter(|n| **n).count(), 52);
        assert!(
            !sparse
                .0
                .iter()
                .any(|c| matches!(c, Cell::UnchangedToast | Cell::Binary(_)))
        );
    }

    #[test]
    fn update_full_identity_carries_whole_old_row() {
        let m = fixture("update_full");
        assert_eq!(tags(&m), "BYYYRUC");
        let rel = relation(&m, "TaskRun");
        let u = updates(&m)[0];
        assert_eq!(u.relation_id, rel.id);
        let old = u.old.as_ref().expect("FULL identity sends the old row");
        assert_eq!(old.kind, OldTupleKind::Full);
        assert_eq!(text(rel, &old.tuple, "status"), "COMPLETED_WITH_ERRORS");
        assert_eq!(text(rel, &u.new, "status"), "EXECUTING");
        assert_eq!(text(rel, &old.tuple, "attemptNumber"), "3");
        assert_eq!(text(rel, &u.new, "attemptNumber"), "4");
        assert_null(rel, &old.tuple, "startedAt");
        assert_eq!(text(rel, &u.new, "startedAt"), "2026-01-02 03:05:00");
        assert_eq!(text(rel, &old.tuple, "isTest"), "t");
        assert_eq!(text(rel, &u.new, "isTest"), "f");
        // Everything else is the same row, value for value.
        let changed = ["status", "attemptNumber", "startedAt", "isTest"];
        for (i, col) in rel.columns.iter().enumerate() {
            if !changed.contains(&col.name.as_str()) {
                assert_eq!(old.tuple.0[i], u.new.0[i], "column {}", col.name);
            }
        }
        assert_eq!(text(rel, &old.tuple, "organizationId"), "org_1");
    }

    fn assert_big_hex_value(value: &str) {
        assert_eq!(value.len(), 600 * 32);
        assert!(value.bytes().all(|b| b.is_ascii_hexdigit()));
    }

    #[test]
    fn toasted_values_inserted_then_left_unchanged() {
        let ins = fixture("insert_toast");
        assert_eq!(tags(&ins), "BYYYRIYYRIC");
        let (task_run, fixture_default) =
            (relation(&ins, "TaskRun"), relation(&ins, "fixture_default"));
        let rows = inserts(&ins);
        let big_output = text(task_run, &rows[0].new, "output");
        assert_big_hex_value(big_output);
        let big_default = text(fixture_default, &rows[1].new, "big");
        assert_big_hex_value(big_default);

        let m = fixture("update_toast_unchanged");
        assert_eq!(tags(&m), "BYYYRUYYRUC");
        let (task_run, fixture_default) =
            (relation(&m, "TaskRun"), relation(&m, "fixture_default"));
        let [full, default] = updates(&m)[..] else {
            panic!("two updates expected")
        };

        // FULL: the old row carries the detoasted value, the new one only says "unchanged".
        assert_eq!(full.relation_id, task_run.id);
        let old = full.old.as_ref().unwrap();
        assert_eq!(old.kind, OldTupleKind::Full);
        assert_eq!(text(task_run, &old.tuple, "output"), big_output);
        assert_eq!(cell(task_run, &full.new, "output"), &Cell::UnchangedToast);
        assert_eq!(
            text(task_run, &full.new, "status"),
            "COMPLETED_SUCCESSFULLY"
        );
        assert_eq!(
            text(task_run, &full.new, "completedAt"),
            "2026-01-01 00:01:00"
        );
        let unchanged: Vec<_> = full
            .new
            .0
            .iter()
            .filter(|c| **c == Cell::UnchangedToast)
            .collect();
        assert_eq!(unchanged.len(), 1);

        // DEFAULT, key unchanged: no old row at all, so the value is nowhere in the message.
        assert_eq!(default.relation_id, fixture_default.id);
        assert_eq!(default.old, None);
        assert_eq!(
            cell(fixture_default, &default.new, "big"),
            &Cell::UnchangedToast
        );
        assert_eq!(
            text(fixture_default, &default.new, "label"),
            "big one, relabelled"
        );
        assert_eq!(text(fixture_default, &default.new, "spot"), "(7,seven)");
    }

    fn assert_fixture_default_relation<'a>(m: &'a [Message<'_>]) -> &'a Relation {
        let rel = relation(m, "fixture_default");
        let ty = types(m);
        let mood = ty
            .iter()
            .find(|t| t.name == "fixture_mood")
            .expect("Type fixture_mood");
        let spot = ty
            .iter()
            .find(|t| t.name == "fixture_point")
            .expect("Type fixture_point");
        assert_eq!(
            (rel.namespace.as_str(), rel.replica_identity),
            ("public", ReplicaIdentity::Default)
        );
        let cols: Vec<_> = rel
            .columns
            .iter()
            .map(|c| (c.is_key, c.name.as_str(), c.type_oid, c.type_modifier))
            .collect();
        assert_eq!(
            cols[..5],
            [
                (true, "id", INT4_OID, -1),
                (false, "label", TEXT_OID, -1),
                (false, "mood", mood.id, -1),
                (false, "spot", spot.id, -1),
                (false, "big", TEXT_OID, -1),
            ]
        );
        rel
    }

    #[test]
    fn insert_with_default_identity_and_custom_types() {
        let m = fixture("insert_default");
        assert_eq!(tags(&m), "BYYRIIRIC");
        let rel = assert_fixture_default_relation(&m);
        assert_eq!(rel.columns.len(), 5);
        let rows = inserts(&m);
        assert_eq!(
            rows[0].new.0,
            [
                Cell::Text(Cow::Borrowed(b"1")),
                Cell::Text(Cow::Borrowed(b"one")),
                Cell::Text(Cow::Borrowed(b"happy")),
                Cell::Text(Cow::Borrowed(br#"(1,"a b")"#)),
                Cell::Null,
            ]
        );
        assert_eq!(text(rel, &rows[1].new, "id"), "2");
        assert_null(rel, &rows[1].new, "mood");
        assert_null(rel, &rows[1].new, "spot");

        // A table with no custom types gets a Relation with no Type messages before it.
        let child = relation(&m, "fixture_child");
        assert_eq!(child.replica_identity, ReplicaIdentity::Default);
        let cols: Vec<_> = child
            .columns
            .iter()
            .map(|c| (c.is_key, c.name.as_str(), c.type_oid))
            .collect();
        assert_eq!(
            cols,
            [
                (true, "id", INT4_OID),
                (false, "parent_id", INT4_OID),
                (false, "note", TEXT_OID)
            ]
        );
        assert_eq!(rows[2].relation_id, child.id);
        assert_eq!(text(child, &rows[2].new, "note"), "child of one");
    }

    #[test]
    fn update_default_identity_without_key_change_has_no_old_tuple() {
        let m = fixture("update_default_no_old");
        assert_eq!(tags(&m), "BYYRUC");
        let rel = assert_fixture_default_relation(&m);
        let u = updates(&m)[0];
        assert_eq!(u.old, None);
        assert_eq!(text(rel, &u.new, "id"), "1");
        assert_eq!(text(rel, &u.new, "label"), "one, updated");
        assert_eq!(text(rel, &u.new, "mood"), "sad");
        assert_eq!(text(rel, &u.new, "spot"), r#"(1,"a b")"#);
        assert_null(rel, &u.new, "big");
    }

    #[test]
    fn update_default_identity_with_key_change_has_key_tuple() {
        let m = fixture("update_default_key_changed");
        assert_eq!(tags(&m), "BYYRUC");
        let rel = assert_fixture_default_relation(&m);
        let u = updates(&m)[0];
        let old = u.old.as_ref().expect("a key change sends the old key");
        assert_eq!(old.kind, OldTupleKind::Key);
        assert_eq!(
            old.tuple.0,
            [
                Cell::Text(Cow::Borrowed(b"2")),
                Cell::Null,
                Cell::Null,
                Cell::Null,
                Cell::Null
            ]
        );
        assert_eq!(text(rel, &u.new, "id"), "20");
        assert_eq!(text(rel, &u.new, "label"), "two, moved");
    }

    #[test]
    fn delete_full_identity_carries_whole_row() {
        let m = fixture("delete_full");
        assert_eq!(tags(&m), "BYYYRDC");
        let rel = relation(&m, "task_run_v2");
        let d = deletes(&m)[0];
        assert_eq!(d.relation_id, rel.id);
        assert_eq!(d.old.kind, OldTupleKind::Full);
        // The same row as inserted by insert_full.
        let insert_full = fixture("insert_full");
        let inserted = &inserts(&insert_full)[1].new;
        assert_eq!(&d.old.tuple, inserted);
        assert_eq!(text(rel, &d.old.tuple, "friendlyId"), "run_sparse");
    }

    #[test]
    fn delete_default_identity_carries_only_the_key() {
        let m = fixture("delete_default");
        assert_eq!(tags(&m), "BYYRDC");
        let rel = assert_fixture_default_relation(&m);
        let d = deletes(&m)[0];
        assert_eq!(d.relation_id, rel.id);
        assert_eq!(d.old.kind, OldTupleKind::Key);
        assert_eq!(
            d.old.tuple.0,
            [
                Cell::Text(Cow::Borrowed(b"20")),
                Cell::Null,
                Cell::Null,
                Cell::Null,
                Cell::Null
            ]
        );
    }

    #[test]
    fn truncate_options_and_relations() {
        let m = fixture("truncate");
        // The Relation is re-sent before each TRUNCATE although this decoding session already sent
        // it: TRUNCATE gives the table a new relfilenode, which invalidates the relcache entry.
        assert_eq!(tags(&m), "BYYYRICBYYYRTCBYYRRTCBYYYRYYYRTCBYYRRTC");
        let [v2_insert] = relations(&m)[..1] else {
            unreachable!()
        };
        let ids =
            |names: &[&str]| -> Vec<u32> { names.iter().map(|n| relation(&m, n).id).collect() };
        let t = truncates(&m);
        assert_eq!(t.len(), 4);
        assert_eq!((t[0].options, &t[0].relation_ids), (0, &vec![v2_insert.id]));
        assert_eq!(
            (t[1].options, &t[1].relation_ids),
            (
                Truncate::CASCADE | Truncate::RESTART_IDENTITY,
                &ids(&["fixture_default", "fixture_child"])
            )
        );
        assert_eq!(
            (t[2].options, &t[2].relation_ids),
            (
                Truncate::RESTART_IDENTITY,
                &ids(&["TaskRun", "task_run_v2"])
            )
        );
        assert_eq!(
            (t[3].options, &t[3].relation_ids),
            (
                Truncate::CASCADE,
                &ids(&["fixture_default", "fixture_child"])
            )
        );
    }

    #[test]
    fn origin_message_follows_begin() {
        let m = fixture("origin");
        assert_eq!(tags(&m), "BOYYRIC");
        let Message::Origin(o) = &m[1] else {
            unreachable!()
        };
        assert_eq!(
            o,
            &Origin {
                commit_lsn: 0x1234_ABCD,
                name: "fixture_origin".into()
            }
        );
        // With an origin, the transaction's commit time is the one given to
        // pg_replication_origin_xact_setup: 2026-03-04 05:06:07 UTC.
        assert_eq!(
            begin(&m).commit_time_micros,
            (1_772_600_767 - PG_EPOCH_UNIX_SECS) * 1_000_000
        );
        let rel = relation(&m, "fixture_default");
        assert_eq!(text(rel, &inserts(&m)[0].new, "label"), "from elsewhere");
    }

    #[test]
    fn logical_messages_transactional_and_not() {
        let m = fixture("logical_message");
        assert_eq!(tags(&m), "BYYRIMCM");
        let b = begin(&m);
        let Message::Message(tx) = &m[5] else {
            unreachable!()
        };
        let Message::Message(nontx) = &m[7] else {
            unreachable!()
        };
        assert!(tx.transactional);
        assert_eq!(tx.prefix, "fixture-tx");
        assert_eq!(tx.content, Bytes::from_static(b"transactional hello"));
        // The LSN is the end of the message's WAL record, so at most the commit record's start.
        assert!(tx.lsn > 0 && tx.lsn <= b.final_lsn, "{tx:?} vs {b:?}");
        assert!(!nontx.transactional);
        assert_eq!(nontx.prefix, "fixture-nontx");
        assert_eq!(nontx.content, Bytes::from_static(b"\x00\xff\x41\x0a"));
        assert!(nontx.lsn > b.final_lsn);
    }

    #[test]
    fn binary_option_gives_binary_cells() {
        let m = fixture("binary_insert");
        assert_eq!(tags(&m), "BYYRIC");
        assert_fixture_default_relation(&m);
        let row = &inserts(&m)[0].new;
        assert_eq!(
            row.0,
            [
                Cell::Binary(Cow::Owned(500_i32.to_be_bytes().to_vec())),
                Cell::Binary(Cow::Borrowed(b"binary")),
                // enum_send sends the label.
                Cell::Binary(Cow::Borrowed(b"happy")),
                // record_send: 2 fields, (int4 oid, len 4, 5), (text oid, len 4, "five").
                Cell::Binary(Cow::Borrowed(
                    b"\0\0\0\x02\0\0\0\x17\0\0\0\x04\0\0\0\x05\0\0\0\x19\0\0\0\x04five"
                )),
                Cell::Null,
            ]
        );
    }

    #[test]
    fn relation_sent_once_per_session_and_again_after_ddl() {
        let m = fixture("session_relation_resend");
        assert_eq!(tags(&m), "BYYRICBICBYYRIC");
        let rels = relations(&m);
        assert_eq!(rels[0].id, rels[1].id);
        assert_eq!(rels[0].columns.len(), 5);
        let extra = rels[1].columns.last().unwrap();
        assert_eq!(
            (extra.is_key, extra.name.as_str(), extra.type_oid),
            (false, "extra", INT8_OID)
        );
        let rows = inserts(&m);
        assert_eq!(rows[1].new.0.len(), 5);
        assert_eq!(rows[2].new.0.len(), 6);
        assert_eq!(text(rels[1], &rows[2].new, "extra"), "9007199254740993");
    }

    // ---------------------------------------------------------------------------------------
    // Cross-check against an independent parser.

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

    fn oracle(data: &Bytes) -> Option<Message<'static>> {
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

    // ---------------------------------------------------------------------------------------
    // Malformed input.

    #[test]
    fn every_truncation_of_every_fixture_message_is_an_error() {
        for (name, data) in all_raw() {
            for len in 0..data.len() {
                match decode(&data.slice(..len)) {
                    Err(DecodeError::UnexpectedEnd {
                        offset,
                        available,
                        needed,
                        ..
                    }) => {
                        assert!(
                            offset <= len && available == len - offset && needed > available,
                            "{name}[..{len}]"
                        );
                    }
                    Err(DecodeError::UnterminatedString { offset, .. }) => {
                        assert!(offset <= len, "{name}[..{len}]")
                    }
                    Err(DecodeError::CountExceedsInput { .. }) => {}
                    other => panic!("{name} cut at {len} of {}: {other:?}", data.len()),
                }
            }
        }
    }

    #[test]
    fn trailing_bytes_are_an_error() {
        for (name, data) in all_raw() {
            let mut longer = data.to_vec();
            longer.push(0);
            let msg = decode(data).unwrap();
            assert_eq!(
                decode(&Bytes::from(longer)),
                Err(DecodeError::TrailingBytes {
                    offset: data.len(),
                    count: 1,
                    message: msg.name()
                }),
                "{name}"
            );
        }
    }

    #[test]
    fn text_cells_are_slices_of_the_input() {
        let data = raw_fixture("insert_toast")
            .into_iter()
            .find(|d| d[0] == b'I')
            .unwrap();
        let Message::Insert(ins) = decode(&data).unwrap() else {
            unreachable!()
        };
        let input = data.as_ptr_range();
        let mut big = 0;
        for c in &ins.new.0 {
            if let Cell::Text(v) = c {
                assert!(
                    input.contains(&v.as_ptr()) || v.is_empty(),
                    "cell copied out of the input"
                );
                big += usize::from(v.len() == 19_200);
            }
        }
        assert_eq!(big, 1);
    }

    /// Builds hand-made messages byte by byte.
    #[derive(Default)]
    struct W(Vec<u8>);
    impl W {
        fn u8(mut self, v: u8) -> Self {
            self.0.push(v);
            self
        }
        fn u16(mut self, v: u16) -> Self {
            self.0.extend_from_slice(&v.to_be_bytes());
            self
        }
        fn u32(mut self, v: u32) -> Self {
            self.0.extend_from_slice(&v.to_be_bytes());
            self
        }
        fn i32(self, v: i32) -> Self {
            self.u32(v as u32)
        }
        fn u64(mut self, v: u64) -> Self {
            self.0.extend_from_slice(&v.to_be_bytes());
            self
        }
        fn raw(mut self, v: &[u8]) -> Self {
            self.0.extend_from_slice(v);
            self
        }
        fn str(self, s: &str) -> Self {
            self.raw(s.as_bytes()).u8(0)
        }
        fn decode(self) -> Result<Message<'static>, DecodeError> {
            decode(&Bytes::from(self.0)).map(Message::into_owned)
        }
    }

    fn relation_head() -> W {
        W::default().u8(b'R').u32(16384).str("public").str("t")
    }

    #[test]
    fn empty_input() {
        let err = W::default().decode().unwrap_err();
        assert_eq!(
            err,
            DecodeError::UnexpectedEnd {
                offset: 0,
                what: "message tag",
                needed: 1,
                available: 0
            }
        );
        assert_eq!(
            err.to_string(),
            "unexpected end of message at offset 0 while reading message tag: needed 1 bytes, 0 left"
        );
    }

    #[test]
    fn unknown_tags_including_protocol_v2_and_later() {
        // S/E/c/A: streaming (v2); b/P/K/r/p: two-phase (v3); k/w: replication frames, not pgoutput.
        for tag in [
            b'Z', b'S', b'E', b'c', b'A', b'b', b'P', b'K', b'r', b'p', b'k', b'w', 0, 0xff,
        ] {
            assert_eq!(
                W::default().u8(tag).u64(0).decode(),
                Err(DecodeError::UnknownTag { tag })
            );
        }
        assert_eq!(
            DecodeError::UnknownTag { tag: b'S' }.to_string(),
            "unknown pgoutput message tag 'S' (0x53) at offset 0: expected one of B C O R Y I U D T M (protocol version 1)"
        );
        assert!(
            DecodeError::UnknownTag { tag: 0 }
                .to_string()
                .starts_with("unknown pgoutput message tag 0x00 at")
        );
    }

    #[test]
    fn short_fixed_fields() {
        let err = W::default()
            .u8(b'B')
            .u64(1)
            .u64(2)
            .raw(&[0, 0, 1])
            .decode()
            .unwrap_err();
        assert_eq!(
            err,
            DecodeError::UnexpectedEnd {
                offset: 17,
                what: "Begin xid",
                needed: 4,
                available: 3
            }
        );
        let err = W::default()
            .u8(b'C')
            .u8(0)
            .u64(1)
            .raw(&[1, 2])
            .decode()
            .unwrap_err();
        assert_eq!(
            err,
            DecodeError::UnexpectedEnd {
                offset: 10,
                what: "Commit end LSN",
                needed: 8,
                available: 2
            }
        );
    }

    #[test]
    fn huge_tuple_column_count_fails_fast() {
        // 10 bytes claiming 65535 cells.
        let msg = W::default()
            .u8(b'I')
            .u32(1)
            .u8(b'N')
            .u16(u16::MAX)
            .u8(b'n')
            .u8(b'n');
        assert_eq!(msg.0.len(), 10);
        assert_eq!(
            msg.decode(),
            Err(DecodeError::CountExceedsInput {
                offset: 6,
                what: "tuple column",
                count: 65535,
                needed: 65535,
                available: 2
            })
        );
        // The same count inside an old tuple.
        let msg = W::default().u8(b'D').u32(1).u8(b'O').u16(u16::MAX);
        assert!(matches!(
            msg.decode(),
            Err(DecodeError::CountExceedsInput {
                offset: 6,
                count: 65535,
                ..
            })
        ));
    }

    #[test]
    fn huge_relation_column_count_fails_fast() {
        let err = relation_head()
            .u8(b'f')
            .u16(u16::MAX)
            .u8(1)
            .str("a")
            .decode()
            .unwrap_err();
        assert_eq!(
            err,
            DecodeError::CountExceedsInput {
                offset: 15,
                what: "Relation column",
                count: 65535,
                needed: 655_350,
                available: 3
            }
        );
        assert_eq!(
            err.to_string(),
            "Relation column count 65535 at offset 15 needs at least 655350 more bytes, but only 3 are left"
        );
    }

    #[test]
    fn huge_truncate_count_fails_fast() {
        let err = W::default()
            .u8(b'T')
            .u32(u32::MAX)
            .u8(0)
            .u32(7)
            .decode()
            .unwrap_err();
        assert_eq!(
            err,
            DecodeError::CountExceedsInput {
                offset: 1,
                what: "Truncate relation",
                count: u32::MAX.into(),
                needed: 4 * u64::from(u32::MAX),
                available: 4
            }
        );
    }

    #[test]
    fn bad_lengths() {
        let neg = W::default()
            .u8(b'I')
            .u32(1)
            .u8(b'N')
            .u16(1)
            .u8(b't')
            .i32(-1)
            .decode();
        assert_eq!(
            neg,
            Err(DecodeError::NegativeLength {
                offset: 9,
                what: "text cell value",
                length: -1
            })
        );
        let huge = W::default()
            .u8(b'I')
            .u32(1)
            .u8(b'N')
            .u16(1)
            .u8(b'b')
            .i32(i32::MAX)
            .raw(b"abc")
            .decode();
        assert_eq!(
            huge,
            Err(DecodeError::UnexpectedEnd {
                offset: 13,
                what: "binary cell value",
                needed: i32::MAX as usize,
                available: 3
            })
        );
        let msg = W::default().u8(b'M').u8(1).u64(5).str("p");
        let neg = msg.i32(i32::MIN).decode();
        assert_eq!(
            neg,
            Err(DecodeError::NegativeLength {
                offset: 12,
                what: "Message content",
                length: i32::MIN
            })
        );
    }

    #[test]
    fn unknown_cell_kind() {
        let err = W::default()
            .u8(b'I')
            .u32(1)
            .u8(b'N')
            .u16(2)
            .u8(b'n')
            .u8(b'x')
            .decode()
            .unwrap_err();
        assert_eq!(
            err,
            DecodeError::UnknownCellKind {
                offset: 9,
                kind: b'x'
            }
        );
        assert_eq!(
            err.to_string(),
            "unknown tuple cell kind 'x' (0x78) at offset 9: expected 'n', 'u', 't' or 'b'"
        );
    }

    #[test]
    fn unknown_replica_identity() {
        let err = relation_head().u8(b'z').u16(0).decode().unwrap_err();
        assert_eq!(
            err,
            DecodeError::UnknownReplicaIdentity {
                offset: 14,
                value: b'z'
            }
        );
        for (byte, identity) in [
            (b'd', ReplicaIdentity::Default),
            (b'n', ReplicaIdentity::Nothing),
            (b'f', ReplicaIdentity::Full),
            (b'i', ReplicaIdentity::Index),
        ] {
            let Ok(Message::Relation(r)) = relation_head().u8(byte).u16(0).decode() else {
                panic!()
            };
            assert_eq!(r.replica_identity, identity);
        }
    }

    #[test]
    fn strings() {
        let err = W::default()
            .u8(b'R')
            .u32(1)
            .str("public")
            .raw(b"no-nul")
            .decode()
            .unwrap_err();
        assert_eq!(
            err,
            DecodeError::UnterminatedString {
                offset: 12,
                what: "Relation name"
            }
        );
        assert_eq!(
            err.to_string(),
            "Relation name starting at offset 12 has no NUL terminator before the end of the message"
        );

        let err = W::default()
            .u8(b'Y')
            .u32(1)
            .str("ok")
            .raw(b"bad\xff\0")
            .decode()
            .unwrap_err();
        let DecodeError::InvalidUtf8 {
            offset,
            what,
            source,
        } = &err
        else {
            panic!("{err:?}")
        };
        assert_eq!((*offset, *what, source.valid_up_to()), (8, "Type name", 3));
        assert!(
            err.to_string()
                .starts_with("Type name starting at offset 8 is not valid UTF-8: "),
            "{err}"
        );

        // pg_catalog's namespace is sent as an empty string.
        let Ok(Message::Type(t)) = W::default().u8(b'Y').u32(16).str("").str("bool").decode()
        else {
            panic!()
        };
        assert_eq!((t.namespace.as_str(), t.name.as_str()), ("", "bool"));
    }

    #[test]
    fn tuple_markers() {
        let err = W::default()
            .u8(b'I')
            .u32(1)
            .u8(b'O')
            .u16(0)
            .decode()
            .unwrap_err();
        assert_eq!(
            err,
            DecodeError::UnexpectedTupleMarker {
                offset: 5,
                message: "Insert",
                found: b'O',
                expected: "'N'"
            }
        );
        assert_eq!(
            err.to_string(),
            "unexpected tuple marker 'O' (0x4f) at offset 5 in Insert: expected 'N'"
        );
        assert_eq!(
            W::default().u8(b'U').u32(1).u8(b'X').u16(0).decode(),
            Err(DecodeError::UnexpectedTupleMarker {
                offset: 5,
                message: "Update",
                found: b'X',
                expected: "'K', 'O' or 'N'"
            })
        );
        // An old tuple must be followed by the new one.
        assert_eq!(
            W::default()
                .u8(b'U')
                .u32(1)
                .u8(b'K')
                .u16(0)
                .u8(b'K')
                .u16(0)
                .decode(),
            Err(DecodeError::UnexpectedTupleMarker {
                offset: 8,
                message: "Update",
                found: b'K',
                expected: "'N'"
            })
        );
        assert_eq!(
            W::default().u8(b'D').u32(1).u8(b'N').u16(0).decode(),
            Err(DecodeError::UnexpectedTupleMarker {
                offset: 5,
                message: "Delete",
                found: b'N',
                expected: "'K' or 'O'"
            })
        );
    }

    #[test]
    fn minimal_valid_messages() {
        assert_eq!(
            W::default().u8(b'I').u32(7).u8(b'N').u16(0).decode(),
            Ok(Message::Insert(Insert {
                relation_id: 7,
                new: Tuple(vec![])
            }))
        );
        // Only bit 0 of a column's flags means "key".
        let Ok(Message::Relation(r)) = relation_head()
            .u8(b'i')
            .u16(2)
            .u8(0xfe)
            .str("a")
            .u32(25)
            .i32(-1)
            .u8(3)
            .str("b")
            .u32(23)
            .i32(7)
            .decode()
        else {
            panic!()
        };
        assert_eq!(
            r.columns,
            [
                RelationColumn {
                    is_key: false,
                    name: "a".into(),
                    type_oid: 25,
                    type_modifier: -1
                },
                RelationColumn {
                    is_key: true,
                    name: "b".into(),
                    type_oid: 23,
                    type_modifier: 7
                },
            ]
        );
        assert_eq!(
            W::default().u8(b'T').u32(0).u8(3).decode(),
            Ok(Message::Truncate(Truncate {
                options: 3,
                relation_ids: vec![]
            }))
        );
        let Ok(Message::Message(m)) = W::default().u8(b'M').u8(0).u64(9).str("").i32(0).decode()
        else {
            panic!()
        };
        assert_eq!(
            (m.transactional, m.lsn, m.prefix.as_str(), m.content.len()),
            (false, 9, "", 0)
        );
    }

    #[test]
    #[ignore = "benchmark: cargo test --release --lib decode_throughput -- --ignored --nocapture"]
    fn decode_throughput() {
        for (name, tag) in [
            ("insert_full", b'I'),
            ("update_full", b'U'),
            ("insert_default", b'I'),
        ] {
            let data = raw_fixture(name).into_iter().find(|d| d[0] == tag).unwrap();
            let n = 200_000;
            let start = std::time::Instant::now();
            for _ in 0..n {
                std::hint::black_box(decode(std::hint::black_box(&data)).unwrap());
            }
            let per = start.elapsed() / n;
            println!(
                "{name} {} ({} bytes): {per:?} per message",
                tag as char,
                data.len()
            );
        }
    }

    // ---------------------------------------------------------------------------------------
    // Property tests.

    mod props {
        use super::*;
        use proptest::prelude::*;
        use proptest::sample::Index;

        /// At least 10 000 cases; PROPTEST_CASES can raise it.
        fn config() -> ProptestConfig {
            let base = ProptestConfig::default();
            ProptestConfig {
                cases: base.cases.max(10_000),
                ..base
            }
        }

        fn name() -> impl Strategy<Value = String> {
            // Names cannot hold NUL; anything else, multi-byte UTF-8 included, must survive.
            "[^\u{0}]{0,12}"
        }

        fn value() -> impl Strategy<Value = Vec<u8>> {
            prop::collection::vec(any::<u8>(), 0..24)
        }

        fn cell() -> impl Strategy<Value = Cell<'static>> {
            prop_oneof![
                Just(Cell::Null),
                Just(Cell::UnchangedToast),
                value().prop_map(|v| Cell::Text(Cow::Owned(v))),
                value().prop_map(|v| Cell::Binary(Cow::Owned(v))),
            ]
        }

        fn tuple() -> impl Strategy<Value = Tuple<'static>> {
            prop::collection::vec(cell(), 0..8).prop_map(Tuple)
        }

        fn old_tuple() -> impl Strategy<Value = OldTuple<'static>> {
            (
                prop_oneof![Just(OldTupleKind::Key), Just(OldTupleKind::Full)],
                tuple(),
            )
                .prop_map(|(kind, tuple)| OldTuple { kind, tuple })
        }

        fn message() -> impl Strategy<Value = Message<'static>> {
            let identity = prop_oneof![
                Just(ReplicaIdentity::Default),
                Just(ReplicaIdentity::Nothing),
                Just(ReplicaIdentity::Full),
                Just(ReplicaIdentity::Index),
            ];
            let column = (any::<bool>(), name(), any::<u32>(), any::<i32>()).prop_map(
                |(is_key, name, type_oid, type_modifier)| RelationColumn {
                    is_key,
                    name,
                    type_oid,
                    type_modifier,
                },
            );
            prop_oneof![
                (any::<u64>(), any::<i64>(), any::<u32>()).prop_map(
                    |(final_lsn, commit_time_micros, xid)| {
                        Message::Begin(Begin {
                            final_lsn,
                            commit_time_micros,
                            xid,
                        })
                    }
                ),
                (any::<u8>(), any::<u64>(), any::<u64>(), any::<i64>()).prop_map(
                    |(flags, commit_lsn, end_lsn, t)| {
                        Message::Commit(Commit {
                            flags,
                            commit_lsn,
                            end_lsn,
                            commit_time_micros: t,
                        })
                    }
                ),
                (any::<u64>(), name())
                    .prop_map(|(commit_lsn, name)| Message::Origin(Origin { commit_lsn, name })),
                (
                    any::<u32>(),
                    name(),
                    name(),
                    identity,
                    prop::collection::vec(column, 0..6)
                )
                    .prop_map(
                        |(id, namespace, name, replica_identity, columns)| {
                            Message::Relation(Relation {
                                id,
                                namespace,
                                name,
                                replica_identity,
                                columns,
                            })
                        }
                    ),
                (any::<u32>(), name(), name()).prop_map(|(id, namespace, name)| Message::Type(
                    TypeMessage {
                        id,
                        namespace,
                        name
                    }
                )),
                (any::<u32>(), tuple())
                    .prop_map(|(relation_id, new)| Message::Insert(Insert { relation_id, new })),
                (any::<u32>(), prop::option::of(old_tuple()), tuple()).prop_map(
                    |(relation_id, old, new)| Message::Update(Update {
                        relation_id,
                        old,
                        new
                    })
                ),
                (any::<u32>(), old_tuple())
                    .prop_map(|(relation_id, old)| Message::Delete(Delete { relation_id, old })),
                (any::<u8>(), prop::collection::vec(any::<u32>(), 0..6)).prop_map(
                    |(options, relation_ids)| Message::Truncate(Truncate {
                        options,
                        relation_ids
                    })
                ),
                (any::<bool>(), any::<u64>(), name(), value()).prop_map(
                    |(transactional, lsn, prefix, content)| {
                        Message::Message(LogicalMessage {
                            transactional,
                            lsn,
                            prefix,
                            content: content.into(),
                        })
                    }
                ),
            ]
        }

        #[derive(Debug, Clone)]
        enum Mutation {
            Set(Index, u8),
            Insert(Index, u8),
            Remove(Index),
            Truncate(Index),
        }

        fn mutation() -> impl Strategy<Value = Mutation> {
            // Boundary values reach length, count and kind checks far more often than random bytes.
            let byte = prop_oneof![
                any::<u8>(),
                prop::sample::select(vec![
                    0x00, 0x01, 0x7f, 0x80, 0xff, b'n', b'u', b't', b'b', b'K', b'O', b'N'
                ])
            ];
            prop_oneof![
                4 => (any::<Index>(), byte.clone()).prop_map(|(i, b)| Mutation::Set(i, b)),
                2 => (any::<Index>(), byte).prop_map(|(i, b)| Mutation::Insert(i, b)),
                2 => any::<Index>().prop_map(Mutation::Remove),
                1 => any::<Index>().prop_map(Mutation::Truncate),
            ]
        }

        fn mutate(data: &Bytes, mutations: &[Mutation]) -> Bytes {
            let mut v = data.to_vec();
            for m in mutations {
                match m {
                    Mutation::Insert(i, b) => v.insert(i.index(v.len() + 1), *b),
                    _ if v.is_empty() => {}
                    Mutation::Set(i, b) => {
                        let at = i.index(v.len());
                        v[at] = *b;
                    }
                    Mutation::Remove(i) => {
                        v.remove(i.index(v.len()));
                    }
                    Mutation::Truncate(i) => v.truncate(i.index(v.len())),
                }
            }
            Bytes::from(v)
        }

        /// Whatever decodes must re-encode to something that decodes to the same message.
        fn check_stable(msg: &Message) {
            assert_eq!(decode(&encode(msg)).as_ref(), Ok(msg));
        }

        proptest! {
            #![proptest_config(config())]

            #[test]
            fn arbitrary_bytes_never_panic(data in prop::collection::vec(any::<u8>(), 0..64)) {
                if let Ok(msg) = decode(&Bytes::from(data)) {
                    check_stable(&msg);
                }
            }

            #[test]
            fn arbitrary_bytes_after_a_valid_tag_never_panic(
                tag in prop::sample::select(b"BCORYIUDTM".to_vec()),
                rest in prop::collection::vec(any::<u8>(), 0..96),
            ) {
                let mut data = vec![tag];
                data.extend(rest);
                if let Ok(msg) = decode(&Bytes::from(data)) {
                    check_stable(&msg);
                }
            }

            #[test]
            fn mutated_fixtures_never_panic(
                which in any::<Index>(),
                mutations in prop::collection::vec(mutation(), 1..4),
            ) {
                let (_, original) = which.get(all_raw());
                let data = mutate(original, &mutations);
                if let Ok(msg) = decode(&data) {
                    check_stable(&msg);
                    // Whatever we accept, the independent parser reads the same way.
                    prop_assert_eq!(oracle(&data), Some(msg));
                }
            }

            #[test]
            fn encoded_messages_round_trip(msg in message()) {
                let data = encode(&msg);
                prop_assert_eq!(decode(&data), Ok(msg.clone()));
                prop_assert_eq!(oracle(&data), Some(msg));
                // Any strict prefix is an error, never a panic or a shorter message.
                let cut = data.len() / 2;
                prop_assert!(decode(&data.slice(..cut)).is_err());
            }
        }
    }
}
