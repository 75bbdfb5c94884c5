//! The end-state check every replication scenario ends with: ClickHouse (under FINAL) equals the
//! transform of the current Postgres rows of both tables, column by column. Nothing missing,
//! nothing extra, no stale value.
//!
//! Postgres rows are read as text with the walsender's pinned rendering and passed through the
//! worker's own transform; which copy of a run wins follows the generation rule. `_version`
//! depends on commit LSNs that a plain SELECT cannot see, so it is the one column not compared.

use std::collections::BTreeMap;
use std::time::Duration;

use runs_replicator::rows::{Col, RunRow, SourceRow};
use runs_replicator::testing::wait::poll;
use runs_replicator::transform::{self, TransformError, TransformOptions};

use super::TestEnv;

/// The expected runs-table rows, keyed by run id, from the current Postgres state of every
/// source: a run present twice is its higher generation's copy.
pub async fn expected_rows(env: &TestEnv) -> BTreeMap<String, RunRow> {
    let mut out: BTreeMap<String, (u8, RunRow)> = BTreeMap::new();
    add_rows(&env.pg_client().await, &env.tables, &mut out).await;
    for source in &env.sources {
        add_rows(&source.client().await, &source.tables, &mut out).await;
    }
    out.into_iter().map(|(k, (_, r))| (k, r)).collect()
}

async fn add_rows(
    client: &tokio_postgres::Client,
    tables: &[(&str, u8)],
    out: &mut BTreeMap<String, (u8, RunRow)>,
) {
    client
        .batch_execute(
            "SET datestyle = 'ISO, YMD'; SET timezone = 'UTC'; SET extra_float_digits = 3",
        )
        .await
        .unwrap();
    let select: Vec<String> = Col::ALL
        .iter()
        .map(|c| format!("\"{}\"::text", c.pg_name()))
        .collect();
    for &(table, generation) in tables {
        let rows = client
            .query(&format!("SELECT {} FROM {table}", select.join(", ")), &[])
            .await
            .unwrap();
        for r in rows {
            let values: Vec<Option<String>> = (0..Col::COUNT).map(|i| r.get(i)).collect();
            let mut source = SourceRow::new();
            for (i, col) in Col::ALL.iter().enumerate() {
                source.set(*col, values[i].as_deref());
            }
            match transform::run_row(&source, false, &TransformOptions::default()) {
                Ok(mut row) => {
                    row._version = 0;
                    let keep = out.get(&row.run_id).is_none_or(|(g, _)| generation >= *g);
                    if keep {
                        out.insert(row.run_id.clone(), (generation, row));
                    }
                }
                Err(TransformError::Skip(_)) => {}
                Err(e) => panic!("transform of a Postgres row failed: {e}"),
            }
        }
    }
}

/// The runs table under FINAL, keyed by run id.
pub async fn actual_rows(env: &TestEnv) -> BTreeMap<String, RunRow> {
    let rows = env
        .ch_client()
        .query("SELECT ?fields FROM task_runs_v2 FINAL")
        .with_setting("output_format_binary_write_json_as_string", "1")
        .with_setting("output_format_json_quote_64bit_integers", "0")
        .fetch_all::<RunRow>()
        .await
        .expect("read task_runs_v2 FINAL");
    let mut out = BTreeMap::new();
    for row in rows {
        let id = row.run_id.clone();
        assert!(
            out.insert(id.clone(), row).is_none(),
            "run {id} appears twice under FINAL"
        );
    }
    out
}

/// Parsed JSON, or the text itself when serde_json will not parse it (nested too deep).
fn json(s: &str) -> serde_json::Value {
    serde_json::from_str(s).unwrap_or_else(|_| serde_json::Value::String(s.to_string()))
}

/// ClickHouse normalises JSON (sorted keys, `{"data":null}` → `{}`, nulls dropped).
fn normalise_json(v: serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    match v {
        Value::Object(map) => {
            let cleaned: serde_json::Map<String, Value> = map
                .into_iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k, normalise_json(v)))
                .filter(|(_, v)| !matches!(v, Value::Object(m) if m.is_empty()))
                .collect();
            Value::Object(cleaned)
        }
        Value::Array(items) => Value::Array(items.into_iter().map(normalise_json).collect()),
        other => other,
    }
}

