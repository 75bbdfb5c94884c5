//! Range and consistency checks that the types alone do not express. Each failure is one line
//! naming the key, the value, where it came from and what is allowed.

use std::collections::BTreeMap;
use std::time::Duration;

use super::parse::{ch_ident_ok, duration_text, generations_text, range};
use super::sources::Source;
use super::{Config, ConfigError};

/// The most shards a source may be split into.
const MAX_SHARDS: u16 = 64;

impl Config {
    /// The key of `field` of source number `i`, as messages name it: `postgres.slot` for the
    /// first, `postgres.sources.<name>.slot` for the others.
    fn source_key(i: usize, source: &Source, field: &str) -> String {
        if i == 0 {
            format!("postgres.{field}")
        } else {
            format!("postgres.sources.{}.{field}", source.name)
        }
    }

    /// An invalid value of a source's field; the message names the source.
    fn invalid_in(
        &self,
        i: usize,
        source: &Source,
        field: &str,
        value: impl std::fmt::Debug,
        allowed: &str,
    ) -> ConfigError {
        let key = Config::source_key(i, source, field);
        let origin = if i == 0 {
            self.origin(&key)
        } else {
            self.origin(&format!("postgres.sources.{}", source.name))
        };
        // With one source the key says it all; with several, the message names the source.
        let allowed = if i == 0 && self.postgres.sources.is_empty() {
            allowed.to_string()
        } else {
            format!("{allowed} (source {})", source.name)
        };
        ConfigError::Invalid {
            key,
            value: format!("{value:?}"),
            origin,
            allowed,
        }
    }

    /// Every source on its own, then the rules between them: distinct names, no slot shared on
    /// one server, no generation shared (a run present in two sources must end as the higher
    /// generation's copy, whatever the LSNs).
    fn validate_sources(&self) -> Result<(), ConfigError> {
        let count = self.postgres.sources.len();
        for (i, extra) in self.postgres.sources.iter().enumerate() {
            // Which entry, as a person finds it in the file: its position, and its url (never
            // its password) or name.
            let which =
                |what: &str| format!("[[postgres.sources]] entry {} of {count}{what}", i + 1,);
            if extra.name.is_empty() {
                let url = extra
                    .url
                    .as_ref()
                    .map(|u| format!(", url {u}"))
                    .unwrap_or_default();
                return Err(ConfigError::Invalid {
                    key: format!("postgres.sources[{i}].name"),
                    value: "(none)".into(),
                    origin: self.origin("postgres.sources"),
                    allowed: format!(
                        "every [[postgres.sources]] entry needs a name (1 to 40 characters from \
                         a-z, A-Z, 0-9, _ and -: its metrics' source label and --source): {}",
                        which(&url)
                    ),
                });
            }
            if extra.url.is_none() {
                return Err(ConfigError::Invalid {
                    key: format!("postgres.sources[{i}].url"),
                    value: "(none)".into(),
                    origin: self.origin(&format!("postgres.sources.{}", extra.name)),
                    allowed: format!(
                        "every [[postgres.sources]] entry needs a url: {}",
                        which(&format!(", name {:?}", extra.name))
                    ),
                });
            }
        }
        let sources = self.sources();
        let mut names = BTreeMap::new();
        for (i, source) in sources.iter().enumerate() {
            let name_ok = !source.name.is_empty()
                && source.name.len() <= 40
                && source
                    .name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
            if !name_ok {
                return Err(self.invalid_in(
                    i,
                    source,
                    "name",
                    &source.name,
                    "expected 1 to 40 characters from a-z, A-Z, 0-9, _ and -",
                ));
            }
            if names.insert(source.name.clone(), i).is_some() {
                return Err(self.invalid_in(
                    i,
                    source,
                    "name",
                    &source.name,
                    "each source needs its own name",
                ));
            }
            self.validate_source(i, source)?;
        }
        let mut slots: BTreeMap<(String, u16, String), String> = BTreeMap::new();
        let mut generations: BTreeMap<u8, String> = BTreeMap::new();
        for (i, source) in sources.iter().enumerate() {
            for stream in source.streams() {
                let key = (
                    source.url.host.clone(),
                    source.url.port,
                    stream.slot.clone(),
                );
                if let Some(other) = slots.insert(key, source.name.clone()) {
                    return Err(self.invalid_in(
                        i,
                        source,
                        "slot",
                        &stream.slot,
                        &format!(
                            "two sources may not stream from one slot of one server; {other} uses it too"
                        ),
                    ));
                }
            }
            for (table, g) in &source.generations {
                if let Some(other) = generations.insert(*g, format!("{}.{table}", source.name)) {
                    return Err(self.invalid_in(
                        i,
                        source,
                        "generations",
                        generations_text(&source.generations),
                        &format!(
                            "expected a generation no other source or table has, so a run present                              twice ends as the higher one's copy; {other} has {g} too"
                        ),
                    ));
                }
            }
        }
        Ok(())
    }

