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
