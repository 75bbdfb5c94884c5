use super::*;
use crate::backfill::versions::FORMAT;
use crate::daemon::marker::SlotRecord;
use crate::sink::lost_history::Zone;

fn identity(timeline: u32, flushed: u64, ancestors: Vec<Ancestor>) -> ServerIdentity {
    ServerIdentity {
        system_identifier: "7301".into(),
        timeline,
        flushed,
        ancestors,
    }
}

fn marker(timeline: u32, acknowledged: Option<&str>) -> Marker {
    let stream = crate::config::Config::load(None, &|_| None, &[])
        .unwrap()
        .streams()
        .remove(0);
    let mut m = Marker::new(
        &stream,
        &identity(timeline, 0, Vec::new()),
        SlotRecord::Exists,
    );
    m.acknowledged = acknowledged.map(str::to_string);
    m
}

fn record(timeline: u32, switches: Vec<Switch>) -> VersionRecord {
    VersionRecord {
        format: FORMAT,
        source: "default".into(),
        system_identifier: "7301".into(),
        timeline,
        ancestors: Vec::new(),
        switches,
        updated_at: 0,
    }
}

fn forked_at(end: u64) -> Vec<Ancestor> {
    vec![Ancestor { timeline: 1, end }]
}

#[test]
fn the_same_timeline_goes_on_and_nothing_recorded_is_a_first_start() {
    let id = identity(1, 0x9000, Vec::new());
    assert_eq!(judge(None, None, &id, "s"), Standing::Current);
    let r = record(1, Vec::new());
    let m = marker(1, Some("0/8000"));
    assert_eq!(judge(Some(&r), Some(&m), &id, "s"), Standing::Current);
}

#[test]
fn an_older_timeline_is_refused_whoever_recorded_the_newer_one() {
    let old = identity(1, 0x9000, Vec::new());
    let r = record(2, Vec::new());
    let Standing::Refused(why) = judge(Some(&r), None, &old, "s") else {
        panic!("an old primary is refused");
    };
    assert!(why.contains("timeline 1, older than timeline 2"), "{why}");
    assert!(why.contains("old primary"), "{why}");
    let m = marker(2, None);
    assert!(matches!(
        judge(None, Some(&m), &old, "s"),
        Standing::Refused(_)
    ));
}

#[test]
fn a_server_whose_wal_ends_before_what_was_acknowledged_on_its_timeline_is_refused() {
    let m = marker(2, Some("0/8000"));
    let behind = identity(2, 0x7000, forked_at(0x100));
    let Standing::Refused(why) = judge(None, Some(&m), &behind, "s") else {
        panic!("a restore behind the acknowledged position is refused");
    };
    assert!(why.contains("ends at 0/7000, before 0/8000"), "{why}");
    // Ahead of it, or on another timeline (where the position says nothing): not refused.
    assert_eq!(
        judge(None, Some(&m), &identity(2, 0x9000, forked_at(0x100)), "s"),
        Standing::Current
    );
    let newer = identity(3, 0x7000, Vec::new());
    assert!(matches!(
        judge(None, Some(&m), &newer, "s"),
        Standing::Newer { from: 2, .. }
    ));
}

#[test]
fn a_newer_timeline_is_taken_over_from_the_record_or_a_marker_without_one() {
    let id = identity(2, 0x9000, forked_at(0x5000));
    let r = record(1, Vec::new());
    assert_eq!(
        judge(Some(&r), Some(&marker(1, None)), &id, "s"),
        Standing::Newer {
            from: 1,
            ancestors: Vec::new()
        }
    );
    assert!(matches!(
        judge(None, Some(&marker(1, None)), &id, "s"),
        Standing::Newer { from: 1, .. }
    ));
    // The source took it over; this stream (a shard) has not: Current, its repair follows.
    let done = record(2, Vec::new());
    assert_eq!(
        judge(Some(&done), Some(&marker(1, None)), &id, "s"),
        Standing::Current
    );
}

#[test]
fn the_new_timeline_starts_above_everything_the_lost_history_could_hold() {
    let fork = 0x5000;
    let id = identity(2, 0x9000, forked_at(fork));
    // ClickHouse holds the old timeline up to 0x6000: 0x1000 bytes past the fork.
    let s = switch(None, 1, &[], &id, 0x6000, 7);
    assert_eq!(s.fork_lsn, fork);
    assert_eq!(s.fork, "0/5000");
    assert_eq!((s.lost_from, s.held_to), (fork, 0x6000));
    assert_eq!(s.lost_to, 0x6000 + MARGIN);
    assert_eq!(s.held_bytes(), 0x1000);
    assert_eq!(s.held_lsn(), 0x6000);
    let mut r = record(2, vec![s.clone()]);
    let map = r.map();
    assert_eq!(
        map.position(fork),
        fork,
        "the shared history keeps its versions"
    );
    assert!(map.position(fork + 1) > s.lost_to, "the new timeline wins");
    let zone = Zone {
        generations: vec![0],
        from: s.lost_from,
        to: s.lost_to,
    };
    assert!(zone.contains(0x6000) && zone.contains(0x5001));
    assert!(!zone.contains(map.position(fork)) && !zone.contains(map.position(fork + 1)));

    // Nothing past the fork held: an empty window, still shifted (a write of the old timeline
    // may be in flight elsewhere).
    let clean = switch(None, 1, &[], &id, 0x4000, 7);
    assert_eq!(clean.held_bytes(), 0);
    assert_eq!(clean.lost_to, fork + MARGIN);

    // A second failover, from timeline 2 at 0x8000: above the first shift's versions.
    let id3 = identity(
        3,
        0x9500,
        vec![
            Ancestor {
                timeline: 1,
                end: fork,
            },
            Ancestor {
                timeline: 2,
                end: 0x8000,
            },
        ],
    );
    let held = map.position(0x8800);
    let s3 = switch(Some(&r), 2, &id.ancestors, &id3, held, 8);
    assert_eq!(s3.lost_from, map.position(0x8000));
    assert_eq!(s3.held_bytes(), 0x800);
    r.switches.push(s3.clone());
    r.timeline = 3;
    let map3 = r.map();
    assert_eq!(map3.position(0x7000), map.position(0x7000));
    assert!(map3.position(0x8001) > s3.lost_to);
}