    fn validate_source(&self, i: usize, src: &Source) -> Result<(), ConfigError> {
        let ident = |field: &str, v: &str| -> Result<(), ConfigError> {
            if v.is_empty() || v.len() > 63 || v.contains(['\'', '"', '\0']) {
                return Err(self.invalid_in(
                    i,
                    src,
                    field,
                    v,
                    "expected 1 to 63 characters without quotes (a Postgres identifier)",
                ));
            }
            Ok(())
        };
        ident("schema", &src.schema)?;
        // Any name Postgres keeps whole: the stream names it as a quoted identifier
        // (source::stream), SQL with quote_ident, the catalog as a parameter. A shard's
        // publication has `_<k>` appended.
        let suffix = if src.shards > 1 {
            format!("_{}", src.shards - 1).len()
        } else {
            0
        };
        if src.publication.is_empty()
            || src.publication.len() + suffix > 63
            || src.publication.contains('\0')
        {
            return Err(self.invalid_in(
                i,
                src,
                "publication",
                &src.publication,
                "expected 1 to 63 bytes with the shard suffix (a Postgres name: any characters but NUL; longer ones are truncated)",
            ));
        }
        if src.tables.is_empty() {
            return Err(self.invalid_in(i, src, "tables", &src.tables, "list at least one table"));
        }
        for t in &src.tables {
            ident("tables", t)?;
        }
        let mut seen = std::collections::BTreeSet::new();
        if let Some(dup) = src.tables.iter().find(|t| !seen.insert(*t)) {
            return Err(self.invalid_in(i, src, "tables", dup, "each table may appear only once"));
        }
        let gens = || generations_text(&src.generations);
        let tables_key = Config::source_key(i, src, "tables");
        if let Some(t) = src.generations.keys().find(|t| !src.tables.contains(t)) {
            return Err(self.invalid_in(
                i,
                src,
                "generations",
                gens(),
                &format!("generations may only name tables listed in {tables_key}; {t} is not one"),
            ));
        }
        // A table left out would silently get generation 0, and the higher generation's copy of
        // a run (task_run_v2 over "TaskRun") would stop winning.
        if let Some(t) = src
            .tables
            .iter()
            .find(|t| !src.generations.contains_key(*t))
        {
            return Err(self.invalid_in(
                i,
                src,
                "generations",
                gens(),
                &format!(
                    "expected a generation (0 to 255) for every table in {tables_key}, each a different one; {t} has none"
                ),
            ));
        }
        // With equal generations neither table's copy of a run wins: the later LSN does.
        let mut owners = BTreeMap::new();
        for (t, g) in &src.generations {
            if let Some(other) = owners.insert(*g, t) {
                return Err(self.invalid_in(
                    i,
                    src,
                    "generations",
                    gens(),
                    &format!(
                        "expected a different generation for each table, so the higher one's copy of a run wins; {other} and {t} both have {g}"
                    ),
                ));
            }
        }
        if src.shards == 0 || src.shards > MAX_SHARDS {
            return Err(self.invalid_in(
                i,
                src,
                "shards",
                src.shards,
                &format!("expected 1 to {MAX_SHARDS}"),
            ));
        }
        // pgwire-replication writes the slot name into START_REPLICATION unquoted.
        let slot_ok = !src.slot.is_empty()
            && src.slot.len() + suffix <= 63
            && src
                .slot
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        if !slot_ok {
            return Err(self.invalid_in(
                i,
                src,
                "slot",
                &src.slot,
                "expected 1 to 63 characters from a-z, 0-9 and _, with the shard suffix",
            ));
        }
        Ok(())
    }

