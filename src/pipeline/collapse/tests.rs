//! Unit tests of `collapse`.

use super::*;
use crate::testing::runs::run_row;

#[test]
fn highest_version_wins_and_ties_go_to_the_later_row() {
    let mut set = CollapsedRows::default();
    let a = run_row("run_a").with_version(5).with_status("EXECUTING");
    set.upsert(a.clone());
    set.upsert(a.clone().with_version(4).with_status("PENDING"));
    set.upsert(a.clone().with_status("COMPLETED_SUCCESSFULLY"));
    let rows = set.into_sorted();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].status, "COMPLETED_SUCCESSFULLY");
}

#[test]
fn sorted_rows_fill_the_buffer_given() {
    let mut set = CollapsedRows::default();
    for i in [3, 0, 6, 1, 2, 5, 4] {
        set.upsert(run_row(&format!("r{i}")));
    }
    let mut buffer = Vec::with_capacity(64);
    buffer.push(Box::new(run_row("stale")));
    let ptr = buffer.as_ptr();
    let rows = set.into_sorted_with(buffer);
    let ids: Vec<&str> = rows.iter().map(|r| r.run_id.as_str()).collect();
    assert_eq!(ids, ["r0", "r1", "r2", "r3", "r4", "r5", "r6"]);
    assert_eq!(rows.as_ptr(), ptr, "the buffer is reused, not reallocated");
}

#[test]
fn large_sets_collapse_like_small_ones() {
    let mut set = CollapsedRows::default();
    for round in 0..3u64 {
        for n in 0..100 {
            set.upsert(
                run_row(&format!("run_{n}"))
                    .with_version(round)
                    .with_status(format!("round {round}")),
            );
        }
    }
    assert_eq!(set.len(), 100);
    let rows = set.into_sorted();
    assert!(
        rows.iter()
            .all(|r| r.status == "round 2" && r._version == 2)
    );
    assert!(rows.windows(2).all(|w| w[0].sort_key() < w[1].sort_key()));
}

#[test]
fn rows_with_different_keys_stay_apart_and_come_out_sorted() {
    let mut set = CollapsedRows::default();
    for (org, id, created) in [
        ("org_b", "r1", 1),
        ("org_a", "r2", 2),
        ("org_a", "r1", 2),
        ("org_a", "r1", 1),
    ] {
        let mut r = run_row(id);
        r.organization_id = org.into();
        r.created_at = created;
        set.upsert(r);
    }
    let keys: Vec<_> = set
        .into_sorted()
        .iter()
        .map(|r| (r.organization_id.clone(), r.created_at, r.run_id.clone()))
        .collect();
    assert_eq!(
        keys,
        [
            ("org_a".to_string(), 1, "r1".to_string()),
            ("org_a".into(), 2, "r1".into()),
            ("org_a".into(), 2, "r2".into()),
            ("org_b".into(), 1, "r1".into())
        ]
    );
}

/// The seal's order is exactly the ORDER BY key's, whatever order the rows and their
/// (organization, project, environment) groups arrived in.
#[test]
fn a_sealed_set_is_in_sort_key_order() {
    let mut set = CollapsedRows::default();
    let mut expected = Vec::new();
    // A fixed pseudo-random walk over 3 organizations × 2 projects × 2 environments, created_at
    // in a few values so that ties fall to the run id.
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for n in 0..500 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let mut r = run_row(&format!("run_{}", x % 997));
        r.organization_id = format!("org_{}", x % 3);
        r.project_id = format!("proj_{}", (x >> 8) % 2);
        r.environment_id = format!("env_{}", (x >> 16) % 2);
        r.created_at = ((x >> 24) % 5) as i64;
        r._version = n;
        expected.push(r.clone());
        set.upsert(r);
    }
    let mut keys: Vec<_> = expected.iter().map(|r| r.sort_key()).collect();
    keys.sort();
    keys.dedup();
    let rows = set.into_sorted();
    let got: Vec<_> = rows.iter().map(|r| r.sort_key()).collect();
    assert_eq!(got, keys);
}
