use std::collections::HashMap;

use crate::testing::runs::run_row;
use crate::verify::compare::{Finding, Kind};
use crate::verify::settle::{Observation, Round, Verdict, decide};

fn finding() -> Finding {
    Finding {
        run_id: "run_1".into(),
        kinds: vec![Kind::Stale],
        columns: vec![],
        extra_rows: 0,
    }
}

fn seen(version: Option<u64>) -> Observation {
    let mut actual = run_row("run_1");
    actual._version = version.unwrap_or(0);
    Observation {
        expected: Some(run_row("run_1")),
        actual: version.map(|_| actual).into_iter().collect(),
        newest: version,
        payload: None,
    }
}

/// The snapshot's L is 1000 for generation 0 and 2000 for generation 1.
fn round(caught_up: bool) -> Round {
    Round {
        floors: HashMap::from([(0, 1000), (1, 2000)]),
        caught_up,
    }
}

#[test]
fn in_sync_is_in_sync_whatever_the_stream() {
    let now = seen(Some(5000));
    assert_eq!(decide(None, &now, None, &round(false)), Verdict::InSync);
}

#[test]
fn a_difference_older_than_the_snapshot_is_drift_once_the_stream_caught_up() {
    let f = finding();
    for v in [500, 1000] {
        let now = seen(Some(v));
        assert_eq!(
            decide(Some(&f), &now, None, &round(true)),
            Verdict::Drift,
            "{v}"
        );
        assert_eq!(
            decide(Some(&f), &now, None, &round(false)),
            Verdict::Pending,
            "{v}"
        );
    }
    // Nothing at all in ClickHouse, the stream caught up: missing.
    assert_eq!(
        decide(Some(&f), &seen(None), None, &round(true)),
        Verdict::Drift
    );
    // Generation 1's L is its own source's.
    let gen1 = seen(Some((1 << 56) | 1500));
    assert_eq!(decide(Some(&f), &gen1, None, &round(true)), Verdict::Drift);
}

#[test]
fn a_difference_newer_than_the_snapshot_waits_for_a_second_look() {
    let f = finding();
    // Written after L: maybe a change the snapshot misses.
    let now = seen(Some(1001));
    assert_eq!(decide(Some(&f), &now, None, &round(true)), Verdict::Pending);
    // An unknown generation cannot be placed against any L.
    let alien = seen(Some((9 << 56) | 1));
    assert_eq!(
        decide(Some(&f), &alien, None, &round(true)),
        Verdict::Pending
    );
    // The same rows and versions as the round before: there before this round's snapshot.
    assert_eq!(
        decide(Some(&f), &now, Some(&now), &round(true)),
        Verdict::Drift
    );
    // ClickHouse moved meanwhile: look again.
    let moved = seen(Some(1002));
    assert_eq!(
        decide(Some(&f), &moved, Some(&now), &round(true)),
        Verdict::Pending
    );
    // Not caught up: never settled.
    assert_eq!(
        decide(Some(&f), &now, Some(&now), &round(false)),
        Verdict::Pending
    );
}
