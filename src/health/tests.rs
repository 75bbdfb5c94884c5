//! Unit tests of `health`.

use super::*;

#[test]
fn ready_only_when_streaming_or_standby_without_a_hard_stop() {
    let h = Health::new(Duration::from_secs(60));
    assert!(!h.readiness().ready);
    h.set_role(Role::Standby);
    assert!(h.readiness().ready);
    h.set_role(Role::Leader);
    assert!(h.readiness().ready);
    h.hard_stop("replica_identity", "TaskRun is DEFAULT".into());
    let r = h.readiness();
    assert!(!r.ready && r.detail.contains("TaskRun is DEFAULT"), "{r:?}");
    h.clear_hard_stop();
    h.set_role(Role::Leader);
    assert!(h.readiness().ready);
}

#[test]
fn clickhouse_failures_count_only_after_the_grace_period() {
    let h = Health::new(Duration::from_millis(30));
    h.set_role(Role::Leader);
    h.clickhouse_failed("connection refused");
    assert!(h.readiness().ready);
    std::thread::sleep(Duration::from_millis(40));
    let r = h.readiness();
    assert!(!r.ready && r.detail.contains("connection refused"), "{r:?}");
    h.clickhouse_ok();
    assert!(h.readiness().ready);
}
