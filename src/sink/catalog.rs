//! Readings of ClickHouse's own catalog: a table's engine and columns, for the preflight.

use std::time::Duration;

/// A ClickHouse table as `system.tables` and `system.columns` describe it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChTableReading {
    pub engine: String,
    /// (name, type) in table order.
    pub columns: Vec<(String, String)>,
}

/// A ClickHouse read failed or did not answer in time.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{what}: {reason}")]
pub struct ChReadError {
    pub what: &'static str,
    pub reason: String,
}

/// `query`'s answer within `timeout`, or why there is none.
pub async fn answer<T>(
    what: &'static str,
    timeout: Duration,
    query: impl std::future::Future<Output = clickhouse::error::Result<T>>,
) -> Result<T, ChReadError> {
    match tokio::time::timeout(timeout, query).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(ChReadError {
            what,
            reason: super::client::describe(&e),
        }),
        Err(_) => Err(ChReadError {
            what,
            reason: format!("no answer within {} ms", timeout.as_millis()),
        }),
    }
}

/// The table `database.table`, or `None` when it does not exist.
pub async fn read_table(
    client: &clickhouse::Client,
    database: &str,
    table: &str,
    timeout: Duration,
) -> Result<Option<ChTableReading>, ChReadError> {
    let columns: Vec<(String, String)> = answer(
        "reading system.columns",
        timeout,
        client
            .query("SELECT name, type FROM system.columns WHERE database = ? AND table = ? ORDER BY position")
            .bind(database)
            .bind(table)
            .fetch_all(),
    )
    .await?;
    if columns.is_empty() {
        return Ok(None);
    }
    let engine: String = answer(
        "reading system.tables",
        timeout,
        client
            .query("SELECT engine FROM system.tables WHERE database = ? AND name = ?")
            .bind(database)
            .bind(table)
            .fetch_one(),
    )
    .await?;
    Ok(Some(ChTableReading { engine, columns }))
}
