//! Unit tests of `leader::share`: the assignment balances, stays put when it can, moves only
//! what must move, and the moves follow it.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use super::*;
use crate::leader::lock_key;

fn streams(n: usize) -> Vec<i64> {
    (0..n)
        .map(|k| lock_key("trigger", &format!("slot_{k}")))
        .collect()
}

fn roster(members: &[u32], holders: &[(i64, u32)]) -> Roster {
    Roster {
        members: members.iter().copied().collect(),
        holders: holders.iter().map(|&(k, m)| (k, Some(m))).collect(),
        waiters: BTreeMap::new(),
    }
}

fn counts(assignment: &BTreeMap<i64, u32>) -> BTreeMap<u32, usize> {
    let mut out = BTreeMap::new();
    for m in assignment.values() {
        *out.entry(*m).or_default() += 1;
    }
    out
}

#[test]
fn six_streams_over_three_instances_are_two_each_from_scratch() {
    let s = streams(6);
    for members in [[1, 2, 3], [7, 900, 31_337], [u32::MAX, 0, 5]] {
        let a = assign(&s, &roster(&members, &[]));
        assert_eq!(a.len(), 6);
        assert!(counts(&a).values().all(|&c| c == 2), "{:?}", counts(&a));
    }
}

#[test]
fn uneven_counts_differ_by_at_most_one() {
    for n in 1..20 {
        for r in 1..6u32 {
            let members: Vec<u32> = (1..=r).map(|m| m * 101).collect();
            let a = assign(&streams(n), &roster(&members, &[]));
            let c = counts(&a);
            let (lo, hi) = (
                members.iter().map(|m| c.get(m).copied().unwrap_or(0)).min(),
                members.iter().map(|m| c.get(m).copied().unwrap_or(0)).max(),
            );
            assert!(hi.unwrap() - lo.unwrap() <= 1, "n={n} r={r}: {c:?}");
            assert_eq!(a.len(), n);
        }
    }
}

#[test]
fn one_instance_leads_everything() {
    let s = streams(6);
    let a = assign(&s, &roster(&[42], &[]));
    assert!(a.values().all(|&m| m == 42));
    assert_eq!(a.len(), 6);
}

#[test]
fn a_balanced_set_stays_as_it_is() {
    let s = streams(6);
    // Whatever the hashes prefer, two each is kept.
    let held: Vec<(i64, u32)> = s
        .iter()
        .enumerate()
        .map(|(i, &k)| (k, [1, 2, 3][i % 3]))
        .collect();
    let a = assign(&s, &roster(&[1, 2, 3], &held));
    for (k, m) in held {
        assert_eq!(a[&k], m);
    }
    // Two instances, one stream: the one leading it keeps it (no needless handover).
    let one = streams(1);
    for leader in [5, 6] {
        let a = assign(&one, &roster(&[5, 6], &[(one[0], leader)]));
        assert_eq!(a[&one[0]], leader);
    }
}

#[test]
fn an_instance_that_leaves_has_only_its_streams_moved_and_spread() {
    let s = streams(6);
    let before = assign(&s, &roster(&[1, 2, 3], &[]));
    let held: Vec<(i64, u32)> = before.iter().map(|(&k, &m)| (k, m)).collect();
    // 3 is gone: its locks went with it.
    let alive: Vec<(i64, u32)> = held.iter().copied().filter(|&(_, m)| m != 3).collect();
    let after = assign(&s, &roster(&[1, 2], &alive));
    assert_eq!(counts(&after), BTreeMap::from([(1, 3), (2, 3)]));
    for (k, m) in alive {
        assert_eq!(after[&k], m, "a surviving leader keeps its streams");
    }
}

#[test]
fn an_instance_that_returns_gets_its_share_and_only_that_moves() {
    let s = streams(6);
    let two = assign(&s, &roster(&[1, 2], &[]));
    let held: Vec<(i64, u32)> = two.iter().map(|(&k, &m)| (k, m)).collect();
    let three = assign(&s, &roster(&[1, 2, 3], &held));
    assert_eq!(counts(&three), BTreeMap::from([(1, 2), (2, 2), (3, 2)]));
    let moved = held.iter().filter(|&&(k, m)| three[&k] != m).count();
    assert_eq!(moved, 2, "exactly the newcomer's share moves");
}

#[test]
fn a_stream_led_by_a_session_of_no_member_is_assigned_like_a_free_one() {
    let s = streams(2);
    let mut r = roster(&[1, 2], &[]);
    r.holders.insert(s[0], None);
    r.holders.insert(s[1], Some(99)); // not a member (its member session is gone)
    let a = assign(&s, &r);
    assert_eq!(counts(&a), BTreeMap::from([(1, 1), (2, 1)]));
}

