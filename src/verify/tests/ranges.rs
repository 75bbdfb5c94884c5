use std::collections::BTreeMap;

use crate::sink::verify_reads::RangeSum;
use crate::verify::canonical::range_of;
use crate::verify::expected::{Expected, SliceRuns};
use crate::verify::ranges::{Sum, bits_for, candidates, differing, sums};

fn runs(n: usize) -> BTreeMap<String, Expected> {
    (0..n)
        .map(|i| {
            (
                format!("run_{i}"),
                Expected {
                    generation: 0,
                    digest: (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15),
                },
            )
        })
        .collect()
}

fn slice(runs: &BTreeMap<String, Expected>) -> SliceRuns {
    let mut out = SliceRuns::default();
    // Out of order, as a COPY hands them over.
    for (id, e) in runs.iter().rev() {
        out.push(id, *e, 0);
    }
    out.finish();
    out
}

#[test]
fn a_slice_keeps_the_higher_generation_of_a_run_read_twice_and_finds_by_id() {
    let mut s = SliceRuns::default();
    let e = |generation, digest| Expected { generation, digest };
    s.push("run_b", e(0, 1), 0);
    s.push("run_a", e(0, 2), 0);
    s.push("run_b", e(1, 3), 0);
    s.finish();
    assert_eq!(s.len(), 2);
    assert_eq!(s.get("run_b"), Some(e(1, 3)));
    assert_eq!(s.get("run_a"), Some(e(0, 2)));
    assert_eq!(s.get("run_c"), None);
    let ids: Vec<&str> = s.iter().map(|(id, _)| id).collect();
    assert_eq!(ids, ["run_a", "run_b"]);
}

#[test]
fn about_64_runs_per_range_between_2_and_65536_ranges() {
    assert_eq!(bits_for(0), 1);
    assert_eq!(bits_for(100), 1);
    assert_eq!(bits_for(129), 2);
    assert_eq!(bits_for(1_000_000), 14);
    assert_eq!(bits_for(1_000_000_000), 16);
}

#[test]
fn equal_sides_differ_nowhere_and_a_changed_hash_differs_in_its_range_only() {
    let ours = runs(1000);
    let bits = bits_for(ours.len());
    let mine = sums(&slice(&ours), bits);
    assert_eq!(mine.iter().map(|s| s.runs).sum::<u64>(), 1000);
    let as_clickhouse = |s: &[Sum]| -> Vec<RangeSum> {
        s.iter()
            .enumerate()
            .filter(|(_, s)| s.runs > 0)
            .map(|(i, s)| RangeSum {
                range: i as u32,
                runs: s.runs,
                sum: s.sum,
            })
            .collect()
    };
    assert!(differing(&mine, &as_clickhouse(&mine)).is_empty());

    let mut theirs = ours.clone();
    theirs.get_mut("run_7").unwrap().digest ^= 1;
    theirs.remove("run_9");
    theirs.insert(
        "run_extra".into(),
        Expected {
            generation: 0,
            digest: 5,
        },
    );
    let ranges = differing(&mine, &as_clickhouse(&sums(&slice(&theirs), bits)));
    let mut expected: Vec<u32> = ["run_7", "run_9", "run_extra"]
        .iter()
        .map(|id| range_of(id, bits))
        .collect();
    expected.sort();
    expected.dedup();
    assert_eq!(ranges, expected);

    // Run by run within those ranges: exactly the three.
    let hashes: Vec<(String, u64)> = theirs
        .iter()
        .filter(|(id, _)| ranges.contains(&range_of(id, bits)))
        .map(|(id, e)| (id.clone(), e.digest))
        .collect();
    let (ids, only_theirs) = candidates(&slice(&ours), bits, &ranges, &hashes);
    assert_eq!(ids, ["run_7", "run_9", "run_extra"]);
    assert_eq!(only_theirs, 1);
}

#[test]
fn a_run_clickhouse_shows_twice_is_a_candidate() {
    let ours = runs(10);
    let e = ours["run_3"];
    let hashes = vec![
        ("run_3".to_string(), e.digest),
        ("run_3".to_string(), e.digest),
    ];
    let (ids, _) = candidates(&slice(&ours), 1, &[range_of("run_3", 1)], &hashes);
    assert!(ids.contains(&"run_3".to_string()));
}

#[test]
fn a_range_clickhouse_has_alone_differs() {
    let mine = vec![Sum::default(); 2];
    let theirs = [RangeSum {
        range: 1,
        runs: 1,
        sum: 9,
    }];
    assert_eq!(differing(&mine, &theirs), [1]);
}
