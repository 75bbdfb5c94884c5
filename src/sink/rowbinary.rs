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

use crate::rows::{PAYLOAD_COLUMNS, RUN_COLUMNS};
use crate::rows::{PayloadRow, RunRow};

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

/// Bytes of a body encoded and sent at a time ([`encode_some`]; one compressed block each): the
/// clickhouse crate's own chunk size.
pub const BLOCK: usize = 1 << 18;

/// Encodes `rows` into `out` (cleared first), one RowBinary body. (The sink sends a body in
/// pieces, [`encode_some`]; this is the whole body at once, the reference the pieces add up to.)
pub fn encode_all<T: EncodeRow>(rows: &[T], out: &mut Vec<u8>) {
    out.clear();
    out.reserve(rows.iter().map(T::size_hint).sum());
    for row in rows {
        row.encode(out);
    }
}

/// Encodes the first rows of `rows` into `out` (cleared first) until it holds `limit` bytes or
/// more (at least one row, when there is one); returns how many rows it took. A body sent in such
/// pieces never needs a buffer the size of the batch: a batch of runs with a megabyte of output
/// each is tens of megabytes, and a body buffer per insert in flight would double that.
pub fn encode_some<T: EncodeRow>(rows: &[T], out: &mut Vec<u8>, limit: usize) -> usize {
    out.clear();
    // Room for a piece and a typical row past it; a larger row grows the buffer once. (A size
    // hint per row cost more than the reservations it saved: 1.3% of a drain's CPU.)
    out.reserve(limit + 4096);
    let mut taken = 0;
    for row in rows {
        if taken > 0 && out.len() >= limit {
            break;
        }
        row.encode(out);
        taken += 1;
    }
    taken
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

/// A boxed row, as a sealed batch holds runs (`pipeline::collapse`): encoded where it is.
impl<T: EncodeRow> EncodeRow for Box<T> {
    fn columns() -> String {
        T::columns()
    }

    fn encode(&self, out: &mut Vec<u8>) {
        (**self).encode(out)
    }

    fn size_hint(&self) -> usize {
        (**self).size_hint()
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
mod tests;
