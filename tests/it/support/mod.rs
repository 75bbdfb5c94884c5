//! Test support: real services shared by every test of this binary, and a per-test environment.
//!
//! One Postgres cluster and one ClickHouse engine start on first use; each test gets its own
//! Postgres database, ClickHouse database, slot and publication, so tests run in parallel.

#![allow(dead_code, unused_imports)]

pub mod clickhouse;
pub mod expect;
pub mod http;
pub mod load;
pub mod postgres;
pub mod process;
pub mod relay;
pub mod runs;
pub mod standby;
pub mod tls;
pub mod worker;

use std::sync::OnceLock;

pub use self::clickhouse::ChServer;
pub use self::postgres::PgCluster;
pub use self::worker::Worker;

pub fn pg() -> &'static PgCluster {
    static PG: OnceLock<PgCluster> = OnceLock::new();
    PG.get_or_init(
        || match std::env::var("RUNS_REPLICATOR_TEST_POSTGRES_URL") {
            Ok(url) if !url.is_empty() => PgCluster::external(&url),
            _ => PgCluster::start(&[]),
        },
    )
}

pub fn ch() -> &'static ChServer {
    static CH: OnceLock<ChServer> = OnceLock::new();
    CH.get_or_init(|| match std::env::var("CLICKHOUSE_URL") {
        Ok(url) if !url.is_empty() => ChServer::external(&url),
        _ => ChServer::start(&[]),
    })
}

/// One test's slice of the shared services.
pub struct TestEnv {
    pub label: String,
    pub pg: &'static PgCluster,
    pub ch: &'static ChServer,
    pub pg_db: String,
    pub ch_db: String,
    pub slot: String,
    pub publication: String,
    /// Extra TOML appended to the generated config (later keys win within a section).
    pub extra_toml: String,
    /// The first source's tables and generations (the `[postgres]` section).
    pub tables: Vec<(&'static str, u8)>,
    /// Further sources (`[[postgres.sources]]`), each a database of its own.
    pub sources: Vec<ExtraSource>,
    /// The first source's `host:port` list, in place of `pg`'s own (several hosts, a relay).
    pub pg_hosts: Option<String>,
}

/// A second (third, …) source of a test: a database on some cluster, with its tables.
pub struct ExtraSource {
    pub name: String,
    pub pg: &'static PgCluster,
    pub db: String,
    /// (SQL table name, generation).
    pub tables: Vec<(&'static str, u8)>,
    pub slot: String,
    pub publication: String,
}

impl ExtraSource {
    pub async fn client(&self) -> tokio_postgres::Client {
        self.pg.connect(&self.db).await
    }
}

impl TestEnv {
    pub async fn new(label: &str) -> TestEnv {
        let pg = pg();
        let ch = ch();
        let pg_db = pg.create_database(label).await;
        let ch_db = ch.create_database(label).await;
        TestEnv {
            label: label.to_string(),
            pg,
            ch,
            slot: format!("{pg_db}_slot"),
            publication: format!("{pg_db}_pub"),
            pg_db,
            ch_db,
            extra_toml: String::new(),
            tables: runs::TABLES.to_vec(),
            sources: Vec::new(),
            pg_hosts: None,
        }
    }

    /// Adds a source: a new database on `pg` (with the shipped schema), streamed as `name` with
    /// `tables` at their generations. The first source keeps `first_tables`.
    pub async fn add_source(
        &mut self,
        name: &str,
        pg: &'static PgCluster,
        tables: &[(&'static str, u8)],
        first_tables: &[(&'static str, u8)],
    ) -> &ExtraSource {
        let db = pg.create_database(&format!("{}_{name}", self.label)).await;
        self.tables = first_tables.to_vec();
        self.sources.push(ExtraSource {
            name: name.to_string(),
            pg,
            slot: format!("{db}_slot"),
            publication: format!("{db}_pub"),
            db,
            tables: tables.to_vec(),
        });
        self.sources.last().unwrap()
    }

    pub async fn pg_client(&self) -> tokio_postgres::Client {
        self.pg.connect(&self.pg_db).await
    }

    pub fn ch_client(&self) -> ::clickhouse::Client {
        self.ch.client(&self.ch_db)
    }

    /// A complete worker config for this environment; `sections` replaces whole sections.
    pub fn config_toml(&self, metrics_port: u16) -> String {
        format!(
            r#"[postgres]
url = "{pg_url}"
tables = [{tables}]
generations = {{ {generations} }}
publication = "{publication}"
slot = "{slot}"
status_interval_ms = 200
connect_timeout_ms = 3000
slot_poll_interval_ms = 1000

[clickhouse]
url = "{ch_url}"
database = "{ch_db}"
retry_min_delay_ms = 50
retry_max_delay_ms = 500

[batch]
max_rows = 1000
flush_interval_ms = 100

[metrics]
listen = "127.0.0.1:{metrics_port}"
clickhouse_unready_after_ms = 2000

[log]
level = "info,runs_replicator=debug"
"#,
            pg_url = match &self.pg_hosts {
                Some(hosts) => self.pg.url_at(hosts, &self.pg_db),
                None => self.pg.url(&self.pg_db),
            },
            tables = self
                .tables
                .iter()
                .map(|(n, _)| format!("\"{}\"", n.trim_matches('"')))
                .collect::<Vec<_>>()
                .join(", "),
            generations = self
                .tables
                .iter()
                .map(|(n, g)| format!("\"{}\" = {g}", n.trim_matches('"')))
                .collect::<Vec<_>>()
                .join(", "),
            publication = self.publication,
            slot = self.slot,
            ch_url = self.ch.url,
            ch_db = self.ch_db,
        ) + &self.sources_toml()
    }

    /// A `[[postgres.sources]]` entry per further source.
    fn sources_toml(&self) -> String {
        let names = |t: &[(&str, u8)]| {
            t.iter()
                .map(|(n, _)| format!("\"{}\"", n.trim_matches('"')))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let gens = |t: &[(&str, u8)]| {
            t.iter()
                .map(|(n, g)| format!("\"{}\" = {g}", n.trim_matches('"')))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let mut out = String::new();
        for s in &self.sources {
            out.push_str(&format!(
                "\n[[postgres.sources]]\nname = \"{}\"\nurl = \"{}\"\ntables = [{}]\ngenerations = {{ {} }}\nslot = \"{}\"\npublication = \"{}\"\n",
                s.name,
                s.pg.url(&s.db),
                names(&s.tables),
                gens(&s.tables),
                s.slot,
                s.publication
            ));
        }
        out
    }

    /// Writes a config file for this environment and returns its path.
    pub fn write_config(&self, metrics_port: u16, overrides: &str) -> std::path::PathBuf {
        let dir = process::temp_dir(&format!("cfg-{}", self.label));
        let path = dir.join("runs-replicator.toml");
        let text = merge_toml(&self.config_toml(metrics_port), overrides);
        std::fs::write(&path, text).unwrap();
        path
    }
}

/// Merges `overrides` (TOML) over `base`: keys in the same section replace, new ones are added.
pub fn merge_toml(base: &str, overrides: &str) -> String {
    let mut doc: toml::Table = base.parse().expect("base config parses");
    let over: toml::Table = overrides.parse().expect("override config parses");
    for (section, values) in over {
        match (doc.get_mut(&section), values) {
            (Some(toml::Value::Table(existing)), toml::Value::Table(new)) => existing.extend(new),
            (_, v) => {
                doc.insert(section, v);
            }
        }
    }
    toml::to_string(&doc).unwrap()
}