    fn validate_verify(&self) -> Result<(), ConfigError> {
        let v = &self.verify;
        let too_short = |key: &str, value: Duration, min: &str| {
            self.invalid(
                key,
                duration_text(value),
                &format!("expected at least {min} (or 0 for off)"),
            )
        };
        if !v.interval.is_zero() && v.interval < Duration::from_secs(10) {
            return Err(too_short("verify.interval", v.interval, "10s"));
        }
        if v.window < Duration::from_secs(1) {
            return Err(self.invalid(
                "verify.window",
                duration_text(v.window),
                "expected a duration of at least 1s, like 6h",
            ));
        }
        range(self, "verify.chunk_rows", v.chunk_rows, 1, 100_000_000)?;
        range(self, "verify.pause_ms", v.pause_ms, 0, 60_000)?;
        range(
            self,
            "verify.wait_timeout_ms",
            v.wait_timeout_ms,
            0,
            3_600_000,
        )?;
        range(self, "verify.rounds", v.rounds as u64, 1, 20)?;
        if v.timeout < Duration::from_secs(10) {
            return Err(self.invalid(
                "verify.timeout",
                duration_text(v.timeout),
                "expected a duration of at least 10s, like 1h",
            ));
        }
        Ok(())
    }

    /// Range and consistency checks that the types alone do not express.
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        let pg = &self.postgres;
        let ch = &self.clickhouse;
        self.validate_sources()?;
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
            "postgres.query_timeout_ms",
            pg.query_timeout_ms,
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
        range(
            self,
            "clickhouse.give_up_after_ms",
            ch.give_up_after_ms,
            1000,
            604_800_000,
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
        // Not bounded by flush_interval_ms: a short flush interval (tests, or an operator who
        // lowered only that) must not turn the default gap into a refusal. The writer uses the
        // smaller of the two, since flush_interval_ms bounds a batch's wait anyway.
        range(
            self,
            "batch.min_insert_interval_ms",
            self.batch.min_insert_interval_ms,
            0,
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
            "batch.max_bytes",
            self.batch.max_bytes,
            1 << 20,
            1 << 40,
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
        range(
            self,
            "backfill.gap_margin_s",
            self.backfill.gap_margin_s,
            0,
            30 * 86_400,
        )?;
        range(
            self,
            "backfill.snapshot_wait_timeout_s",
            self.backfill.snapshot_wait_timeout_s,
            1,
            7 * 86_400,
        )?;
        range(
            self,
            "backfill.memory_bytes",
            self.backfill.memory_bytes,
            1 << 18,
            1 << 40,
        )?;
        range(
            self,
            "backfill.snapshot_max_s",
            self.backfill.snapshot_max_s,
            1,
            86_400,
        )?;
        self.validate_verify()?;
        if tracing_subscriber::EnvFilter::try_new(&self.log.level).is_err() {
            return Err(self.invalid(
                "log.level",
                &self.log.level,
                "expected a level (error, warn, info, debug, trace) or a tracing filter like runs_replicator=debug",
            ));
        }
        Ok(())
    }
}
