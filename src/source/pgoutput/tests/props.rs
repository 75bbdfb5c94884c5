//! Property tests: messages built by the shared encoder round-trip, and arbitrary bytes,
//! arbitrary bytes after a valid tag and mutated fixtures never panic; whatever decodes
//! re-encodes stably and reads the same in the independent parser.

use std::borrow::Cow;

use proptest::prelude::*;
use proptest::sample::Index;

use super::oracle::oracle;
use super::*;
use crate::testing::pgoutput::encode;

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
            .prop_map(|(id, namespace, name, replica_identity, columns)| {
                Message::Relation(Relation {
                    id,
                    namespace,
                    name,
                    replica_identity,
                    columns,
                })
            }),
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
