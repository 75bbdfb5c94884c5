//! Configuration: the one source of every setting.
//!
//! Layers, later wins: built-in defaults < TOML file < environment < command-line flags.
//! Every key has an environment name (`RUNS_REPLICATOR_<SECTION>_<KEY>`), and trigger.dev's
//! `RUN_REPLICATION_*` / `DATABASE_URL` names are honoured so a self-hoster can swap the built-in
//! service for this one. Unknown keys and bad values are rejected with one line that names the
//! key, the value (never a secret), where it came from and what is allowed.

mod clickhouse_url;
mod env;
mod postgres_url;
mod secret;

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

pub use clickhouse_url::ChUrl;
pub use postgres_url::{PgUrl, SslMode};
pub use secret::{Secret, scrub};

/// The documented default location of the config file.
pub const DEFAULT_CONFIG_PATH: &str = "config/runs-replicator.toml";

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub postgres: PostgresConfig,
    pub clickhouse: ClickHouseConfig,
    pub batch: BatchConfig,
    pub transform: TransformConfig,
    pub metrics: MetricsConfig,
    pub log: LogConfig,
    pub preflight: PreflightConfig,
    pub backfill: BackfillConfig,
    /// Where each non-default value came from, for error messages.
    #[serde(skip)]
    origins: BTreeMap<String, String>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PostgresConfig {
    #[serde(deserialize_with = "from_str")]
    pub url: PgUrl,
    pub schema: String,
    pub tables: Vec<String>,
    /// Version generation per table: `_version = generation << 56 | commit_end_lsn`.
    pub generations: BTreeMap<String, u8>,
    pub publication: String,
    pub slot: String,
    pub create_publication: bool,
    pub create_slot: bool,
    pub recreate_lost_slot: bool,
    pub status_interval_ms: u64,
    pub connect_timeout_ms: u64,
    pub slot_poll_interval_ms: u64,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClickHouseConfig {
    #[serde(deserialize_with = "from_str")]
    pub url: ChUrl,
    pub database: String,
    pub user: String,
    #[serde(deserialize_with = "secret")]
    pub password: Secret,
    pub runs_table: String,
    pub payloads_table: String,
    pub async_insert: bool,
    pub compression: Compression,
    pub insert_max_retries: u32,
    pub retry_min_delay_ms: u64,
    pub retry_max_delay_ms: u64,
    pub request_timeout_ms: u64,
    pub ca_file: Option<PathBuf>,
    /// Benchmarking only (`--null-sink`, not a file or environment key): encode each batch and
    /// discard it instead of inserting it, still acknowledging, to measure the worker without
    /// the ClickHouse server.
    #[serde(skip)]
    pub null_sink: bool,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BatchConfig {
    pub max_rows: usize,
    pub flush_interval_ms: u64,
    pub max_inflight: usize,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TransformConfig {
    pub fingerprint_errors: bool,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    #[serde(deserialize_with = "from_str")]
    pub listen: SocketAddr,
    pub clickhouse_unready_after_ms: u64,
}

/// How insert bodies travel to ClickHouse.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    /// ClickHouse's native LZ4 blocks: about half the bytes on the wire, for CPU on both ends.
    Lz4,
    /// Plain RowBinary: cheapest when ClickHouse is on the same host or a fast local network.
    None,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    pub format: LogFormat,
    pub level: String,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PreflightConfig {
    pub ignore_failures: bool,
}

/// `runs-replicator backfill`: how the current rows are copied.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BackfillConfig {
    /// Connections copying at once, each its own COPY (`--parallel` overrides it).
    pub parallel: usize,
    /// Rows per chunk: the unit of progress that is checkpointed and resumed.
    pub chunk_rows: u64,
    /// Bytes of rows one connection buffers before it writes them to ClickHouse.
    pub max_bytes: u64,
}

impl Default for BackfillConfig {
    fn default() -> Self {
        BackfillConfig {
            parallel: 2,
            chunk_rows: 50_000,
            max_bytes: 16 << 20,
        }
    }
}

impl Default for PostgresConfig {
    fn default() -> Self {
        PostgresConfig {
            url: "postgres://postgres@127.0.0.1:5432/trigger"
                .parse()
                .unwrap(),
            schema: "public".into(),
            tables: vec!["TaskRun".into(), "task_run_v2".into()],
            generations: BTreeMap::from([("TaskRun".into(), 0), ("task_run_v2".into(), 1)]),
            publication: "task_runs_to_clickhouse_v1_publication".into(),
            slot: "task_runs_to_clickhouse_v1".into(),
            create_publication: true,
            create_slot: true,
            recreate_lost_slot: false,
            status_interval_ms: 1000,
            connect_timeout_ms: 5000,
            slot_poll_interval_ms: 10_000,
        }
    }
}

impl Default for ClickHouseConfig {
    fn default() -> Self {
        ClickHouseConfig {
            url: "http://127.0.0.1:8123".parse().unwrap(),
            database: "trigger_dev".into(),
            user: "default".into(),
            password: Secret::default(),
            runs_table: "task_runs_v2".into(),
            payloads_table: "raw_task_runs_payload_v1".into(),
            async_insert: false,
            compression: Compression::Lz4,
            insert_max_retries: 3,
            retry_min_delay_ms: 100,
            retry_max_delay_ms: 2000,
            request_timeout_ms: 30_000,
            ca_file: None,
            null_sink: false,
        }
    }
}

impl Default for BatchConfig {
    fn default() -> Self {
        BatchConfig {
            max_rows: 10_000,
            flush_interval_ms: 1000,
            max_inflight: 2,
        }
    }
}

impl Default for TransformConfig {
    fn default() -> Self {
        TransformConfig {
            fingerprint_errors: true,
        }
    }
}

impl Default for MetricsConfig {
    fn default() -> Self {
        MetricsConfig {
            listen: "0.0.0.0:9187".parse().unwrap(),
            clickhouse_unready_after_ms: 30_000,
        }
    }
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            format: LogFormat::Text,
            level: "info".into(),
        }
    }
}

