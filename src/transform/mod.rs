//! The transform: one pure function from a decoded Postgres row to ClickHouse rows.
//!
//! Both source tables go through it unchanged. It follows trigger.dev's column rules
//! (`reference/upstream-trigger-dev.md` §3) column by column. No I/O, no clocks, no globals
//! beyond compiled regexes: the same input always gives the same output, which is what makes
//! replays collapse.
//!
//! Layout, one concept per file:
//! - the row types on either side live in `crate::rows`, which every stage shares;
//! - `values`: Postgres text renderings (timestamps, numbers, booleans, `text[]`);
//! - `json`: JSON validation and normalization to what upstream's Node round trip sends, with
//!   `json::read` (member access on valid text) at the bottom; `js`: the JavaScript semantics
//!   those rules rely on, between the two (`json::read` ← `js` ← the rest of `json`);
//! - `packet` (`output`, `payload`, `error`) and `superjson`;
//! - `fingerprint`, `annotations`, `idempotency`: the derived columns.

mod annotations;
mod fingerprint;
mod idempotency;
mod js;
mod json;
mod packet;
mod superjson;
mod values;

use crate::rows::{Col, PayloadRow, RunRow, SourceRow};
pub use packet::{Emptied, prepare_json};
pub use values::{TIMESTAMP_INFINITY_MS, TIMESTAMP_NEG_INFINITY_MS, civil_from_days};

/// Switches of the transform that come from configuration.
#[derive(Clone, Debug)]
pub struct TransformOptions {
    /// Compute `error_fingerprint` for failed runs (`RUN_REPLICATION_DISABLE_ERROR_FINGERPRINTING` turns it off).
    pub fingerprint_errors: bool,
}

impl Default for TransformOptions {
    fn default() -> Self {
        TransformOptions {
            fingerprint_errors: true,
        }
    }
}

/// Why a row produces nothing. Skipped rows are counted, never an error.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum SkipReason {
    MissingOrganizationId,
    MissingEnvironmentType,
}

