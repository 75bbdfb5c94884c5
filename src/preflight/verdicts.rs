//! Verdicts: pure functions from catalog readings to checks, each with what was observed and,
//! on failure, the SQL (or step) that fixes it. No I/O here, so every rule is unit-tested
//! (`preflight/tests.rs`) without a server.

use super::providers;
use super::report::Check;
use crate::config::{Source, Stream};
use crate::pg::catalog::{PublicationReading, ServerReading, SlotReading, TableReading};
use crate::pg::slot_holder::SlotHolder;
use crate::pg::{quote_ident, quote_literal};
use crate::rows::Col;
use crate::sink::catalog::ChTableReading;

/// `"schema"."table"`, the way checks name a table.
pub fn qualified(schema: &str, table: &str) -> String {
    format!("{}.{}", quote_ident(schema), quote_ident(table))
}

/// `server_version_num` as people write it: 170010 → "17.10", 90624 → "9.6.24".
pub fn version_text(version_num: i32) -> String {
    if version_num >= 100_000 {
        format!("{}.{}", version_num / 10_000, version_num % 10_000)
    } else {
        format!(
            "{}.{}.{}",
            version_num / 10_000,
            version_num / 100 % 100,
            version_num % 100
        )
    }
}

/// The oldest and newest major versions the worker is tested against.
pub const OLDEST_SERVER: i32 = 14;
pub const NEWEST_SERVER: i32 = 18;

/// What a stream asks of the server's version: a supported one (14 to 18; a newer one warns),
/// and row filters (15+) for shards. Each gap is one line naming the setting and the version.
pub fn version_gaps(stream: &Stream, s: &ServerReading) -> Vec<Check> {
    let major = s.version_num / 10_000;
    let version = version_text(s.version_num);
    let mut checks = vec![if major > NEWEST_SERVER {
        Check::warn(
            "server_version",
            "server",
            format!("PostgreSQL {version}: newer than the newest tested ({NEWEST_SERVER})"),
            "watch the first run closely, and report what differs",
        )
    } else {
        Check::new(
            "server_version",
            "server",
            major >= OLDEST_SERVER,
            format!("PostgreSQL {version}"),
            || {
                format!(
                    "PostgreSQL {OLDEST_SERVER} to {NEWEST_SERVER} are supported: upgrade the server"
                )
            },
        )
    }];
    if stream.source.shards > 1 {
        checks.push(Check::new(
            "shards",
            format!("source {}", stream.source.name),
            s.version_num >= 150_000,
            format!(
                "postgres.shards = {} on PostgreSQL {version}{}",
                stream.source.shards,
                if s.version_num >= 150_000 {
                    ""
                } else {
                    ": shards need row filters (PostgreSQL 15+)"
                }
            ),
            || "set postgres.shards = 1, or upgrade to PostgreSQL 15 or later".into(),
        ));
    }
    checks
}

/// wal_level, wal senders, encoding, the role's right to replicate (the REPLICATION attribute or a
/// managed provider's grant, `providers`), the WAL bound of slots. Fixes name the provider's step.
pub fn server(s: &ServerReading) -> Vec<Check> {
    let grant = providers::replication_grant(s);
    let mut checks = vec![
        Check::new(
            "wal_level",
            "server",
            s.wal_level == "logical",
            &s.wal_level,
            || providers::wal_level_fix(s),
        ),
        Check::new(
            "max_wal_senders",
            "server",
            s.max_wal_senders > 0,
            s.max_wal_senders.to_string(),
            || "ALTER SYSTEM SET max_wal_senders = 10; -- then restart Postgres".into(),
        ),
        Check::new(
            "server_encoding",
            "server",
            s.encoding == "UTF8",
            &s.encoding,
            || "the database must use UTF8: pgoutput sends text in the server encoding".into(),
        ),
        Check::new(
            "replication_role",
            format!("role {}", s.user),
            grant.ok,
            grant.observed,
            || grant.fix,
        ),
    ];
    if s.max_slot_wal_keep_size == "-1" {
        checks.push(Check::warn(
            "max_slot_wal_keep_size",
            "server",
            "-1 (a stalled slot can retain WAL until the disk is full)",
            "ALTER SYSTEM SET max_slot_wal_keep_size = '100GB'; SELECT pg_reload_conf(); -- size it to hours of WAL",
        ));
    } else {
        checks.push(Check::new(
            "max_slot_wal_keep_size",
            "server",
            true,
            &s.max_slot_wal_keep_size,
            String::new,
        ));
    }
    checks
}

