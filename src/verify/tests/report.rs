use crate::verify::compare::{ColumnDiff, Finding, Kind};
use crate::verify::report::{DriftCounts, Report};

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
    assert_eq!(r.exit_code(), 0);
    assert!(r.render_text().starts_with("verify: in sync"));
}
