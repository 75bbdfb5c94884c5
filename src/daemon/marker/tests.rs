//! Unit tests of `marker`.

use super::*;

fn reading(confirmed: u64, lag: i64) -> SlotReading {
    SlotReading {
        plugin: "pgoutput".into(),
        slot_type: "logical".into(),
        database: Some("trigger".into()),
        active: true,
        wal_status: Some("reserved".into()),
        confirmed_flush_lsn: Some(format!(
            "{:X}/{:X}",
            confirmed >> 32,
            confirmed & 0xFFFF_FFFF
        )),
        lag_bytes: Some(lag),
        retained_bytes: Some(lag),
        safe_wal_size: None,
        ..SlotReading::default()
    }
}

#[test]
fn a_caught_up_slot_is_safe_from_now() {
    let mut p = Progress::default();
    assert_eq!(p.observe(1000, &reading(500, 0)), Some(1000));
}

#[test]
fn a_lagging_slot_is_safe_only_from_the_sample_its_confirmed_position_passed() {
    let mut p = Progress::default();
    // The WAL runs ahead; the slot trails it.
    assert_eq!(
        p.observe(100, &reading(1_000, 500)),
        None,
        "nothing proven yet"
    );
    assert_eq!(p.observe(160, &reading(1_200, 800)), None);
    // Confirmed 1,600: the sample at 100 (WAL 1,500) is passed, the one at 160 (2,000) is not.
    assert_eq!(p.observe(220, &reading(1_600, 900)), Some(100));
    assert_eq!(p.observe(280, &reading(2_600, 0)), Some(280), "caught up");
    assert!(
        p.samples.len() <= 2,
        "samples before the proven one are dropped"
    );
}

#[test]
fn timestamps_read_as_utc_dates() {
    assert_eq!(timestamp_text(0), "1970-01-01 00:00:00");
    assert_eq!(timestamp_text(1_764_504_000), "2025-11-30 12:00:00");
    assert_eq!(timestamp_text(951_782_400), "2000-02-29 00:00:00");
}

fn pending(reason: &str, since: Option<&str>, floor: Option<&str>) -> Pending {
    let mut p = Pending::new(reason, since.map(str::to_string));
    p.floor = floor.map(str::to_string);
    p
}

#[test]
fn a_new_gap_joins_the_copies_owed_instead_of_replacing_them() {
    // A bootstrap that was interrupted (tied to its slot's point), then the slot was lost.
    let mut owed = vec![pending("bootstrap", None, Some("0/100"))];
    owe(&mut owed, pending("gap", Some("2026-12-01 10:00:00"), None));
    assert_eq!(
        owed.iter().map(|p| p.reason.as_str()).collect::<Vec<_>>(),
        ["bootstrap", "gap"]
    );
}

#[test]
fn a_copy_of_everything_subsumes_the_others_and_a_covered_gap_adds_nothing() {
    let mut owed = vec![
        pending("bootstrap", None, Some("0/100")),
        pending("gap", Some("2026-12-01 10:00:00"), Some("0/200")),
    ];
    owe(&mut owed, pending("everything", None, None));
    assert_eq!(owed.len(), 1);
    assert_eq!(owed[0].reason, "everything");
    // Still to be tied to the next slot, and wider: a later gap is copied by it.
    owe(&mut owed, pending("gap", Some("2026-12-02 10:00:00"), None));
    assert_eq!(owed.len(), 1);
    // A gap pending but not tied to a slot, narrower than the new one: both stay.
    let mut owed = vec![pending("gap", Some("2026-12-02 10:00:00"), None)];
    owe(&mut owed, pending("gap", Some("2026-12-01 10:00:00"), None));
    assert_eq!(owed.len(), 2);
}

#[test]
fn without_evidence_the_gap_is_everything() {
    assert_eq!(gap_since(None, 900), None);
    let stream = crate::config::Config::load(None, &|_| None, &[])
        .unwrap()
        .streams()
        .remove(0);
    let identity = ServerIdentity {
        system_identifier: "7301".into(),
        timeline: 1,
        flushed: 0,
        ancestors: Vec::new(),
    };
    let mut m = Marker::new(&stream, &identity, SlotRecord::Exists);
    assert_eq!(gap_since(Some(&m), 900), None, "a marker without evidence");
    m.safe_since = Some(1_764_504_900);
    assert_eq!(
        gap_since(Some(&m), 900).as_deref(),
        Some("2025-11-30 12:00:00")
    );
}

#[test]
fn the_record_names_its_server_and_reads_back() {
    let stream = crate::config::Config::load(None, &|_| None, &[])
        .unwrap()
        .streams()
        .remove(0);
    let identity = ServerIdentity {
        system_identifier: "7301234567890123456".into(),
        timeline: 3,
        flushed: 0,
        ancestors: Vec::new(),
    };
    let mut m = Marker::new(&stream, &identity, SlotRecord::Creating { since: 5 });
    m.pending
        .push(pending("bootstrap", None, Some("0/16B6C50")));
    m.acknowledged = Some("0/16B6C50".into());
    assert_eq!(
        m.key(),
        format!(
            "7301234567890123456/{}/{}",
            stream.source.url.dbname, stream.slot
        )
    );
    let text = serde_json::to_string(&m).unwrap();
    for field in [
        "\"format\":2",
        "\"system_identifier\":\"7301234567890123456\"",
        "\"timeline\":3",
        "\"acknowledged\":\"0/16B6C50\"",
        "\"slot_state\":{\"creating\":{\"since\":5}}",
    ] {
        assert!(text.contains(field), "{field} in {text}");
    }
    assert_eq!(serde_json::from_str::<Marker>(&text).unwrap(), m);
    assert!(serde_json::from_str::<Marker>("{\"slot\": 3").is_err());
}
