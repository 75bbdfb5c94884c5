//! The sections of the configuration file, each with its defaults: what every key means is
//! documented in `config/runs-replicator.toml`.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::sources::SourceConfig;
use super::text_value::from_str;
use super::{ChUrl, PgUrl, Secret};

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PostgresConfig {
    /// The first source's name (the `source` label of its metrics).
    pub name: String,
    #[serde(deserialize_with = "from_str")]
    pub url: PgUrl,
    pub schema: String,
    pub tables: Vec<String>,
    /// Version generation per table: `_version = generation << 56 | commit_end_lsn`. Every
    /// table has one, and no two share one (checked at load).
    pub generations: BTreeMap<String, u8>,
    pub publication: String,
    pub slot: String,
    pub create_publication: bool,
    pub create_slot: bool,
    pub recreate_lost_slot: bool,
    /// Whether the slot is a failover slot (PG 17+), synchronized to standbys.
    pub failover_slot: FailoverSlot,
    pub status_interval_ms: u64,
    pub connect_timeout_ms: u64,
    /// How long one control-plane query of a session's setup (leader lock, preflight readings,
    /// publication and slot setup) or of the leader's checks may take before the session is
    /// treated as broken.
    pub query_timeout_ms: u64,
    pub slot_poll_interval_ms: u64,
    /// Streams (slots) the first source is split into, by a hash of the run id.
    pub shards: u16,
    /// Further sources (`[[postgres.sources]]`).
    pub sources: Vec<SourceConfig>,
}

/// `postgres.failover_slot`: whether the slot is created (or altered) with FAILOVER, so that
/// standbys with `sync_replication_slots` keep a copy that survives a promotion (PostgreSQL 17+).
#[derive(Copy, Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FailoverSlot {
    /// On where the server supports it (17+), off before.
    Auto,
    /// Required: the preflight refuses a server before 17.
    On,
    /// Never: a slot that has FAILOVER keeps it, a new one is made without.
    Off,
}

impl FailoverSlot {
    pub fn parse(v: &str) -> Result<FailoverSlot, String> {
        match v {
            "auto" => Ok(FailoverSlot::Auto),
            "on" => Ok(FailoverSlot::On),
            "off" => Ok(FailoverSlot::Off),
            _ => Err("expected auto, on or off".into()),
        }
    }

    /// The slot should have FAILOVER on a server of `version_num` (`server_version_num`).
    pub fn wanted(self, version_num: i32) -> bool {
        self != FailoverSlot::Off && version_num >= FAILOVER_SLOTS_SINCE
    }
}

/// The first `server_version_num` with failover slots.
pub const FAILOVER_SLOTS_SINCE: i32 = 170_000;

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
    /// How long a one-shot command (`backfill`, `verify --repair`) waits for ClickHouse to store
    /// one write (down, not answering, refusing the table's rows) before it exits 2; the daemon
    /// never gives up.
    pub give_up_after_ms: u64,
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
    /// The shortest time between the starts of two inserts made because the stream caught up
    /// (a full batch or `flush_interval_ms` do not wait for it).
    pub min_insert_interval_ms: u64,
    pub max_inflight: usize,
    /// Bytes of rows (estimated from their strings) the batch being filled and the inserts in
    /// flight may hold together; a batch is sealed at its share, and an open transaction is
    /// spilled at the same share.
    pub max_bytes: u64,
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

/// How several instances share the streams (`leader::share`).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LeadershipConfig {
    /// Spread the streams over the instances (each leads about N/R); false: the first instance
    /// up leads every stream it can, the others wait as standbys.
    pub share: bool,
    /// The least time a leader keeps a stream before handing it to the instance it belongs to.
    pub min_hold_ms: u64,
}

impl Default for LeadershipConfig {
    fn default() -> Self {
        LeadershipConfig {
            share: true,
            min_hold_ms: 10_000,
        }
    }
}

