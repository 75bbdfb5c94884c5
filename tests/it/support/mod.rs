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
pub mod runs;
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
        }
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
            pg_url = self.pg.url(&self.pg_db),
            publication = self.publication,
            slot = self.slot,
            ch_url = self.ch.url,
            ch_db = self.ch_db,
        )
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
