//! The preflight: every precondition of correct replication, checked against the live servers.
//!
//! Run alone by `--check-replica-identity` and by the daemon at every start. Each check reports
//! what it observed and, when it fails, the SQL (or step) that fixes it. It only reads; creating
//! the publication and the slot is `source::setup`'s job, which runs before it in the daemon.

use std::fmt::Write as _;

use serde::Serialize;

use crate::config::Config;
use crate::pg::{self, quote_ident, quote_literal};
use crate::sink;
use crate::transform::Col;
use crate::transform::output::{PAYLOAD_COLUMNS, RUN_COLUMNS};

#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Pass,
    Warn,
    Fail,
}

#[derive(Clone, Debug, Serialize)]
pub struct Check {
    /// A stable identifier, e.g. `replica_identity`.
    pub check: &'static str,
    /// What was checked: `server`, a table, the publication, the slot.
    pub target: String,
    pub status: Status,
    pub observed: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub postgres: String,
    pub clickhouse: String,
    pub checks: Vec<Check>,
}

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

impl Report {
    pub fn failed(&self) -> impl Iterator<Item = &Check> {
        self.checks.iter().filter(|c| c.status == Status::Fail)
    }

    pub fn passed(&self) -> bool {
        self.failed().next().is_none()
    }

    pub fn render_text(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "runs-replicator preflight: {} -> {}\n",
            self.postgres, self.clickhouse
        );
        let check_w = self
            .checks
            .iter()
            .map(|c| c.check.len())
            .max()
            .unwrap_or(5)
            .max(5);
        let target_w = self
            .checks
            .iter()
            .map(|c| c.target.len())
            .max()
            .unwrap_or(6)
            .max(6);
        let _ = writeln!(
            out,
            "  {:<6}  {:<check_w$}  {:<target_w$}  OBSERVED",
            "STATUS", "CHECK", "TARGET"
        );
        for c in &self.checks {
            let status = match c.status {
                Status::Pass => "ok",
                Status::Warn => "warn",
                Status::Fail => "FAIL",
            };
            let _ = writeln!(
                out,
                "  {status:<6}  {:<check_w$}  {:<target_w$}  {}",
                c.check, c.target, c.observed
            );
            if let Some(fix) = &c.fix {
                let _ = writeln!(out, "  {:<6}  fix: {fix}", "");
            }
        }
        let failed = self.failed().count();
        let warned = self
            .checks
            .iter()
            .filter(|c| c.status == Status::Warn)
            .count();
        let passed = self.checks.len() - failed - warned;
        let _ = writeln!(
            out,
            "\n{failed} failed, {warned} warning{}, {passed} passed.",
            if warned == 1 { "" } else { "s" }
        );
        out
    }

    pub fn render_json(&self) -> String {
        #[derive(Serialize)]
        struct Out<'a> {
            ok: bool,
            failed: usize,
            #[serde(flatten)]
            report: &'a Report,
        }
        serde_json::to_string_pretty(&Out {
            ok: self.passed(),
            failed: self.failed().count(),
            report: self,
        })
        .expect("report serializes")
    }

    /// One line naming every failure, for the daemon's refusal to start.
    pub fn summary(&self) -> String {
        self.failed()
            .map(|c| {
                let fix = c
                    .fix
                    .as_deref()
                    .map(|f| format!(" (fix: {f})"))
                    .unwrap_or_default();
                format!("{} {}: {}{fix}", c.check, c.target, c.observed)
            })
            .collect::<Vec<_>>()
            .join("; ")
    }
}

