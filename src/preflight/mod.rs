//! The preflight: every precondition of correct replication, checked against the live servers.
//!
//! Run alone by `--check-replica-identity` and by the daemon at every start. It reads the
//! catalogs (`pg::catalog`, `sink::catalog`) and turns the readings into checks with pure
//! functions (`verdicts`); each check reports what it observed and, when it fails, the SQL (or
//! step) that fixes it (`report`). It only reads; creating the publication and the slot is
//! `source::setup`'s job, which runs before it in the daemon.
//!
//! Every reading is bounded: Postgres by `postgres.query_timeout_ms` (a backend that stops
//! answering fails the check run, it does not hang it), ClickHouse by its request timeout.

pub mod failover;
mod providers;
mod report;
pub mod verdicts;

#[cfg(test)]
mod tests;

pub use report::{Check, Report, Status};

use crate::config::{Config, Stream};
use crate::pg::{self, catalog};
use crate::rows::{PAYLOAD_COLUMNS, RUN_COLUMNS};
use crate::sink;
use crate::sink::catalog::ChReadError;

/// The preflight could not run: a server is unreachable or a query failed.
#[derive(Debug, thiserror::Error)]
pub enum PreflightError {
    #[error(transparent)]
    Connect(#[from] pg::ConnectError),
    #[error("Postgres query failed while checking {what}: {reason}")]
    Postgres { what: &'static str, reason: String },
    #[error("cannot check ClickHouse at {target} (database {database}): {reason}")]
    ClickHouse {
        target: String,
        database: String,
        reason: String,
    },
}

impl From<catalog::CatalogError> for PreflightError {
    fn from(e: catalog::CatalogError) -> Self {
        PreflightError::Postgres {
            what: e.what,
            reason: e.reason,
        }
    }
}

/// Runs every check, for every stream. `Err` means the checks could not be made (exit code 2).
pub async fn run(config: &Config) -> Result<Report, PreflightError> {
    let streams = config.streams();
    let several = streams.len() > 1;
    let mut checks = Vec::new();
    for stream in &streams {
        let url = &stream.source.url;
        let client = pg::connect(url, config.connect_timeout_of(url)).await?;
        let mut found = postgres_checks(&client, config, stream, config.query_timeout()).await?;
        if several {
            for c in &mut found {
                c.source = Some(stream.name.clone());
            }
        }
        checks.extend(found);
    }
    let ch = sink::client::build(config).map_err(|reason| ch_error(config, reason))?;
    checks.extend(clickhouse_checks(&ch, config).await?);
    Ok(Report {
        postgres: config
            .sources()
            .iter()
            .map(|s| s.url.to_string())
            .collect::<Vec<_>>()
            .join(", "),
        clickhouse: format!("{}/{}", config.clickhouse.url, config.clickhouse.database),
        checks,
    })
}

fn ch_error(config: &Config, reason: String) -> PreflightError {
    PreflightError::ClickHouse {
        target: config.clickhouse.url.to_string(),
        database: config.clickhouse.database.clone(),
        reason,
    }
}

/// The checks of one stream and of ClickHouse (the daemon's re-check after a hard stop).
pub async fn run_stream(config: &Config, stream: &Stream) -> Result<Vec<Check>, PreflightError> {
    let url = &stream.source.url;
    let client = pg::connect(url, config.connect_timeout_of(url)).await?;
    let mut checks = postgres_checks(&client, config, stream, config.query_timeout()).await?;
    let ch = sink::client::build(config).map_err(|reason| ch_error(config, reason))?;
    checks.extend(clickhouse_checks(&ch, config).await?);
    Ok(checks)
}

/// Reads a stream's server (on `client`, the primary), tables, publication and slot, and its
/// standbys' copies of the slot, and judges them; each reading of the primary within `timeout`.
pub async fn postgres_checks(
    client: &tokio_postgres::Client,
    config: &Config,
    stream: &Stream,
    timeout: std::time::Duration,
) -> Result<Vec<Check>, PreflightError> {
    let src = &stream.source;
    let server = within(
        timeout,
        "the server's settings",
        catalog::read_server(client),
    )
    .await?;
    let tables = within(
        timeout,
        "the tables",
        catalog::read_tables(client, &src.schema, &src.tables),
    )
    .await?;
    let publication = within(
        timeout,
        "the publication",
        catalog::read_publication(client, &stream.publication),
    )
    .await?;
    let slot = within(
        timeout,
        "the replication slot",
        catalog::read_slot(client, &stream.slot),
    )
    .await?;
    let mut checks = verdicts::version_gaps(stream, &server);
    checks.extend(verdicts::connection(&src.url.host, src.url.port));
    checks.extend(verdicts::server(&server));
    checks.extend(verdicts::tables(src, &tables, &server.user));
    let existing: Vec<String> = tables.iter().map(|t| t.name.clone()).collect();
    checks.extend(verdicts::publication(
        stream,
        publication.as_ref(),
        &existing,
    ));
    checks.extend(verdicts::slot(stream, slot.as_ref()));
    let holder = within(
        timeout,
        "the slot's holder",
        crate::pg::slot_holder::read(client, &stream.slot),
    )
    .await?;
    checks.extend(verdicts::slot_holder(stream, holder.as_ref()));
    let wanted = src.failover_slot.wanted(server.version_num);
    let (gating, standbys) = if wanted {
        (
            within(
                timeout,
                "the standby slots that gate the stream",
                catalog::read_gating_slots(client),
            )
            .await?,
            failover::probe_standbys(config, stream).await,
        )
    } else {
        Default::default()
    };
    checks.extend(failover::checks(
        stream,
        server.version_num,
        slot.as_ref(),
        &gating,
        &standbys,
    ));
    Ok(checks)
}

/// `reading`, or an error naming `what` when Postgres does not answer within `timeout`.
async fn within<T>(
    timeout: std::time::Duration,
    what: &'static str,
    reading: impl std::future::Future<Output = Result<T, catalog::CatalogError>>,
) -> Result<T, PreflightError> {
    match tokio::time::timeout(timeout, reading).await {
        Ok(r) => Ok(r?),
        Err(_) => Err(PreflightError::Postgres {
            what,
            reason: format!(
                "no answer within {} ms (postgres.query_timeout_ms)",
                timeout.as_millis()
            ),
        }),
    }
}

/// Reads the runs table (and the payload table, when one is configured) and judges them.
pub async fn clickhouse_checks(
    client: &clickhouse::Client,
    config: &Config,
) -> Result<Vec<Check>, PreflightError> {
    let ch = &config.clickhouse;
    let timeout = std::time::Duration::from_millis(ch.request_timeout_ms.min(10_000));
    let mut wanted = vec![verdicts::ChExpectation {
        target: format!("{}.{}", ch.database, ch.runs_table),
        columns: &RUN_COLUMNS[..],
        ddl: "002_task_runs_v2.sql",
        database: &ch.database,
        replacing: true,
    }];
    let mut names = vec![ch.runs_table.as_str()];
    if !ch.payloads_table.is_empty() {
        wanted.push(verdicts::ChExpectation {
            target: format!("{}.{}", ch.database, ch.payloads_table),
            columns: &PAYLOAD_COLUMNS[..],
            ddl: "003_raw_task_runs_payload_v1.sql",
            database: &ch.database,
            replacing: false,
        });
        names.push(ch.payloads_table.as_str());
    }
    let mut checks = Vec::new();
    for (want, table) in wanted.iter().zip(names) {
        let reading = sink::catalog::read_table(client, &ch.database, table, timeout)
            .await
            .map_err(|e: ChReadError| ch_error(config, e.to_string()))?;
        checks.extend(verdicts::clickhouse_table(want, reading.as_ref()));
    }
    Ok(checks)
}
