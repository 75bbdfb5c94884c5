//! Unit tests of `health`.

use super::*;

fn one() -> Health {
    Health::new(Duration::from_secs(60), &["default".to_string()])
}

#[test]
fn ready_only_when_streaming_or_standby_without_a_hard_stop() {
    let h = one();
    assert!(!h.readiness().ready);
    h.set_role("default", Role::Standby);
    assert!(h.readiness().ready);
    h.set_role("default", Role::Leader);
    assert!(h.readiness().ready);
    h.hard_stop("default", "replica_identity", "TaskRun is DEFAULT".into());
    let r = h.readiness();
    assert!(!r.ready && r.detail.contains("TaskRun is DEFAULT"), "{r:?}");
    h.clear_hard_stop("default");
    h.set_role("default", Role::Leader);
    assert!(h.readiness().ready);
}

#[test]
fn clickhouse_failures_count_only_after_the_grace_period() {
    let h = Health::new(Duration::from_millis(30), &["default".to_string()]);
    h.set_role("default", Role::Leader);
    h.clickhouse_failed("connection refused");
    assert!(h.readiness().ready);
    std::thread::sleep(Duration::from_millis(40));
    let r = h.readiness();
    assert!(!r.ready && r.detail.contains("connection refused"), "{r:?}");
    h.clickhouse_ok();
    assert!(h.readiness().ready);
}

#[test]
fn clickhouse_not_answering_is_not_ready_at_once_and_clears_when_it_answers() {
    let h = Health::new(Duration::from_secs(30), &["default".to_string()]);
    h.set_role("default", Role::Leader);
    h.clickhouse_failed("connection refused");
    assert!(
        h.readiness().ready,
        "one failed insert is not an outage yet"
    );
    h.clickhouse_unreachable("connection refused");
    let r = h.readiness();
    assert!(!r.ready && r.detail.contains("does not answer"), "{r:?}");
    h.clickhouse_answers();
    assert!(
        h.readiness().ready,
        "answering, within the grace of failing inserts"
    );
    h.clickhouse_unreachable("connection refused");
    h.clickhouse_ok();
    assert!(h.readiness().ready);
}

#[test]
fn every_stream_must_be_ready_and_each_says_why_not() {
    let names = ["legacy".to_string(), "new".to_string()];
    let h = Health::new(Duration::from_secs(60), &names);
    h.set_role("legacy", Role::Leader);
    h.set_last_error("new", "connection refused");
    let r = h.readiness();
    assert!(!r.ready, "one stream down: not ready");
    assert!(
        r.detail.contains("legacy: leader, streaming")
            && r.detail
                .contains("new: not streaming for 0 s: connection refused"),
        "{}",
        r.detail
    );
    h.set_role("new", Role::Standby);
    let r = h.readiness();
    assert!(r.ready, "{}", r.detail);
    h.hard_stop("new", "slot_missing", "slot gone".into());
    let r = h.readiness();
    assert!(
        !r.ready && r.detail.contains("new: hard stop: slot gone"),
        "{}",
        r.detail
    );
    assert!(r.detail.contains("legacy: leader, streaming"));
}

#[test]
fn a_stream_not_streaming_yet_says_what_it_waits_on() {
    let h = Health::new(Duration::from_secs(30), &["s".to_string()]);
    h.set_activity(
        "s",
        Some("creating slot x: waiting for xid 7 of pid 42".into()),
    );
    let r = h.readiness();
    assert!(!r.ready);
    assert!(
        r.detail.contains("waiting for xid 7 of pid 42"),
        "{}",
        r.detail
    );
    h.set_role("s", Role::Leader);
    assert!(h.readiness().ready, "shown only while not streaming");
}
