//! A repair reports what it did, not what it attempted: a run that a tombstone with a version
//! above the repair's hides (written by another tool, "from the future") cannot be put right by
//! rewriting it — the rewritten row stays hidden. `verify --repair` lists it as unrepairable with
//! the tombstone's version and how to remove it, not as rewritten, and the next verify agrees;
//! once the tombstone is removed as the report says, the run is in sync.

use std::time::Duration;

use super::{json, load, plant, verify};
use crate::replication::start_worker;
use crate::support::expect::{actual_rows, assert_converges};
use crate::support::runs::insert_many_sql;
use crate::support::{TestEnv, process};

/// `_version`'s LSN bits.
const LSN_MASK: u64 = (1 << 56) - 1;

fn drifted(r: &serde_json::Value) -> Vec<(String, serde_json::Value)> {
    r["drifted"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["run_id"].as_str().unwrap().to_string(),
                f["kinds"].clone(),
            )
        })
        .collect()
}

#[tokio::test]
async fn a_run_hidden_by_a_newer_tombstone_is_unrepairable_not_rewritten() {
    let env = TestEnv::new("vf_unrepairable").await;
    let _worker = start_worker(&env, "").await;
    let pg = env.pg_client().await;
    let runs: Vec<String> = (0..10).map(|i| format!("run_ur_{i:02}")).collect();
    pg.batch_execute(&insert_many_sql("task_run_v2", &runs, &[]))
        .await
        .unwrap();
    assert_converges(&env, Duration::from_secs(60)).await;

    let path = env.write_config(process::free_port(), "");
    let config = load(&path);
    let rows = actual_rows(&env).await;
    // A tombstone over a live run with a version no repair reaches (same generation, an LSN far
    // in the future), and beside it ordinary drift a repair fixes.
    let mut hidden = rows["run_ur_02"].clone();
    hidden._is_deleted = 1;
    hidden._version = (hidden._version & !LSN_MASK) | 0x00F0_0000_0000_0000;
    let future = hidden._version;
    let mut stale = rows["run_ur_05"].clone();
    stale.status = "CRASHED".into();
    stale._version += 1;
    plant(&config, vec![hidden, stale]).await;
    println!(
        "planted: a tombstone at _version {future} over run_ur_02, a stale status on run_ur_05"
    );
    // A later commit moves the WAL on, so the repair's L is above the stale row's version.
    pg.batch_execute(&insert_many_sql("task_run_v2", &["run_ur_10".into()], &[]))
        .await
        .unwrap();

    let out = verify(&path, &["--repair", "--format", "json"]);
    let r = json(&out);
    println!(
        "verify --repair: exit {:?}, repair {}",
        out.status.code(),
        r["repair"]
    );
    assert_eq!(out.status.code(), Some(1), "{r}");
    assert_eq!(
        drifted(&r),
        [
            ("run_ur_02".to_string(), serde_json::json!(["missing"])),
            ("run_ur_05".to_string(), serde_json::json!(["stale"])),
        ]
    );
    let repair = &r["repair"];
    assert_eq!(
        repair["rewritten"], 1,
        "only run_ur_05 was rewritten: {repair}"
    );
    let why = repair["unrepairable"]["run_ur_02"]
        .as_str()
        .unwrap_or_else(|| panic!("run_ur_02 is listed as unrepairable: {repair}"));
    println!("unrepairable run_ur_02: {why}");
    assert!(why.contains("tombstone"), "{why}");
    assert!(
        why.contains(&future.to_string()),
        "names the version: {why}"
    );
    let removal = format!(
        "ALTER TABLE {}.task_runs_v2 DELETE WHERE run_id = 'run_ur_02' AND _version = {future}",
        env.ch_db
    );
    assert!(why.contains(&removal), "says how to remove it: {why}");
    assert_eq!(
        repair["unrepairable"].as_object().unwrap().len(),
        1,
        "{repair}"
    );

    let text = String::from_utf8_lossy(&verify(&path, &["--repair"]).stdout).into_owned();
    println!("{text}");
    assert!(
        text.contains("run_ur_02: a tombstone at _version"),
        "{text}"
    );

    // The report told the truth: the stale run is put right, the hidden one still drifts.
    let again = verify(&path, &["--format", "json"]);
    let r = json(&again);
    assert_eq!(again.status.code(), Some(1), "{r}");
    assert_eq!(
        drifted(&r),
        [("run_ur_02".to_string(), serde_json::json!(["missing"]))]
    );

    // Removing the tombstone as the report says puts the run right.
    env.ch_client()
        .query(&removal)
        .with_setting("mutations_sync", "2")
        .execute()
        .await
        .unwrap();
    let fixed = verify(&path, &["--format", "json"]);
    assert_eq!(fixed.status.code(), Some(0), "{}", json(&fixed));
    println!("after the report's ALTER TABLE … DELETE: verify is in sync");
}
