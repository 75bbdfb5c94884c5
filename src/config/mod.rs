//! Configuration: the one source of every setting.
//!
//! Layers, later wins: built-in defaults < TOML file < environment < command-line flags.
//! Every key has an environment name (`RUNS_REPLICATOR_<SECTION>_<KEY>`), and trigger.dev's
//! `RUN_REPLICATION_*` / `DATABASE_URL` names are honoured so a self-hoster can swap the built-in
//! service for this one. Unknown keys and bad values are rejected with one line that names the
//! key, the value (never a secret), where it came from and what is allowed.

mod clickhouse_url;
mod env;
mod log_level;
mod parse;
mod postgres_url;
mod secret;
mod sections;
mod sources;
mod text_value;
mod url_params;
mod validate;

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;

pub use clickhouse_url::ChUrl;
pub use parse::duration_text;
pub use postgres_url::{PgUrl, SslMode};
pub use secret::{Secret, scrub};
pub use sections::{
    BackfillConfig, BatchConfig, ClickHouseConfig, Compression, FAILOVER_SLOTS_SINCE, FailoverSlot,
    LeadershipConfig, LogConfig, LogFormat, MetricsConfig, PostgresConfig, PreflightConfig,
    TransformConfig, VerifyConfig,
};
pub use sources::{DEFAULT_TABLES, Shard, Source, SourceConfig, Stream};

use parse::{
    boolean, duration, generations, generations_text, list, number, one_line, one_line_toml_error,
    redact_url,
};

