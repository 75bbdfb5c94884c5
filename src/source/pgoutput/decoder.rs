//! [`decode`]: one pgoutput v1 message from its bytes, read by a bounds-checked cursor
//! (`Reader`) that slices cell values out of the input instead of copying them.

use bytes::Bytes;
use std::borrow::Cow;

use super::error::DecodeError;
use super::messages::{
    Begin, Cell, Commit, Delete, Insert, LogicalMessage, Message, OldTuple, OldTupleKind, Origin,
    Relation, RelationColumn, ReplicaIdentity, Truncate, Tuple, TypeMessage, Update,
};

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
