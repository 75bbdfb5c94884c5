//! Repairing changes that were written while a table could not be replicated completely.
//!
//! Logical decoding reads the catalog as it was when each change was made. Changes made while a
//! table's replica identity was DEFAULT (or while a required column was missing) therefore keep
//! arriving incomplete even after an operator fixed the table: a DELETE carries only the run id,
//! an UPDATE has no old row to take unchanged TOASTed values from. The pipeline stops on such
//! changes while the table is still broken; once it is fixed, it replays them through here:
//!
//! - a missing value comes from the run's current row in Postgres. The current row is newer than
//!   the change, but every later change is still ahead in the stream, so the final state is
//!   right. If the row is gone, a later DELETE in the stream supersedes the change, which is
//!   skipped.
//! - a DELETE (or a key change) tombstones the rows of that run ClickHouse shows under FINAL,
//!   after everything before it has been inserted.

use crate::pg::quote_ident;
use crate::source::relation::TableBinding;
use crate::transform::{Col, RunRow};

/// Whether the table is complete now: replica identity FULL and every required column present.
pub async fn table_is_fixed(
    pg: &tokio_postgres::Client,
    binding: &TableBinding,
) -> Result<bool, String> {
    let row = pg
        .query_opt(
            "SELECT c.relreplident::text, \
                    ARRAY(SELECT a.attname::text FROM pg_attribute a \
                          WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped) \
             FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE n.nspname = $1 AND c.relname = $2",
            &[&binding.schema, &binding.name],
        )
        .await
        .map_err(|e| crate::pg::describe(&e))?;
    let Some(row) = row else { return Ok(false) };
    let identity: String = row.get(0);
    let columns: Vec<String> = row.get(1);
    Ok(identity == "f"
        && Col::ALL
            .iter()
            .all(|c| columns.iter().any(|n| n == c.pg_name())))
}

/// The current text values of `cols` for run `id`, or `None` when the run is gone.
pub async fn current_values(
    pg: &tokio_postgres::Client,
    binding: &TableBinding,
    id: &str,
    cols: &[Col],
) -> Result<Option<Vec<Option<String>>>, String> {
    let select: Vec<String> = cols
        .iter()
        .map(|c| format!("{}::text", quote_ident(c.pg_name())))
        .collect();
    let sql = format!(
        "SELECT {} FROM {}.{} WHERE id = $1",
        select.join(", "),
        quote_ident(&binding.schema),
        quote_ident(&binding.name)
    );
    let row = pg
        .query_opt(sql.as_str(), &[&id])
        .await
        .map_err(|e| crate::pg::describe(&e))?;
    Ok(row.map(|r| {
        (0..cols.len())
            .map(|i| r.get::<_, Option<String>>(i))
            .collect()
    }))
}

/// The rows of run `id` ClickHouse shows under FINAL, as tombstones.
pub async fn tombstones(
    ch: &clickhouse::Client,
    runs_table: &str,
    id: &str,
) -> Result<Vec<RunRow>, String> {
    let rows: Vec<RunRow> = ch
        .query(&format!(
            "SELECT ?fields FROM {runs_table} FINAL WHERE run_id = ?"
        ))
        .bind(id)
        .with_setting("output_format_binary_write_json_as_string", "1")
        .fetch_all()
        .await
        .map_err(|e| crate::sink::client::describe(&e))?;
    Ok(rows
        .into_iter()
        .map(|mut r| {
            r._is_deleted = 1;
            r
        })
        .collect())
}
