use crate::rows::RunRow;
use crate::testing::runs::run_row;
use crate::verify::canonical::json_form;
use crate::verify::compare::{Kind, Rendered, columns, compare, time};

/// `r` as ClickHouse shows it: JSON columns in its rendering.
fn stored(mut r: RunRow) -> RunRow {
    r.output = json_form(&r.output).into_owned();
    r.error = json_form(&r.error).into_owned();
    r
}

#[test]
fn in_sync_missing_extra_and_payload() {
    let r = run_row("run_1");
    let shown = stored(r.clone());
    let none = Rendered::new();
    assert_eq!(
        compare(
            "run_1",
            Some(&r),
            std::slice::from_ref(&shown),
            Some(true),
            &none
        ),
        None
    );
    assert_eq!(compare("run_1", None, &[], None, &none), None);
    let missing = compare("run_1", Some(&r), &[], Some(false), &none).unwrap();
    assert_eq!(missing.kinds, [Kind::Missing, Kind::MissingPayload]);
    let extra = compare("run_1", None, std::slice::from_ref(&r), None, &none).unwrap();
    assert_eq!(extra.kinds, [Kind::Extra]);
    assert_eq!(extra.extra_rows, 1);
    let payload = compare(
        "run_1",
        Some(&r),
        std::slice::from_ref(&shown),
        Some(false),
        &none,
    );
    assert_eq!(payload.unwrap().kinds, [Kind::MissingPayload]);
}

#[test]
fn stale_columns_name_expected_and_actual_and_ignore_the_version() {
    let e = run_row("run_1");
    let mut a = stored(e.clone());
    a._version = 99;
    a.status = "CRASHED".into();
    a.completed_at = Some(0);
    a.output = r#"{"data":{"n":2}}"#.into();
    let mut e2 = e.clone();
    e2.output = r#"{"data":{"n":1.0}}"#.into();
    let f = compare("run_1", Some(&e2), &[a], None, &Rendered::new()).unwrap();
    assert_eq!(f.kinds, [Kind::Stale]);
    let cols: Vec<(&str, &str, &str)> = f
        .columns
        .iter()
        .map(|c| (c.column, c.expected.as_str(), c.actual.as_str()))
        .collect();
    assert_eq!(
        cols,
        [
            ("status", "PENDING", "CRASHED"),
            ("completed_at", "NULL", "1970-01-01 00:00:00.000"),
            ("output", r#"{"data":{"n":1}}"#, r#"{"data":{"n":2}}"#),
        ]
    );
}

#[test]
fn json_compares_in_clickhouses_rendering_emulated_or_given() {
    let mut e = run_row("run_1");
    e.output = r#"{"data":{"b":1,"a":null}}"#.into();
    let mut a = stored(e.clone());
    a.output = r#"{"data":{"b":1}}"#.into();
    assert!(columns(&e, &a, &Rendered::new()).is_empty());
    // A dotted key: not emulated; ClickHouse's own rendering decides.
    e.output = r#"{"data":{"a.b":1}}"#.into();
    a.output = r#"{"data":{"a":{"b":1}}}"#.into();
    assert_eq!(columns(&e, &a, &Rendered::new()).len(), 1);
    let rendered = Rendered::from([(e.output.clone(), a.output.clone())]);
    assert!(columns(&e, &a, &rendered).is_empty());
}

#[test]
fn a_second_row_under_another_key_is_extra() {
    let e = run_row("run_1");
    let mut old = stored(e.clone());
    old.created_at -= 1000;
    let now = stored(e.clone());
    let f = compare(
        "run_1",
        Some(&e),
        &[old.clone(), now],
        None,
        &Rendered::new(),
    )
    .unwrap();
    assert_eq!(f.kinds, [Kind::Extra]);
    assert_eq!(f.extra_rows, 1);
    // Only the old key: the created_at differs.
    let f = compare("run_1", Some(&e), &[old], None, &Rendered::new()).unwrap();
    assert_eq!(f.kinds, [Kind::Stale]);
    assert_eq!(f.columns[0].column, "created_at");
}

#[test]
fn times_print_in_utc() {
    assert_eq!(time(0), "1970-01-01 00:00:00.000");
    assert_eq!(time(1_764_000_000_123), "2025-11-24 16:00:00.123");
    assert_eq!(time(-1), "1969-12-31 23:59:59.999");
    assert_eq!(time(951_782_400_000), "2000-02-29 00:00:00.000");
}
