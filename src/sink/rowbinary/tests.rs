//! Unit tests of `rowbinary`.

use super::*;
use crate::testing::runs::run_row;

#[test]
fn varints_are_leb128() {
    for (v, bytes) in [
        (0u64, vec![0u8]),
        (127, vec![0x7f]),
        (128, vec![0x80, 0x01]),
        (300, vec![0xac, 0x02]),
        (16_384, vec![0x80, 0x80, 0x01]),
    ] {
        let mut out = Vec::new();
        varint(&mut out, v);
        assert_eq!(out, bytes, "{v}");
    }
}

#[test]
fn a_payload_row_is_its_three_columns() {
    let row = PayloadRow {
        run_id: "r1".into(),
        created_at: 0x0102,
        payload: "{}".into(),
    };
    let mut out = Vec::new();
    row.encode(&mut out);
    assert_eq!(
        out,
        [
            &[2u8, b'r', b'1'][..],
            &[2, 1, 0, 0, 0, 0, 0, 0],
            &[2, b'{', b'}']
        ]
        .concat()
    );
    assert_eq!(
        PayloadRow::columns(),
        "`run_id`,`created_at`,`payload`".to_string()
    );
}

#[test]
fn nullable_and_array_columns() {
    let mut row = run_row("r");
    row.tags = vec!["a".into(), "bc".into()];
    row.max_duration_in_seconds = None;
    row.is_warm_start = Some(1);
    let mut with = Vec::new();
    row.encode(&mut with);
    row.tags.clear();
    row.max_duration_in_seconds = Some(7);
    let mut without = Vec::new();
    row.encode(&mut without);
    // Two tags cost "a" and "bc" with their lengths; Some(7u32) costs 4 bytes more than NULL.
    assert_eq!(with.len() - without.len(), 2 + 3 - 4);
    assert!(with.len() <= row.size_hint() + 5);
    assert_eq!(
        RunRow::columns().matches('`').count(),
        2 * RUN_COLUMNS.len()
    );
}

/// Reads back an encoded row column by column with the types the INSERT names
/// (`RUN_COLUMNS`), so the encoder's field order cannot drift from the column list.
#[test]
fn the_encoding_follows_the_insert_column_list() {
    let mut row = run_row("run_id");
    // Every string column holds its own name; numbers are distinct.
    row.environment_id = "environment_id".into();
    row.organization_id = "organization_id".into();
    row.project_id = "project_id".into();
    row.status = "status".into();
    row.environment_type = "environment_type".into();
    row.friendly_id = "friendly_id".into();
    row.engine = "engine".into();
    row.task_identifier = "task_identifier".into();
    row.queue = "queue".into();
    row.schedule_id = "schedule_id".into();
    row.batch_id = "batch_id".into();
    row.output = "output".into();
    row.error = "error".into();
    row.error_fingerprint = "error_fingerprint".into();
    row.task_version = "task_version".into();
    row.sdk_version = "sdk_version".into();
    row.cli_version = "cli_version".into();
    row.machine_preset = "machine_preset".into();
    row.root_run_id = "root_run_id".into();
    row.parent_run_id = "parent_run_id".into();
    row.span_id = "span_id".into();
    row.trace_id = "trace_id".into();
    row.idempotency_key = "idempotency_key".into();
    row.idempotency_key_user = "idempotency_key_user".into();
    row.idempotency_key_scope = "idempotency_key_scope".into();
    row.expiration_ttl = "expiration_ttl".into();
    row.concurrency_key = "concurrency_key".into();
    row.worker_queue = "worker_queue".into();
    row.region = "region".into();
    row.plan_type = "plan_type".into();
    row.trigger_source = "trigger_source".into();
    row.root_trigger_source = "root_trigger_source".into();
    row.task_kind = "task_kind".into();
    row.external_deployment_id = "external_deployment_id".into();
    row.tags = vec!["tags".into()];
    row.bulk_action_group_ids = vec!["bulk_action_group_ids".into()];
    let mut out = Vec::new();
    row.encode(&mut out);

    let mut at = 0usize;
    let mut take = |n: usize| {
        let bytes = &out[at..at + n];
        at += n;
        bytes.to_vec()
    };
    let read_varint = |take: &mut dyn FnMut(usize) -> Vec<u8>| {
        let (mut v, mut shift) = (0u64, 0);
        loop {
            let b = take(1)[0];
            v |= u64::from(b & 0x7f) << shift;
            if b < 0x80 {
                return v;
            }
            shift += 7;
        }
    };
    for (name, ty) in RUN_COLUMNS {
        let ty = ty.replace("LowCardinality(String)", "String");
        match ty.as_str() {
            "String" | "JSON" => {
                let n = read_varint(&mut take) as usize;
                assert_eq!(String::from_utf8(take(n)).unwrap(), name, "column {name}");
            }
            "Array(String)" => {
                assert_eq!(read_varint(&mut take), 1, "column {name}");
                let n = read_varint(&mut take) as usize;
                assert_eq!(String::from_utf8(take(n)).unwrap(), name, "column {name}");
            }
            "DateTime64(3)" | "Float64" | "UInt64" => {
                take(8);
            }
            "Nullable(DateTime64(3))" => {
                if take(1)[0] == 0 {
                    take(8);
                }
            }
            "UInt32" => {
                take(4);
            }
            "Nullable(UInt32)" => {
                if take(1)[0] == 0 {
                    take(4);
                }
            }
            "UInt8" => {
                take(1);
            }
            "Nullable(UInt8)" => {
                if take(1)[0] == 0 {
                    take(1);
                }
            }
            other => panic!("column {name}: no reader for {other}"),
        }
    }
    assert_eq!(at, out.len(), "nothing after the last column");
}

#[test]
fn a_body_encoded_in_pieces_is_the_body_encoded_at_once() {
    let rows: Vec<RunRow> = (0..50)
        .map(|i| {
            let mut r = run_row(&format!("run_{i}"));
            r.output = "x".repeat(i * 37);
            r
        })
        .collect();
    let mut whole = Vec::new();
    encode_all(&rows, &mut whole);
    for limit in [0, 1, 700, 4096, 1 << 20] {
        let (mut pieces, mut buf, mut rest, mut blocks) = (Vec::new(), Vec::new(), &rows[..], 0);
        while !rest.is_empty() {
            let n = encode_some(rest, &mut buf, limit);
            assert!(n >= 1, "at least one row per piece");
            let mut before_last = Vec::new();
            encode_all(&rest[..n - 1], &mut before_last);
            assert!(
                n == 1 || before_last.len() < limit,
                "a piece takes another row only while it holds less than the limit"
            );
            pieces.extend_from_slice(&buf);
            rest = &rest[n..];
            blocks += 1;
        }
        assert_eq!(pieces, whole, "limit {limit}");
        if limit == 0 {
            assert_eq!(blocks, rows.len(), "one row per piece");
        }
    }
}
