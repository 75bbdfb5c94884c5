//! The ClickHouse engine the tests use, through the worker's own client settings (LZ4, plain
//! RowBinary, JSON as string): rows written into the shipped `task_runs_v2` read back equal
//! under FINAL, a tombstone hides its row, and a date-like string in JSON keeps its form.

use runs_replicator::config::Config;
use runs_replicator::rows::RunRow;
use runs_replicator::sink::client::{self, INSERT_SETTINGS};
use runs_replicator::testing::runs::completed_run_row;

use crate::support::TestEnv;

/// Run `i` of the round trip, completed, at `version`; its tombstone when `deleted`.
pub fn sample_run(i: u32, version: u64, deleted: bool) -> RunRow {
    let mut row = completed_run_row(&format!("run_{i:04}")).with_version(version);
    row.updated_at += i64::from(i);
    row.friendly_id = format!("run_friendly_{i}");
    row.output = format!(r#"{{"data":{{"i":{i},"at":"2024-01-02T03:04:05.000Z"}}}}"#);
    if deleted {
        row = row.deleted();
    }
    row
}

pub fn config_for(env: &TestEnv) -> Config {
    let toml = env.config_toml(9);
    let dir = crate::support::process::temp_dir("chcfg");
    let path = dir.join("c.toml");
    std::fs::write(&path, toml).unwrap();
    Config::load(Some(&path), &|_| None, &[]).unwrap()
}

/// Reads the runs table under FINAL, JSON columns as strings.
pub async fn read_final(env: &TestEnv) -> Vec<RunRow> {
    env.ch_client()
        .query("SELECT ?fields FROM task_runs_v2 FINAL ORDER BY run_id")
        .with_setting("output_format_binary_write_json_as_string", "1")
        .with_setting("output_format_json_quote_64bit_integers", "0")
        .fetch_all::<RunRow>()
        .await
        .expect("read task_runs_v2")
}

#[tokio::test]
async fn round_trip_through_the_workers_client() {
    let env = TestEnv::new("ch_front").await;
    let config = config_for(&env);
    let client = client::build(&config).expect("client");

    let mut insert = client.insert::<RunRow>("task_runs_v2").await.unwrap();
    for (k, v) in INSERT_SETTINGS {
        insert = insert.with_setting(*k, *v);
    }
    let mut expected = Vec::new();
    for i in 0..50 {
        let row = sample_run(i, 10, false);
        insert.write(&row).await.unwrap();
        expected.push(row);
    }
    insert.end().await.unwrap();

    // A newer version of run 7 and a tombstone for run 9, in a second insert.
    let mut insert = client.insert::<RunRow>("task_runs_v2").await.unwrap();
    for (k, v) in INSERT_SETTINGS {
        insert = insert.with_setting(*k, *v);
    }
    let mut newer = sample_run(7, 11, false);
    newer.status = "CRASHED".into();
    insert.write(&newer).await.unwrap();
    insert.write(&sample_run(9, 11, true)).await.unwrap();
    insert.end().await.unwrap();
    expected[7] = newer;
    expected.remove(9);

    let rows = read_final(&env).await;
    assert_eq!(rows.len(), 49, "the tombstoned run is hidden under FINAL");
    for (got, want) in rows.iter().zip(&expected) {
        let mut want = want.clone();
        // ClickHouse stores {"data":null} as an empty object.
        want.error = "{}".into();
        assert_run_eq(got, &want);
    }
    assert!(
        rows[0]
            .output
            .contains(r#""at":"2024-01-02T03:04:05.000Z""#),
        "date-like strings in JSON survive unchanged: {}",
        rows[0].output
    );
}

/// Compares two rows column by column; JSON columns as JSON values (ClickHouse re-renders them
/// with sorted keys).
pub fn assert_run_eq(got: &RunRow, want: &RunRow) {
    let json = |s: &str| {
        serde_json::from_str::<serde_json::Value>(s).unwrap_or_else(|e| panic!("{e}: {s}"))
    };
    assert_eq!(
        json(&got.output),
        json(&want.output),
        "output of {}",
        want.run_id
    );
    assert_eq!(
        json(&got.error),
        json(&want.error),
        "error of {}",
        want.run_id
    );
    let mut got = got.clone();
    got.output = want.output.clone();
    got.error = want.error.clone();
    assert_eq!(&got, want);
}
