//! `runs-replicator verify` against the real services: the canonical hash equals ClickHouse's for
//! tricky values; drift of every kind planted in ClickHouse while the daemon streams a live
//! workload is reported exactly, repaired, and gone; a window reads only its rows; the daemon's
//! background verify finds drift and says so in /metrics, and is abandoned at its timeout when
//! stuck; runs the stream has not delivered or that keep changing are unsettled, not drift; a run
//! a newer tombstone hides is unrepairable, not "rewritten"; `backfill` and `verify --repair`
//! exit 2 through a ClickHouse outage; bad input exits 2 with one line.

mod canonical;
mod continuous;
mod errors;
mod live;
mod outage;
mod sources;
mod unrepairable;
mod unsettled;
mod window;

use std::path::Path;
use std::process::Output;
use std::sync::Arc;

use runs_replicator::config::Config;
use runs_replicator::health::Health;
use runs_replicator::pipeline::sink::Sink;
use runs_replicator::rows::RunRow;
use runs_replicator::sink::insert::ClickHouseSink;

use crate::support::worker;

/// Runs `runs-replicator verify <args>` with `config`.
pub fn verify(config: &Path, args: &[&str]) -> Output {
    let mut cmd = worker::command(config);
    cmd.arg("verify").args(args);
    cmd.output().expect("run runs-replicator verify")
}

/// The `--format json` report on stdout, whatever the exit code (a verify that leaves runs
/// unsettled reports and exits 2).
pub fn json(out: &Output) -> serde_json::Value {
    let stdout = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(stdout.trim()).unwrap_or_else(|e| {
        panic!(
            "{e}: exit {:?}\nstdout: {stdout}\nstderr: {}",
            out.status.code(),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

/// The `--format json` report of a verify that could check (exit 0 or 1).
pub fn report(out: &Output) -> serde_json::Value {
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        matches!(out.status.code(), Some(0 | 1)),
        "verify could not check ({:?}):\nstdout: {stdout}\nstderr: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("{e}: {stdout}"))
}

/// The configuration the binary would load from `path` (no environment).
pub fn load(path: &Path) -> Config {
    Config::load(Some(path), &|_| None, &[]).expect("test config loads")
}

/// The worker's own sink over the test's ClickHouse database, to plant rows as the stream writes
/// them.
pub fn sink(config: &Config) -> Arc<ClickHouseSink> {
    let client = runs_replicator::sink::client::build(config).unwrap();
    let health = Arc::new(Health::new(std::time::Duration::from_secs(60), &[]));
    Arc::new(ClickHouseSink::new(config, client, health))
}

/// Inserts `rows` into the runs table as they are (their versions decide what FINAL shows).
pub async fn plant(config: &Config, mut rows: Vec<RunRow>) {
    rows.sort_by(|a, b| a.sort_key().cmp(&b.sort_key()));
    let rows: Vec<Box<RunRow>> = rows.into_iter().map(Box::new).collect();
    sink(config).write(&rows, &[]).await.expect("plant rows");
}
