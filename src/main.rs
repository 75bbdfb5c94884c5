//! The `runs-replicator` binary: parses the command line, loads the configuration, and runs the
//! daemon or the one-shot preflight. Errors are reported here, once, as one line.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, ValueEnum};

use runs_replicator::config::{Config, FlagOverride, replication_disabled_by, scrub};
use runs_replicator::{daemon, logging, preflight};

/// Keeps ClickHouse `trigger_dev.task_runs_v2` equal to Postgres "TaskRun" and task_run_v2 by
/// consuming logical replication.
#[derive(Parser, Debug)]
#[command(name = "runs-replicator", version, about, long_about = None)]
struct Cli {
    /// Config file (TOML). Default: config/runs-replicator.toml when it exists.
    #[arg(short, long, env = "RUNS_REPLICATOR_CONFIG", value_name = "PATH")]
    config: Option<PathBuf>,

    /// Check that Postgres and ClickHouse are ready for replication, print a report and exit:
    /// 0 all checks pass, 1 a check failed, 2 the checks could not run.
    #[arg(long)]
    check_replica_identity: bool,

    /// Exit 0 when the worker configured here answers /healthz, 1 otherwise (for container
    /// health checks).
    #[arg(long, conflicts_with = "check_replica_identity")]
    health_check: bool,

    /// Report format for --check-replica-identity.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,

    /// Postgres URL (overrides postgres.url).
    #[arg(long, value_name = "URL", hide_env_values = true)]
    postgres_url: Option<String>,

    /// ClickHouse URL (overrides clickhouse.url).
    #[arg(long, value_name = "URL", hide_env_values = true)]
    clickhouse_url: Option<String>,

    /// Replication slot (overrides postgres.slot).
    #[arg(long, value_name = "NAME")]
    slot: Option<String>,

    /// Address of /metrics, /healthz and /readyz (overrides metrics.listen).
    #[arg(long, value_name = "ADDR")]
    metrics_listen: Option<String>,

    /// Log format (overrides log.format).
    #[arg(long, value_enum)]
    log_format: Option<Format>,

    /// Log level or tracing filter (overrides log.level).
    #[arg(long, value_name = "FILTER")]
    log_level: Option<String>,

    /// BENCHMARKING/DIAGNOSTICS ONLY: decode, transform, batch and encode as usual, then discard
    /// each batch instead of inserting it into ClickHouse, and acknowledge it. The slot advances
    /// and the changes never reach ClickHouse. Measures the worker without the ClickHouse server.
    #[arg(long)]
    null_sink: bool,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
enum Format {
    Text,
    Json,
}

impl Format {
    fn as_str(self) -> &'static str {
        match self {
            Format::Text => "text",
            Format::Json => "json",
        }
    }
}

