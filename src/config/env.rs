//! Environment variables: every key's own name, plus the trigger.dev names.
//!
//! For one key, the first variable that is set wins, in this order: `RUNS_REPLICATOR_*`, then the
//! trigger.dev names in the order trigger.dev itself prefers them (`RUN_REPLICATION_LEGACY_DATABASE_URL`
//! before `DATABASE_URL`).
//!
//! Every `RUN_REPLICATION_*` name trigger.dev's webapp defines is accounted for: mapped onto a
//! key here, or named in one of the start-up warnings ([`warnings`]): ignored, not supported
//! yet, or `RUN_REPLICATION_ENABLED=1` (trigger.dev's own service may run too). That variable is
//! the webapp's switch, often in an `.env` shared with this worker: it never stops this worker,
//! whose own switch is `RUNS_REPLICATOR_ENABLED` (the key `enabled`).

use super::ConfigError;

/// Every configuration key. Its own environment name is `RUNS_REPLICATOR_` + the key in upper
/// case with `.` replaced by `_`.
pub const KEYS: &[&str] = &[
    "enabled",
    "postgres.name",
    "postgres.shards",
    "postgres.url",
    "postgres.schema",
    "postgres.tables",
    "postgres.generations",
    "postgres.publication",
    "postgres.slot",
    "postgres.create_publication",
    "postgres.create_slot",
    "postgres.recreate_lost_slot",
    "postgres.failover_slot",
    "postgres.status_interval_ms",
    "postgres.connect_timeout_ms",
    "postgres.query_timeout_ms",
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
    "clickhouse.give_up_after_ms",
    "clickhouse.ca_file",
    "batch.max_rows",
    "batch.flush_interval_ms",
    "batch.min_insert_interval_ms",
    "batch.max_inflight",
    "batch.max_bytes",
    "transform.fingerprint_errors",
    "metrics.listen",
    "metrics.clickhouse_unready_after_ms",
    "log.format",
    "log.level",
    "preflight.ignore_failures",
    "leadership.share",
    "leadership.min_hold_ms",
    "backfill.parallel",
    "backfill.chunk_rows",
    "backfill.max_bytes",
    "backfill.on_slot_create",
    "backfill.gap_margin_s",
    "backfill.snapshot_wait_timeout_s",
    "backfill.memory_bytes",
    "backfill.snapshot_max_s",
    "verify.interval",
    "verify.window",
    "verify.repair",
    "verify.payloads",
    "verify.chunk_rows",
    "verify.pause_ms",
    "verify.wait_timeout_ms",
    "verify.rounds",
    "verify.timeout",
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
    /// trigger.dev's levels (`log`, `error`, `warn`, `info`, `debug`) as tracing levels.
    LogLevel,
    /// The first source's generation: `postgres.generations` shifted so its lowest is this one.
    LowestGeneration,
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
    // The webapp's own ClickHouse URL (with `?secure=` for its migration tool): trigger.dev's
    // compose file and Helm chart derive both from the same password.
    ("CLICKHOUSE_URL", "clickhouse.url", Map::Same),
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
    ("RUN_REPLICATION_LOG_LEVEL", "log.level", Map::LogLevel),
    (
        "RUN_REPLICATION_LEGACY_ORIGIN_GENERATION",
        "postgres.generations",
        Map::LowestGeneration,
    ),
];

/// The tracing filter's conventional variable.
const RUST_LOG: &str = "RUST_LOG";

/// trigger.dev's variable that starts its built-in replication service (on only at `1`).
pub const ENABLED: &str = "RUN_REPLICATION_ENABLED";