/// The connection itself, where its address tells something: Supabase's pooler cannot carry
/// replication (its direct port can). Nothing for other addresses.
pub fn connection(host: &str, port: u16) -> Vec<Check> {
    let target = format!("{host}:{port}");
    match providers::supabase_pooler(host, port) {
        Some((observed, fix)) => vec![Check::new(
            "direct_connection",
            target,
            false,
            observed,
            || fix,
        )],
        None if host.ends_with(".supabase.co") || host.ends_with(".supabase.com") => {
            vec![Check::new(
                "direct_connection",
                target,
                true,
                "Supabase, direct connection",
                String::new,
            )]
        }
        None => Vec::new(),
    }
}

fn identity_name(relreplident: &str) -> &str {
    match relreplident {
        "f" => "full",
        "d" => "default",
        "n" => "nothing",
        "i" => "index",
        other => other,
    }
}

/// Each configured table: exists as an ordinary table, REPLICA IDENTITY FULL, every column the
/// transform reads, SELECT granted to `user`. With the default list (`tables_required` false)
/// a table that does not exist yet passes as long as another one exists: it is replicated once
/// it appears. The worker never creates a table in trigger.dev's schema (its migrations do).
pub fn tables(pg: &Source, found: &[TableReading], user: &str) -> Vec<Check> {
    let mut checks = Vec::new();
    let any_exists = pg.tables.iter().any(|t| found.iter().any(|f| f.name == *t));
    for table in &pg.tables {
        let target = qualified(&pg.schema, table);
        let Some(t) = found.iter().find(|t| t.name == *table) else {
            if !pg.tables_required && any_exists {
                checks.push(Check::new(
                    "table_exists",
                    &target,
                    true,
                    "does not exist yet: replicated once it exists (postgres.tables is the \
                     default list)",
                    String::new,
                ));
                continue;
            }
            checks.push(Check::new(
                "table_exists",
                &target,
                false,
                "does not exist",
                || {
                    let fix = "check postgres.schema (or schema= in the URL) and the database in \
                           the URL; the worker never creates trigger.dev's tables (its migrations \
                           do; for a test database, config/postgres/ has the DDL)";
                    if pg.tables_required {
                        format!("{fix}, or list only tables that exist in postgres.tables")
                    } else {
                        format!("none of postgres.tables exists: {fix}")
                    }
                },
            ));
            continue;
        };
        checks.push(Check::new(
            "table_exists",
            &target,
            t.is_ordinary(),
            format!("oid {}, relkind '{}'", t.oid, t.kind),
            || "the worker replicates ordinary tables (relkind 'r') only".into(),
        ));
        checks.push(Check::new(
            "replica_identity",
            &target,
            t.identity_is_full(),
            format!(
                "{} (relreplident = '{}')",
                identity_name(&t.replica_identity),
                t.replica_identity
            ),
            || format!("ALTER TABLE {target} REPLICA IDENTITY FULL;"),
        ));
        let missing: Vec<&str> = Col::ALL
            .iter()
            .map(|c| c.pg_name())
            .filter(|name| !t.has_column(name))
            .collect();
        checks.push(Check::new(
            "table_columns",
            &target,
            missing.is_empty(),
            if missing.is_empty() {
                format!("all {} columns the transform reads", Col::COUNT)
            } else {
                format!("missing {}", missing.join(", "))
            },
            || {
                "trigger.dev's migrations add these columns: upgrade trigger.dev (for a test \
                 database, config/postgres/ has the full DDL)"
                    .into()
            },
        ));
        checks.push(Check::new(
            "table_select",
            &target,
            t.can_select,
            if t.can_select {
                "SELECT granted"
            } else {
                "no SELECT privilege"
            },
            || format!("GRANT SELECT ON {target} TO {};", quote_ident(user)),
        ));
    }
    checks
}

