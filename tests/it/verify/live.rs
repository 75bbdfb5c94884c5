//! Drift of every kind planted in ClickHouse while the daemon streams a live workload: `verify`
//! reports exactly the planted runs with their kinds and nothing of the runs the workload keeps
//! changing; `verify --repair` puts them right through the backfill path, and a second `verify`
//! exits 0, the workload still running.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use runs_replicator::rows::RunRow;

use super::{load, plant, report, verify};
use crate::replication::start_worker;
use crate::support::TestEnv;
use crate::support::expect::{actual_rows, assert_converges};
use crate::support::load::write_mixed;
use crate::support::runs::{insert_many_sql, lit};

const CONVERGE: Duration = Duration::from_secs(90);

/// The rows ClickHouse holds of `id`, tombstones included (no FINAL), newest first.
async fn raw_rows(env: &TestEnv, id: &str) -> Vec<RunRow> {
    env.ch_client()
        .query("SELECT ?fields FROM task_runs_v2 WHERE run_id = ? ORDER BY _version DESC")
        .bind(id)
        .with_setting("output_format_binary_write_json_as_string", "1")
        .with_setting("output_format_json_quote_64bit_integers", "0")
        .fetch_all::<RunRow>()
        .await
        .unwrap()
}

/// `(run id, kinds, stale columns)` of a report's drifted runs, by id.
fn drifted(r: &serde_json::Value) -> BTreeMap<String, (Vec<String>, Vec<String>)> {
    r["drifted"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            let strings = |v: &serde_json::Value, field: Option<&str>| -> Vec<String> {
                v.as_array()
                    .unwrap()
                    .iter()
                    .map(|x| match field {
                        Some(f) => x[f].as_str().unwrap().to_string(),
                        None => x.as_str().unwrap().to_string(),
                    })
                    .collect()
            };
            (
                f["run_id"].as_str().unwrap().to_string(),
                (
                    strings(&f["kinds"], None),
                    strings(&f["columns"], Some("column")),
                ),
            )
        })
        .collect()
}

/// Writes mixed changes on a thread of its own (the test's runtime blocks while a verify runs)
/// until `stop`; returns how many.
pub fn workload(url: String, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<usize> {
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let mut written = 0;
            let mut seed = 100;
            while !stop.load(Ordering::Relaxed) {
                written += write_mixed(&url, 150, seed, 1).await;
                seed += 1;
            }
            written
        })
    })
}

