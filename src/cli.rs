//! The command line: every flag and subcommand of the binary (clap's derive), and the flags that
//! override configuration keys. Part of the binary only; `src/main.rs` runs what it describes.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use runs_replicator::config::FlagOverride;

/// Keeps ClickHouse `trigger_dev.task_runs_v2` equal to Postgres "TaskRun" and task_run_v2 by
/// consuming logical replication.
#[derive(Parser, Debug)]
#[command(
    name = "runs-replicator",
    version = runs_replicator::version::line(),
    about,
    long_about = None
)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Option<Command>,

    /// Config file (TOML). Default: config/runs-replicator.toml when it exists.
    #[arg(
        short,
        long,
        env = "RUNS_REPLICATOR_CONFIG",
        value_name = "PATH",
        global = true
    )]
    pub(crate) config: Option<PathBuf>,

    /// Check that Postgres and ClickHouse are ready for replication, print a report and exit:
    /// 0 all checks pass, 1 a check failed, 2 the checks could not run.
    #[arg(long)]
    pub(crate) check_replica_identity: bool,

    /// Exit 0 when the worker configured here answers /healthz, 1 otherwise (for container
    /// health checks).
    #[arg(long, conflicts_with = "check_replica_identity")]
    pub(crate) health_check: bool,

    /// Report format for --check-replica-identity and the subcommands.
    #[arg(long, value_enum, default_value_t = Format::Text, global = true)]
    pub(crate) format: Format,

    /// Postgres URL (overrides postgres.url).
    #[arg(long, value_name = "URL", hide_env_values = true, global = true)]
    pub(crate) postgres_url: Option<String>,

    /// ClickHouse URL (overrides clickhouse.url).
    #[arg(long, value_name = "URL", hide_env_values = true, global = true)]
    pub(crate) clickhouse_url: Option<String>,

    /// Replication slot (overrides postgres.slot).
    #[arg(long, value_name = "NAME")]
    pub(crate) slot: Option<String>,

    /// Address of /metrics, /healthz and /readyz (overrides metrics.listen). A subcommand serves
    /// /metrics only when this is given.
    #[arg(long, value_name = "ADDR", global = true)]
    pub(crate) metrics_listen: Option<String>,

    /// Log format (overrides log.format).
    #[arg(long, value_enum, global = true)]
    pub(crate) log_format: Option<Format>,

    /// Log level or tracing filter (overrides log.level).
    #[arg(long, value_name = "FILTER", global = true)]
    pub(crate) log_level: Option<String>,

    /// BENCHMARKING/DIAGNOSTICS ONLY: decode, transform, batch and encode as usual, then discard
    /// each batch instead of inserting it into ClickHouse, and acknowledge it. The slot advances
    /// and the changes never reach ClickHouse. Measures the worker without the ClickHouse server.
    #[arg(long, global = true)]
    pub(crate) null_sink: bool,
}

#[derive(Subcommand, Debug)]
pub(crate) enum Command {
    /// Copy the current rows of the runs tables into ClickHouse (SPEC §9), online, while the
    /// daemon streams; resumable. Exit 0 done (or already complete), 1 rows were rejected,
    /// 2 it cannot run.
    Backfill(BackfillArgs),
    /// Compare ClickHouse (FINAL) with the transform of the current Postgres rows, column by
    /// column, for the runs created in a window (SPEC §10), while the daemon streams; --repair
    /// fixes the drift it proved. Exit 0 in sync, 1 drift found, 2 it cannot check (or it left
    /// runs unsettled — the stream behind, or runs changing throughout — and found no drift).
    Verify(VerifyArgs),
}

#[derive(Args, Debug)]
pub(crate) struct VerifyArgs {
    /// Only runs created at or after this time ("2026-11-20", "2026-11-20T10:00:00Z"; UTC when
    /// no zone is given). Default: every run.
    #[arg(long, value_name = "TIME")]
    pub(crate) since: Option<String>,

    /// Only runs created before this time.
    #[arg(long, value_name = "TIME")]
    pub(crate) until: Option<String>,

    /// Only this source (its name: postgres.name, or a [[postgres.sources]] entry's). Default:
    /// every source, a run present in two resolving to the higher generation's copy.
    #[arg(long, value_name = "NAME")]
    pub(crate) source: Option<String>,

    /// Rewrite drifted runs through the backfill path (versions that never beat a live change)
    /// and tombstone runs Postgres does not have.
    #[arg(long)]
    pub(crate) repair: bool,

    /// Drifted runs listed in the report (and as many unsettled ones).
    #[arg(long, value_name = "N", default_value_t = 20)]
    pub(crate) max_report: usize,

    /// Connections reading each source's snapshot (overrides backfill.parallel).
    #[arg(long, value_name = "N")]
    pub(crate) parallel: Option<usize>,
}

#[derive(Args, Debug)]
pub(crate) struct BackfillArgs {
    /// Only this table (one of postgres.tables); repeat for several. Default: all of them.
    #[arg(long = "table", value_name = "TABLE")]
    pub(crate) tables: Vec<String>,

    /// Only this source (its name: postgres.name, or a [[postgres.sources]] entry's). Default:
    /// every source, one after the other.
    #[arg(long, value_name = "NAME")]
    pub(crate) source: Option<String>,

    /// Only runs created at or after this time ("2026-11-20", "2026-11-20T10:00:00Z"; UTC when
    /// no zone is given).
    #[arg(long, value_name = "TIME")]
    pub(crate) since: Option<String>,

    /// Only runs created before this time.
    #[arg(long, value_name = "TIME")]
    pub(crate) until: Option<String>,

    /// Only runs updated at or after this time: the gap a lost slot left (the daemon's hard stop
    /// for a lost slot names the time to give).
    #[arg(long, value_name = "TIME")]
    pub(crate) updated_since: Option<String>,

    /// Connections copying at once (overrides backfill.parallel).
    #[arg(long, value_name = "N")]
    pub(crate) parallel: Option<usize>,

    /// Write payload rows too (raw_task_runs_payload_v1).
    #[arg(long)]
    pub(crate) payloads: bool,

    /// Continue the job where it stopped (the default).
    #[arg(long, conflicts_with = "restart")]
    pub(crate) resume: bool,

    /// Start the job over: plan anew and copy every chunk.
    #[arg(long)]
    pub(crate) restart: bool,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum Format {
    Text,
    Json,
}

impl Format {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Format::Text => "text",
            Format::Json => "json",
        }
    }
}

impl Cli {
    pub(crate) fn overrides(&self) -> Vec<FlagOverride> {
        let mut out = Vec::new();
        let mut push = |flag, key, value: &Option<String>| {
            if let Some(v) = value {
                out.push(FlagOverride {
                    flag,
                    key,
                    value: v.clone(),
                });
            }
        };
        push("--postgres-url", "postgres.url", &self.postgres_url);
        push("--clickhouse-url", "clickhouse.url", &self.clickhouse_url);
        push("--slot", "postgres.slot", &self.slot);
        push("--metrics-listen", "metrics.listen", &self.metrics_listen);
        push(
            "--log-format",
            "log.format",
            &self.log_format.map(|f| f.as_str().to_string()),
        );
        push("--log-level", "log.level", &self.log_level);
        out
    }
}