/// trigger.dev's `RUN_REPLICATION_*` names that this worker has no use for, by reason. Each one
/// that is set is named in one warning at start.
const IGNORED: &[(&[&str], &str)] = &[
    (
        &[
            "RUN_REPLICATION_REDIS_HOST",
            "RUN_REPLICATION_REDIS_READER_HOST",
            "RUN_REPLICATION_REDIS_READER_PORT",
            "RUN_REPLICATION_REDIS_PORT",
            "RUN_REPLICATION_REDIS_USERNAME",
            "RUN_REPLICATION_REDIS_PASSWORD",
            "RUN_REPLICATION_REDIS_TLS_DISABLED",
            "RUN_REPLICATION_LEADER_LOCK_TIMEOUT_MS",
            "RUN_REPLICATION_LEADER_LOCK_EXTEND_INTERVAL_MS",
            "RUN_REPLICATION_LEADER_LOCK_ADDITIONAL_TIME_MS",
            "RUN_REPLICATION_LEADER_LOCK_RETRY_INTERVAL_MS",
        ],
        "the leader lock is a Postgres advisory lock held by the streaming session (no Redis, no lock timings)",
    ),
    (
        &["RUN_REPLICATION_ACK_INTERVAL_SECONDS"],
        "a position is acknowledged as soon as ClickHouse stored it (postgres.status_interval_ms sets how often it is reported)",
    ),
    (
        &["RUN_REPLICATION_MAX_POISON_STRIPS_PER_BATCH"],
        "a row ClickHouse refuses is isolated and its JSON fields are replaced one at a time, without a per-batch limit",
    ),
    (
        &[
            "RUN_REPLICATION_KEEP_ALIVE_ENABLED",
            "RUN_REPLICATION_KEEP_ALIVE_IDLE_SOCKET_TTL_MS",
            "RUN_REPLICATION_MAX_OPEN_CONNECTIONS",
            "RUN_REPLICATION_CLICKHOUSE_LOG_LEVEL",
        ],
        "the ClickHouse client keeps its own connections (at most batch.max_inflight inserts at once) and logs at log.level",
    ),
    (
        &["RUN_REPLICATION_WAIT_FOR_ASYNC_INSERT"],
        "async inserts always wait until ClickHouse stored the rows, so an acknowledged position is never lost",
    ),
];

/// trigger.dev names this worker does not support yet (none at the moment).
const NOT_SUPPORTED_YET: &[&str] = &[];

/// trigger.dev's second source, its run-ops database (`RunsReplicationSource` "new").
pub const RUN_OPS_URL: &str = "RUN_REPLICATION_RUN_OPS_DATABASE_URL";
#[cfg(test)]
const RUN_OPS_NAMES: &[&str] = &[
    RUN_OPS_URL,
    "RUN_REPLICATION_NEW_SLOT_NAME",
    "RUN_REPLICATION_NEW_PUBLICATION_NAME",
    "RUN_REPLICATION_NEW_ENABLED",
    "RUN_REPLICATION_NEW_ORIGIN_GENERATION",
];

