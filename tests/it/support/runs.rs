//! Writing runs into the Postgres tables the way trigger.dev does, for tests.

/// The replicated tables with their default generations.
pub const TABLES: [(&str, u8); 2] = [("\"TaskRun\"", 0), ("task_run_v2", 1)];

/// Column defaults for a plausible run; tests override any of them with SQL expressions.
fn defaults(id: &str) -> Vec<(&'static str, String)> {
    vec![
        ("id", lit(id)),
        ("friendlyId", lit(&format!("run_{id}"))),
        ("taskIdentifier", lit("my-task")),
        ("payload", lit(r#"{"hello":"world"}"#)),
        ("traceId", lit("trace_1")),
        ("spanId", lit("span_1")),
        ("runtimeEnvironmentId", lit("env_1")),
        ("environmentType", lit("PRODUCTION")),
        ("projectId", lit("proj_1")),
        ("organizationId", lit("org_1")),
        ("queue", lit("task/my-task")),
        ("createdAt", lit("2026-11-20 10:00:00.123")),
        ("updatedAt", lit("2026-11-20 10:00:00.123")),
    ]
}

/// A SQL string literal.
pub fn lit(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// `INSERT INTO table (…) VALUES (…)` for run `id`, with `overrides` as (column, SQL expression).
pub fn insert_sql(table: &str, id: &str, overrides: &[(&str, String)]) -> String {
    let mut cols = defaults(id);
    for (k, v) in overrides {
        cols.retain(|(c, _)| c != k);
        let name: &'static str = Box::leak(k.to_string().into_boxed_str());
        cols.push((name, v.clone()));
    }
    let names: Vec<String> = cols.iter().map(|(c, _)| format!("\"{c}\"")).collect();
    let values: Vec<&str> = cols.iter().map(|(_, v)| v.as_str()).collect();
    format!(
        "INSERT INTO {table} ({}) VALUES ({})",
        names.join(", "),
        values.join(", ")
    )
}

/// A multi-row INSERT of `ids` with the defaults and the same overrides.
pub fn insert_many_sql(table: &str, ids: &[String], overrides: &[(&str, String)]) -> String {
    let first = insert_sql(table, &ids[0], overrides);
    let (head, _) = first.split_once(" VALUES ").unwrap();
    let rows: Vec<String> = ids
        .iter()
        .map(|id| {
            let sql = insert_sql(table, id, overrides);
            sql.split_once(" VALUES ").unwrap().1.to_string()
        })
        .collect();
    format!("{head} VALUES {}", rows.join(", "))
}

pub async fn insert(
    client: &tokio_postgres::Client,
    table: &str,
    id: &str,
    overrides: &[(&str, String)],
) {
    client
        .batch_execute(&insert_sql(table, id, overrides))
        .await
        .unwrap_or_else(|e| panic!("insert {id} into {table}: {e:?}"));
}
