//! Environment variables: every key's own name, plus the trigger.dev names.
//!
//! For one key, the first variable that is set wins, in this order: `RUNS_REPLICATOR_*`, then the
//! trigger.dev names in the order trigger.dev itself prefers them (`RUN_REPLICATION_LEGACY_DATABASE_URL`
//! before `DATABASE_URL`).

use super::ConfigError;

/// Every configuration key. Its own environment name is `RUNS_REPLICATOR_` + the key in upper
/// case with `.` replaced by `_`.
pub const KEYS: &[&str] = &[
    "postgres.url",
    "postgres.schema",
    "postgres.tables",
    "postgres.generations",
    "postgres.publication",
    "postgres.slot",
    "postgres.create_publication",
    "postgres.create_slot",
    "postgres.recreate_lost_slot",
    "postgres.status_interval_ms",
    "postgres.connect_timeout_ms",
    "postgres.slot_poll_interval_ms",
    "clickhouse.url",
    "clickhouse.database",
    "clickhouse.user",
    "clickhouse.password",
    "clickhouse.runs_table",
    "clickhouse.payloads_table",
    "clickhouse.async_insert",
    "clickhouse.compression",
    "clickhouse.insert_max_retries",
    "clickhouse.retry_min_delay_ms",
    "clickhouse.retry_max_delay_ms",
    "clickhouse.request_timeout_ms",
    "clickhouse.ca_file",
    "batch.max_rows",
    "batch.flush_interval_ms",
    "batch.max_inflight",
    "transform.fingerprint_errors",
    "metrics.listen",
    "metrics.clickhouse_unready_after_ms",
    "log.format",
    "log.level",
    "preflight.ignore_failures",
    "backfill.parallel",
    "backfill.chunk_rows",
    "backfill.max_bytes",
];

/// How a trigger.dev variable maps onto a key.
enum Map {
    Same,
    /// `"1"` disables payload rows (`payloads_table = ""`); `"0"` changes nothing.
    DisablePayloads,
    /// A `1`/`0` "disable" flag for a boolean key that means "enabled".
    Inverted,
    /// `insert` / `insert_async`.
    InsertStrategy,
    /// Generation of one table, merged into `postgres.generations`.
    Generation(&'static str),
}

const ALIASES: &[(&str, &str, Map)] = &[
    (
        "RUN_REPLICATION_LEGACY_DATABASE_URL",
        "postgres.url",
        Map::Same,
    ),
    ("DATABASE_URL", "postgres.url", Map::Same),
    (
        "RUN_REPLICATION_CLICKHOUSE_URL",
        "clickhouse.url",
        Map::Same,
    ),
    ("RUN_REPLICATION_SLOT_NAME", "postgres.slot", Map::Same),
    (
        "RUN_REPLICATION_PUBLICATION_NAME",
        "postgres.publication",
        Map::Same,
    ),
    (
        "RUN_REPLICATION_FLUSH_BATCH_SIZE",
        "batch.max_rows",
        Map::Same,
    ),
    (
        "RUN_REPLICATION_FLUSH_INTERVAL_MS",
        "batch.flush_interval_ms",
        Map::Same,
    ),
    (
        "RUN_REPLICATION_MAX_FLUSH_CONCURRENCY",
        "batch.max_inflight",
        Map::Same,
    ),
    (
        "RUN_REPLICATION_INSERT_MAX_RETRIES",
        "clickhouse.insert_max_retries",
        Map::Same,
    ),
    (
        "RUN_REPLICATION_INSERT_BASE_DELAY_MS",
        "clickhouse.retry_min_delay_ms",
        Map::Same,
    ),
    (
        "RUN_REPLICATION_INSERT_MAX_DELAY_MS",
        "clickhouse.retry_max_delay_ms",
        Map::Same,
    ),
    (
        "RUN_REPLICATION_INSERT_STRATEGY",
        "clickhouse.async_insert",
        Map::InsertStrategy,
    ),
    (
        "RUN_REPLICATION_DISABLE_PAYLOAD_INSERT",
        "clickhouse.payloads_table",
        Map::DisablePayloads,
    ),
    (
        "RUN_REPLICATION_DISABLE_ERROR_FINGERPRINTING",
        "transform.fingerprint_errors",
        Map::Inverted,
    ),
    ("RUN_REPLICATION_LOG_LEVEL", "log.level", Map::Same),
    (
        "RUN_REPLICATION_LEGACY_ORIGIN_GENERATION",
        "postgres.generations",
        Map::Generation("TaskRun"),
    ),
    (
        "RUN_REPLICATION_NEW_ORIGIN_GENERATION",
        "postgres.generations",
        Map::Generation("task_run_v2"),
    ),
];

pub fn own_name(key: &str) -> String {
    format!(
        "RUNS_REPLICATOR_{}",
        key.to_ascii_uppercase().replace('.', "_")
    )
}

/// The `(key, variable, value)` overrides present in the environment, in the order to apply.
pub fn collect(
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Vec<(&'static str, String, String)>, ConfigError> {
    let mut out: Vec<(&'static str, String, String)> = Vec::new();
    let mut generations: Vec<(String, String)> = Vec::new();
    // Aliases first (lowest to highest precedence), so a RUNS_REPLICATOR_* name applied later wins.
    for (name, key, map) in ALIASES.iter().rev() {
        let Some(value) = env(name) else { continue };
        let invalid = |allowed: &str| ConfigError::Invalid {
            key: (*key).into(),
            value: format!("{value:?}"),
            origin: format!("env {name}"),
            allowed: allowed.into(),
        };
        let mapped = match map {
            Map::Same => Some(value.clone()),
            Map::DisablePayloads => match value.as_str() {
                "1" | "true" => Some(String::new()),
                "0" | "false" | "" => None,
                _ => return Err(invalid("expected 1 (disable payload rows) or 0")),
            },
            Map::Inverted => match value.as_str() {
                "1" | "true" => Some("false".into()),
                "0" | "false" | "" => Some("true".into()),
                _ => return Err(invalid("expected 1 or 0")),
            },
            Map::InsertStrategy => match value.as_str() {
                "insert" => Some("false".into()),
                "insert_async" => Some("true".into()),
                _ => return Err(invalid("expected insert or insert_async")),
            },
            Map::Generation(table) => {
                generations.push((table.to_string(), value.clone()));
                None
            }
        };
        if let Some(v) = mapped {
            out.push((key, name.to_string(), v));
        }
    }
    if !generations.is_empty() {
        let names = "env RUN_REPLICATION_*_ORIGIN_GENERATION".to_string();
        let mut merged = vec![("TaskRun".to_string(), "0".to_string())];
        merged.push(("task_run_v2".into(), "1".into()));
        for (t, g) in generations {
            merged.retain(|(m, _)| *m != t);
            merged.push((t, g));
        }
        let v = merged
            .into_iter()
            .map(|(t, g)| format!("{t}={g}"))
            .collect::<Vec<_>>()
            .join(",");
        out.push(("postgres.generations", names, v));
    }
    for key in KEYS {
        let name = own_name(key);
        if let Some(value) = env(&name) {
            out.push((key, name, value));
        }
    }
    Ok(out)
}
