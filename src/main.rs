//! The `runs-replicator` binary: parses the command line, loads the configuration, and runs the
//! daemon, the one-shot preflight or a subcommand (`backfill`, `verify`). Errors are reported
//! here, once, as one line; the configuration's warnings are logged by every command, at every
//! log level.

use std::io::IsTerminal;
use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;

use runs_replicator::config::{Config, scrub};
use runs_replicator::{backfill, daemon, logging, preflight, verify};

mod cli;
use cli::{BackfillArgs, Cli, Command, Format, VerifyArgs};

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

    // trigger.dev's RUN_REPLICATION_ENABLED is its webapp's switch, not read here (a shared .env
    // turning the built-in service off must not stop this worker); the daemon's own switch is
    // the config key `enabled` (RUNS_REPLICATOR_ENABLED).
    let env = |k: &str| std::env::var(k).ok();
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
    if let Some(Command::Backfill(args)) = &cli.command {
        return run_backfill(config, args, &cli);
    }
    if let Some(Command::Verify(args)) = &cli.command {
        return run_verify(config, args, &cli);
    }
    if cli.health_check {
        return health_check(&config);
    }
    if cli.check_replica_identity {
        let _logs = logging::init(&config.log);
        logging::config_warnings(&config);
        return runtime.block_on(check(&config, cli.format));
    }
    config.clickhouse.null_sink = cli.null_sink;
    let _logs = logging::init(&config.log);
    // The first line of the daemon's log names what is running.
    tracing::info!(
        version = runs_replicator::version::VERSION,
        commit = runs_replicator::version::COMMIT,
        "runs-replicator {} starting",
        runs_replicator::version::line()
    );
    logging::config_warnings(&config);
    if config.clickhouse.null_sink {
        logging::config_warning(
            "--null-sink: batches are encoded and discarded, never inserted into ClickHouse, and \
             still acknowledged; for benchmarks and diagnostics only",
        );
    }
    runtime.block_on(daemon::run(config))
}

/// The runtime of a one-shot copy (backfill, verify). Decoding and transforming COPY rows is CPU
/// work: one thread per copying connection, at most one per core (the daemon itself stays on one
/// thread).
fn copying_runtime(parallel: usize) -> std::io::Result<tokio::runtime::Runtime> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(parallel.min(cores).max(1))
        .enable_all()
        .build()
}

fn run_backfill(mut config: Config, args: &BackfillArgs, cli: &Cli) -> ExitCode {
    if let Some(n) = args.parallel {
        if !(1..=64).contains(&n) {
            eprintln!("runs-replicator: invalid --parallel {n}: expected 1 to 64");
            return ExitCode::from(EXIT_CANNOT_RUN);
        }
        config.backfill.parallel = n;
    }
    config.clickhouse.null_sink = cli.null_sink;
    let _logs = logging::init(&config.log);
    logging::config_warnings(&config);
    let runtime = match copying_runtime(config.backfill.parallel) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("runs-replicator: cannot start the async runtime: {e}");
            return ExitCode::from(EXIT_CANNOT_RUN);
        }
    };
    let display = if std::io::stderr().is_terminal() {
        backfill::Display::Bar
    } else {
        backfill::Display::Lines
    };
    let request = backfill::Request {
        source: args.source.clone(),
        tables: args.tables.clone(),
        since: args.since.clone(),
        until: args.until.clone(),
        updated_since: args.updated_since.clone(),
        shard: None,
        payloads: args.payloads,
        parallel: config.backfill.parallel,
        restart: args.restart,
        display,
        owed: None,
    };
    let format = cli.format;
    let serve_metrics = cli.metrics_listen.is_some();
    let secrets: Vec<_> = config.secrets().into_iter().cloned().collect();
    let result = runtime.block_on(async move {
        let config = Arc::new(config);
        let health = Arc::new(runs_replicator::health::Health::new(
            std::time::Duration::from_millis(config.metrics.clickhouse_unready_after_ms),
            &[],
        ));
        if serve_metrics {
            let handle = runs_replicator::metrics::install().map_err(|e| e.to_string())?;
            runs_replicator::http::serve(config.metrics.listen, handle, health.clone())
                .await
                .map_err(|e| format!("cannot listen on {}: {e}", config.metrics.listen))?;
        }
        let client = runs_replicator::sink::client::build(&config)?;
        let store = Arc::new(runs_replicator::sink::state::StateStore::new(
            client.clone(),
            std::time::Duration::from_millis(config.clickhouse.request_timeout_ms),
        ));
        // A one-shot command: an insert ClickHouse does not store in time ends it (exit 2).
        let sink = Arc::new(
            runs_replicator::sink::insert::ClickHouseSink::new(&config, client, health)
                .giving_up_after(std::time::Duration::from_millis(
                    config.clickhouse.give_up_after_ms,
                )),
        );
        if config.clickhouse.null_sink {
            logging::config_warning(
                "--null-sink: rows are encoded and discarded, never inserted into ClickHouse; a dry \
                 run's checkpoints are kept apart, and no real backfill or bootstrap takes them for \
                 copied rows; for benchmarks only",
            );
        }
        backfill::run(config, &request, sink, store)
            .await
            .map_err(|e| e.to_string())
    });
    match result {
        Ok(summary) => {
            match format {
                Format::Text => print!("{}", summary.render_text()),
                Format::Json => println!("{}", summary.render_json()),
            }
            ExitCode::from(if summary.has_findings() { 1 } else { 0 })
        }
        Err(e) => {
            let secrets: Vec<_> = secrets.iter().collect();
            let line = scrub(&e, &secrets);
            let line = line.split_whitespace().collect::<Vec<_>>().join(" ");
            match format {
                Format::Text => eprintln!("runs-replicator: backfill: {line}"),
                Format::Json => {
                    eprintln!("runs-replicator: backfill: {line}");
                    println!("{}", serde_json::json!({ "ok": false, "error": line }));
                }
            }
            ExitCode::from(EXIT_CANNOT_RUN)
        }
    }
}