/// Differences between two rows, column by column ("" when equal).
pub fn diff(expected: &RunRow, actual: &RunRow) -> String {
    let mut e = expected.clone();
    let mut a = actual.clone();
    // The version depends on commit LSNs a SELECT cannot see.
    e._version = 0;
    a._version = 0;
    let mut out = Vec::new();
    for (name, ev, av) in [
        ("output", &e.output, &a.output),
        ("error", &e.error, &a.error),
    ] {
        if normalise_json(json(ev)) != normalise_json(json(av)) {
            out.push(format!("{name}: expected {ev} got {av}"));
        }
    }
    e.output.clear();
    e.error.clear();
    a.output.clear();
    a.error.clear();
    if e != a {
        let es = format!("{e:#?}");
        let as_ = format!("{a:#?}");
        for (l, r) in es.lines().zip(as_.lines()) {
            if l != r {
                out.push(format!("expected {} got {}", l.trim(), r.trim()));
            }
        }
    }
    out.join("; ")
}

/// Compares and describes every difference; empty when ClickHouse equals Postgres.
pub async fn mismatches(env: &TestEnv) -> Vec<String> {
    let expected = expected_rows(env).await;
    let actual = actual_rows(env).await;
    let mut problems = Vec::new();
    for (id, e) in &expected {
        match actual.get(id) {
            None => problems.push(format!("run {id}: missing in ClickHouse")),
            Some(a) => {
                let d = diff(e, a);
                if !d.is_empty() {
                    problems.push(format!("run {id}: {d}"));
                }
            }
        }
    }
    for id in actual.keys().filter(|id| !expected.contains_key(*id)) {
        problems.push(format!("run {id}: in ClickHouse but not in Postgres"));
    }
    problems
}

/// Waits until ClickHouse equals Postgres, or fails with every difference after `timeout`.
pub async fn assert_converges(env: &TestEnv, timeout: Duration) {
    let converged = poll(timeout, Duration::from_millis(200), || async {
        let problems = mismatches(env).await;
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems)
        }
    })
    .await;
    if let Err(problems) = converged {
        let shown: Vec<_> = problems.iter().take(20).collect();
        panic!(
            "ClickHouse does not equal Postgres after {timeout:?}: {} differences, first ones:\n{}",
            problems.len(),
            shown
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
}

/// Like [`assert_converges`], for the runs of the primary source only, whose id `only`
/// accepts; the other sources are not read (they may be down).
pub async fn assert_primary_converges_for(
    env: &TestEnv,
    timeout: Duration,
    only: impl Fn(&str) -> bool,
) {
    let converged = poll(timeout, Duration::from_millis(200), || async {
        let mut expected = BTreeMap::new();
        add_rows(&env.pg_client().await, &env.tables, &mut expected).await;
        let actual = actual_rows(env).await;
        let problems: Vec<String> = expected
            .iter()
            .filter(|(id, _)| only(id))
            .filter_map(|(id, (_, e))| match actual.get(id) {
                None => Some(format!("run {id}: missing in ClickHouse")),
                Some(a) => {
                    let d = diff(e, a);
                    (!d.is_empty()).then(|| format!("run {id}: {d}"))
                }
            })
            .collect();
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems)
        }
    })
    .await;
    if let Err(problems) = converged {
        panic!(
            "ClickHouse does not equal Postgres for the runs checked after {timeout:?}: {problems:?}"
        );
    }
}

/// A one-shot mode (`backfill`, `verify`) that cannot run: exit 2, one line on stderr naming the
/// mode, the password in neither output. Returns stderr.
pub fn assert_cannot_run(
    out: &std::process::Output,
    mode: &str,
    what: &str,
    password: &str,
) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let stdout = String::from_utf8_lossy(&out.stdout);
    println!(
        "{what}: exit {:?}, stderr: {}",
        out.status.code(),
        stderr.trim()
    );
    assert_eq!(out.status.code(), Some(2), "{what}: {stderr}");
    assert_eq!(stderr.lines().count(), 1, "{what}: one line: {stderr}");
    assert!(
        stderr.starts_with(&format!("runs-replicator: {mode}: ")),
        "{what}: {stderr}"
    );
    assert!(
        !stderr.contains(password) && !stdout.contains(password),
        "{what}: {stderr}"
    );
    stderr
}

/// Waits until ClickHouse shows `n` runs (under FINAL) whose id starts with `prefix`.
pub async fn wait_run_count(env: &TestEnv, prefix: &str, n: u64, timeout: Duration) {
    let client = env.ch_client();
    runs_replicator::testing::wait::wait_for(&format!("{n} runs {prefix}*"), timeout, || async {
        let have: u64 = client
            .query("SELECT count() FROM task_runs_v2 FINAL WHERE startsWith(run_id, ?)")
            .bind(prefix)
            .fetch_one()
            .await
            .unwrap_or(0);
        (have == n).then_some(())
    })
    .await;
}
