use crate::verify::compare::{ColumnDiff, Finding, Kind};
use crate::verify::report::{DriftCounts, Outcome, Report, UnsettledCounts};
use crate::verify::settle::{Reason, Unsettled};

fn findings() -> Vec<Finding> {
    vec![
        Finding {
            run_id: "run_a".into(),
            kinds: vec![Kind::Stale, Kind::MissingPayload],
            columns: vec![ColumnDiff {
                column: "status",
                expected: "COMPLETED_SUCCESSFULLY".into(),
                actual: "EXECUTING".into(),
            }],
            extra_rows: 0,
        },
        Finding {
            run_id: "run_b".into(),
            kinds: vec![Kind::Missing],
            columns: vec![],
            extra_rows: 0,
        },
        Finding {
            run_id: "run_c".into(),
            kinds: vec![Kind::Extra],
            columns: vec![],
            extra_rows: 1,
        },
    ]
}

#[test]
fn counts_by_kind_and_column() {
    let c = DriftCounts::of(&findings());
    assert_eq!(
        (c.runs, c.missing, c.extra, c.stale, c.missing_payload),
        (3, 1, 1, 1, 1)
    );
    assert_eq!(c.stale_columns["status"], 1);
    assert_eq!(c.get(Kind::MissingPayload), 1);
}

#[test]
fn text_and_json_say_the_same_and_the_exit_code_follows_drift() {
    let mut r = Report {
        runs_compared: 12_345,
        runs_in_sync: 12_342,
        window: "every run".into(),
        drift: DriftCounts::of(&findings()),
        drifted: findings(),
        outcome: Outcome::Drift,
        ..Report::default()
    };
    assert_eq!(r.exit_code(), 1);
    let text = r.render_text();
    assert!(
        text.starts_with("verify: DRIFT: 3 of 12,345 runs differ"),
        "{text}"
    );
    assert!(text.contains("1 missing, 1 extra, 1 stale (status 1), 1 missing payload"));
    assert!(text.contains("status: expected COMPLETED_SUCCESSFULLY  actual EXECUTING"));
    assert!(text.contains("run_b  missing\n      not in ClickHouse"));
    assert!(text.contains("in ClickHouse (1 row(s)), not in Postgres"));
    let json: serde_json::Value = serde_json::from_str(&r.render_json()).unwrap();
    assert_eq!(json["drift"]["stale_columns"]["status"], 1);
    assert_eq!(
        json["drifted"][0]["kinds"],
        serde_json::json!(["stale", "missing_payload"])
    );
    r.in_sync = true;
    r.drift = DriftCounts::default();
    r.drifted.clear();
    r.outcome = Report::conclude(&r.drift, &r.unsettled);
    assert_eq!(r.outcome, Outcome::InSync);
    assert_eq!(r.exit_code(), 0);
    assert!(r.render_text().starts_with("verify: in sync"));
}

fn unsettled() -> Vec<Unsettled> {
    vec![
        Unsettled {
            run_id: "run_hot".into(),
            reason: Reason::Changing,
            differed: vec![Kind::Stale],
        },
        Unsettled {
            run_id: "run_late".into(),
            reason: Reason::StreamBehind,
            differed: vec![Kind::Missing],
        },
    ]
}

#[test]
fn unsettled_runs_are_neither_in_sync_nor_drift_and_never_exit_0() {
    let counts = UnsettledCounts::of(&unsettled());
    assert_eq!(
        (counts.runs, counts.stream_behind, counts.changing),
        (2, 1, 1)
    );
    // Unsettled only: nothing proven wrong, nothing proven right either.
    let mut r = Report {
        runs_compared: 100,
        runs_in_sync: 98,
        window: "every run".into(),
        outcome: Report::conclude(&DriftCounts::default(), &counts),
        unsettled: counts.clone(),
        unsettled_runs: unsettled(),
        ..Report::default()
    };
    assert_eq!(r.outcome, Outcome::Unsettled);
    assert_eq!(r.exit_code(), 2, "runs that never settle do not exit 0");
    let text = r.render_text();
    assert!(
        text.starts_with(
            "verify: UNSETTLED: 2 of 100 runs could not be settled; no drift was proven"
        ),
        "{text}"
    );
    assert!(
        text.contains("0 missing, 0 extra, 0 stale, 0 missing payload"),
        "not drift: {text}"
    );
    assert!(text.contains("unsettled  2 runs: 1 with the stream behind, 1 changing"));
    assert!(
        text.contains("run_late  the stream had not delivered"),
        "{text}"
    );
    assert!(text.contains("(differed: missing)"), "{text}");
    let json: serde_json::Value = serde_json::from_str(&r.render_json()).unwrap();
    assert_eq!(json["outcome"], "unsettled");
    assert_eq!(json["in_sync"], false);
    assert_eq!(json["drift"]["runs"], 0);
    assert_eq!(json["unsettled"]["stream_behind"], 1);
    assert_eq!(json["unsettled_runs"][0]["reason"], "changing");
    assert_eq!(json["unsettled_runs"][1]["differed"][0], "missing");

    // Drift beside unsettled runs: drift decides the exit code, the rest is still apart.
    r.drift = DriftCounts::of(&findings());
    r.drifted = findings();
    r.outcome = Report::conclude(&r.drift, &r.unsettled);
    assert_eq!(r.outcome, Outcome::Drift);
    assert_eq!(r.exit_code(), 1);
    let text = r.render_text();
    assert!(
        text.starts_with("verify: DRIFT: 3 of 100 runs differ between ClickHouse and Postgres; 2 more could not be settled"),
        "{text}"
    );
}

#[test]
fn the_unsettled_gauge_labels_are_the_reasons() {
    let labels: Vec<&str> = Reason::ALL.iter().map(|r| r.label()).collect();
    assert_eq!(labels, crate::metrics::UNSETTLED_REASONS);
    let kinds: Vec<&str> = Kind::ALL.iter().map(|k| k.label()).collect();
    assert_eq!(kinds, crate::metrics::DRIFT_KINDS);
}