/// Runs every check. `Err` means the checks could not be made (exit code 2).
pub async fn run(config: &Config) -> Result<Report, PreflightError> {
    let client = pg::connect(&config.postgres.url, config.connect_timeout()).await?;
    let mut checks = postgres_checks(&client, config).await?;
    let ch = sink::client::build(config).map_err(|reason| ch_error(config, reason))?;
    checks.extend(clickhouse_checks(&ch, config).await?);
    Ok(Report {
        postgres: config.postgres.url.to_string(),
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

fn check(
    check: &'static str,
    target: impl Into<String>,
    ok: bool,
    observed: impl Into<String>,
    fix: impl FnOnce() -> String,
) -> Check {
    Check {
        check,
        target: target.into(),
        status: if ok { Status::Pass } else { Status::Fail },
        observed: observed.into(),
        fix: (!ok).then(fix),
    }
}

fn q(what: &'static str) -> impl Fn(tokio_postgres::Error) -> PreflightError {
    move |e| PreflightError::Postgres {
        what,
        reason: pg::describe(&e),
    }
}

pub async fn postgres_checks(
    client: &tokio_postgres::Client,
    config: &Config,
) -> Result<Vec<Check>, PreflightError> {
    let pgc = &config.postgres;
    let mut checks = Vec::new();
    let server = client
        .query_one(
            "SELECT current_setting('wal_level'), current_setting('server_encoding'), \
                    current_setting('max_wal_senders')::int, current_setting('server_version_num')::int, \
                    current_setting('max_slot_wal_keep_size'), current_user::text, \
                    (SELECT rolreplication OR rolsuper FROM pg_roles WHERE rolname = current_user)",
            &[],
        )
        .await
        .map_err(q("server settings"))?;
    let wal_level: String = server.get(0);
    let encoding: String = server.get(1);
    let max_wal_senders: i32 = server.get(2);
    let version: i32 = server.get(3);
    let keep_size: String = server.get(4);
    let user: String = server.get(5);
    let can_replicate: bool = server.get::<_, Option<bool>>(6).unwrap_or(false);

    checks.push(check(
        "wal_level",
        "server",
        wal_level == "logical",
        &wal_level,
        || "ALTER SYSTEM SET wal_level = logical; -- then restart Postgres".into(),
    ));
    checks.push(check(
        "max_wal_senders",
        "server",
        max_wal_senders > 0,
        max_wal_senders.to_string(),
        || "ALTER SYSTEM SET max_wal_senders = 10; -- then restart Postgres".into(),
    ));
    checks.push(check(
        "server_encoding",
        "server",
        encoding == "UTF8",
        &encoding,
        || "the database must use UTF8: pgoutput sends text in the server encoding".into(),
    ));
    checks.push(check(
        "replication_role",
        format!("role {user}"),
        can_replicate,
        if can_replicate {
            "REPLICATION"
        } else {
            "no REPLICATION attribute"
        },
        || format!("ALTER ROLE {} REPLICATION;", quote_ident(&user)),
    ));
    if keep_size == "-1" {
        checks.push(Check {
            check: "max_slot_wal_keep_size",
            target: "server".into(),
            status: Status::Warn,
            observed: "-1 (a stalled slot can retain WAL until the disk is full)".into(),
            fix: Some("ALTER SYSTEM SET max_slot_wal_keep_size = '100GB'; SELECT pg_reload_conf(); -- size it to hours of WAL".into()),
        });
    } else {
        checks.push(check(
            "max_slot_wal_keep_size",
            "server",
            true,
            keep_size,
            String::new,
        ));
    }

    // Tables: existence, kind, replica identity, columns, SELECT privilege.
    let rows = client
        .query(
            "SELECT c.relname::text, c.oid::int8, c.relreplident::text, c.relkind::text, \
                    has_table_privilege(c.oid, 'SELECT'), \
                    ARRAY(SELECT a.attname::text FROM pg_attribute a \
                          WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped) \
             FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE n.nspname = $1 AND c.relname = ANY($2)",
            &[&pgc.schema, &pgc.tables],
        )
        .await
        .map_err(q("tables"))?;
    for table in &pgc.tables {
        let target = format!("{}.{}", quote_ident(&pgc.schema), quote_ident(table));
        let Some(row) = rows.iter().find(|r| r.get::<_, String>(0) == *table) else {
            checks.push(check("table_exists", &target, false, "does not exist", || {
                "create it (config/postgres/*.sql has the DDL) or fix postgres.schema / postgres.tables".to_string()
            }));
            continue;
        };
        let oid: i64 = row.get(1);
        let ident: String = row.get(2);
        let kind: String = row.get(3);
        let can_select: bool = row.get(4);
        let columns: Vec<String> = row.get(5);
        checks.push(check(
            "table_exists",
            &target,
            kind == "r",
            format!("oid {oid}, relkind '{kind}'"),
            || "the worker replicates ordinary tables (relkind 'r') only".into(),
        ));
        let ident_name = match ident.as_str() {
            "f" => "full",
            "d" => "default",
            "n" => "nothing",
            "i" => "index",
            other => other,
        };
        checks.push(check(
            "replica_identity",
            &target,
            ident == "f",
            format!("{ident_name} (relreplident = '{ident}')"),
            || format!("ALTER TABLE {target} REPLICA IDENTITY FULL;"),
        ));
        let missing: Vec<&str> = Col::ALL
            .iter()
            .map(|c| c.pg_name())
            .filter(|name| !columns.iter().any(|c| c == name))
            .collect();
        checks.push(check(
            "table_columns",
            &target,
            missing.is_empty(),
            if missing.is_empty() {
                format!("all {} columns the transform reads", Col::COUNT)
            } else {
                format!("missing {}", missing.join(", "))
            },
            || "add the missing columns (config/postgres/*.sql has the full DDL)".into(),
        ));
        checks.push(check(
            "table_select",
            &target,
            can_select,
            if can_select {
                "SELECT granted"
            } else {
                "no SELECT privilege"
            },
            || format!("GRANT SELECT ON {target} TO {};", quote_ident(&user)),
        ));
    }

    // Publication: exists, covers every table, publishes insert/update/delete, no filters.
    let publication = client
        .query_opt(
            "SELECT pubinsert, pubupdate, pubdelete, pubtruncate FROM pg_publication WHERE pubname = $1",
            &[&pgc.publication],
        )
        .await
        .map_err(q("publication"))?;
    let pub_target = format!("publication {}", quote_ident(&pgc.publication));
    let all_tables = pgc
        .tables
        .iter()
        .map(|t| format!("{}.{}", quote_ident(&pgc.schema), quote_ident(t)))
        .collect::<Vec<_>>()
        .join(", ");
    match publication {
        None if pgc.create_publication => checks.push(check(
            "publication",
            &pub_target,
            true,
            "absent; created at start (postgres.create_publication = true)",
            String::new,
        )),
        None => checks.push(check("publication", &pub_target, false, "does not exist", || {
            format!(
                "CREATE PUBLICATION {} FOR TABLE {all_tables} WITH (publish = 'insert, update, delete');",
                quote_ident(&pgc.publication)
            )
        })),
        Some(row) => {
            let (ins, upd, del, trunc): (bool, bool, bool, bool) = (row.get(0), row.get(1), row.get(2), row.get(3));
            let mut actions = Vec::new();
            for (on, name) in [(ins, "insert"), (upd, "update"), (del, "delete"), (trunc, "truncate")] {
                if on {
                    actions.push(name);
                }
            }
            checks.push(check(
                "publication_actions",
                &pub_target,
                ins && upd && del,
                format!("publish = '{}'", actions.join(", ")),
                || {
                    format!(
                        "ALTER PUBLICATION {} SET (publish = 'insert, update, delete{}');",
                        quote_ident(&pgc.publication),
                        if trunc { ", truncate" } else { "" }
                    )
                },
            ));
            let filters = version >= 150_000;
            let sql = if filters {
                "SELECT tablename::text, rowfilter IS NOT NULL, attnames::text[] FROM pg_publication_tables \
                 WHERE pubname = $1 AND schemaname = $2"
            } else {
                "SELECT tablename::text, false, NULL::text[] FROM pg_publication_tables \
                 WHERE pubname = $1 AND schemaname = $2"
            };
            let members = client
                .query(sql, &[&pgc.publication, &pgc.schema])
                .await
                .map_err(q("publication tables"))?;
            for table in &pgc.tables {
                let target = format!("{}.{}", quote_ident(&pgc.schema), quote_ident(table));
                let member = members.iter().find(|r| r.get::<_, String>(0) == *table);
                checks.push(check(
                    "publication_table",
                    &target,
                    member.is_some(),
                    match member {
                        Some(_) => format!("in {}", quote_ident(&pgc.publication)),
                        None => format!("not in {}", quote_ident(&pgc.publication)),
                    },
                    || format!("ALTER PUBLICATION {} ADD TABLE {target};", quote_ident(&pgc.publication)),
                ));
                if let Some(m) = member {
                    let row_filter: bool = m.get(1);
                    let attnames: Option<Vec<String>> = m.get(2);
                    let partial = attnames.as_ref().is_some_and(|names| {
                        Col::ALL.iter().any(|c| !names.iter().any(|n| n == c.pg_name()))
                    });
                    if row_filter || partial {
                        checks.push(check(
                            "publication_filter",
                            &target,
                            false,
                            if row_filter { "has a row filter (WHERE)" } else { "has a column list without some required columns" },
                            || format!("ALTER PUBLICATION {} SET TABLE {all_tables};", quote_ident(&pgc.publication)),
                        ));
                    }
                }
            }
        }
    }

    // Slot: when present it must be ours (pgoutput, logical, this database) and not invalidated.
    let slot = client
        .query_opt(
            "SELECT plugin::text, slot_type::text, database::text, wal_status::text, active, \
                    confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = $1",
            &[&pgc.slot],
        )
        .await
        .map_err(q("replication slot"))?;
    let slot_target = format!("slot {}", pgc.slot);
    let drop_sql = format!(
        "SELECT pg_drop_replication_slot({});",
        quote_literal(&pgc.slot)
    );
    match slot {
        None => checks.push(check(
            "slot",
            &slot_target,
            pgc.create_slot,
            if pgc.create_slot {
                "absent; created at start (postgres.create_slot = true)"
            } else {
                "does not exist"
            },
            || {
                format!(
                    "SELECT pg_create_logical_replication_slot({}, 'pgoutput');",
                    quote_literal(&pgc.slot)
                )
            },
        )),
        Some(row) => {
            let plugin: Option<String> = row.get(0);
            let slot_type: String = row.get(1);
            let database: Option<String> = row.get(2);
            let wal_status: Option<String> = row.get(3);
            let active: bool = row.get(4);
            let confirmed: Option<String> = row.get(5);
            let plugin = plugin.unwrap_or_default();
            let ours = slot_type == "logical"
                && plugin == "pgoutput"
                && database.as_deref() == Some(&pgc.url.dbname);
            checks.push(check(
                "slot",
                &slot_target,
                ours,
                format!(
                    "{slot_type}, plugin {plugin}, database {}, {}, confirmed_flush_lsn {}",
                    database.as_deref().unwrap_or("-"),
                    if active { "active" } else { "inactive" },
                    confirmed.as_deref().unwrap_or("-")
                ),
                || format!("this slot belongs to something else: use another postgres.slot, or {drop_sql}"),
            ));
            let status = wal_status.unwrap_or_else(|| "unknown".into());
            checks.push(check(
                "slot_wal_status",
                &slot_target,
                status != "lost",
                &status,
                || format!("the slot lost WAL it needed: {drop_sql} (the worker creates a new one) and backfill the gap"),
            ));
        }
    }
    Ok(checks)
}

/// Types that have the same RowBinary encoding compare equal: `LowCardinality(T)` is sent as `T`,
/// `DateTime64(3, 'UTC')` as `DateTime64(3)`, any `JSON(…)` as a string.
fn normalize_type(t: &str) -> String {
    let mut s = t.replace(' ', "");
    while let Some(i) = s.find("LowCardinality(") {
        let inner_start = i + "LowCardinality(".len();
        let mut depth = 1;
        let mut end = inner_start;
        for (j, ch) in s[inner_start..].char_indices() {
            match ch {
                '(' => depth += 1,
                ')' => {
                    depth -= 1;
                    if depth == 0 {
                        end = inner_start + j;
                        break;
                    }
                }
                _ => {}
            }
        }
        s = format!("{}{}{}", &s[..i], &s[inner_start..end], &s[end + 1..]);
    }
    if let Some(i) = s.find("JSON(") {
        let end = s[i..].find(')').map_or(s.len(), |e| i + e + 1);
        s = format!("{}JSON{}", &s[..i], &s[end..]);
    }
    if let Some(i) = s.find("DateTime64(3,") {
        let end = s[i..].find(')').map_or(s.len(), |e| i + e);
        s = format!("{}DateTime64(3{}", &s[..i], &s[end..]);
    }
    s
}

pub async fn clickhouse_checks(
    client: &clickhouse::Client,
    config: &Config,
) -> Result<Vec<Check>, PreflightError> {
    let ch = &config.clickhouse;
    let timeout = std::time::Duration::from_millis(ch.request_timeout_ms.min(10_000));
    let mut checks = Vec::new();
    let mut tables = vec![(
        &ch.runs_table,
        &RUN_COLUMNS[..],
        "002_task_runs_v2.sql",
        true,
    )];
    if !ch.payloads_table.is_empty() {
        tables.push((
            &ch.payloads_table,
            &PAYLOAD_COLUMNS[..],
            "003_raw_task_runs_payload_v1.sql",
            false,
        ));
    }
    for (table, expected, ddl, replacing) in tables {
        let target = format!("{}.{}", ch.database, table);
        let columns: Vec<(String, String)> = ch_answer(
            config,
            timeout,
            "reading system.columns",
            client
                .query("SELECT name, type FROM system.columns WHERE database = ? AND table = ? ORDER BY position")
                .bind(&ch.database)
                .bind(table.as_str())
                .fetch_all(),
        )
        .await?;
        if columns.is_empty() {
            checks.push(check(
                "clickhouse_table",
                &target,
                false,
                "does not exist",
                || {
                    format!(
                        "apply config/clickhouse/{ddl} (with the database name {})",
                        ch.database
                    )
                },
            ));
            continue;
        }
        let engine: String = ch_answer(
            config,
            timeout,
            "reading system.tables",
            client
                .query("SELECT engine FROM system.tables WHERE database = ? AND name = ?")
                .bind(&ch.database)
                .bind(table.as_str())
                .fetch_one(),
        )
        .await?;
        let engine_ok = !replacing || engine.contains("ReplacingMergeTree");
        checks.push(check("clickhouse_table", &target, engine_ok, format!("engine {engine}"), || {
            "the runs table must be a ReplacingMergeTree(_version, _is_deleted): see config/clickhouse/002_task_runs_v2.sql".into()
        }));
        let mut problems = Vec::new();
        let mut fixes = Vec::new();
        for (name, ty) in expected {
            match columns.iter().find(|(n, _)| n == name) {
                None => {
                    problems.push(format!("{name} missing"));
                    fixes.push(format!("ALTER TABLE {target} ADD COLUMN {name} {ty};"));
                }
                Some((_, actual)) if normalize_type(actual) != normalize_type(ty) => {
                    problems.push(format!("{name} is {actual}, expected {ty}"));
                    fixes.push(format!("ALTER TABLE {target} MODIFY COLUMN {name} {ty};"));
                }
                Some(_) => {}
            }
        }
        checks.push(check(
            "clickhouse_columns",
            &target,
            problems.is_empty(),
            if problems.is_empty() {
                format!("all {} columns the worker writes", expected.len())
            } else {
                problems.join("; ")
            },
            || fixes.join(" "),
        ));
    }
    Ok(checks)
}

/// A ClickHouse answer within `timeout`, or why there is none.
async fn ch_answer<T>(
    config: &Config,
    timeout: std::time::Duration,
    what: &str,
    query: impl std::future::Future<Output = clickhouse::error::Result<T>>,
) -> Result<T, PreflightError> {
    match tokio::time::timeout(timeout, query).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(ch_error(
            config,
            format!("{what}: {}", sink::client::describe(&e)),
        )),
        Err(_) => Err(ch_error(
            config,
            format!("{what}: no answer within {} ms", timeout.as_millis()),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equivalent_wire_types_compare_equal() {
        assert_eq!(normalize_type("LowCardinality(String)"), "String");
        assert_eq!(normalize_type("JSON(max_dynamic_paths = 1024)"), "JSON");
        assert_eq!(
            normalize_type("Nullable(DateTime64(3, 'UTC'))"),
            "Nullable(DateTime64(3))"
        );
        assert_eq!(
            normalize_type("Array(LowCardinality(String))"),
            "Array(String)"
        );
        assert_ne!(normalize_type("UInt16"), normalize_type("UInt8"));
        assert_ne!(
            normalize_type("DateTime64(6)"),
            normalize_type("DateTime64(3)")
        );
    }
}
