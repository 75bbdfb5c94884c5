//! The canonical text of a runs-table row, and its hash: what both sides of a verify compute.
//!
//! ClickHouse computes it in SQL over the rows it holds ([`digest_sql`]); the worker computes it
//! in Rust over the transform of the Postgres rows ([`digest`]). Equal rows give equal texts, so
//! a range's sum of row hashes is the same on both sides exactly when its rows are (but for a
//! 64-bit collision). Both renderings are defined here, next to each other, from one column list
//! ([`cells`], checked against `RUN_COLUMNS` by a test), and a test inserts tricky rows into the
//! real engine and compares the two.
//!
//! The text: every column but `_version` (which depends on how a row arrived, not on what it
//! says), in table order, each as
//! - a string or JSON column: its byte length, `:`, its bytes (JSON as ClickHouse renders it,
//!   `json::render` on the worker side);
//! - a number or a `DateTime64(3)` (as epoch milliseconds): its decimal digits and `;`; a NULL
//!   is `N;`; a `Float64` is its IEEE-754 bits as an integer (no float formatting to agree on);
//! - an array of strings: its length, `[`, each element as a string, `]`;
//!
//! then, when payloads are checked, `P1;` if the run has a payload row and `P0;` if not. The
//! length prefixes make the text unambiguous. The hash is xxHash64 (ClickHouse `xxHash64`, seed
//! 0), also used to place a run in a hash range ([`range_of`], [`range_sql`]).

pub mod json;

use std::borrow::Cow;

use crate::rows::{RUN_COLUMNS, RunRow};

/// The columns of the canonical text: all of `RUN_COLUMNS` but `_version`.
pub const CELLS: usize = RUN_COLUMNS.len() - 1;