#[test]
fn two_sources_do_not_pile_their_extra_streams_on_one_instance() {
    // Several single-stream sources over three instances: the extras spread.
    let mut leaders = BTreeSet::new();
    for source in 0..12 {
        let one = vec![lock_key(&format!("db_{source}"), "slot")];
        leaders.insert(assign(&one, &roster(&[1, 2, 3], &[]))[&one[0]]);
    }
    assert_eq!(leaders.len(), 3, "{leaders:?}");
}

#[test]
fn a_standby_takes_its_stream_queues_for_a_led_one_and_leaves_others() {
    let s = streams(2);
    let grace = Duration::from_secs(5);
    let a = assign(&s, &roster(&[1, 2], &[]));
    let (k1, k2) = if a[&s[0]] == 1 {
        (s[0], s[1])
    } else {
        (s[1], s[0])
    };
    let free = roster(&[1, 2], &[]);
    let zero = Duration::ZERO;
    assert_eq!(
        standby_move(&s, Some(&free), 1, k1, zero, grace),
        Move::Take
    );
    assert_eq!(
        standby_move(&s, Some(&free), 1, k2, zero, grace),
        Move::Wait
    );
    assert_eq!(
        standby_move(&s, Some(&free), 1, k2, grace, grace),
        Move::Take,
        "a stream its instance does not take is taken after the grace"
    );
    // Instance 2 leads both (it was alone): 1 queues for its own.
    let led = roster(&[1, 2], &[(k1, 2), (k2, 2)]);
    let a = assign(&s, &led);
    let own = *a.iter().find(|(_, m)| **m == 1).unwrap().0;
    assert_eq!(
        standby_move(&s, Some(&led), 1, own, zero, grace),
        Move::Queue
    );
    // Not counted as a member (its member session is down): as without sharing, after the grace.
    let without = roster(&[2], &[]);
    assert_eq!(
        standby_move(&s, Some(&without), 1, k1, zero, grace),
        Move::Wait
    );
    assert_eq!(standby_move(&s, None, 1, k1, grace, grace), Move::Take);
}

#[test]
fn a_leader_hands_over_only_to_the_waiting_owner_after_min_hold() {
    let s = streams(2);
    let min = Duration::from_secs(10);
    let mut led = roster(&[1, 2], &[(s[0], 2), (s[1], 2)]);
    let a = assign(&s, &led);
    let (ones, twos) = if a[&s[0]] == 1 {
        (s[0], s[1])
    } else {
        (s[1], s[0])
    };
    assert_eq!(
        hand_over(&s, Some(&led), 2, ones, min, min),
        None,
        "nobody waits"
    );
    led.waiters.entry(ones).or_default().insert(1);
    assert_eq!(hand_over(&s, Some(&led), 2, ones, min, min), Some(1));
    assert_eq!(
        hand_over(&s, Some(&led), 2, ones, min / 2, min),
        None,
        "not before min_hold"
    );
    led.waiters.entry(twos).or_default().insert(1);
    assert_eq!(
        hand_over(&s, Some(&led), 2, twos, min, min),
        None,
        "its own stream is kept even when someone waits"
    );
    assert_eq!(hand_over(&s, None, 2, ones, min, min), None, "no reading");
    let not_member = Roster {
        members: [1].into(),
        ..led.clone()
    };
    assert_eq!(
        hand_over(&s, Some(&not_member), 2, ones, min, min),
        None,
        "a leader not counted as a member keeps what it leads"
    );
}

#[test]
fn a_roster_is_read_from_pg_locks_rows() {
    use crate::leader::roster::{LockRow, MEMBER_SPACE, TAG_SPACE};
    let key = lock_key("trigger", "slot_0");
    let (hi, lo) = (((key as u64) >> 32) as u32, key as u32);
    let row = |classid: u32, objid: u32, objsubid: i32, pid: i32, granted: bool| LockRow {
        classid,
        objid,
        objsubid,
        pid: Some(pid),
        granted,
    };
    let rows = vec![
        row(MEMBER_SPACE as u32, 7, 2, 100, true),
        row(MEMBER_SPACE as u32, 8, 2, 200, true),
        row(TAG_SPACE as u32, 7, 2, 101, true),
        row(TAG_SPACE as u32, 8, 2, 201, true),
        row(hi, lo, 1, 101, true),
        row(hi, lo, 1, 201, false),
        // A waiting tag (never happens: tags are shared) and an untagged waiter are ignored.
        row(TAG_SPACE as u32, 9, 2, 301, false),
        row(hi, lo, 1, 301, false),
    ];
    let r = Roster::from_rows(&rows);
    assert_eq!(r.members, BTreeSet::from([7, 8]));
    assert_eq!(r.holders, BTreeMap::from([(key, Some(7))]));
    assert!(r.waits(key, 8));
    assert!(!r.waits(key, 9));
}
