//! A windowed verify reads the window's rows on both sides, not the table's: Postgres sends only
//! the runs created in the window, ClickHouse reads only the partitions the window touches.

use runs_replicator::rows::RunRow;

use super::{load, plant, report, verify};
use crate::backfill::{backfill, summary};
use crate::support::expect::actual_rows;
use crate::support::runs::{insert_many_sql, lit};
use crate::support::{TestEnv, process};

#[tokio::test]
async fn a_windowed_verify_reads_only_the_window() {
    let env = TestEnv::new("vf_window").await;
    let pg = env.pg_client().await;
    // 24 runs in November 2026 (the window), 600 in the first half of the year.
    for (table, prefix) in [
        ("\"TaskRun\"", "run_in_legacy"),
        ("task_run_v2", "run_in_v2"),
    ] {
        let ids: Vec<String> = (0..12).map(|i| format!("{prefix}_{i:02}")).collect();
        let created = lit("2026-11-10 12:00:00.5");
        pg.batch_execute(&insert_many_sql(table, &ids, &[("createdAt", created)]))
            .await
            .unwrap();
    }
    for month in 1..=6 {
        let ids: Vec<String> = (0..100)
            .map(|i| format!("run_out_{month}_{i:03}"))
            .collect();
        let created = lit(&format!("2026-0{month}-15 08:00:00"));
        pg.batch_execute(&insert_many_sql(
            "\"TaskRun\"",
            &ids,
            &[("createdAt", created)],
        ))
        .await
        .unwrap();
    }
    let path = env.write_config(process::free_port(), "[verify]\nchunk_rows = 5\n");
    summary(&backfill(&path, &["--payloads", "--format", "json"]));
    let window = [
        "--since",
        "2026-11-01",
        "--until",
        "2026-12-01",
        "--format",
        "json",
    ];

    let r = report(&verify(&path, &window));
    println!("window [2026-11-01, 2026-12-01), in sync: {r}");
    assert_eq!(r["in_sync"], true);
    assert_eq!(r["runs_compared"], 24);
    assert_eq!(
        r["postgres_rows_read"], 24,
        "COPY sends the window's rows only"
    );
    let ch = r["clickhouse_rows_read"].as_u64().unwrap();
    // Planning the slices reads the window's created_at once (runs per minute), the range sums
    // read the window's runs and, for the payload marker, its payload rows: the 600 runs of
    // other months are pruned with their partitions.
    assert!(
        (24..=72).contains(&ch),
        "ClickHouse read {ch} rows for a 24-run window"
    );
    assert_eq!(r["ranges_differing"], 0);

    // Drift inside and outside the window: only the one inside is reported, and the rows read
    // stay bounded by the window.
    let config = load(&path);
    let rows = actual_rows(&env).await;
    let stale = |id: &str| -> RunRow {
        let mut r = rows[id].clone();
        r.status = "CRASHED".into();
        r._version += 1;
        r
    };
    plant(&config, vec![stale("run_in_v2_03"), stale("run_out_2_010")]).await;
    let out = verify(&path, &window);
    assert_eq!(out.status.code(), Some(1));
    let r = report(&out);
    println!("with drift inside and outside: {r}");
    let ids: Vec<&str> = r["drifted"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["run_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["run_in_v2_03"]);
    assert_eq!(r["drift"]["stale_columns"]["status"], 1);
    let pg_read = r["postgres_rows_read"].as_u64().unwrap();
    let ch = r["clickhouse_rows_read"].as_u64().unwrap();
    assert!(
        pg_read <= 24 + 2,
        "the window and the re-checked run: {pg_read}"
    );
    // Each query scans at most the window (25 rows with the planted one, 24 payload rows): the
    // plan and the first pass a few scans, the run hashes of the differing range two, each
    // re-check round three.
    let rounds = r["rounds"].as_u64().unwrap();
    assert!(
        ch <= (6 + 3 * rounds) * 25,
        "ClickHouse read {ch} rows in {rounds} rounds for a 25-row window"
    );
    assert!(ch < 600, "fewer than the 600 rows outside the window: {ch}");

    // The whole table finds both.
    let all = report(&verify(&path, &["--format", "json"]));
    assert_eq!(all["drift"]["stale"], 2, "{all}");
    let rounds = all["rounds"].as_u64().unwrap();
    assert_eq!(
        all["postgres_rows_read"].as_u64().unwrap(),
        624 + 2 * rounds,
        "the table, then the two runs in each re-check"
    );
}
