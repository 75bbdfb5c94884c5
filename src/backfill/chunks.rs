//! Chunk planning: each table split into key ranges on `id` of about `chunk_rows` rows, and the
//! COPY statement that reads one range.
//!
//! Boundaries come from one pass over the primary-key index (every `chunk_rows`-th id, plus the
//! last), in bounded statements outside the copy snapshot, not from `pg_stats` histogram bounds: those need a recent
//! ANALYZE, are approximate (a chunk may hold many times `chunk_rows`, and memory and resume
//! granularity follow chunk size), and are coarse on big tables (100 buckets by default). The pass
//! reads only ids, far less than the copy itself. The plan is stored with the job
//! (`checkpoint`), so a resumed run copies exactly the same ranges even though the table changed
//! meanwhile; the ranges partition the whole key space (the first is open below, the last open
//! above), so a run inserted after planning still falls in one.

use serde::{Deserialize, Serialize};
use tokio_postgres::Client;

use super::BackfillError;
use crate::pg::{quote_ident, quote_literal};
use crate::rows::Col;

/// A `createdAt` window: `since` inclusive, `until` exclusive, as canonical UTC timestamps
/// (`2026-11-20 10:00:00.000`); `None` is unbounded. `updated_since` also keeps only runs
/// updated at or after it (the gap a lost slot left: see `daemon::bootstrap`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Window {
    pub since: Option<String>,
    pub until: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_since: Option<String>,
    /// One shard's rows only: its publication's row filter (a sharded stream bootstraps its
    /// own slice).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard: Option<String>,
}

impl Window {
    /// The SQL condition (empty when unbounded), with literals: COPY takes no parameters.
    pub fn condition(&self) -> Vec<String> {
        let mut out = Vec::new();
        if let Some(since) = &self.since {
            out.push(format!(
                "\"createdAt\" >= {}::timestamp",
                quote_literal(since)
            ));
        }
        if let Some(until) = &self.until {
            out.push(format!(
                "\"createdAt\" < {}::timestamp",
                quote_literal(until)
            ));
        }
        if let Some(updated) = &self.updated_since {
            out.push(format!(
                "\"updatedAt\" >= {}::timestamp",
                quote_literal(updated)
            ));
        }
        if let Some(filter) = &self.shard {
            out.push(format!("({filter})"));
        }
        out
    }
}

/// One table's plan: the upper bound of every chunk but the last, and each chunk's row count
/// when it was planned (for progress; the last chunk, open above, is planned empty).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TablePlan {
    pub table: String,
    pub bounds: Vec<String>,
    pub planned_rows: Vec<u64>,
}

/// One key range of one table: `lo < id <= hi`, open where `None`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chunk {
    pub table: String,
    pub index: usize,
    pub lo: Option<String>,
    pub hi: Option<String>,
    pub planned_rows: u64,
}

impl TablePlan {
    /// The plan from the planning query's rows: `(id, row number)` of every `chunk_rows`-th id
    /// and of the last id, in id order.
    pub fn from_boundaries(table: &str, boundaries: Vec<(String, i64)>) -> TablePlan {
        let mut bounds = Vec::with_capacity(boundaries.len());
        let mut planned_rows = Vec::with_capacity(boundaries.len() + 1);
        let mut before = 0i64;
        for (id, rn) in boundaries {
            // The last id can also be a multiple of chunk_rows: it then comes once.
            if rn == before {
                continue;
            }
            planned_rows.push((rn - before) as u64);
            before = rn;
            bounds.push(id);
        }
        planned_rows.push(0);
        TablePlan {
            table: table.to_string(),
            bounds,
            planned_rows,
        }
    }

    /// The chunks, in key order: one more than there are bounds.
    pub fn chunks(&self) -> Vec<Chunk> {
        (0..=self.bounds.len())
            .map(|i| Chunk {
                table: self.table.clone(),
                index: i,
                lo: i.checked_sub(1).map(|j| self.bounds[j].clone()),
                hi: self.bounds.get(i).cloned(),
                planned_rows: self.planned_rows.get(i).copied().unwrap_or(0),
            })
            .collect()
    }

    pub fn planned_total(&self) -> u64 {
        self.planned_rows.iter().sum()
    }
}

/// Ids read by one planning statement at most: each is bounded (its own short statement
/// snapshot), whatever the table's size.
const PLAN_STEP: u64 = 1_000_000;