/// The publication: exists (or will be created), publishes insert/update/delete, covers every
/// configured table that exists (`existing`), without a row filter (a shard's publication has
/// its own, and needs it) or a column list that drops a required column. A table missing from
/// it passes when the worker adds it (`create_publication`; the rows it already has are copied
/// then, `daemon::joins`); otherwise it fails, or with the default table list it is a warning
/// (the worker streams it once the operator adds it).
pub fn publication(
    stream: &Stream,
    reading: Option<&PublicationReading>,
    existing: &[String],
) -> Vec<Check> {
    let pg = &stream.source;
    let name = quote_ident(&stream.publication);
    let target = format!("publication {name}");
    // A shard's publication needs its row filter on every table.
    let filter = stream
        .shard
        .map(|s| format!(" WHERE ({})", s.row_filter()))
        .unwrap_or_default();
    let all_tables = pg
        .tables
        .iter()
        .filter(|t| existing.contains(t))
        .map(|t| format!("{}{filter}", qualified(&pg.schema, t)))
        .collect::<Vec<_>>()
        .join(", ");
    let Some(p) = reading else {
        return vec![if pg.create_publication {
            Check::new(
                "publication",
                &target,
                true,
                "absent; created at start (postgres.create_publication = true)",
                String::new,
            )
        } else {
            Check::new("publication", &target, false, "does not exist", || {
                format!(
                    "CREATE PUBLICATION {name} FOR TABLE {all_tables} WITH (publish = 'insert, update, delete');"
                )
            })
        }];
    };
    let mut checks = vec![Check::new(
        "publication_actions",
        &target,
        p.publishes_changes(),
        format!("publish = '{}'", p.actions().join(", ")),
        || {
            format!(
                "ALTER PUBLICATION {name} SET (publish = 'insert, update, delete{}');",
                if p.truncate { ", truncate" } else { "" }
            )
        },
    )];
    for table in pg.tables.iter().filter(|t| existing.contains(t)) {
        let table_target = qualified(&pg.schema, table);
        let member = p.member(&pg.schema, table);
        let add = format!("ALTER PUBLICATION {name} ADD TABLE {table_target}{filter};");
        checks.push(match member {
            Some(_) => Check::new(
                "publication_table",
                &table_target,
                true,
                format!("in {name}"),
                String::new,
            ),
            None if pg.create_publication => Check::new(
                "publication_table",
                &table_target,
                true,
                format!(
                    "not in {name} yet: added at start (postgres.create_publication = true), \
                     the rows it has copied"
                ),
                String::new,
            ),
            None if !pg.tables_required => Check::warn(
                "publication_table",
                &table_target,
                format!(
                    "not in {name}: not replicated until it is added (the worker then copies \
                     the rows it has)"
                ),
                add,
            ),
            None => Check::new(
                "publication_table",
                &table_target,
                false,
                format!("not in {name}"),
                || add,
            ),
        });
        let Some(m) = member else { continue };
        let partial = m.columns.as_ref().is_some_and(|names| {
            Col::ALL
                .iter()
                .any(|c| !names.iter().any(|n| n == c.pg_name()))
        });
        if let Some(shard) = stream.shard {
            checks.push(Check::new(
                "publication_filter",
                &table_target,
                m.row_filter && !partial,
                if m.row_filter {
                    format!("shard {} of {}: has a row filter", shard.index, shard.count)
                } else {
                    format!(
                        "shard {} of {}: no row filter, it would stream every run",
                        shard.index, shard.count
                    )
                },
                || {
                    format!(
                        "ALTER PUBLICATION {name} SET TABLE {};",
                        pg.tables
                            .iter()
                            .map(|t| format!(
                                "{} WHERE ({})",
                                qualified(&pg.schema, t),
                                shard.row_filter()
                            ))
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                },
            ));
        } else if m.row_filter || partial {
            checks.push(Check::new(
                "publication_filter",
                &table_target,
                false,
                if m.row_filter {
                    "has a row filter (WHERE)"
                } else {
                    "has a column list without some required columns"
                },
                || format!("ALTER PUBLICATION {name} SET TABLE {all_tables};"),
            ));
        }
    }
    checks
}

/// The slot, when it exists: ours (logical, pgoutput, this database) and not invalidated.
pub fn slot(stream: &Stream, reading: Option<&SlotReading>) -> Vec<Check> {
    let pg = &stream.source;
    let target = format!("slot {}", stream.slot);
    let drop_sql = format!(
        "SELECT pg_drop_replication_slot({});",
        quote_literal(&stream.slot)
    );
    let Some(s) = reading else {
        return vec![Check::new(
            "slot",
            &target,
            pg.create_slot,
            if pg.create_slot {
                "absent; created at start (postgres.create_slot = true)"
            } else {
                "does not exist"
            },
            || {
                format!(
                    "SELECT pg_create_logical_replication_slot({}, 'pgoutput');",
                    quote_literal(&stream.slot)
                )
            },
        )];
    };
    let status = s.health();
    vec![
        Check::new(
            "slot",
            &target,
            s.is_pgoutput_of(&pg.url.dbname),
            format!(
                "{}, plugin {}, database {}, {}, confirmed_flush_lsn {}",
                s.slot_type,
                s.plugin,
                s.database.as_deref().unwrap_or("-"),
                if s.active { "active" } else { "inactive" },
                s.confirmed_flush_lsn.as_deref().unwrap_or("-")
            ),
            || {
                format!(
                    "this slot belongs to something else: use another postgres.slot, or {drop_sql}"
                )
            },
        ),
        Check::new("slot_wal_status", &target, !s.is_lost(), &status, || {
            format!(
                "the slot can never stream again: {drop_sql} (the worker creates a new one) and backfill the gap"
            )
        }),
    ]
}

/// Who streams from the slot, when someone does: this worker (another instance, or an earlier
/// session the server has not noticed is gone) passes; another consumer — trigger.dev's built-in
/// service calls itself `runs-replication:legacy` — is a warning: the worker waits until it lets
/// go, and never terminates it.
pub fn slot_holder(stream: &Stream, holder: Option<&SlotHolder>) -> Option<Check> {
    let holder = holder?;
    let target = format!("slot {}", stream.slot);
    Some(if holder.is_this_worker() {
        Check::new(
            "slot_holder",
            &target,
            true,
            format!("streamed by this worker: {holder}"),
            String::new,
        )
    } else {
        Check::warn(
            "slot_holder",
            &target,
            format!("held by another consumer: {holder}; the worker waits until it lets go"),
            "stop that consumer (trigger.dev's built-in replication: RUN_REPLICATION_ENABLED=0 \
             for the webapp, then restart it); the worker never terminates it",
        )
    })
}

/// Types that have the same RowBinary encoding compare equal: `LowCardinality(T)` is sent as `T`,
/// `DateTime64(3, 'UTC')` as `DateTime64(3)`, any `JSON(…)` as a string.
pub fn normalize_type(t: &str) -> String {
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

/// What the worker expects of one ClickHouse table it writes.
pub struct ChExpectation<'a> {
    /// `database.table`, as checks name it.
    pub target: String,
    pub columns: &'a [(&'a str, &'a str)],
    /// The DDL file in config/clickhouse/ that creates it.
    pub ddl: &'static str,
    pub database: &'a str,
    /// It must collapse versions (the runs table).
    pub replacing: bool,
}

/// A ClickHouse table: exists, the right engine, every column the worker writes with a type of
/// the same wire encoding.
pub fn clickhouse_table(want: &ChExpectation<'_>, found: Option<&ChTableReading>) -> Vec<Check> {
    let target = &want.target;
    let Some(t) = found else {
        return vec![Check::new(
            "clickhouse_table",
            target,
            false,
            "does not exist",
            || {
                format!(
                    "apply config/clickhouse/{} (with the database name {})",
                    want.ddl, want.database
                )
            },
        )];
    };
    let engine_ok = !want.replacing || t.engine.contains("ReplacingMergeTree");
    let mut checks = vec![Check::new(
        "clickhouse_table",
        target,
        engine_ok,
        format!("engine {}", t.engine),
        || {
            "the runs table must be a ReplacingMergeTree(_version, _is_deleted): see config/clickhouse/002_task_runs_v2.sql".into()
        },
    )];
    let mut problems = Vec::new();
    let mut fixes = Vec::new();
    for (name, ty) in want.columns {
        match t.columns.iter().find(|(n, _)| n == name) {
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
    checks.push(Check::new(
        "clickhouse_columns",
        target,
        problems.is_empty(),
        if problems.is_empty() {
            format!("all {} columns the worker writes", want.columns.len())
        } else {
            problems.join("; ")
        },
        || fixes.join(" "),
    ));
    checks
}