/// The run-ops source as trigger.dev's variables describe it: each present value with its
/// variable. Upstream adds the source when its URL is set, unless `RUN_REPLICATION_NEW_ENABLED`
/// is `disabled`.
pub struct RunOps {
    pub url: (String, &'static str),
    pub slot: Option<(String, &'static str)>,
    pub publication: Option<(String, &'static str)>,
    pub generation: Option<(String, &'static str)>,
}

pub fn run_ops(env: &dyn Fn(&str) -> Option<String>) -> Option<RunOps> {
    let url = env(RUN_OPS_URL)?;
    if env("RUN_REPLICATION_NEW_ENABLED").is_some_and(|v| v.trim() == "disabled") {
        return None;
    }
    let get = |name: &'static str| env(name).map(|v| (v, name));
    Some(RunOps {
        url: (url, RUN_OPS_URL),
        slot: get("RUN_REPLICATION_NEW_SLOT_NAME"),
        publication: get("RUN_REPLICATION_NEW_PUBLICATION_NAME"),
        generation: get("RUN_REPLICATION_NEW_ORIGIN_GENERATION"),
    })
}

pub fn own_name(key: &str) -> String {
    format!(
        "RUNS_REPLICATOR_{}",
        key.to_ascii_uppercase().replace('.', "_")
    )
}

/// How a value from the environment applies to its key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Apply {
    /// Replaces the key's value.
    Set,
    /// Shifts every `postgres.generations` entry so the lowest equals the value.
    LowestGeneration,
}

/// One value from the environment, to apply over the file.
#[derive(Debug)]
pub struct Setting {
    pub key: &'static str,
    /// The variable it came from.
    pub name: String,
    pub value: String,
    pub apply: Apply,
}

/// The overrides present in the environment, in the order to apply: for each key, only the
/// variable that wins (its own name, else the first trigger.dev name that is set). A name that
/// loses is not read at all: trigger.dev's pooled `DATABASE_URL` beside a direct
/// `RUN_REPLICATION_LEGACY_DATABASE_URL` is the usual setup, not an error.
pub fn collect(env: &dyn Fn(&str) -> Option<String>) -> Result<Vec<Setting>, ConfigError> {
    let mut out = Vec::new();
    let mut taken: Vec<&str> = Vec::new();
    // The usual escape hatch while debugging: it replaces the configured filter (a flag still
    // wins over it, as over every variable).
    if let Some(value) = env(RUST_LOG).filter(|v| !skipped("log.level", v)) {
        taken.push("log.level");
        out.push(Setting {
            key: "log.level",
            name: RUST_LOG.into(),
            value,
            apply: Apply::Set,
        });
    }
    for key in KEYS {
        if taken.contains(key) {
            continue;
        }
        let name = own_name(key);
        if let Some(value) = env(&name).filter(|v| !skipped(key, v)) {
            taken.push(key);
            out.push(Setting {
                key,
                name,
                value,
                apply: Apply::Set,
            });
        }
    }
    for (name, key, map) in ALIASES {
        if taken.contains(key) {
            continue;
        }
        let Some(value) = env(name).filter(|v| !skipped(key, v)) else {
            continue;
        };
        taken.push(key);
        let invalid = |allowed: &str| ConfigError::Invalid {
            key: (*key).into(),
            value: format!("{value:?}"),
            origin: format!("env {name}"),
            allowed: allowed.into(),
        };
        let mut apply = Apply::Set;
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
            Map::LogLevel => Some(log_level(&value).map_err(|e| invalid(&e))?.into()),
            Map::LowestGeneration => {
                apply = Apply::LowestGeneration;
                Some(value.clone())
            }
        };
        if let Some(value) = mapped {
            out.push(Setting {
                key,
                name: name.to_string(),
                value,
                apply,
            });
        }
    }
    Ok(out)
}

/// A value that counts as unset: an empty log level (`RUST_LOG=`, `RUNS_REPLICATOR_LOG_LEVEL=`
/// in a `.env` file) would otherwise silence every line.
fn skipped(key: &str, value: &str) -> bool {
    key == "log.level" && value.trim().is_empty()
}

/// trigger.dev's log levels. Its `log` shows only "essential messages", fewer than `error`: the
/// closest tracing level is `error` (a filter of `log` would match no event at all).
fn log_level(v: &str) -> Result<&'static str, String> {
    match v.trim().to_ascii_lowercase().as_str() {
        "log" | "error" => Ok("error"),
        "warn" => Ok("warn"),
        "info" => Ok("info"),
        "debug" => Ok("debug"),
        _ => Err(
            "expected log, error, warn, info or debug (trigger.dev's levels; \
             RUNS_REPLICATOR_LOG_LEVEL takes a tracing filter)"
                .into(),
        ),
    }
}

/// The warnings about trigger.dev variables that are set and not honoured: at most two lines,
/// one naming those this worker has no use for, one naming those it does not support yet.
pub fn warnings(env: &dyn Fn(&str) -> Option<String>) -> Vec<String> {
    let mut out = Vec::new();
    // trigger.dev starts its built-in service only at exactly "1".
    if env(ENABLED).is_some_and(|v| v.trim() == "1") {
        out.push(format!(
            "{ENABLED}=1: if this is also the webapp's environment, trigger.dev's built-in \
             replication runs too and both may stream from the slot; set {ENABLED}=0 for the \
             webapp (this worker does not read it: its own switch is RUNS_REPLICATOR_ENABLED). \
             While another consumer holds the slot, this worker waits and never takes it from it"
        ));
    }
    let mut names = Vec::new();
    let mut reasons = Vec::new();
    for (group, reason) in IGNORED {
        let set: Vec<&str> = group
            .iter()
            .copied()
            .filter(|name| match env(name) {
                // "1" is what the worker does anyway.
                Some(v) if *name == "RUN_REPLICATION_WAIT_FOR_ASYNC_INSERT" => v.trim() != "1",
                Some(_) => true,
                None => false,
            })
            .collect();
        if !set.is_empty() {
            names.extend(set);
            reasons.push(*reason);
        }
    }
    if !names.is_empty() {
        out.push(format!(
            "ignored: {}, because this worker has no use for them: {}",
            names.join(", "),
            reasons.join("; ")
        ));
    }
    let unsupported: Vec<&str> = NOT_SUPPORTED_YET
        .iter()
        .copied()
        .filter(|name| env(name).is_some())
        .collect();
    if !unsupported.is_empty() {
        out.push(format!(
            "not supported yet, ignored: {}: trigger.dev's second source (its run-ops database) is not \
             streamed; only postgres.url is, with the generations in postgres.generations",
            unsupported.join(", ")
        ));
    }
    out
}

/// Every `RUN_REPLICATION_*` name trigger.dev defines, as this worker treats it: honoured,
/// ignored or not supported yet (for the tests: none may be silently dropped).
#[cfg(test)]
pub fn classified() -> Vec<&'static str> {
    let mut all: Vec<&str> = ALIASES
        .iter()
        .map(|(n, _, _)| *n)
        .filter(|n| n.starts_with("RUN_REPLICATION_"))
        .collect();
    all.push(ENABLED);
    all.extend(RUN_OPS_NAMES);
    all.extend(IGNORED.iter().flat_map(|(g, _)| g.iter().copied()));
    all.extend(NOT_SUPPORTED_YET);
    all
}