/// One line on stderr (and an `{"ok": false}` object on stdout for JSON): secrets scrubbed.
fn cannot_run(
    command: &str,
    error: &str,
    secrets: &[runs_replicator::config::Secret],
    format: Format,
) -> ExitCode {
    let secrets: Vec<_> = secrets.iter().collect();
    let line = scrub(error, &secrets);
    let line = line.split_whitespace().collect::<Vec<_>>().join(" ");
    eprintln!("runs-replicator: {command}: {line}");
    if format == Format::Json {
        println!("{}", serde_json::json!({ "ok": false, "error": line }));
    }
    ExitCode::from(EXIT_CANNOT_RUN)
}

fn run_verify(mut config: Config, args: &VerifyArgs, cli: &Cli) -> ExitCode {
    let secrets: Vec<_> = config.secrets().into_iter().cloned().collect();
    if let Some(n) = args.parallel {
        if !(1..=64).contains(&n) {
            let e = format!("invalid --parallel {n}: expected 1 to 64");
            return cannot_run("verify", &e, &secrets, cli.format);
        }
        config.backfill.parallel = n;
    }
    let _logs = logging::init(&config.log);
    logging::config_warnings(&config);
    let runtime = match copying_runtime(config.backfill.parallel) {
        Ok(r) => r,
        Err(e) => {
            let e = format!("cannot start the async runtime: {e}");
            return cannot_run("verify", &e, &secrets, cli.format);
        }
    };
    let request = verify::Request {
        source: args.source.clone(),
        since: args.since.clone().map(verify::Bound::At),
        until: args.until.clone().map(verify::Bound::At),
        repair: args.repair,
        parallel: config.backfill.parallel,
        pause: std::time::Duration::ZERO,
        display: if std::io::stderr().is_terminal() {
            verify::Display::Bar
        } else {
            verify::Display::Lines
        },
        max_report: args.max_report,
        progress: None,
    };
    let serve_metrics = cli.metrics_listen.is_some();
    let result = runtime.block_on(async move {
        let config = Arc::new(config);
        if serve_metrics {
            let handle = runs_replicator::metrics::install().map_err(|e| e.to_string())?;
            let health = Arc::new(runs_replicator::health::Health::new(
                std::time::Duration::from_millis(config.metrics.clickhouse_unready_after_ms),
                &[],
            ));
            runs_replicator::http::serve(config.metrics.listen, handle, health)
                .await
                .map_err(|e| format!("cannot listen on {}: {e}", config.metrics.listen))?;
        }
        let client = runs_replicator::sink::client::build(&config)?;
        let reads = Arc::new(runs_replicator::sink::verify_reads::VerifyReads::new(
            &config,
            client.clone(),
        ));
        let health = Arc::new(runs_replicator::health::Health::new(
            std::time::Duration::from_millis(config.metrics.clickhouse_unready_after_ms),
            &[],
        ));
        // A one-shot command: an insert ClickHouse does not store in time ends it (exit 2).
        let sink = Arc::new(
            runs_replicator::sink::insert::ClickHouseSink::new(&config, client, health)
                .giving_up_after(std::time::Duration::from_millis(
                    config.clickhouse.give_up_after_ms,
                )),
        );
        verify::run(config, &request, reads, sink)
            .await
            .map_err(|e| e.to_string())
    });
    match result {
        Ok(report) => {
            match cli.format {
                Format::Text => print!("{}", report.render_text()),
                Format::Json => println!("{}", report.render_json()),
            }
            ExitCode::from(report.exit_code())
        }
        Err(e) => cannot_run("verify", &e, &secrets, cli.format),
    }
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