/// One column's value, by how the canonical text writes it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Cell<'a> {
    Text(&'a str),
    Json(&'a str),
    UInt(u64),
    /// `DateTime64(3)` as epoch milliseconds.
    Time(i64),
    OptTime(Option<i64>),
    OptUInt(Option<u64>),
    Float(f64),
    Texts(&'a [String]),
}

/// The row's cells, in table order, named.
pub fn cells(r: &RunRow) -> [(&'static str, Cell<'_>); CELLS] {
    use Cell::*;
    [
        ("environment_id", Text(&r.environment_id)),
        ("organization_id", Text(&r.organization_id)),
        ("project_id", Text(&r.project_id)),
        ("run_id", Text(&r.run_id)),
        ("updated_at", Time(r.updated_at)),
        ("created_at", Time(r.created_at)),
        ("queue_timestamp", OptTime(r.queue_timestamp)),
        ("status", Text(&r.status)),
        ("environment_type", Text(&r.environment_type)),
        ("friendly_id", Text(&r.friendly_id)),
        ("attempt", UInt(r.attempt.into())),
        ("engine", Text(&r.engine)),
        ("task_identifier", Text(&r.task_identifier)),
        ("queue", Text(&r.queue)),
        ("schedule_id", Text(&r.schedule_id)),
        ("batch_id", Text(&r.batch_id)),
        ("completed_at", OptTime(r.completed_at)),
        ("started_at", OptTime(r.started_at)),
        ("executed_at", OptTime(r.executed_at)),
        ("delay_until", OptTime(r.delay_until)),
        ("queued_at", OptTime(r.queued_at)),
        ("expired_at", OptTime(r.expired_at)),
        ("usage_duration_ms", UInt(r.usage_duration_ms.into())),
        ("cost_in_cents", Float(r.cost_in_cents)),
        ("base_cost_in_cents", Float(r.base_cost_in_cents)),
        ("output", Json(&r.output)),
        ("error", Json(&r.error)),
        ("error_fingerprint", Text(&r.error_fingerprint)),
        ("tags", Texts(&r.tags)),
        ("task_version", Text(&r.task_version)),
        ("sdk_version", Text(&r.sdk_version)),
        ("cli_version", Text(&r.cli_version)),
        ("machine_preset", Text(&r.machine_preset)),
        ("root_run_id", Text(&r.root_run_id)),
        ("parent_run_id", Text(&r.parent_run_id)),
        ("depth", UInt(r.depth.into())),
        ("span_id", Text(&r.span_id)),
        ("trace_id", Text(&r.trace_id)),
        ("idempotency_key", Text(&r.idempotency_key)),
        ("idempotency_key_user", Text(&r.idempotency_key_user)),
        ("idempotency_key_scope", Text(&r.idempotency_key_scope)),
        ("expiration_ttl", Text(&r.expiration_ttl)),
        ("is_test", UInt(r.is_test.into())),
        ("_is_deleted", UInt(r._is_deleted.into())),
        ("concurrency_key", Text(&r.concurrency_key)),
        ("bulk_action_group_ids", Texts(&r.bulk_action_group_ids)),
        ("worker_queue", Text(&r.worker_queue)),
        ("region", Text(&r.region)),
        ("plan_type", Text(&r.plan_type)),
        (
            "max_duration_in_seconds",
            OptUInt(r.max_duration_in_seconds.map(u64::from)),
        ),
        ("trigger_source", Text(&r.trigger_source)),
        ("root_trigger_source", Text(&r.root_trigger_source)),
        ("task_kind", Text(&r.task_kind)),
        ("is_warm_start", OptUInt(r.is_warm_start.map(u64::from))),
        ("external_deployment_id", Text(&r.external_deployment_id)),
    ]
}

/// A JSON column's value as ClickHouse renders it, when the emulation covers it; the text as it
/// is otherwise (its hash then differs, and the row is compared with ClickHouse's own rendering).
pub fn json_form(text: &str) -> Cow<'_, str> {
    match json::render(text) {
        Some(rendered) if rendered != text => Cow::Owned(rendered),
        _ => Cow::Borrowed(text),
    }
}

fn text(out: &mut String, s: &str) {
    push_u64(out, s.len() as u64);
    out.push(':');
    out.push_str(s);
}

/// `v` in decimal (what `write!` would print, without the formatting machinery: this runs for
/// every cell of every row a verify reads).
fn push_u64(out: &mut String, mut v: u64) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    out.push_str(std::str::from_utf8(&buf[i..]).expect("ASCII digits"));
}

fn push_i64(out: &mut String, v: i64) {
    if v < 0 {
        out.push('-');
    }
    push_u64(out, v.unsigned_abs());
}

thread_local! {
    /// Where a JSON cell is rendered before its length is known (one per thread, reused).
    static RENDERED: std::cell::RefCell<String> = const { std::cell::RefCell::new(String::new()) };
}

/// Appends one cell's canonical text.
pub fn write_cell(out: &mut String, cell: Cell<'_>) {
    match cell {
        Cell::Text(s) => text(out, s),
        // As `json_form`, without a String per value.
        Cell::Json(s) => RENDERED.with(|r| {
            let mut r = r.borrow_mut();
            r.clear();
            match json::render_into(s, &mut r) {
                Some(()) => text(out, &r),
                None => text(out, s),
            }
        }),
        Cell::UInt(v) => {
            push_u64(out, v);
            out.push(';');
        }
        Cell::Time(v) => {
            push_i64(out, v);
            out.push(';');
        }
        Cell::OptTime(v) => match v {
            Some(v) => {
                push_i64(out, v);
                out.push(';');
            }
            None => out.push_str("N;"),
        },
        Cell::OptUInt(v) => match v {
            Some(v) => {
                push_u64(out, v);
                out.push(';');
            }
            None => out.push_str("N;"),
        },
        Cell::Float(v) => {
            push_u64(out, v.to_bits());
            out.push(';');
        }
        Cell::Texts(items) => {
            push_u64(out, items.len() as u64);
            out.push('[');
            for item in items {
                text(out, item);
            }
            out.push(']');
        }
    }
}

