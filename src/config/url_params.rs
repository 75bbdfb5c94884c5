//! Settings a URL carries besides its endpoint, applied once every layer is in: Prisma's
//! `schema=` in a Postgres URL, `database=` in a ClickHouse URL. A key set explicitly (by the
//! environment or a flag, or to a value other than its default — the shipped file writes every
//! default out) wins over the URL, with a warning when they disagree; the
//! parameters a URL carries that mean nothing to this worker (Prisma's pool settings,
//! `@clickhouse/client` options, a `secure=` that disagrees with the scheme) are named in one
//! warning line.

use super::{ClickHouseConfig, Config};

const DEFAULT_SCHEMA: &str = "public";

impl Config {
    /// Applies what the URLs say, after the file, the environment and the flags.
    pub(super) fn apply_url_parameters(&mut self) {
        let mut overruled = Vec::new();
        let mut ignored = Vec::new();

        let url = &self.postgres.url;
        if !url.ignored.is_empty() {
            ignored.push(format!(
                "postgres.url (from {}): {}",
                self.origin("postgres.url"),
                url.ignored.join(", ")
            ));
        }
        if let Some(schema) = url.schema.clone() {
            if !self.explicit("postgres.schema", self.postgres.schema != DEFAULT_SCHEMA) {
                let origin = format!("{} (schema=)", self.origin("postgres.url"));
                self.postgres.schema = schema;
                self.origins.insert("postgres.schema".into(), origin);
            } else if schema != self.postgres.schema {
                overruled.push(format!(
                    "postgres.schema = {:?} (from {}) wins over schema={schema} in postgres.url",
                    self.postgres.schema,
                    self.origin("postgres.schema")
                ));
            }
        }
        for i in 0..self.postgres.sources.len() {
            let source = &mut self.postgres.sources[i];
            // Entries come from the file only.
            let explicit = source.schema != DEFAULT_SCHEMA;
            let Some(url) = &source.url else { continue };
            if !url.ignored.is_empty() {
                ignored.push(format!(
                    "postgres.sources.{}.url: {}",
                    source.name,
                    url.ignored.join(", ")
                ));
            }
            match url.schema.clone() {
                Some(schema) if !explicit => source.schema = schema,
                Some(schema) if schema != source.schema => overruled.push(format!(
                    "postgres.sources.{}.schema = {:?} wins over schema={schema} in its url",
                    source.name, source.schema
                )),
                _ => {}
            }
        }

        let ch = &self.clickhouse.url;
        if !ch.ignored.is_empty() {
            ignored.push(format!(
                "clickhouse.url (from {}): {}",
                self.origin("clickhouse.url"),
                ch.ignored.join(", ")
            ));
        }
        if let Some(database) = ch.database.clone() {
            if !self.explicit(
                "clickhouse.database",
                self.clickhouse.database != ClickHouseConfig::default().database,
            ) {
                let origin = format!("{} (database=)", self.origin("clickhouse.url"));
                self.clickhouse.database = database;
                self.origins.insert("clickhouse.database".into(), origin);
            } else if database != self.clickhouse.database {
                overruled.push(format!(
                    "clickhouse.database = {:?} (from {}) wins over database={database} in \
                     clickhouse.url",
                    self.clickhouse.database,
                    self.origin("clickhouse.database")
                ));
            }
        }

        if !ignored.is_empty() {
            self.warnings.push(format!(
                "URL parameters ignored, because they configure trigger.dev's own clients \
                 (Prisma's connection pool, @clickhouse/client) and this worker has its own \
                 connections; TLS follows sslmode and the http(s) scheme: {}",
                ignored.join("; ")
            ));
        }
        for line in overruled {
            self.warnings.push(line);
        }
    }

    /// `key` was set by the environment or a flag, or (in the file) to another value than its
    /// default.
    fn explicit(&self, key: &str, not_default: bool) -> bool {
        not_default || self.origins.contains_key(key)
    }
}
