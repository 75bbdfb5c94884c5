//! `run_row` / `payload_row`: every column of a fully populated row, the NULL defaults, the skip
//! and tombstone rules, and how each column reacts to its own edge cases.

use super::*;

const ERROR_JSONB: &str = r#"{"name": "TestError", "stack": "TestError: test error\n    at run (/app/src/trigger/email.ts:12:5)\n    at async exec (/app/node_modules/@trigger.dev/core/dist/x.js:100:20)", "message": "test error for user 550e8400-e29b-41d4-a716-446655440000"}"#;
/// `calculateErrorFingerprint(JSON.parse(ERROR_JSONB))` on node.
const ERROR_FINGERPRINT: &str = "132299bff4a6873f";

fn full_pairs() -> Vec<(Col, &'static str)> {
    vec![
        (Col::Id, "cmabc123def456ghi789jkl0m"),
        (Col::FriendlyId, "run_cmabc123def456ghi789jkl0m"),
        (Col::Engine, "V2"),
        (Col::Status, "COMPLETED_WITH_ERRORS"),
        (Col::StatusReason, "EXTERNAL_DEPLOYMENT_PENDING"),
        (Col::IdempotencyKey, "9f86d081884c7d65"),
        (
            Col::IdempotencyKeyOptions,
            r#"{"key": "order-42", "scope": "global"}"#,
        ),
        (Col::TaskIdentifier, "send-email"),
        (Col::IsTest, "t"),
        (Col::Payload, r#"{"to":"a@b.c","n":1.50}"#),
        (Col::PayloadType, "application/json"),
        (Col::TraceId, "4bf92f3577b34da6a3ce929d0e0e4736"),
        (Col::SpanId, "00f067aa0ba902b7"),
        (Col::RuntimeEnvironmentId, "env_1"),
        (Col::EnvironmentType, "PRODUCTION"),
        (Col::ProjectId, "proj_1"),
        (Col::OrganizationId, "org_1"),
        (Col::Queue, "task/send-email"),
        (Col::MasterQueue, "us-nyc-3:scheduled"),
        (Col::Region, "us-nyc-3"),
        (Col::AttemptNumber, "2"),
        (Col::CreatedAt, "2026-11-26 11:19:00.821"),
        (Col::UpdatedAt, "2026-11-26 11:20:01.5"),
        (Col::RunTags, r#"{tag1,"tag two"}"#),
        (Col::TaskVersion, "20261126.1"),
        (Col::SdkVersion, "4.0.0"),
        (Col::CliVersion, "4.0.1"),
        (Col::StartedAt, "2026-11-26 11:19:02.002"),
        (Col::ExecutedAt, "2026-11-26 11:19:02.01"),
        (Col::CompletedAt, "2026-11-26 11:20:01.499"),
        (Col::MachinePreset, "small-1x"),
        (Col::UsageDurationMs, "1234"),
        (Col::CostInCents, "0.5"),
        (Col::BaseCostInCents, "0.25"),
        (Col::ConcurrencyKey, "user-7"),
        (Col::DelayUntil, "2026-11-26 11:19:00"),
        (Col::QueuedAt, "2026-11-26 11:19:01"),
        (Col::Ttl, "10m"),
        (Col::ExpiredAt, "2026-11-27 11:19:00"),
        (Col::QueueTimestamp, "2026-11-26 11:19:00.9"),
        (Col::ScheduleId, "sched_1"),
        (Col::BulkActionGroupIds, "{bulk_1,bulk_2}"),
        (Col::RootTaskRunId, "root_1"),
        (Col::ParentTaskRunId, "parent_1"),
        (Col::BatchId, "batch_1"),
        (Col::Depth, "3"),
        (
            Col::Annotations,
            r#"{"taskKind": "STANDARD", "triggerAction": "trigger", "triggerSource": "api", "rootTriggerSource": "schedule", "externalDeploymentId": "commit-abc"}"#,
        ),
        (Col::IsWarmStart, "f"),
        (Col::Output, r#"{"result":"test-output"}"#),
        (Col::OutputType, "application/json"),
        (Col::Error, ERROR_JSONB),
        (Col::PlanType, "pro"),
        (Col::MaxDurationInSeconds, "300"),
    ]
}

fn full_row() -> SourceRow<'static> {
    let pairs = full_pairs();
    assert_eq!(pairs.len(), Col::COUNT, "every column is populated");
    let mut row = SourceRow::new();
    for (col, value) in pairs {
        row.set(col, Some(value));
    }
    row
}

/// A row with only the columns needed to produce anything.
fn minimal_row() -> SourceRow<'static> {
    SourceRow::from_pairs(&[
        (Col::OrganizationId, "org_1"),
        (Col::EnvironmentType, "DEVELOPMENT"),
        (Col::CreatedAt, "2026-11-26 11:19:00.821"),
        (Col::UpdatedAt, "2026-11-26 11:19:00.821"),
    ])
}

fn with(mut row: SourceRow<'static>, col: Col, value: Option<&'static str>) -> SourceRow<'static> {
    row.set(col, value);
    row
}

