//! Unit tests of `apply`.

use std::borrow::Cow;

use super::*;
use crate::pipeline::errors::HardStop;
use crate::rows::Col;
use crate::source::pgoutput::{Cell, Insert, RelationColumn, ReplicaIdentity, Tuple};

const LSN_MASK: u64 = (1 << 56) - 1;
use crate::pipeline::transaction::SPILL_VERSIONS;

fn task_run() -> Relation {
    Relation {
        id: 42,
        namespace: "public".into(),
        name: "TaskRun".into(),
        replica_identity: ReplicaIdentity::Full,
        columns: Col::ALL
            .iter()
            .map(|c| RelationColumn {
                is_key: true,
                name: c.pg_name().into(),
                type_oid: 25,
                type_modifier: -1,
            })
            .collect(),
    }
}

fn insert(rel: &Relation) -> Message<'static> {
    Message::Insert(Insert {
        relation_id: rel.id,
        new: Tuple(
            rel.columns
                .iter()
                .map(|c| Cell::Text(Cow::Owned(c.name.clone().into_bytes())))
                .collect(),
        ),
    })
}

fn is_lsn_overflow(r: Result<impl std::fmt::Debug, PipelineError>, lsn: u64) {
    match r {
        Err(PipelineError::HardStop(h @ HardStop::LsnOverflow(_))) => {
            assert_eq!(h.kind(), "lsn_overflow");
            assert!(h.to_string().contains(&format!("{lsn:#X}")), "{h}");
        }
        other => panic!("expected the lsn_overflow hard stop, got {other:?}"),
    }
}

#[test]
fn an_lsn_past_56_bits_is_a_hard_stop_not_a_wrapped_version() {
    let mut state = SourceState::new(&Config::default().sources()[0], &Config::default());
    let mut meters = StreamMeters::new("default");
    let rel = task_run();
    assert!(matches!(
        state.apply(&Message::Relation(rel.clone()), &mut meters),
        Ok(Applied::Done)
    ));
    // A change of a transaction whose highest spilled version (commit LSN + SPILL_VERSIONS)
    // would not fit: refused before it enters the transaction, so a spill never stamps a
    // wrapped version.
    let last = LSN_MASK - SPILL_VERSIONS;
    state.begin(1, last + 1);
    is_lsn_overflow(state.apply(&insert(&rel), &mut meters), 1 << 56);
    assert!(state.txn().unwrap().is_empty());
    state.begin(4, last);
    let r = state.apply(&insert(&rel), &mut meters);
    assert!(
        !matches!(r, Err(PipelineError::HardStop(HardStop::LsnOverflow(_)))),
        "just fits: {r:?}"
    );
    // A commit whose end LSN does not fit.
    state.begin(2, LSN_MASK - 0x100);
    is_lsn_overflow(state.commit(1 << 56, 0), 1 << 56);
    // Just below: stamped as usual.
    state.begin(3, LSN_MASK - 0x100);
    let committed = state.commit(LSN_MASK, 0).unwrap();
    assert_eq!(committed.end_lsn, LSN_MASK);
}
