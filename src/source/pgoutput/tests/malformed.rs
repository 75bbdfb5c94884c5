//! Malformed input: every truncation and padding of the fixtures, and hand-made bytes for each
//! error the decoder names (with its offset and message), next to the smallest valid messages.

use super::*;

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
    let Ok(Message::Type(t)) = W::default().u8(b'Y').u32(16).str("").str("bool").decode() else {
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
    let Ok(Message::Message(m)) = W::default().u8(b'M').u8(0).u64(9).str("").i32(0).decode() else {
        panic!()
    };
    assert_eq!(
        (m.transactional, m.lsn, m.prefix.as_str(), m.content.len()),
        (false, 9, "", 0)
    );
}