fn run(row: &SourceRow<'_>) -> RunRow {
    run_row(row, false, &TransformOptions::default()).expect("row transforms")
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

#[test]
fn fully_populated_row_maps_every_column() {
    let expected = RunRow {
        environment_id: "env_1".into(),
        organization_id: "org_1".into(),
        project_id: "proj_1".into(),
        run_id: "cmabc123def456ghi789jkl0m".into(),
        updated_at: 1_795_692_001_500,
        created_at: 1_795_691_940_821,
        queue_timestamp: Some(1_795_691_940_900),
        status: "COMPLETED_WITH_ERRORS".into(),
        environment_type: "PRODUCTION".into(),
        friendly_id: "run_cmabc123def456ghi789jkl0m".into(),
        attempt: 2,
        engine: "V2".into(),
        task_identifier: "send-email".into(),
        queue: "task/send-email".into(),
        schedule_id: "sched_1".into(),
        batch_id: "batch_1".into(),
        completed_at: Some(1_795_692_001_499),
        started_at: Some(1_795_691_942_002),
        executed_at: Some(1_795_691_942_010),
        delay_until: Some(1_795_691_940_000),
        queued_at: Some(1_795_691_941_000),
        expired_at: Some(1_795_778_340_000),
        usage_duration_ms: 1234,
        cost_in_cents: 0.5,
        base_cost_in_cents: 0.25,
        output: r#"{"data":{"result":"test-output"}}"#.into(),
        error: format!(r#"{{"data":{ERROR_JSONB}}}"#),
        error_fingerprint: ERROR_FINGERPRINT.into(),
        tags: strings(&["tag1", "tag two"]),
        task_version: "20261126.1".into(),
        sdk_version: "4.0.0".into(),
        cli_version: "4.0.1".into(),
        machine_preset: "small-1x".into(),
        root_run_id: "root_1".into(),
        parent_run_id: "parent_1".into(),
        depth: 3,
        span_id: "00f067aa0ba902b7".into(),
        trace_id: "4bf92f3577b34da6a3ce929d0e0e4736".into(),
        idempotency_key: "9f86d081884c7d65".into(),
        idempotency_key_user: "order-42".into(),
        idempotency_key_scope: "global".into(),
        expiration_ttl: "10m".into(),
        is_test: 1,
        _version: 0,
        _is_deleted: 0,
        concurrency_key: "user-7".into(),
        bulk_action_group_ids: strings(&["bulk_1", "bulk_2"]),
        worker_queue: "us-nyc-3".into(),
        region: "us-nyc-3".into(),
        plan_type: "pro".into(),
        max_duration_in_seconds: Some(300),
        trigger_source: "api".into(),
        root_trigger_source: "schedule".into(),
        task_kind: "STANDARD".into(),
        is_warm_start: Some(0),
        external_deployment_id: "commit-abc".into(),
    };
    assert_eq!(run(&full_row()), expected);

    let tombstone = run_row(&full_row(), true, &TransformOptions::default()).unwrap();
    assert_eq!(
        tombstone,
        RunRow {
            _is_deleted: 1,
            ..expected
        }
    );
}

#[test]
fn every_column_is_read() {
    // Blanking any one column of the full row changes the output (or fails it, or skips it):
    // no column is silently ignored.
    let full = run(&full_row());
    for &col in Col::ALL {
        if matches!(col, Col::Payload | Col::PayloadType) {
            continue; // payload_row's columns, checked below
        }
        let blanked = with(full_row(), col, None);
        match run_row(&blanked, false, &TransformOptions::default()) {
            Ok(row) => assert_ne!(row, full, "{col:?} is not read"),
            Err(TransformError::Skip(_)) => {
                assert!(
                    matches!(col, Col::OrganizationId | Col::EnvironmentType),
                    "{col:?}"
                )
            }
            Err(TransformError::InvalidValue { .. }) => {
                assert!(matches!(col, Col::CreatedAt | Col::UpdatedAt), "{col:?}")
            }
        }
    }
    let payload = payload_row(&full_row()).unwrap();
    for col in [Col::Payload, Col::PayloadType, Col::Id, Col::CreatedAt] {
        let blanked = with(full_row(), col, None);
        if col == Col::CreatedAt {
            assert!(payload_row(&blanked).is_err());
        } else {
            assert_ne!(
                payload_row(&blanked).unwrap(),
                payload,
                "{col:?} is not read"
            );
        }
    }
}

#[test]
fn null_columns_take_upstreams_defaults() {
    let row = run(&minimal_row());
    let expected = RunRow {
        environment_id: String::new(),
        organization_id: "org_1".into(),
        project_id: String::new(),
        run_id: String::new(),
        updated_at: 1_795_691_940_821,
        created_at: 1_795_691_940_821,
        queue_timestamp: None,
        status: String::new(),
        environment_type: "DEVELOPMENT".into(),
        friendly_id: String::new(),
        attempt: 1,
        engine: String::new(),
        task_identifier: String::new(),
        queue: String::new(),
        schedule_id: String::new(),
        batch_id: String::new(),
        completed_at: None,
        started_at: None,
        executed_at: None,
        delay_until: None,
        queued_at: None,
        expired_at: None,
        usage_duration_ms: 0,
        cost_in_cents: 0.0,
        base_cost_in_cents: 0.0,
        output: "{}".into(),
        error: r#"{"data":null}"#.into(),
        error_fingerprint: String::new(),
        tags: vec![],
        task_version: String::new(),
        sdk_version: String::new(),
        cli_version: String::new(),
        machine_preset: String::new(),
        root_run_id: String::new(),
        parent_run_id: String::new(),
        depth: 0,
        span_id: String::new(),
        trace_id: String::new(),
        idempotency_key: String::new(),
        idempotency_key_user: String::new(),
        idempotency_key_scope: String::new(),
        expiration_ttl: String::new(),
        is_test: 0,
        _version: 0,
        _is_deleted: 0,
        concurrency_key: String::new(),
        bulk_action_group_ids: vec![],
        worker_queue: String::new(),
        region: String::new(),
        plan_type: String::new(),
        max_duration_in_seconds: None,
        trigger_source: String::new(),
        root_trigger_source: String::new(),
        task_kind: String::new(),
        is_warm_start: None,
        external_deployment_id: String::new(),
    };
    assert_eq!(row, expected);
    assert_eq!(
        payload_row(&minimal_row()),
        Ok(PayloadRow {
            run_id: String::new(),
            created_at: 1_795_691_940_821,
            payload: "{}".into(),
        })
    );
}

#[test]
fn rows_without_organization_or_environment_type_are_skipped() {
    let opts = TransformOptions::default();
    let skip = |reason| Err(TransformError::Skip(reason));
    for (org, env, expected) in [
        (
            None,
            Some("PRODUCTION"),
            skip(SkipReason::MissingOrganizationId),
        ),
        (
            Some(""),
            Some("PRODUCTION"),
            skip(SkipReason::MissingOrganizationId),
        ),
        (
            Some("org_1"),
            None,
            skip(SkipReason::MissingEnvironmentType),
        ),
        (None, None, skip(SkipReason::MissingOrganizationId)),
    ] {
        let row = with(
            with(full_row(), Col::OrganizationId, org),
            Col::EnvironmentType,
            env,
        );
        assert_eq!(run_row(&row, false, &opts), expected, "{org:?} {env:?}");
        assert_eq!(
            run_row(&row, true, &opts),
            expected,
            "tombstone {org:?} {env:?}"
        );
        assert_eq!(payload_row(&row).map(|_| ()), expected.map(|_: RunRow| ()));
    }
    assert_eq!(
        SkipReason::MissingOrganizationId.label(),
        "missing_organization_id"
    );
    assert_eq!(
        SkipReason::MissingEnvironmentType.label(),
        "missing_environment_type"
    );
}

#[test]
fn deleted_flag_marks_tombstones_only() {
    let opts = TransformOptions::default();
    assert_eq!(run_row(&minimal_row(), true, &opts).unwrap()._is_deleted, 1);
    assert_eq!(
        run_row(&minimal_row(), false, &opts).unwrap()._is_deleted,
        0
    );
    assert_eq!(run_row(&minimal_row(), true, &opts).unwrap()._version, 0);
}

#[test]
fn transform_is_deterministic() {
    let opts = TransformOptions::default();
    assert_eq!(
        run_row(&full_row(), false, &opts),
        run_row(&full_row(), false, &opts)
    );
}

#[test]
fn timestamps() {
    let row = run(&with(minimal_row(), Col::CompletedAt, Some("infinity")));
    assert_eq!(row.completed_at, Some(values::TIMESTAMP_INFINITY_MS));
    let row = run(&with(minimal_row(), Col::DelayUntil, Some("-infinity")));
    assert_eq!(row.delay_until, Some(values::TIMESTAMP_NEG_INFINITY_MS));
    let row = run(&with(
        minimal_row(),
        Col::CreatedAt,
        Some("1969-12-31 23:59:59.999"),
    ));
    assert_eq!(row.created_at, -1);
    let row = run(&with(
        minimal_row(),
        Col::QueueTimestamp,
        Some("0044-03-15 12:00:00 BC"),
    ));
    assert_eq!(row.queue_timestamp, Some(-63_517_780_800_000));
    let row = run(&with(
        minimal_row(),
        Col::ExpiredAt,
        Some("10000-01-01 00:00:00"),
    ));
    assert_eq!(row.expired_at, Some(253_402_300_800_000));
}

#[test]
fn unreadable_values_are_errors_naming_the_column() {
    let opts = TransformOptions::default();
    for (col, value, expected) in [
        (Col::CreatedAt, "11/26/2026 11:19:00", "a timestamp"),
        (Col::UpdatedAt, "Thu Nov 26 11:19:00 2026", "a timestamp"),
        (Col::StartedAt, "2026-11-26", "a timestamp"),
        (Col::AttemptNumber, "two", "an integer"),
        (Col::Depth, "1.5", "an integer"),
        (Col::UsageDurationMs, "", "an integer"),
        (Col::MaxDurationInSeconds, "1e3", "an integer"),
        (Col::CostInCents, "0,5", "a double precision"),
        (Col::BaseCostInCents, "inf", "a double precision"),
        (Col::IsTest, "yes", "a boolean"),
        (Col::IsWarmStart, "1", "a boolean"),
        (Col::RunTags, "tag1,tag2", "a text[] literal"),
        (Col::BulkActionGroupIds, "{a", "a text[] literal"),
        (Col::Error, "{not json", "a jsonb value"),
        (Col::Annotations, "{not json", "a jsonb value"),
        (Col::IdempotencyKeyOptions, "{not json", "a jsonb value"),
    ] {
        assert_eq!(
            run_row(&with(full_row(), col, Some(value)), false, &opts),
            Err(TransformError::InvalidValue {
                column: col.pg_name(),
                value: value.to_owned(),
                expected,
            }),
            "{col:?}"
        );
    }
    for col in [Col::CreatedAt, Col::UpdatedAt] {
        assert_eq!(
            run_row(&with(full_row(), col, None), false, &opts),
            Err(TransformError::InvalidValue {
                column: col.pg_name(),
                value: "NULL".into(),
                expected: "a timestamp",
            })
        );
    }
    assert!(payload_row(&with(full_row(), Col::CreatedAt, Some("bad"))).is_err());
}

#[test]
fn invalid_value_excerpt_is_bounded_and_utf8_safe() {
    let long: &'static str = Box::leak("é".repeat(500).into_boxed_str());
    let err = run_row(
        &with(full_row(), Col::CreatedAt, Some(long)),
        false,
        &TransformOptions::default(),
    );
    let Err(TransformError::InvalidValue { value, .. }) = err else {
        panic!("{err:?}");
    };
    assert_eq!(value, "é".repeat(100));
    let message = TransformError::InvalidValue {
        column: "createdAt",
        value: "x".into(),
        expected: "a timestamp",
    }
    .to_string();
    assert_eq!(
        message,
        r#"column "createdAt" has value "x", expected a timestamp"#
    );
}

#[test]
fn narrow_integer_columns_store_what_clickhouse_makes_of_the_number() {
    // Upstream sends the integer unchanged; ClickHouse reads one too large for the column modulo
    // its width. A negative one fails upstream's insert, so 0 here.
    let run_with = |col, v| run(&with(minimal_row(), col, Some(v)));
    assert_eq!(run_with(Col::AttemptNumber, "0").attempt, 0);
    assert_eq!(run_with(Col::AttemptNumber, "255").attempt, 255);
    assert_eq!(run_with(Col::AttemptNumber, "256").attempt, 0);
    assert_eq!(run_with(Col::AttemptNumber, "300").attempt, 44);
    assert_eq!(run_with(Col::AttemptNumber, "-1").attempt, 0);
    assert_eq!(run_with(Col::Depth, "1000").depth, 232);
    assert_eq!(run_with(Col::Depth, "-3").depth, 0);
    assert_eq!(run_with(Col::UsageDurationMs, "-5").usage_duration_ms, 0);
    assert_eq!(
        run_with(Col::UsageDurationMs, "2147483647").usage_duration_ms,
        2_147_483_647
    );
    // Beyond Postgres' integer range, were the column ever widened.
    assert_eq!(
        run_with(Col::UsageDurationMs, "9999999999").usage_duration_ms,
        1_410_065_407
    );
    assert_eq!(
        run_with(Col::MaxDurationInSeconds, "-1").max_duration_in_seconds,
        Some(0)
    );
    assert_eq!(
        run_with(Col::MaxDurationInSeconds, "0").max_duration_in_seconds,
        Some(0)
    );
    assert_eq!(
        run_with(Col::MaxDurationInSeconds, "2147483647").max_duration_in_seconds,
        Some(2_147_483_647)
    );
    assert_eq!(
        run_with(Col::MaxDurationInSeconds, "99999999999").max_duration_in_seconds,
        Some(1_215_752_191)
    );
}

#[test]
fn float_columns_store_what_json_stringify_sends() {
    // NaN and ±Infinity become `null`, a non-nullable Float64 reads that as 0; `-0` prints as 0.
    let run_with = |col, v| run(&with(minimal_row(), col, Some(v)));
    let bits = |v: f64| v.to_bits();
    assert_eq!(bits(run_with(Col::CostInCents, "NaN").cost_in_cents), 0);
    assert_eq!(
        bits(run_with(Col::CostInCents, "Infinity").cost_in_cents),
        0
    );
    assert_eq!(
        bits(run_with(Col::BaseCostInCents, "-Infinity").base_cost_in_cents),
        0
    );
    assert_eq!(bits(run_with(Col::CostInCents, "-0").cost_in_cents), 0);
    assert_eq!(
        bits(run_with(Col::BaseCostInCents, "-0").base_cost_in_cents),
        0
    );
    assert_eq!(
        run_with(Col::BaseCostInCents, "1.5e-07").base_cost_in_cents,
        1.5e-7
    );
    assert_eq!(run_with(Col::CostInCents, "-2.25").cost_in_cents, -2.25);
}

#[test]
fn booleans() {
    let run_with = |col, v| run(&with(minimal_row(), col, v));
    assert_eq!(run_with(Col::IsTest, Some("t")).is_test, 1);
    assert_eq!(run_with(Col::IsTest, Some("f")).is_test, 0);
    assert_eq!(run_with(Col::IsTest, None).is_test, 0);
    assert_eq!(run_with(Col::IsWarmStart, Some("t")).is_warm_start, Some(1));
    assert_eq!(run_with(Col::IsWarmStart, Some("f")).is_warm_start, Some(0));
    assert_eq!(run_with(Col::IsWarmStart, None).is_warm_start, None);
}

#[test]
fn array_columns() {
    let row = run(&with(
        with(
            minimal_row(),
            Col::RunTags,
            Some(r#"{a,NULL,"c d","x\"y",""}"#),
        ),
        Col::BulkActionGroupIds,
        Some("{}"),
    ));
    assert_eq!(row.tags, strings(&["a", "", "c d", "x\"y", ""]));
    assert!(row.bulk_action_group_ids.is_empty());
}

#[test]
fn worker_queue_is_the_part_before_the_first_colon() {
    for (master_queue, expected) in [
        (Some("main"), "main"),
        (Some("us-nyc-3:scheduled"), "us-nyc-3"),
        (Some("proj_1-eu:a:b"), "proj_1-eu"),
        (Some(":x"), ""),
        (Some(""), ""),
        (None, ""),
    ] {
        let row = run(&with(minimal_row(), Col::MasterQueue, master_queue));
        assert_eq!(row.worker_queue, expected, "{master_queue:?}");
    }
}

#[test]
fn fingerprint_only_for_failed_statuses_when_enabled() {
    let on = TransformOptions::default();
    let off = TransformOptions {
        fingerprint_errors: false,
    };
    let statuses = [
        ("SYSTEM_FAILURE", true),
        ("CRASHED", true),
        ("INTERRUPTED", true),
        ("COMPLETED_WITH_ERRORS", true),
        ("TIMED_OUT", true),
        ("COMPLETED_SUCCESSFULLY", false),
        ("CANCELED", false),
        ("EXPIRED", false),
        ("EXECUTING", false),
        ("PENDING", false),
        ("RETRYING_AFTER_FAILURE", false),
    ];
    for (status, fingerprinted) in statuses {
        let row = with(full_row(), Col::Status, Some(status));
        let expected = if fingerprinted { ERROR_FINGERPRINT } else { "" };
        assert_eq!(
            run_row(&row, false, &on).unwrap().error_fingerprint,
            expected,
            "{status}"
        );
        assert_eq!(
            run_row(&row, false, &off).unwrap().error_fingerprint,
            "",
            "{status}"
        );
    }
    let failed = |error| {
        with(
            with(full_row(), Col::Status, Some("CRASHED")),
            Col::Error,
            error,
        )
    };
    assert_eq!(run(&failed(None)).error_fingerprint, "");
    assert_eq!(run(&failed(Some("null"))).error_fingerprint, "");
    assert_eq!(run(&failed(Some(r#""boom""#))).error_fingerprint, "");
    assert_eq!(
        run(&failed(Some(r#"[{"message": "m"}]"#))).error_fingerprint,
        ""
    );
    assert_eq!(
        run(&failed(Some(r#"{"message": "m"}"#))).error_fingerprint,
        "1d07c5e90199e3cd"
    );
    assert_eq!(
        run(&failed(Some("{}"))).error_fingerprint,
        "8f5fe443124cddd2"
    );
}

#[test]
fn output_and_error_columns() {
    let out = |output, output_type| {
        run(&with(
            with(minimal_row(), Col::Output, output),
            Col::OutputType,
            output_type,
        ))
        .output
    };
    let json = Some("application/json");
    assert_eq!(out(Some("42"), json), r#"{"data":42}"#);
    assert_eq!(out(Some("[1,2]"), json), r#"{"data":[1,2]}"#);
    assert_eq!(out(Some(r#""text""#), json), r#"{"data":"text"}"#);
    assert_eq!(out(Some("null"), json), r#"{"data":null}"#);
    assert_eq!(out(Some(""), json), "{}");
    assert_eq!(out(None, json), "{}");
    assert_eq!(out(Some("plain text"), Some("text/plain")), "{}");
    assert_eq!(out(Some(r#"{"a":1}"#), None), "{}");
    assert_eq!(out(Some("{oops"), json), "{}");
    assert_eq!(out(Some(r#"{"t":"\ud835"}"#), json), "{}");
    assert_eq!(out(Some(r#"{"a":1,"a":2}"#), json), r#"{"data":{"a":2}}"#);
    assert_eq!(
        out(
            Some(
                r#"{"json":{"bigint":"1234","date":"2024-01-02T03:04:05.000Z","map":[["foo","bar"]]},"meta":{"values":{"bigint":["bigint"],"date":["Date"],"map":["map"]}}}"#
            ),
            Some("application/super+json")
        ),
        r#"{"data":{"bigint":"1234","date":"2024-01-02T03:04:05.000Z","map":[["foo","bar"]]}}"#
    );

    let err = |error| run(&with(minimal_row(), Col::Error, error)).error;
    assert_eq!(err(None), r#"{"data":null}"#);
    assert_eq!(
        err(Some(r#"{"message": "test error", "name": "TestError"}"#)),
        r#"{"data":{"message": "test error", "name": "TestError"}}"#
    );
}

#[test]
fn payload_row_wraps_the_payload() {
    let row = payload_row(&full_row()).unwrap();
    assert_eq!(
        row,
        PayloadRow {
            run_id: "cmabc123def456ghi789jkl0m".into(),
            created_at: 1_795_691_940_821,
            payload: r#"{"data":{"to":"a@b.c","n":1.5}}"#.into(),
        }
    );
    let sj = with(
        with(
            full_row(),
            Col::Payload,
            Some(
                r#"{"json":{"when":"2024-01-02T03:04:05.000Z"},"meta":{"values":{"when":["Date"]}}}"#,
            ),
        ),
        Col::PayloadType,
        Some("application/super+json"),
    );
    assert_eq!(
        payload_row(&sj).unwrap().payload,
        r#"{"data":{"when":"2024-01-02T03:04:05.000Z"}}"#
    );
    let store = with(full_row(), Col::PayloadType, Some("application/store"));
    assert_eq!(payload_row(&store).unwrap().payload, "{}");
}

#[test]
fn annotation_and_idempotency_columns() {
    let row = run(&with(
        with(
            full_row(),
            Col::Annotations,
            Some(r#"{"triggerSource": "sdk", "externalDeploymentId": "c1"}"#),
        ),
        Col::IdempotencyKeyOptions,
        None,
    ));
    assert_eq!(
        (
            &*row.trigger_source,
            &*row.root_trigger_source,
            &*row.task_kind,
            &*row.external_deployment_id
        ),
        ("", "", "", "c1")
    );
    assert_eq!(
        (&*row.idempotency_key_user, &*row.idempotency_key_scope),
        ("", "")
    );
    let row = run(&with(full_row(), Col::StatusReason, None));
    assert_eq!(row.external_deployment_id, "");
    assert_eq!(row.trigger_source, "api");
}

#[test]
fn base_worker_queue_is_idempotent() {
    for q in ["main", "us-nyc-3:scheduled", "a:b:c", ""] {
        assert_eq!(
            base_worker_queue(base_worker_queue(q)),
            base_worker_queue(q)
        );
    }
}