fn from_str<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: std::str::FromStr,
    T::Err: fmt::Display,
{
    let s = String::deserialize(d)?;
    s.parse().map_err(serde::de::Error::custom)
}

fn secret<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Secret, D::Error> {
    String::deserialize(d).map(Secret::new)
}

/// Why the configuration cannot be used. Each renders as one line.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path}: {message}")]
    File { path: PathBuf, message: String },
    #[error("invalid {key} = {value} (from {origin}): {allowed}")]
    Invalid {
        key: String,
        value: String,
        origin: String,
        allowed: String,
    },
}

/// A value given on the command line, applied after the environment.
#[derive(Clone, Debug)]
pub struct FlagOverride {
    pub flag: &'static str,
    pub key: &'static str,
    pub value: String,
}

impl Config {
    /// Loads the configuration: `path` (or the default path when it exists), then the
    /// environment as read through `env`, then `flags`; then validates the result.
    pub fn load(
        path: Option<&Path>,
        env: &dyn Fn(&str) -> Option<String>,
        flags: &[FlagOverride],
    ) -> Result<Config, ConfigError> {
        let (mut config, file) = match path {
            Some(p) => (Config::from_file(p)?, Some(p.to_path_buf())),
            None if Path::new(DEFAULT_CONFIG_PATH).is_file() => {
                let p = Path::new(DEFAULT_CONFIG_PATH);
                (Config::from_file(p)?, Some(p.to_path_buf()))
            }
            None => (Config::default(), None),
        };
        if let Some(file) = &file {
            config
                .origins
                .insert("*".into(), file.display().to_string());
        }
        for (key, env_name, value) in env::collect(env)? {
            config.set(key, &value, format!("env {env_name}"))?;
        }
        for flag in flags {
            config.set(flag.key, &flag.value, format!("flag {}", flag.flag))?;
        }
        config.validate()?;
        Ok(config)
    }

    /// Parses a TOML document; `path` is only used in messages.
    pub fn from_toml(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let de = toml::Deserializer::parse(text).map_err(|e| ConfigError::File {
            path: path.to_path_buf(),
            message: one_line_toml_error(text, &e),
        })?;
        serde_path_to_error::deserialize::<_, Config>(de).map_err(|e| {
            let key = e.path().to_string();
            let inner = e.into_inner();
            let message = match key.as_str() {
                "." | "" => one_line(inner.message()),
                _ => format!("key {key}: {}", one_line(inner.message())),
            };
            ConfigError::File {
                path: path.to_path_buf(),
                message,
            }
        })
    }

    fn from_file(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Config::from_toml(&text, path)
    }