impl SkipReason {
    /// The `reason` label of `runs_replicator_rows_skipped_total`.
    pub fn label(self) -> &'static str {
        match self {
            SkipReason::MissingOrganizationId => "missing_organization_id",
            SkipReason::MissingEnvironmentType => "missing_environment_type",
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum TransformError {
    #[error("row skipped: {}", .0.label())]
    Skip(SkipReason),
    /// A value whose text form the transform cannot read. Postgres validated it, so this means the
    /// rendering is not what the worker expects (for example DateStyle not pinned to ISO).
    #[error("column \"{column}\" has value {value:?}, expected {expected}")]
    InvalidValue {
        column: &'static str,
        value: String,
        expected: &'static str,
    },
}

/// Longest excerpt of an unreadable value kept in [`TransformError::InvalidValue`]: enough to
/// recognise the rendering, without copying a multi-megabyte payload into a log line.
const INVALID_VALUE_EXCERPT: usize = 200;

fn invalid(col: Col, value: &str, expected: &'static str) -> TransformError {
    let mut end = value.len().min(INVALID_VALUE_EXCERPT);
    while !value.is_char_boundary(end) {
        end -= 1;
    }
    TransformError::InvalidValue {
        column: col.pg_name(),
        value: value[..end].to_owned(),
        expected,
    }
}

/// The `task_runs_v2` row for a run.
///
/// `deleted` marks a tombstone (built from the old tuple of a DELETE). `_version` is left 0: the
/// caller stamps the commit's version. Rows without `organizationId` or `environmentType` are
/// skipped, as upstream does (an empty string counts as missing, like JavaScript's `!value`).
pub fn run_row(
    row: &SourceRow<'_>,
    deleted: bool,
    opts: &TransformOptions,
) -> Result<RunRow, TransformError> {
    let (organization_id, environment_type) = scope(row)?;
    let status = row.get(Col::Status).unwrap_or("");

    let error = row.get(Col::Error);
    let error_column = packet::prepare_error(error)
        .map_err(|_| invalid(Col::Error, error.unwrap_or(""), "a jsonb value"))?;
    let error_fingerprint = match error {
        Some(error)
            if opts.fingerprint_errors && fingerprint::FINGERPRINTED_STATUSES.contains(&status) =>
        {
            fingerprint::error_fingerprint(error)
        }
        _ => String::new(),
    };

    let annotations = row.get(Col::Annotations);
    let annotation_columns =
        annotations::annotation_columns(annotations, row.get(Col::StatusReason))
            .map_err(|_| invalid(Col::Annotations, annotations.unwrap_or(""), "a jsonb value"))?;

    let options = row.get(Col::IdempotencyKeyOptions);
    let idempotency = idempotency::idempotency_columns(options).map_err(|_| {
        invalid(
            Col::IdempotencyKeyOptions,
            options.unwrap_or(""),
            "a jsonb value",
        )
    })?;

    Ok(RunRow {
        environment_id: text(row, Col::RuntimeEnvironmentId),
        organization_id: organization_id.to_owned(),
        project_id: text(row, Col::ProjectId),
        run_id: text(row, Col::Id),
        updated_at: required_timestamp(row, Col::UpdatedAt)?,
        created_at: required_timestamp(row, Col::CreatedAt)?,
        queue_timestamp: timestamp(row, Col::QueueTimestamp)?,
        status: status.to_owned(),
        environment_type: environment_type.to_owned(),
        friendly_id: text(row, Col::FriendlyId),
        attempt: integer(row, Col::AttemptNumber)?.map_or(1, values::wrap_u8),
        engine: text(row, Col::Engine),
        task_identifier: text(row, Col::TaskIdentifier),
        queue: text(row, Col::Queue),
        schedule_id: text(row, Col::ScheduleId),
        batch_id: text(row, Col::BatchId),
        completed_at: timestamp(row, Col::CompletedAt)?,
        started_at: timestamp(row, Col::StartedAt)?,
        executed_at: timestamp(row, Col::ExecutedAt)?,
        delay_until: timestamp(row, Col::DelayUntil)?,
        queued_at: timestamp(row, Col::QueuedAt)?,
        expired_at: timestamp(row, Col::ExpiredAt)?,
        usage_duration_ms: integer(row, Col::UsageDurationMs)?.map_or(0, values::wrap_u32),
        cost_in_cents: float(row, Col::CostInCents)?.map_or(0.0, values::json_float),
        base_cost_in_cents: float(row, Col::BaseCostInCents)?.map_or(0.0, values::json_float),
        output: prepare_json(row.get(Col::Output), row.get(Col::OutputType)),
        error: error_column,
        error_fingerprint,
        tags: array(row, Col::RunTags)?,
        task_version: text(row, Col::TaskVersion),
        sdk_version: text(row, Col::SdkVersion),
        cli_version: text(row, Col::CliVersion),
        machine_preset: text(row, Col::MachinePreset),
        root_run_id: text(row, Col::RootTaskRunId),
        parent_run_id: text(row, Col::ParentTaskRunId),
        depth: integer(row, Col::Depth)?.map_or(0, values::wrap_u8),
        span_id: text(row, Col::SpanId),
        trace_id: text(row, Col::TraceId),
        idempotency_key: text(row, Col::IdempotencyKey),
        idempotency_key_user: idempotency.user,
        idempotency_key_scope: idempotency.scope,
        expiration_ttl: text(row, Col::Ttl),
        is_test: u8::from(boolean(row, Col::IsTest)?.unwrap_or(false)),
        _version: 0,
        _is_deleted: u8::from(deleted),
        concurrency_key: text(row, Col::ConcurrencyKey),
        bulk_action_group_ids: array(row, Col::BulkActionGroupIds)?,
        worker_queue: base_worker_queue(row.get(Col::MasterQueue).unwrap_or("")).to_owned(),
        region: text(row, Col::Region),
        plan_type: text(row, Col::PlanType),
        max_duration_in_seconds: integer(row, Col::MaxDurationInSeconds)?.map(values::wrap_u32),
        trigger_source: annotation_columns.trigger_source,
        root_trigger_source: annotation_columns.root_trigger_source,
        task_kind: annotation_columns.task_kind,
        is_warm_start: boolean(row, Col::IsWarmStart)?.map(u8::from),
        external_deployment_id: annotation_columns.external_deployment_id,
    })
}

/// The `raw_task_runs_payload_v1` row for a run (upstream writes one per INSERT event). The same
/// skip rule applies: upstream builds no payload row for a run it does not replicate.
pub fn payload_row(row: &SourceRow<'_>) -> Result<PayloadRow, TransformError> {
    scope(row)?;
    Ok(PayloadRow {
        run_id: text(row, Col::Id),
        created_at: required_timestamp(row, Col::CreatedAt)?,
        payload: prepare_json(row.get(Col::Payload), row.get(Col::PayloadType)),
    })
}

/// A JSON field of a transformed row that holds no data although its source value was there.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct EmptiedField {
    /// The ClickHouse column.
    pub column: &'static str,
    pub reason: Emptied,
}

/// The JSON fields of `run` (and `payload`) the transform emptied, and why. Cheap when there
/// are none: only a field stored empty is looked at again.
pub fn emptied_fields(
    row: &SourceRow<'_>,
    run: &RunRow,
    payload: Option<&PayloadRow>,
) -> Vec<EmptiedField> {
    let mut out = Vec::new();
    let mut check = |column, stored: &str, empty: &str, why: &dyn Fn() -> Option<Emptied>| {
        if stored == empty
            && let Some(reason) = why()
        {
            out.push(EmptiedField { column, reason });
        }
    };
    check("output", &run.output, "{}", &|| {
        packet::why_json_emptied(row.get(Col::Output), row.get(Col::OutputType))
    });
    check("error", &run.error, r#"{"data":null}"#, &|| {
        packet::why_error_emptied(row.get(Col::Error))
    });
    if let Some(p) = payload {
        check("payload", &p.payload, "{}", &|| {
            packet::why_json_emptied(row.get(Col::Payload), row.get(Col::PayloadType))
        });
    }
    out
}

