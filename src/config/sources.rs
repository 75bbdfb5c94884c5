//! Sources and streams: which Postgres databases the worker reads, and through which slots.
//!
//! A *source* is one database with its tables, publication and slot: the first is `[postgres]`
//! (named `postgres.name`, "default" unless set), further ones are `[[postgres.sources]]`.
//! Everything else — ClickHouse, batching, timings — is shared. trigger.dev's run-ops split maps
//! onto a second source (`RUN_REPLICATION_RUN_OPS_DATABASE_URL`; see `env`).
//!
//! A *stream* is one slot the worker streams from: a source, or with `shards = N`, one of N
//! slices of it. Shard `k` has its own publication (`<publication>_<k>`, with a row filter that
//! keeps the runs whose id hashes to `k`) and slot (`<slot>_<k>`), so N walsenders decode one
//! busy database in parallel. The hash is Postgres' built-in, immutable `hashtext(id)`; a run
//! whose id changes moves between shards, and Postgres turns that UPDATE into a DELETE on the
//! old shard's publication and an INSERT on the new one's.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::Deserialize;

use super::PgUrl;
use super::text_value::from_str;

/// One `[[postgres.sources]]` entry.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SourceConfig {
    pub name: String,
    #[serde(deserialize_with = "optional_url")]
    pub url: Option<PgUrl>,
    pub schema: String,
    pub tables: Vec<String>,
    pub generations: BTreeMap<String, u8>,
    pub publication: String,
    pub slot: String,
    pub create_publication: bool,
    pub create_slot: bool,
    pub shards: u16,
}

/// trigger.dev's run-ops database: its `"TaskRun"` at generation 1, its own slot and publication.
impl Default for SourceConfig {
    fn default() -> Self {
        SourceConfig {
            name: String::new(),
            url: None,
            schema: "public".into(),
            tables: vec!["TaskRun".into()],
            generations: BTreeMap::from([("TaskRun".into(), 1)]),
            publication: "task_runs_to_clickhouse_v2_publication".into(),
            slot: "task_runs_to_clickhouse_v2".into(),
            create_publication: true,
            create_slot: true,
            shards: 1,
        }
    }
}

fn optional_url<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<PgUrl>, D::Error> {
    from_str(d).map(Some)
}

/// The default table list: the seed's two tables. trigger.dev's schema has `"TaskRun"` alone
/// until `task_run_v2` is created, so with this list a table that does not exist yet is not an
/// error: it is replicated once it exists (`daemon::joins`). Any other list names tables that
/// must exist. (Sorted: a list is the default one whatever its order.)
pub const DEFAULT_TABLES: [&str; 2] = ["TaskRun", "task_run_v2"];

/// A source as the worker streams it.
#[derive(Clone, Debug, PartialEq)]
pub struct Source {
    /// The `source` label of its metrics and the key of its `/readyz` line.
    pub name: String,
    pub url: PgUrl,
    pub schema: String,
    pub tables: Vec<String>,
    /// Every table of `tables` must exist: the list is not [`DEFAULT_TABLES`]. With the
    /// default list, the tables that exist are replicated (at least one must) and the others
    /// join once they appear.
    pub tables_required: bool,
    pub generations: BTreeMap<String, u8>,
    pub publication: String,
    pub slot: String,
    pub create_publication: bool,
    pub create_slot: bool,
    pub shards: u16,
    /// `postgres.failover_slot` (one setting for every source).
    pub failover_slot: super::FailoverSlot,
}

impl Source {
    /// Whether `tables` is a list whose every table must exist (see [`DEFAULT_TABLES`]).
    pub fn requires(tables: &[String]) -> bool {
        let mut sorted: Vec<&str> = tables.iter().map(String::as_str).collect();
        sorted.sort_unstable();
        sorted != DEFAULT_TABLES
    }

    /// This source with only `tables` of its own (those that exist, for a copy or a verify).
    pub fn with_tables(&self, tables: Vec<String>) -> Source {
        Source {
            tables,
            ..self.clone()
        }
    }

    /// The `_version` generation of `table`'s rows (every configured table has one).
    pub fn generation(&self, table: &str) -> u8 {
        self.generations.get(table).copied().unwrap_or(0)
    }

    /// Its streams: itself, or one per shard.
    pub fn streams(self: &Arc<Source>) -> Vec<Stream> {
        if self.shards <= 1 {
            return vec![Stream {
                name: self.name.clone(),
                publication: self.publication.clone(),
                slot: self.slot.clone(),
                shard: None,
                source: self.clone(),
            }];
        }
        (0..self.shards)
            .map(|index| {
                let shard = Shard {
                    index,
                    count: self.shards,
                };
                Stream {
                    name: format!("{}.{index}", self.name),
                    publication: format!("{}_{index}", self.publication),
                    slot: format!("{}_{index}", self.slot),
                    shard: Some(shard),
                    source: self.clone(),
                }
            })
            .collect()
    }
}

/// One of `count` slices of a source, by a hash of the run id.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shard {
    pub index: u16,
    pub count: u16,
}

impl Shard {
    /// The publication row filter that keeps this shard's runs. `hashtext` is built in and
    /// immutable, as row filters require; masking the sign bit keeps the remainder in 0..count.
    pub fn row_filter(&self) -> String {
        format!(
            "(hashtext(id) & 2147483647) % {} = {}",
            self.count, self.index
        )
    }
}

/// One slot the worker streams from.
#[derive(Clone, Debug, PartialEq)]
pub struct Stream {
    pub source: Arc<Source>,
    /// The source's name, with `.<k>` for shard `k`.
    pub name: String,
    pub publication: String,
    pub slot: String,
    pub shard: Option<Shard>,
}
