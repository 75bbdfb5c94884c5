//! RowBinary encoding of the rows the sink writes, by hand.
//!
//! The clickhouse crate encodes a row through serde, one visitor call per field, inside an
//! `Insert` that checks its buffer after every row. Profiling a drain showed that per-row
//! overhead; encoding the whole batch into one buffer here, in the table's column order, is a
//! straight sequence of length prefixes and byte copies. It is also what the null sink runs, so
//! a null-sink drain still pays for the encoding.
//!
//! Wire rules (ClickHouse RowBinary): strings (String, LowCardinality(String), and JSON sent with
//! `input_format_binary_read_json_as_string=1`) are a LEB128 length and the bytes; integers and
//! floats little-endian; DateTime64(3) an Int64 of milliseconds; Nullable(T) a byte (1 = NULL)
//! then T when not NULL; Array(T) a LEB128 count then the elements.

use crate::transform::output::{PAYLOAD_COLUMNS, RUN_COLUMNS};
use crate::transform::{PayloadRow, RunRow};

/// A row the sink can encode.
pub trait EncodeRow {
    /// The column list of the INSERT, in encoding order.
    fn columns() -> String;
    /// Appends the row in RowBinary.
    fn encode(&self, out: &mut Vec<u8>);
    /// A capacity hint for one row, so a batch buffer is sized once.
    fn size_hint(&self) -> usize;
}

fn column_list(columns: &[(&str, &str)]) -> String {
    let names: Vec<String> = columns.iter().map(|(n, _)| format!("`{n}`")).collect();
    names.join(",")
}

/// Encodes `rows` into `out` (cleared first), one RowBinary body.
pub fn encode_all<T: EncodeRow>(rows: &[T], out: &mut Vec<u8>) {
    out.clear();
    out.reserve(rows.iter().map(T::size_hint).sum());
    for row in rows {
        row.encode(out);
    }
}

#[inline]
fn varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

#[inline]
fn string(out: &mut Vec<u8>, s: &str) {
    varint(out, s.len() as u64);
    out.extend_from_slice(s.as_bytes());
}

#[inline]
fn strings(out: &mut Vec<u8>, items: &[String]) {
    varint(out, items.len() as u64);
    for s in items {
        string(out, s);
    }
}

#[inline]
fn i64_(out: &mut Vec<u8>, v: i64) {
    out.extend_from_slice(&v.to_le_bytes());
}

#[inline]
fn opt_i64(out: &mut Vec<u8>, v: Option<i64>) {
    match v {
        None => out.push(1),
        Some(v) => {
            out.push(0);
            i64_(out, v);
        }
    }
}

impl EncodeRow for RunRow {
    fn columns() -> String {
        column_list(&RUN_COLUMNS)
    }

    fn size_hint(&self) -> usize {
        // Fixed-width fields and length prefixes, plus the variable parts.
        160 + self.environment_id.len()
            + self.organization_id.len()
            + self.project_id.len()
            + self.run_id.len()
            + self.friendly_id.len()
            + self.task_identifier.len()
            + self.queue.len()
            + self.output.len()
            + self.error.len()
            + self.tags.iter().map(|t| t.len() + 2).sum::<usize>()
            + self.span_id.len()
            + self.trace_id.len()
            + self.idempotency_key.len()
            + 128
    }

    fn encode(&self, out: &mut Vec<u8>) {
        string(out, &self.environment_id);
        string(out, &self.organization_id);
        string(out, &self.project_id);
        string(out, &self.run_id);
        i64_(out, self.updated_at);
        i64_(out, self.created_at);
        opt_i64(out, self.queue_timestamp);
        string(out, &self.status);
        string(out, &self.environment_type);
        string(out, &self.friendly_id);
        out.push(self.attempt);
        string(out, &self.engine);
        string(out, &self.task_identifier);
        string(out, &self.queue);
        string(out, &self.schedule_id);
        string(out, &self.batch_id);
        opt_i64(out, self.completed_at);
        opt_i64(out, self.started_at);
        opt_i64(out, self.executed_at);
        opt_i64(out, self.delay_until);
        opt_i64(out, self.queued_at);
        opt_i64(out, self.expired_at);
        out.extend_from_slice(&self.usage_duration_ms.to_le_bytes());
        out.extend_from_slice(&self.cost_in_cents.to_le_bytes());
        out.extend_from_slice(&self.base_cost_in_cents.to_le_bytes());
        string(out, &self.output);
        string(out, &self.error);
        string(out, &self.error_fingerprint);
        strings(out, &self.tags);
        string(out, &self.task_version);
        string(out, &self.sdk_version);
        string(out, &self.cli_version);
        string(out, &self.machine_preset);
        string(out, &self.root_run_id);
        string(out, &self.parent_run_id);
        out.push(self.depth);
        string(out, &self.span_id);
        string(out, &self.trace_id);
        string(out, &self.idempotency_key);
        string(out, &self.idempotency_key_user);
        string(out, &self.idempotency_key_scope);
        string(out, &self.expiration_ttl);
        out.push(self.is_test);
        out.extend_from_slice(&self._version.to_le_bytes());
        out.push(self._is_deleted);
        string(out, &self.concurrency_key);
        strings(out, &self.bulk_action_group_ids);
        string(out, &self.worker_queue);
        string(out, &self.region);
        string(out, &self.plan_type);
        match self.max_duration_in_seconds {
            None => out.push(1),
            Some(v) => {
                out.push(0);
                out.extend_from_slice(&v.to_le_bytes());
            }
        }
        string(out, &self.trigger_source);
        string(out, &self.root_trigger_source);
        string(out, &self.task_kind);
        match self.is_warm_start {
            None => out.push(1),
            Some(v) => {
                out.push(0);
                out.push(v);
            }
        }
        string(out, &self.external_deployment_id);
    }
}

impl EncodeRow for PayloadRow {
    fn columns() -> String {
        column_list(&PAYLOAD_COLUMNS)
    }

    fn size_hint(&self) -> usize {
        self.run_id.len() + self.payload.len() + 24
    }

    fn encode(&self, out: &mut Vec<u8>) {
        string(out, &self.run_id);
        i64_(out, self.created_at);
        string(out, &self.payload);
    }
}

#[cfg(test)]
mod tests {
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
}