    /// Sets one key from its string form (environment or flag).
    fn set(&mut self, key: &str, value: &str, origin: String) -> Result<(), ConfigError> {
        let shown = if key.ends_with("password") {
            "***".to_string()
        } else if key.ends_with(".url") {
            redact_url(value)
        } else {
            format!("{value:?}")
        };
        self.apply(key, value)
            .map_err(|allowed| ConfigError::Invalid {
                key: key.into(),
                value: shown,
                origin: origin.clone(),
                allowed,
            })?;
        self.origins.insert(key.into(), origin);
        Ok(())
    }

    fn apply(&mut self, key: &str, v: &str) -> Result<(), String> {
        let pg = &mut self.postgres;
        let ch = &mut self.clickhouse;
        match key {
            "postgres.url" => pg.url = v.parse()?,
            "postgres.schema" => pg.schema = v.into(),
            "postgres.tables" => pg.tables = list(v),
            "postgres.generations" => pg.generations = generations(v)?,
            "postgres.publication" => pg.publication = v.into(),
            "postgres.slot" => pg.slot = v.into(),
            "postgres.create_publication" => pg.create_publication = boolean(v)?,
            "postgres.create_slot" => pg.create_slot = boolean(v)?,
            "postgres.recreate_lost_slot" => pg.recreate_lost_slot = boolean(v)?,
            "postgres.status_interval_ms" => pg.status_interval_ms = number(v)?,
            "postgres.connect_timeout_ms" => pg.connect_timeout_ms = number(v)?,
            "postgres.slot_poll_interval_ms" => pg.slot_poll_interval_ms = number(v)?,
            "clickhouse.url" => ch.url = v.parse()?,
            "clickhouse.database" => ch.database = v.into(),
            "clickhouse.user" => ch.user = v.into(),
            "clickhouse.password" => ch.password = Secret::new(v),
            "clickhouse.runs_table" => ch.runs_table = v.into(),
            "clickhouse.payloads_table" => ch.payloads_table = v.into(),
            "clickhouse.async_insert" => ch.async_insert = boolean(v)?,
            "clickhouse.compression" => {
                ch.compression = match v {
                    "lz4" => Compression::Lz4,
                    "none" => Compression::None,
                    _ => return Err("expected lz4 or none".into()),
                }
            }
            "clickhouse.insert_max_retries" => ch.insert_max_retries = number(v)?,
            "clickhouse.retry_min_delay_ms" => ch.retry_min_delay_ms = number(v)?,
            "clickhouse.retry_max_delay_ms" => ch.retry_max_delay_ms = number(v)?,
            "clickhouse.request_timeout_ms" => ch.request_timeout_ms = number(v)?,
            "clickhouse.ca_file" => ch.ca_file = (!v.is_empty()).then(|| PathBuf::from(v)),
            "batch.max_rows" => self.batch.max_rows = number(v)?,
            "batch.flush_interval_ms" => self.batch.flush_interval_ms = number(v)?,
            "batch.max_inflight" => self.batch.max_inflight = number(v)?,
            "transform.fingerprint_errors" => self.transform.fingerprint_errors = boolean(v)?,
            "metrics.listen" => {
                self.metrics.listen = v
                    .parse()
                    .map_err(|_| "expected an address like 0.0.0.0:9187".to_string())?
            }
            "metrics.clickhouse_unready_after_ms" => {
                self.metrics.clickhouse_unready_after_ms = number(v)?
            }
            "log.format" => {
                self.log.format = match v {
                    "text" => LogFormat::Text,
                    "json" => LogFormat::Json,
                    _ => return Err("expected text or json".into()),
                }
            }
            "log.level" => self.log.level = v.into(),
            "preflight.ignore_failures" => self.preflight.ignore_failures = boolean(v)?,
            "backfill.parallel" => self.backfill.parallel = number(v)?,
            "backfill.chunk_rows" => self.backfill.chunk_rows = number(v)?,
            "backfill.max_bytes" => self.backfill.max_bytes = number(v)?,
            other => return Err(format!("{other} is not a configuration key")),
        }
        Ok(())
    }

    fn origin(&self, key: &str) -> String {
        self.origins
            .get(key)
            .or_else(|| self.origins.get("*"))
            .cloned()
            .unwrap_or_else(|| "default".into())
    }