#[tokio::test]
async fn planted_drift_is_reported_exactly_and_repaired_while_the_stream_runs() {
    let env = TestEnv::new("vf_live").await;
    let worker = start_worker(&env, "[verify]\nwait_timeout_ms = 20000\n").await;
    let path = env.write_config(crate::support::process::free_port(), "");
    let config = load(&path);
    let pg = env.pg_client().await;
    for (table, prefix) in [("\"TaskRun\"", "seed_legacy"), ("task_run_v2", "seed_v2")] {
        let ids: Vec<String> = (0..40).map(|i| format!("{prefix}_{i:02}")).collect();
        let output = lit(r#"{"step":1,"items":[1,2.5],"ok":true}"#);
        pg.batch_execute(&insert_many_sql(table, &ids, &[("output", output)]))
            .await
            .unwrap();
    }
    pg.batch_execute("DELETE FROM \"TaskRun\" WHERE id = 'seed_legacy_05'")
        .await
        .unwrap();
    assert_converges(&env, CONVERGE).await;

    // The live workload: inserts, updates (some TOASTed), deletes and moves between the tables
    // of runs other than the seeded ones, until the end of the test.
    let stop = Arc::new(AtomicBool::new(false));
    let writer = workload(env.pg.url(&env.pg_db), stop.clone());
    tokio::time::sleep(Duration::from_secs(2)).await;

    // Drift of every kind, planted in ClickHouse directly.
    let rows = actual_rows(&env).await;
    let bump = |id: &str, f: &dyn Fn(&mut RunRow)| {
        let mut r = rows[id].clone();
        f(&mut r);
        r._version += 1;
        r
    };
    let mut ghost = rows["seed_v2_00"].clone();
    ghost.run_id = "run_ghost".into();
    ghost.friendly_id = "run_ghost".into();
    let mut undeleted = raw_rows(&env, "seed_legacy_05").await.remove(0);
    assert_eq!(
        undeleted._is_deleted, 1,
        "Postgres deleted it: ClickHouse has its tombstone"
    );
    undeleted._is_deleted = 0;
    undeleted._version += 1;
    plant(
        &config,
        vec![
            bump("seed_legacy_01", &|r| r.status = "CRASHED".into()),
            bump("seed_v2_02", &|r| {
                r.output = r#"{"data":{"step":2}}"#.into()
            }),
            bump("seed_legacy_03", &|r| r._is_deleted = 1),
            undeleted,
            ghost,
        ],
    )
    .await;
    let ch = env.ch_client();
    ch.query("DELETE FROM task_runs_v2 WHERE run_id = 'seed_v2_04'")
        .execute()
        .await
        .unwrap();
    ch.query("ALTER TABLE raw_task_runs_payload_v1 DELETE WHERE run_id = 'seed_v2_06'")
        .with_setting("mutations_sync", "2")
        .execute()
        .await
        .unwrap();
    let planted: BTreeMap<&str, (&[&str], &[&str])> = BTreeMap::from([
        ("seed_legacy_01", (&["stale"][..], &["status"][..])),
        ("seed_v2_02", (&["stale"][..], &["output"][..])),
        ("seed_legacy_03", (&["missing"][..], &[][..])),
        ("seed_legacy_05", (&["extra"][..], &[][..])),
        ("run_ghost", (&["extra"][..], &[][..])),
        ("seed_v2_04", (&["missing"][..], &[][..])),
        ("seed_v2_06", (&["missing_payload"][..], &[][..])),
    ]);
    println!(
        "planted: a stale status, a stale JSON output, a tombstone over a live run, a deleted run \
         brought back, a run Postgres never had, a run deleted from ClickHouse, a payload row \
         deleted; the workload keeps writing other runs"
    );

    let out = verify(&path, &["--format", "json", "--max-report", "100"]);
    assert_eq!(out.status.code(), Some(1), "drift found");
    let r = report(&out);
    let got = drifted(&r);
    println!(
        "verify: {} runs compared, {} re-checked, {} changed meanwhile, {} unsettled, rounds {}; \
         drifted: {:?}",
        r["runs_compared"],
        r["rechecked"],
        r["changed_meanwhile"],
        r["unsettled"],
        r["rounds"],
        got
    );
    let want: BTreeMap<String, (Vec<String>, Vec<String>)> = planted
        .iter()
        .map(|(id, (kinds, cols))| {
            let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect();
            (id.to_string(), (s(kinds), s(cols)))
        })
        .collect();
    assert_eq!(got, want, "exactly the planted runs and kinds: {r}");
    assert!(
        r["changed_meanwhile"].as_u64().unwrap() > 0,
        "the workload's changes were among the differences, and none was reported: {r}"
    );
    assert_eq!(
        r["unsettled"]["stream_behind"], 0,
        "the stream passed the snapshot: {r}"
    );
    let stale_status = &r["drifted"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["run_id"] == "seed_legacy_01")
        .unwrap()["columns"][0];
    assert_eq!(stale_status["expected"], "PENDING");
    assert_eq!(stale_status["actual"], "CRASHED");

    let text = verify(&path, &[]);
    let shown = String::from_utf8_lossy(&text.stdout);
    println!("{shown}");
    assert!(
        shown.contains("status: expected PENDING  actual CRASHED"),
        "{shown}"
    );

    let repaired = report(&verify(&path, &["--repair", "--format", "json"]));
    println!("verify --repair: {}", repaired["repair"]);
    assert_eq!(drifted(&repaired).len(), planted.len(), "{repaired}");
    let repair = &repaired["repair"];
    assert_eq!(
        repair["rewritten"], 5,
        "stale, hidden, deleted, payload: {repair}"
    );
    assert_eq!(
        repair["tombstoned"], 2,
        "the brought-back and the ghost: {repair}"
    );
    assert_eq!(repair["unrepairable"], serde_json::json!({}));

    let again = verify(&path, &["--format", "json"]);
    let r = report(&again);
    println!(
        "verify after the repair: in sync {}, {} runs, {} re-checked, {} changed meanwhile",
        r["in_sync"], r["runs_compared"], r["rechecked"], r["changed_meanwhile"]
    );
    assert_eq!(again.status.code(), Some(0), "{r}");
    assert!(!writer.is_finished(), "the workload ran throughout");

    stop.store(true, Ordering::Relaxed);
    let written = writer.join().unwrap();
    println!("the workload wrote {written} changes meanwhile");
    assert_converges(&env, CONVERGE).await;
    drop(worker);
}