impl Default for PostgresConfig {
    fn default() -> Self {
        PostgresConfig {
            name: "default".into(),
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
            failover_slot: FailoverSlot::Auto,
            status_interval_ms: 1000,
            connect_timeout_ms: 5000,
            query_timeout_ms: 10_000,
            slot_poll_interval_ms: 10_000,
            shards: 1,
            sources: Vec::new(),
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
            give_up_after_ms: 300_000,
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
            min_insert_interval_ms: 100,
            max_inflight: 2,
            max_bytes: 128 << 20,
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

pub(super) fn secret<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Secret, D::Error> {
    String::deserialize(d).map(Secret::new)
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
    /// When the daemon creates a slot, copy the snapshot the slot exports first (bootstrap).
    pub on_slot_create: bool,
    /// How far before the last position known safe a lost slot's gap backfill starts: covers
    /// transactions open across it and clock skew between the app and the database.
    pub gap_margin_s: u64,
    /// How long a fresh copy snapshot (and the creation of a slot with its snapshot) may wait for
    /// the transactions in flight at `L` to end.
    pub snapshot_wait_timeout_s: u64,
    /// What a backfill or a verify may hold in rows at once, all its connections together: the
    /// COPY text buffered and the rows built from it, a verify's run hashes and re-checked runs.
    /// Each connection buffers at most `memory_bytes / (2 x parallel)` (and `max_bytes`).
    pub memory_bytes: u64,
    /// No snapshot a backfill, a verify or a stream's copy reads from stays open longer: each
    /// connection takes a fresh one (with its own `L`) before it gets this old, and a statement
    /// or a write that would outlast it ends it.
    pub snapshot_max_s: u64,
}

impl Default for BackfillConfig {
    fn default() -> Self {
        BackfillConfig {
            parallel: 2,
            chunk_rows: 50_000,
            max_bytes: 16 << 20,
            on_slot_create: false,
            gap_margin_s: 900,
            snapshot_wait_timeout_s: 600,
            memory_bytes: 128 << 20,
            snapshot_max_s: 60,
        }
    }
}

/// `runs-replicator verify` and the daemon's background verify (SPEC §10).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct VerifyConfig {
    /// How often the daemon verifies a recent window in the background; zero is off.
    #[serde(deserialize_with = "duration")]
    pub interval: Duration,
    /// How far back the background verify looks: runs created in the last `window`.
    #[serde(deserialize_with = "duration")]
    pub window: Duration,
    /// The background verify repairs what it finds (as `verify --repair`).
    pub repair: bool,
    /// Check that every run has its row in the payloads table too.
    pub payloads: bool,
    /// Runs per slice of the window at most (each slice read through its own snapshots and
    /// compared on its own); `backfill.memory_bytes` may make them smaller.
    pub chunk_rows: u64,
    /// The background verify sleeps this long between chunks, so the stream keeps the CPU.
    pub pause_ms: u64,
    /// How long a verify waits for a slot to pass its snapshot before it reports anyway.
    pub wait_timeout_ms: u64,
    /// Re-checks of the differing runs, each from a fresh snapshot, before a difference that
    /// keeps moving is set aside as unsettled.
    pub rounds: u32,
    /// A background verify still running after this long is abandoned (logged, counted) so the
    /// next interval's can run: a snapshot waiting on a forgotten transaction, a read that never
    /// answers.
    #[serde(deserialize_with = "duration")]
    pub timeout: Duration,
}

impl Default for VerifyConfig {
    fn default() -> Self {
        VerifyConfig {
            interval: Duration::ZERO,
            window: Duration::from_secs(6 * 3600),
            repair: false,
            payloads: true,
            chunk_rows: 250_000,
            pause_ms: 50,
            wait_timeout_ms: 30_000,
            rounds: 4,
            timeout: Duration::from_secs(3600),
        }
    }
}

/// A duration as TOML gives it: a number of seconds, or text such as `"90s"`, `"15m"`, `"6h"`.
pub(super) fn duration<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Seconds(u64),
        Text(String),
    }
    match Raw::deserialize(d)? {
        Raw::Seconds(s) => Ok(Duration::from_secs(s)),
        Raw::Text(t) => super::parse::duration(&t).map_err(serde::de::Error::custom),
    }
}
