//! A backfill and a verify whose memory budget (`backfill.memory_bytes`) is far smaller than
//! what they copy and compare: both walk the window piece by piece and stay exact — the backfill
//! leaves ClickHouse equal to Postgres column by column, the verify finds every planted drift
//! (stale, extra, hidden, and hundreds of runs ClickHouse never received, which make a slice
//! planned from ClickHouse's counts hold far more in Postgres than the reader may keep) and
//! nothing else, and a repair puts it right.

use std::collections::BTreeSet;

use runs_replicator::rows::RunRow;

use super::{load, plant, report, verify};
use crate::backfill::{backfill, summary};
use crate::support::expect::{actual_rows, assert_converges};
use crate::support::runs::{insert_many_sql, lit};
use crate::support::{TestEnv, process};

/// Runs `ids` into `table`, created from `start` a few seconds apart, with `output`.
async fn write(
    pg: &tokio_postgres::Client,
    table: &str,
    ids: &[String],
    start: &str,
    output: &str,
) {
    pg.batch_execute(&insert_many_sql(
        table,
        ids,
        &[("createdAt", lit(start)), ("output", lit(output))],
    ))
    .await
    .unwrap();
    // Spread over ~20 minutes: the slices are cut by createdAt.
    let list: Vec<String> = ids.iter().map(|id| lit(id)).collect();
    pg.batch_execute(&format!(
        "UPDATE {table} SET \"createdAt\" = \"createdAt\" + (right(id, 3)::int * interval '11.5 seconds') \
         WHERE id IN ({})",
        list.join(", ")
    ))
    .await
    .unwrap();
}

#[tokio::test]
async fn a_verify_and_a_backfill_far_larger_than_their_memory_budget_are_exact() {
    let env = TestEnv::new("vf_budget").await;
    let pg = env.pg_client().await;
    // 3,000 runs over 30 hours, both tables, each with a ~2 KB output: ~7 MB of rows, against a
    // budget of 256 KiB.
    let output = format!("{{\"data\":{{\"blob\":\"{}\"}}}}", "x".repeat(2000));
    for hour in 0..30 {
        let table = if hour % 2 == 0 {
            "\"TaskRun\""
        } else {
            "task_run_v2"
        };
        let ids: Vec<String> = (0..100)
            .map(|i| format!("run_b_{hour:02}_{i:03}"))
            .collect();
        let start = format!("2026-11-{:02} {:02}:00:00.250", 10 + hour / 24, hour % 24);
        write(&pg, table, &ids, &start, &output).await;
    }
    let budget = 262_144;
    let path = env.write_config(
        process::free_port(),
        &format!(
            "[backfill]\nmemory_bytes = {budget}\nparallel = 2\nchunk_rows = 100\n\
             [batch]\nmax_rows = 200\n[verify]\nchunk_rows = 150\n"
        ),
    );
    let s = summary(&backfill(&path, &["--payloads", "--format", "json"]));
    println!(
        "backfill of 3,000 runs (~7 MB of rows) within {budget} bytes: {} rows, {} snapshot(s), \
         the longest {} s",
        s["total"]["rows_read"], s["snapshots"], s["longest_snapshot_s"]
    );
    assert_eq!(s["total"]["rows_read"], 3000);
    assert_eq!(s["total"]["rows_written"], 3000);
    // Exact: ClickHouse FINAL equals the transform of Postgres, column by column.
    assert_converges(&env, std::time::Duration::from_secs(30)).await;

    let r = report(&verify(&path, &["--format", "json"]));
    println!("verify, in sync: {r}");
    assert_eq!(r["in_sync"], true);
    assert_eq!(r["runs_compared"], 3000);
    assert_eq!(r["postgres_rows_read"], 3000, "every run read once");
    assert_eq!(r["memory_budget_bytes"], budget);
    let cap = r["slice_runs"].as_u64().unwrap();
    assert!(
        cap <= 300,
        "a slice holds at most 2 x verify.chunk_rows: {cap}"
    );
    assert!(r["slices"].as_u64().unwrap() >= 10, "{}", r["slices"]);
    assert!(r["largest_slice"].as_u64().unwrap() <= cap);
    assert!(r["peak_held_runs"].as_u64().unwrap() <= 4 * cap);

    // Drift of every kind in different slices, and 500 runs ClickHouse never received, all
    // created within 20 minutes where ClickHouse counted none: the slice planned there holds
    // far more in Postgres than a reader may keep.
    let config = load(&path);
    let rows = actual_rows(&env).await;
    let mut planted = BTreeSet::new();
    let mut drift: Vec<RunRow> = Vec::new();
    for id in [
        "run_b_01_007",
        "run_b_09_050",
        "run_b_17_099",
        "run_b_28_000",
    ] {
        let mut r = rows[id].clone();
        r.status = "CRASHED".into();
        r._version += 1;
        drift.push(r);
        planted.insert(id.to_string());
    }
    let mut ghost = rows["run_b_12_012"].clone();
    ghost.run_id = "run_b_ghost".into();
    drift.push(ghost);
    planted.insert("run_b_ghost".to_string());
    let mut hidden = rows["run_b_22_031"].clone();
    hidden._is_deleted = 1;
    hidden._version += 1;
    drift.push(hidden);
    planted.insert("run_b_22_031".to_string());
    plant(&config, drift).await;
    let unseen: Vec<String> = (0..500).map(|i| format!("run_u_{i:03}")).collect();
    for part in unseen.chunks(100) {
        write(&pg, "task_run_v2", part, "2026-11-11 06:30:00.000", "{}").await;
    }
    planted.extend(unseen);

    let out = verify(&path, &["--format", "json", "--max-report", "1000"]);
    assert_eq!(out.status.code(), Some(1));
    let r = report(&out);
    let found: BTreeSet<String> = r["drifted"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["run_id"].as_str().unwrap().to_string())
        .collect();
    println!(
        "verify with drift: {} drifted of {} compared, {} slices (the largest {} runs of at most \
         {cap}), {} runs held at once",
        r["drift"]["runs"],
        r["runs_compared"],
        r["slices"],
        r["largest_slice"],
        r["peak_held_runs"]
    );
    assert_eq!(found, planted, "exactly the planted runs, none missing");
    assert_eq!(r["drift"]["runs"], 506);
    assert_eq!(r["drift"]["missing"], 501);
    assert_eq!(r["drift"]["extra"], 1);
    assert_eq!(r["drift"]["stale"], 4);
    assert_eq!(r["unsettled"]["runs"], 0);
    assert_eq!(r["runs_compared"], 3501);
    assert!(
        r["largest_slice"].as_u64().unwrap() <= cap,
        "the overfull slice was cut: {}",
        r["largest_slice"]
    );

    let out = verify(&path, &["--format", "json", "--repair"]);
    assert_eq!(out.status.code(), Some(1));
    let r = report(&out);
    assert_eq!(r["repair"]["rewritten"], 505);
    assert_eq!(r["repair"]["tombstoned"], 1);
    let r = report(&verify(&path, &["--format", "json"]));
    assert_eq!(r["in_sync"], true, "{r}");
    assert_eq!(r["runs_compared"], 3500);
    assert_converges(&env, std::time::Duration::from_secs(30)).await;
}