/// The documented default location of the config file.
pub const DEFAULT_CONFIG_PATH: &str = "config/runs-replicator.toml";

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// The daemon streams (`RUNS_REPLICATOR_ENABLED`, the worker's own switch). Off, it serves
    /// its endpoints and streams nothing until restarted with it on; the one-shot commands do
    /// not read it. trigger.dev's `RUN_REPLICATION_ENABLED` is its webapp's switch and never
    /// stops this worker.
    pub enabled: bool,
    pub postgres: PostgresConfig,
    pub clickhouse: ClickHouseConfig,
    pub batch: BatchConfig,
    pub transform: TransformConfig,
    pub metrics: MetricsConfig,
    pub log: LogConfig,
    pub preflight: PreflightConfig,
    pub leadership: LeadershipConfig,
    pub backfill: BackfillConfig,
    pub verify: VerifyConfig,
    /// Where each non-default value came from, for error messages.
    #[serde(skip)]
    origins: BTreeMap<String, String>,
    /// trigger.dev variables that are set and not honoured, one line per kind (`warnings`).
    #[serde(skip)]
    warnings: Vec<String>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            enabled: true,
            postgres: PostgresConfig::default(),
            clickhouse: ClickHouseConfig::default(),
            batch: BatchConfig::default(),
            transform: TransformConfig::default(),
            metrics: MetricsConfig::default(),
            log: LogConfig::default(),
            preflight: PreflightConfig::default(),
            leadership: LeadershipConfig::default(),
            backfill: BackfillConfig::default(),
            verify: VerifyConfig::default(),
            origins: BTreeMap::new(),
            warnings: Vec::new(),
        }
    }
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
        for s in env::collect(env)? {
            let origin = format!("env {}", s.name);
            match s.apply {
                env::Apply::Set => config.set(s.key, &s.value, origin)?,
                env::Apply::LowestGeneration => config.set_lowest_generation(&s.value, origin)?,
            }
        }
        if let Some(run_ops) = env::run_ops(env) {
            config.add_run_ops(run_ops)?;
        }
        config.warnings = env::warnings(env);
        for flag in flags {
            config.set(flag.key, &flag.value, format!("flag {}", flag.flag))?;
        }
        config.apply_url_parameters();
        config.log.level = log_level::normalize(&config.log.level)
            .map_err(|allowed| config.invalid("log.level", &config.log.level, &allowed))?;
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
            "enabled" => self.enabled = boolean(v)?,
            "postgres.name" => pg.name = v.into(),
            "postgres.shards" => pg.shards = number(v)?,
            "postgres.url" => pg.url = v.parse()?,
            "postgres.schema" => pg.schema = v.into(),
            "postgres.tables" => pg.tables = list(v),
            "postgres.generations" => pg.generations = generations(v)?,
            "postgres.publication" => pg.publication = v.into(),
            "postgres.slot" => pg.slot = v.into(),
            "postgres.create_publication" => pg.create_publication = boolean(v)?,
            "postgres.create_slot" => pg.create_slot = boolean(v)?,
            "postgres.recreate_lost_slot" => pg.recreate_lost_slot = boolean(v)?,
            "postgres.failover_slot" => pg.failover_slot = FailoverSlot::parse(v)?,
            "postgres.status_interval_ms" => pg.status_interval_ms = number(v)?,
            "postgres.connect_timeout_ms" => pg.connect_timeout_ms = number(v)?,
            "postgres.query_timeout_ms" => pg.query_timeout_ms = number(v)?,
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
            "clickhouse.give_up_after_ms" => ch.give_up_after_ms = number(v)?,
            "clickhouse.ca_file" => ch.ca_file = (!v.is_empty()).then(|| PathBuf::from(v)),
            "batch.max_rows" => self.batch.max_rows = number(v)?,
            "batch.flush_interval_ms" => self.batch.flush_interval_ms = number(v)?,
            "batch.min_insert_interval_ms" => self.batch.min_insert_interval_ms = number(v)?,
            "batch.max_inflight" => self.batch.max_inflight = number(v)?,
            "batch.max_bytes" => self.batch.max_bytes = number(v)?,
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
            "leadership.share" => self.leadership.share = boolean(v)?,
            "leadership.min_hold_ms" => self.leadership.min_hold_ms = number(v)?,
            "backfill.parallel" => self.backfill.parallel = number(v)?,
            "backfill.chunk_rows" => self.backfill.chunk_rows = number(v)?,
            "backfill.max_bytes" => self.backfill.max_bytes = number(v)?,
            "backfill.on_slot_create" => self.backfill.on_slot_create = boolean(v)?,
            "backfill.gap_margin_s" => self.backfill.gap_margin_s = number(v)?,
            "backfill.memory_bytes" => self.backfill.memory_bytes = number(v)?,
            "backfill.snapshot_max_s" => self.backfill.snapshot_max_s = number(v)?,
            "backfill.snapshot_wait_timeout_s" => {
                self.backfill.snapshot_wait_timeout_s = number(v)?
            }
            "verify.interval" => self.verify.interval = duration(v)?,
            "verify.window" => self.verify.window = duration(v)?,
            "verify.repair" => self.verify.repair = boolean(v)?,
            "verify.payloads" => self.verify.payloads = boolean(v)?,
            "verify.chunk_rows" => self.verify.chunk_rows = number(v)?,
            "verify.pause_ms" => self.verify.pause_ms = number(v)?,
            "verify.wait_timeout_ms" => self.verify.wait_timeout_ms = number(v)?,
            "verify.rounds" => self.verify.rounds = number(v)?,
            "verify.timeout" => self.verify.timeout = duration(v)?,
            other => return Err(format!("{other} is not a configuration key")),
        }
        Ok(())
    }

    /// trigger.dev's `RUN_REPLICATION_LEGACY_ORIGIN_GENERATION`: the generation of the first
    /// source's rows. Each table keeps its own, distinct generation: all are shifted together so
    /// the lowest one becomes `value` (by default `TaskRun` gets it and `task_run_v2` the next).
    fn set_lowest_generation(&mut self, value: &str, origin: String) -> Result<(), ConfigError> {
        let gens = &mut self.postgres.generations;
        let low = gens.values().min().copied().unwrap_or(0);
        let span = gens.values().max().copied().unwrap_or(0) - low;
        let invalid = |allowed: String| ConfigError::Invalid {
            key: "postgres.generations".into(),
            value: format!("{value:?}"),
            origin: origin.clone(),
            allowed,
        };
        let base: u8 =
            number(value).map_err(|_| invalid("expected a generation from 0 to 255".into()))?;
        if base as u16 + span as u16 > 255 {
            return Err(invalid(format!(
                "expected 0 to {}: it is the lowest generation of postgres.generations ({}), each \
                 table keeps its distance above it, and 255 is the highest",
                255 - span,
                generations_text(gens)
            )));
        }
        for g in gens.values_mut() {
            *g = *g - low + base;
        }
        self.origins.insert("postgres.generations".into(), origin);
        Ok(())
    }

    /// trigger.dev's run-ops database as a second source, named as upstream names it ("new",
    /// and the first source "legacy" unless named). The first source keeps the tables it was
    /// given; left at the default (the seed's two tables), it becomes upstream's legacy database:
    /// `"TaskRun"` alone, at its lowest generation.
    fn add_run_ops(&mut self, run_ops: env::RunOps) -> Result<(), ConfigError> {
        let origin = |name: &str| format!("env {name}");
        let (url, url_var) = &run_ops.url;
        let mut source = SourceConfig {
            name: "new".into(),
            url: Some(
                url.parse()
                    .map_err(|allowed: String| ConfigError::Invalid {
                        key: "postgres.sources.new.url".into(),
                        value: redact_url(url),
                        origin: origin(url_var),
                        allowed,
                    })?,
            ),
            ..SourceConfig::default()
        };
        if let Some((slot, _)) = &run_ops.slot {
            source.slot = slot.clone();
        }
        if let Some((publication, _)) = &run_ops.publication {
            source.publication = publication.clone();
        }
        if let Some((g, var)) = &run_ops.generation {
            let g: u8 = number(g).map_err(|_| ConfigError::Invalid {
                key: "postgres.sources.new.generations".into(),
                value: format!("{g:?}"),
                origin: origin(var),
                allowed: "expected a generation from 0 to 255".into(),
            })?;
            source.generations = BTreeMap::from([("TaskRun".to_string(), g)]);
        }
        self.origins
            .insert("postgres.sources.new".into(), origin(url_var));
        let pg = &mut self.postgres;
        if !self.origins.contains_key("postgres.name") && pg.name == "default" {
            pg.name = "legacy".into();
        }
        let defaults = PostgresConfig::default();
        if pg.tables == defaults.tables {
            let lowest = pg.generations.values().min().copied().unwrap_or(0);
            pg.tables = vec!["TaskRun".into()];
            pg.generations = BTreeMap::from([("TaskRun".to_string(), lowest)]);
        }
        pg.sources.retain(|s| s.name != "new");
        pg.sources.push(source);
        Ok(())
    }

    /// trigger.dev variables that are set and not honoured: at most one line naming those this
    /// worker has no use for and one naming those it does not support yet. The daemon logs them
    /// as warnings at start.
    pub fn warnings(&self) -> &[String] {
        &self.warnings
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

    /// The generation of a table of the first source (every configured table has one; 0 for
    /// any other).
    pub fn generation(&self, table: &str) -> u8 {
        self.postgres.generations.get(table).copied().unwrap_or(0)
    }

    /// Every source: the first from `[postgres]`, then `[[postgres.sources]]` in order.
    pub fn sources(&self) -> Vec<Arc<Source>> {
        let pg = &self.postgres;
        let mut out = vec![Arc::new(Source {
            name: pg.name.clone(),
            url: pg.url.clone(),
            schema: pg.schema.clone(),
            tables: pg.tables.clone(),
            tables_required: Source::requires(&pg.tables),
            generations: pg.generations.clone(),
            publication: pg.publication.clone(),
            slot: pg.slot.clone(),
            create_publication: pg.create_publication,
            create_slot: pg.create_slot,
            shards: pg.shards,
            failover_slot: pg.failover_slot,
        })];
        out.extend(pg.sources.iter().filter_map(|s| {
            Some(Arc::new(Source {
                name: s.name.clone(),
                url: s.url.clone()?,
                schema: s.schema.clone(),
                tables: s.tables.clone(),
                tables_required: Source::requires(&s.tables),
                generations: s.generations.clone(),
                publication: s.publication.clone(),
                slot: s.slot.clone(),
                create_publication: s.create_publication,
                create_slot: s.create_slot,
                shards: s.shards,
                failover_slot: pg.failover_slot,
            }))
        }));
        out
    }

    /// Every stream: each source's, or each shard's of it, in order.
    pub fn streams(&self) -> Vec<Stream> {
        self.sources().iter().flat_map(Source::streams).collect()
    }

    pub fn status_interval(&self) -> Duration {
        Duration::from_millis(self.postgres.status_interval_ms)
    }

    pub fn connect_timeout(&self) -> Duration {
        self.connect_timeout_of(&self.postgres.url)
    }

    /// The connection timeout for `url`: its own `connect_timeout`, else the configured one.
    pub fn connect_timeout_of(&self, url: &PgUrl) -> Duration {
        url.connect_timeout
            .unwrap_or(Duration::from_millis(self.postgres.connect_timeout_ms))
    }

    /// How long one control-plane query may take (`postgres.query_timeout_ms`).
    pub fn query_timeout(&self) -> Duration {
        Duration::from_millis(self.postgres.query_timeout_ms)
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
        out.extend(
            self.postgres
                .sources
                .iter()
                .filter_map(|s| s.url.as_ref().map(|u| &u.password)),
        );
        if let Some(p) = &self.clickhouse.url.password {
            out.push(p);
        }
        out
    }
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod trigger_dev_tests;