/// Plans `schema.table` on `client`, outside any copy snapshot: one ordered pass over the primary
/// key in statements of about [`PLAN_STEP`] ids each (none runs long on a big table); the plan
/// needs no snapshot, the ranges partition the whole key space.
pub async fn plan_table(
    client: &Client,
    schema: &str,
    table: &str,
    window: &Window,
    chunk_rows: u64,
) -> Result<TablePlan, BackfillError> {
    let chunk_rows = chunk_rows.max(1);
    // A multiple of chunk_rows: every step's row numbers continue the previous step's.
    let step = PLAN_STEP.div_ceil(chunk_rows).max(1) * chunk_rows;
    let conditions = window.condition();
    let filter = |after: bool| {
        let mut all = conditions.clone();
        if after {
            all.insert(0, "id > $3".into());
        }
        if all.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", all.join(" AND "))
        }
    };
    // lead() marks the step's last id without a second scan.
    let sql = |after: bool| {
        format!(
            "SELECT id, rn FROM (\
               SELECT id, row_number() OVER w AS rn, lead(id) OVER w IS NULL AS last \
               FROM (SELECT id FROM {}.{} {} ORDER BY id LIMIT $2) s WINDOW w AS (ORDER BY id)\
             ) s WHERE rn % $1 = 0 OR last ORDER BY rn",
            quote_ident(schema),
            quote_ident(table),
            filter(after)
        )
    };
    let (first, next) = (sql(false), sql(true));
    let failed = |e: tokio_postgres::Error| BackfillError::Postgres {
        what: format!("planning the chunks of {table}"),
        reason: crate::pg::describe(&e),
    };
    let mut boundaries: Vec<(String, i64)> = Vec::new();
    let mut offset = 0i64;
    let mut after: Option<String> = None;
    loop {
        let (chunk, limit) = (chunk_rows as i64, step as i64);
        let rows = match &after {
            None => client.query(first.as_str(), &[&chunk, &limit]).await,
            Some(a) => client.query(next.as_str(), &[&chunk, &limit, a]).await,
        }
        .map_err(failed)?;
        let Some(last) = rows.last() else { break };
        let (last_id, last_rn): (String, i64) = (last.get(0), last.get(1));
        // A full step ends on a multiple of chunk_rows: its last id is a bound either way.
        boundaries.extend(rows.iter().map(|r| (r.get(0), offset + r.get::<_, i64>(1))));
        if last_rn < limit {
            break;
        }
        offset += limit;
        after = Some(last_id);
    }
    Ok(TablePlan::from_boundaries(table, boundaries))
}

/// `COPY (SELECT <every Col> FROM schema.table WHERE <after, chunk's upper bound, window> ORDER
/// BY id LIMIT n) TO STDOUT`: one page of a chunk, in key order, from `after` (the chunk's own
/// lower bound on its first page), so a page cut short goes on from the last row stored.
pub fn page_sql(
    schema: &str,
    chunk: &Chunk,
    window: &Window,
    after: Option<&str>,
    rows: usize,
) -> String {
    let page = Chunk {
        lo: after.map(str::to_string),
        ..chunk.clone()
    };
    let sql = copy_sql(schema, &page, window);
    let select = sql
        .strip_suffix(") TO STDOUT")
        .expect("copy_sql ends with the COPY's target");
    format!("{select} ORDER BY id LIMIT {rows}) TO STDOUT")
}

/// `COPY (SELECT <every Col, in Col::ALL order> FROM schema.table WHERE <range and window>) TO
/// STDOUT`. Columns are selected as they are (no `::text`), so COPY renders each with its type's
/// output function, as pgoutput does (`boolean` is `t`, where `::text` would say `true`).
pub fn copy_sql(schema: &str, chunk: &Chunk, window: &Window) -> String {
    let mut conditions = Vec::new();
    if let Some(lo) = &chunk.lo {
        conditions.push(format!("id > {}", quote_literal(lo)));
    }
    if let Some(hi) = &chunk.hi {
        conditions.push(format!("id <= {}", quote_literal(hi)));
    }
    conditions.extend(window.condition());
    copy_where_sql(schema, &chunk.table, &conditions)
}

/// `COPY (SELECT <every Col, in Col::ALL order> FROM schema.table [WHERE <conditions>]) TO
/// STDOUT`.
pub fn copy_where_sql(schema: &str, table: &str, conditions: &[String]) -> String {
    let columns: Vec<String> = Col::ALL.iter().map(|c| quote_ident(c.pg_name())).collect();
    let filter = if conditions.is_empty() {
        String::new()
    } else {
        format!(" WHERE {}", conditions.join(" AND "))
    };
    format!(
        "COPY (SELECT {} FROM {}.{}{filter}) TO STDOUT",
        columns.join(", "),
        quote_ident(schema),
        quote_ident(table)
    )
}

/// `COPY (SELECT <every Col> FROM schema.table WHERE id IN (<ids>) [AND <window>]) TO STDOUT`:
/// the rows of a few runs (a verify's re-check, a repair). Literals, as COPY takes no parameters;
/// the primary key finds them.
pub fn ids_copy_sql(schema: &str, table: &str, ids: &[String], window: Option<&Window>) -> String {
    let columns: Vec<String> = Col::ALL.iter().map(|c| quote_ident(c.pg_name())).collect();
    let list: Vec<String> = ids.iter().map(|id| quote_literal(id)).collect();
    let mut conditions = vec![format!("id IN ({})", list.join(", "))];
    if let Some(window) = window {
        conditions.extend(window.condition());
    }
    format!(
        "COPY (SELECT {} FROM {}.{} WHERE {}) TO STDOUT",
        columns.join(", "),
        quote_ident(schema),
        quote_ident(table),
        conditions.join(" AND ")
    )
}
