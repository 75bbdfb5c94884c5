//! Protocol invariants that hold across every captured fixture's stream of messages.

use std::collections::{HashMap, HashSet};

use super::*;

/// First OID of user-created objects (FirstNormalObjectId). pgoutput sends a Type message for
/// any column type at or above FirstGenbkiObjectId (10000), so for every user type.
const FIRST_NORMAL_OID: u32 = 16384;

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
                            assert!(t.id >= FIRST_NORMAL_OID, "{name}: Type for built-in {t:?}");
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
                                assert_ne!(rel.replica_identity, ReplicaIdentity::Full, "{name}");
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
