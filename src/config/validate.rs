//! Range and consistency checks that the types alone do not express. Each failure is one line
//! naming the key, the value, where it came from and what is allowed.

use std::collections::BTreeMap;

use super::parse::{ch_ident_ok, generations_text, range};
use super::{Config, ConfigError};

impl Config {
    /// Range and consistency checks that the types alone do not express.
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
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
        // Any name Postgres keeps whole: the stream names it as a quoted identifier
        // (source::stream), SQL with quote_ident, the catalog as a parameter.
        if pg.publication.is_empty() || pg.publication.len() > 63 || pg.publication.contains('\0') {
            return Err(self.invalid(
                "postgres.publication",
                &pg.publication,
                "expected 1 to 63 bytes (a Postgres name: any characters but NUL; longer ones are truncated)",
            ));
        }
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
        let gens = || generations_text(&pg.generations);
        if let Some(t) = pg.generations.keys().find(|t| !pg.tables.contains(t)) {
            return Err(self.invalid(
                "postgres.generations",
                gens(),
                &format!(
                    "generations may only name tables listed in postgres.tables; {t} is not one"
                ),
            ));
        }
        // A table left out would silently get generation 0, and the higher generation's copy of
        // a run (task_run_v2 over "TaskRun") would stop winning.
        if let Some(t) = pg.tables.iter().find(|t| !pg.generations.contains_key(*t)) {
            return Err(self.invalid(
                "postgres.generations",
                gens(),
                &format!(
                    "expected a generation (0 to 255) for every table in postgres.tables, each a different one; {t} has none"
                ),
            ));
        }
        // With equal generations neither table's copy of a run wins: the later LSN does.
        let mut owners = BTreeMap::new();
        for (t, g) in &pg.generations {
            if let Some(other) = owners.insert(*g, t) {
                return Err(self.invalid(
                    "postgres.generations",
                    gens(),
                    &format!(
                        "expected a different generation for each table, so the higher one's copy of a run wins; {other} and {t} both have {g}"
                    ),
                ));
            }
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