impl Cli {
    fn overrides(&self) -> Vec<FlagOverride> {
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

// The pipeline allocates a few dozen small strings per change (the columns of a row) and frees
// them a batch later; glibc's malloc and free were 18% of the hot path's instructions in the
// profile, mimalloc's are about a quarter of that.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// mimalloc asks for transparent huge pages on the memory it maps. The worker's memory turns over
/// a batch at a time, and the kernel then zeroes a whole 2 MiB page at each first touch: in a
/// drain into ClickHouse that was ~12% of the worker's CPU (`clear_page_erms`), and it raised the
/// peak RSS. Disabled for this process only; failure (an old kernel) changes nothing else.
fn disable_transparent_huge_pages() {
    #[cfg(target_os = "linux")]
    // SAFETY: PR_SET_THP_DISABLE takes integer arguments only and touches no memory of ours.
    unsafe {
        libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0);
    }
}

/// Exit code when the configuration is unusable or a server cannot be reached.
const EXIT_CANNOT_RUN: u8 = 2;

fn main() -> ExitCode {
    disable_transparent_huge_pages();
    let cli = Cli::parse();
    // pgwire-replication compiles rustls with ring, the ClickHouse stack may bring aws-lc-rs:
    // with two providers compiled in, rustls refuses to pick one, so pick it here, once.
    let _ = rustls::crypto::ring::default_provider().install_default();

    let env = |k: &str| std::env::var(k).ok();
    // trigger.dev's switch for its built-in service, honoured by the daemon: an explicit "off"
    // (RUN_REPLICATION_ENABLED=0) means this worker must not stream either. Unset, it runs.
    if !cli.health_check && !cli.check_replica_identity {
        match replication_disabled_by(&env) {
            Ok(None) => {}
            Ok(Some(setting)) => {
                eprintln!(
                    "runs-replicator: {setting}: replication is disabled, not starting \
                     (unset it, or set it to 1, to run)"
                );
                return ExitCode::SUCCESS;
            }
            Err(e) => {
                eprintln!("runs-replicator: {e}");
                return ExitCode::from(EXIT_CANNOT_RUN);
            }
        }
    }

    let mut config = match Config::load(cli.config.as_deref(), &env, &cli.overrides()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("runs-replicator: {e}");
            return ExitCode::from(EXIT_CANNOT_RUN);
        }
    };
    // One thread. The replication reader task hands every message to the pipeline through a
    // channel; across threads each hand-off may wake a parked thread (a futex and a context
    // switch), which a drain's profile showed as about 40% of the worker's CPU, in the kernel. The
    // worker needs a fraction of one core, and ClickHouse and Postgres want the others.
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("runs-replicator: cannot start the async runtime: {e}");
            return ExitCode::from(EXIT_CANNOT_RUN);
        }
    };
    if cli.health_check {
        return health_check(&config);
    }
    if cli.check_replica_identity {
        return runtime.block_on(check(&config, cli.format));
    }
    config.clickhouse.null_sink = cli.null_sink;
    logging::init(&config.log);
    for warning in config.warnings() {
        tracing::warn!("{warning}");
    }
    if config.clickhouse.null_sink {
        tracing::warn!(
            "--null-sink: batches are encoded and discarded, never inserted into ClickHouse, and \
             still acknowledged; for benchmarks and diagnostics only"
        );
    }
    runtime.block_on(daemon::run(config))
}

async fn check(config: &Config, format: Format) -> ExitCode {
    match preflight::run(config).await {
        Ok(report) => {
            match format {
                Format::Text => print!("{}", report.render_text()),
                Format::Json => println!("{}", report.render_json()),
            }
            ExitCode::from(if report.passed() { 0 } else { 1 })
        }
        Err(e) => {
            let line = scrub(&e.to_string(), &config.secrets());
            match format {
                Format::Text => eprintln!("runs-replicator: {line}"),
                Format::Json => println!("{}", serde_json::json!({ "ok": false, "error": line })),
            }
            ExitCode::from(EXIT_CANNOT_RUN)
        }
    }
}

/// GET /healthz on the configured metrics address. Kept dependency-free on purpose: it runs in a
/// container health check every few seconds.
fn health_check(config: &Config) -> ExitCode {
    use std::io::{Read, Write};
    let mut addr = config.metrics.listen;
    if addr.ip().is_unspecified() {
        addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
    }
    let timeout = std::time::Duration::from_secs(3);
    let ok = (|| -> std::io::Result<bool> {
        let mut stream = std::net::TcpStream::connect_timeout(&addr, timeout)?;
        stream.set_read_timeout(Some(timeout))?;
        write!(
            stream,
            "GET /healthz HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
        )?;
        let mut response = String::new();
        stream.read_to_string(&mut response)?;
        Ok(response.starts_with("HTTP/1.1 200"))
    })()
    .unwrap_or(false);
    if ok {
        ExitCode::SUCCESS
    } else {
        eprintln!("runs-replicator: no healthy worker answers on {addr}");
        ExitCode::from(1)
    }
}
