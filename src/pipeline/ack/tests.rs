//! Unit tests of `ack`.

use super::*;

#[test]
fn acknowledges_only_the_finished_prefix() {
    let mut t = AckTracker::new(5);
    let a = t.register(10);
    let b = t.register(20);
    let c = t.register(30);
    assert_eq!(t.complete(b), None, "b finished before a: nothing moves");
    assert_eq!(t.in_flight(), 2);
    assert_eq!(t.complete(a), Some(20));
    assert_eq!(t.complete(c), Some(30));
    assert!(t.is_idle());
    assert_eq!(t.acked(), 30);
}

#[test]
fn idle_positions_wait_for_what_is_in_flight() {
    let mut t = AckTracker::new(0);
    assert_eq!(t.nothing_pending_until(7), Some(7));
    assert_eq!(t.nothing_pending_until(6), None, "never backwards");
    let a = t.register(10);
    assert_eq!(t.nothing_pending_until(15), None);
    assert_eq!(t.complete(a), Some(15));
}

#[test]
fn keepalives_during_a_slow_insert_do_not_pile_up() {
    let mut t = AckTracker::new(0);
    let slow = t.register(100);
    for wal_end in 101..10_101 {
        assert_eq!(t.nothing_pending_until(wal_end), None);
    }
    assert_eq!(t.waiting(), 2, "the insert and one position behind it");
    let later = t.register(20_000);
    assert_eq!(t.complete(later), None);
    assert_eq!(t.complete(slow), Some(20_000));
    assert!(t.is_idle());
}