    fn invalid(&self, key: &str, value: impl fmt::Debug, allowed: &str) -> ConfigError {
        ConfigError::Invalid {
            key: key.into(),
            value: format!("{value:?}"),
            origin: self.origin(key),
            allowed: allowed.into(),
        }
    }

    /// Range and consistency checks that the types alone do not express.
    fn validate(&self) -> Result<(), ConfigError> {
        let pg = &self.postgres;
        let ch = &self.clickhouse;
        let ident = |key: &str, v: &str| -> Result<(), ConfigError> {
            if v.is_empty() || v.len() > 63 || v.contains(['\'', '"', '\0']) {
                return Err(self.invalid(
                    key,
                    v,
                    "expected 1 to 63 characters without quotes (a Postgres identifier)",
                ));
            }
            Ok(())
        };
        ident("postgres.schema", &pg.schema)?;
        ident("postgres.publication", &pg.publication)?;
        if pg.tables.is_empty() {
            return Err(self.invalid("postgres.tables", &pg.tables, "list at least one table"));
        }
        for t in &pg.tables {
            ident("postgres.tables", t)?;
        }
        let mut seen = std::collections::BTreeSet::new();
        if let Some(dup) = pg.tables.iter().find(|t| !seen.insert(*t)) {
            return Err(self.invalid("postgres.tables", dup, "each table may appear only once"));
        }
        if let Some(t) = pg.generations.keys().find(|t| !pg.tables.contains(t)) {
            return Err(self.invalid(
                "postgres.generations",
                t,
                "generations may only name tables listed in postgres.tables",
            ));
        }
        // pgwire-replication writes the slot name into START_REPLICATION unquoted.
        let slot_ok = !pg.slot.is_empty()
            && pg.slot.len() <= 63
            && pg
                .slot
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        if !slot_ok {
            return Err(self.invalid(
                "postgres.slot",
                &pg.slot,
                "expected 1 to 63 characters from a-z, 0-9 and _",
            ));
        }
        range(
            self,
            "postgres.status_interval_ms",
            pg.status_interval_ms,
            100,
            60_000,
        )?;
        range(
            self,
            "postgres.connect_timeout_ms",
            pg.connect_timeout_ms,
            100,
            600_000,
        )?;
        range(
            self,
            "postgres.slot_poll_interval_ms",
            pg.slot_poll_interval_ms,
            100,
            3_600_000,
        )?;
        for (key, v) in [
            ("clickhouse.database", &ch.database),
            ("clickhouse.runs_table", &ch.runs_table),
        ] {
            if !ch_ident_ok(v) {
                return Err(self.invalid(key, v, "expected letters, digits and _ only"));
            }
        }
        if !ch.payloads_table.is_empty() && !ch_ident_ok(&ch.payloads_table) {
            return Err(self.invalid(
                "clickhouse.payloads_table",
                &ch.payloads_table,
                "expected letters, digits and _ only, or \"\" to disable payload rows",
            ));
        }
        range(
            self,
            "clickhouse.insert_max_retries",
            ch.insert_max_retries as u64,
            0,
            100,
        )?;
        range(
            self,
            "clickhouse.retry_min_delay_ms",
            ch.retry_min_delay_ms,
            1,
            600_000,
        )?;
        range(
            self,
            "clickhouse.retry_max_delay_ms",
            ch.retry_max_delay_ms,
            ch.retry_min_delay_ms,
            600_000,
        )?;
        range(
            self,
            "clickhouse.request_timeout_ms",
            ch.request_timeout_ms,
            100,
            3_600_000,
        )?;
        if let Some(ca) = &ch.ca_file
            && !ch.url.https
        {
            return Err(self.invalid(
                "clickhouse.ca_file",
                ca,
                "only used with an https:// clickhouse.url",
            ));
        }
        range(
            self,
            "batch.max_rows",
            self.batch.max_rows as u64,
            1,
            1_000_000,
        )?;
        range(
            self,
            "batch.flush_interval_ms",
            self.batch.flush_interval_ms,
            1,
            3_600_000,
        )?;
        range(
            self,
            "batch.max_inflight",
            self.batch.max_inflight as u64,
            1,
            64,
        )?;
        range(
            self,
            "metrics.clickhouse_unready_after_ms",
            self.metrics.clickhouse_unready_after_ms,
            0,
            86_400_000,
        )?;
        range(
            self,
            "backfill.parallel",
            self.backfill.parallel as u64,
            1,
            64,
        )?;
        range(
            self,
            "backfill.chunk_rows",
            self.backfill.chunk_rows,
            1,
            100_000_000,
        )?;
        range(
            self,
            "backfill.max_bytes",
            self.backfill.max_bytes,
            1 << 16,
            1 << 34,
        )?;
        if tracing_subscriber::EnvFilter::try_new(&self.log.level).is_err() {
            return Err(self.invalid(
                "log.level",
                &self.log.level,
                "expected a level (error, warn, info, debug, trace) or a tracing filter like runs_replicator=debug",
            ));
        }
        Ok(())
    }