/// The marker for a run's payload row: present or absent.
fn payload_marker(present: bool) -> &'static str {
    if present { "P1;" } else { "P0;" }
}

/// The canonical text of `row`; `payload` says whether its payload row exists, when checked.
pub fn row_text(row: &RunRow, payload: Option<bool>) -> String {
    let mut out = String::with_capacity(512 + row.output.len() + row.error.len());
    write_row(&mut out, row, payload);
    out
}

fn write_row(out: &mut String, row: &RunRow, payload: Option<bool>) {
    for (_, cell) in cells(row) {
        write_cell(out, cell);
    }
    if let Some(present) = payload {
        out.push_str(payload_marker(present));
    }
}

/// [`digest`], writing the text into `buf` (cleared first): no allocation per row.
pub fn digest_into(buf: &mut String, row: &RunRow, payload: Option<bool>) -> u64 {
    buf.clear();
    write_row(buf, row, payload);
    xxhash64(buf.as_bytes())
}

/// xxHash64 (seed 0), as ClickHouse's `xxHash64`.
pub fn xxhash64(bytes: &[u8]) -> u64 {
    twox_hash::XxHash64::oneshot(0, bytes)
}

/// The row's hash: xxHash64 of its canonical text.
pub fn digest(row: &RunRow, payload: Option<bool>) -> u64 {
    xxhash64(row_text(row, payload).as_bytes())
}

/// The hash range of a run: the top `bits` bits of xxHash64 of its id.
pub fn range_of(run_id: &str, bits: u32) -> u32 {
    (xxhash64(run_id.as_bytes()) >> (64 - bits)) as u32
}

/// The same in ClickHouse SQL.
pub fn range_sql(bits: u32) -> String {
    format!("bitShiftRight(xxHash64(run_id), {})", 64 - bits)
}

/// ClickHouse's expression for one column of type `ty` (as in `RUN_COLUMNS`), rendered as
/// [`write_cell`] renders it. Lambda parameters and aliases never take a column's name: ClickHouse
/// would resolve the alias in its place.
fn cell_sql(name: &str, ty: &str) -> String {
    let c = format!("`{name}`");
    let text = |e: &str| format!("toString(length({e})), ':', {e}");
    match ty {
        "String" | "LowCardinality(String)" => text(&c),
        "JSON" => text(&format!("toJSONString({c})")),
        "DateTime64(3)" => format!("toString(toUnixTimestamp64Milli({c})), ';'"),
        "Nullable(DateTime64(3))" => {
            format!("ifNull(toString(toUnixTimestamp64Milli({c})), 'N'), ';'")
        }
        "UInt8" | "UInt32" | "UInt64" => format!("toString({c}), ';'"),
        "Nullable(UInt8)" | "Nullable(UInt32)" => format!("ifNull(toString({c}), 'N'), ';'"),
        "Float64" => format!("toString(reinterpretAsUInt64({c})), ';'"),
        "Array(String)" => format!(
            "toString(length({c})), '[', \
             arrayStringConcat(arrayMap(v_item -> concat(toString(length(v_item)), ':', v_item), {c})), ']'"
        ),
        other => unreachable!("RUN_COLUMNS has no column of type {other}"),
    }
}

/// ClickHouse's expression for a row's hash over the runs table's columns. With
/// `payload_present`, a boolean SQL expression saying whether the run has a payload row, its
/// marker ends the text.
pub fn digest_sql(payload_present: Option<&str>) -> String {
    let mut parts: Vec<String> = RUN_COLUMNS
        .iter()
        .filter(|(name, _)| *name != "_version")
        .map(|(name, ty)| cell_sql(name, ty))
        .collect();
    if let Some(present) = payload_present {
        parts.push(format!(
            "if({present}, '{}', '{}')",
            payload_marker(true),
            payload_marker(false)
        ));
    }
    format!("xxHash64(concat({}))", parts.join(", "))
}

#[cfg(test)]
mod tests;