/// `(organizationId, environmentType)`, or the reason the row is skipped.
fn scope<'a>(row: &SourceRow<'a>) -> Result<(&'a str, &'a str), TransformError> {
    let organization_id = row
        .get(Col::OrganizationId)
        .filter(|v| !v.is_empty())
        .ok_or(TransformError::Skip(SkipReason::MissingOrganizationId))?;
    let environment_type = row
        .get(Col::EnvironmentType)
        .filter(|v| !v.is_empty())
        .ok_or(TransformError::Skip(SkipReason::MissingEnvironmentType))?;
    Ok((organization_id, environment_type))
}

/// `baseWorkerQueue`: the region part of a worker queue, before any `:<class>` suffix
/// (`us-nyc-3:scheduled` → `us-nyc-3`).
pub fn base_worker_queue(worker_queue: &str) -> &str {
    worker_queue
        .split_once(':')
        .map_or(worker_queue, |(base, _)| base)
}

/// A text column; NULL is `""` (upstream's `?? ""`, and ClickHouse's default for a null String).
fn text(row: &SourceRow<'_>, col: Col) -> String {
    row.get(col).unwrap_or("").to_owned()
}

fn timestamp(row: &SourceRow<'_>, col: Col) -> Result<Option<i64>, TransformError> {
    row.get(col)
        .map(|v| values::timestamp_ms(v).ok_or_else(|| invalid(col, v, "a timestamp")))
        .transpose()
}

/// `createdAt` / `updatedAt` are NOT NULL and in the sort key: there is no default to use.
fn required_timestamp(row: &SourceRow<'_>, col: Col) -> Result<i64, TransformError> {
    timestamp(row, col)?.ok_or_else(|| invalid(col, "NULL", "a timestamp"))
}

fn integer(row: &SourceRow<'_>, col: Col) -> Result<Option<i64>, TransformError> {
    row.get(col)
        .map(|v| values::integer(v).ok_or_else(|| invalid(col, v, "an integer")))
        .transpose()
}

fn float(row: &SourceRow<'_>, col: Col) -> Result<Option<f64>, TransformError> {
    row.get(col)
        .map(|v| values::float8(v).ok_or_else(|| invalid(col, v, "a double precision")))
        .transpose()
}

fn boolean(row: &SourceRow<'_>, col: Col) -> Result<Option<bool>, TransformError> {
    row.get(col)
        .map(|v| values::boolean(v).ok_or_else(|| invalid(col, v, "a boolean")))
        .transpose()
}

/// A `text[]` column; NULL is `[]`.
fn array(row: &SourceRow<'_>, col: Col) -> Result<Vec<String>, TransformError> {
    row.get(col)
        .map(|v| values::text_array(v).ok_or_else(|| invalid(col, v, "a text[] literal")))
        .transpose()
        .map(Option::unwrap_or_default)
}

#[cfg(test)]
mod tests;