    /// The generation of `table` (0 when not listed).
    pub fn generation(&self, table: &str) -> u8 {
        self.postgres.generations.get(table).copied().unwrap_or(0)
    }

    pub fn status_interval(&self) -> Duration {
        Duration::from_millis(self.postgres.status_interval_ms)
    }

    pub fn connect_timeout(&self) -> Duration {
        self.postgres
            .url
            .connect_timeout
            .unwrap_or(Duration::from_millis(self.postgres.connect_timeout_ms))
    }

    pub fn flush_interval(&self) -> Duration {
        Duration::from_millis(self.batch.flush_interval_ms)
    }

    /// The ClickHouse user and password: explicit keys, else those in the URL.
    pub fn clickhouse_credentials(&self) -> (String, Secret) {
        let ch = &self.clickhouse;
        let user_set = self.origins.contains_key("clickhouse.user") || ch.user != "default";
        let user = match (&ch.url.user, user_set) {
            (Some(u), false) => u.clone(),
            _ => ch.user.clone(),
        };
        let password = match (&ch.url.password, ch.password.is_empty()) {
            (Some(p), true) => p.clone(),
            _ => ch.password.clone(),
        };
        (user, password)
    }

    /// Every secret in the configuration, for scrubbing foreign error text.
    pub fn secrets(&self) -> Vec<&Secret> {
        let mut out = vec![&self.postgres.url.password, &self.clickhouse.password];
        if let Some(p) = &self.clickhouse.url.password {
            out.push(p);
        }
        out
    }
}

fn range(c: &Config, key: &str, v: u64, min: u64, max: u64) -> Result<(), ConfigError> {
    if v < min || v > max {
        return Err(ConfigError::Invalid {
            key: key.into(),
            value: v.to_string(),
            origin: c.origin(key),
            allowed: format!("expected a whole number from {min} to {max}"),
        });
    }
    Ok(())
}

fn ch_ident_ok(v: &str) -> bool {
    !v.is_empty() && v.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

fn list(v: &str) -> Vec<String> {
    v.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect()
}

fn generations(v: &str) -> Result<BTreeMap<String, u8>, String> {
    let allowed =
        "expected table=generation pairs like TaskRun=0,task_run_v2=1 (generation 0 to 255)";
    list(v)
        .into_iter()
        .map(|pair| {
            let (t, g) = pair.split_once('=').ok_or_else(|| allowed.to_string())?;
            let g = g.trim().parse::<u8>().map_err(|_| allowed.to_string())?;
            Ok((t.trim().to_string(), g))
        })
        .collect()
}

fn boolean(v: &str) -> Result<bool, String> {
    match v.to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" => Ok(false),
        _ => Err("expected true or false (or 1 / 0)".into()),
    }
}

fn number<T: std::str::FromStr>(v: &str) -> Result<T, String> {
    v.trim()
        .parse()
        .map_err(|_| "expected a whole number".to_string())
}

fn redact_url(v: &str) -> String {
    match url::Url::parse(v) {
        Ok(mut u) => {
            if u.password().is_some() {
                let _ = u.set_password(Some("***"));
            }
            format!("{:?}", u.as_str())
        }
        Err(_) => "(unparseable URL, not shown)".into(),
    }
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn one_line_toml_error(text: &str, e: &toml::de::Error) -> String {
    match e.span() {
        Some(span) => {
            let before = &text[..span.start.min(text.len())];
            let line = before.matches('\n').count() + 1;
            let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
            format!("line {line}, column {col}: {}", one_line(e.message()))
        }
        None => one_line(e.message()),
    }
}

#[cfg(test)]
mod tests;
