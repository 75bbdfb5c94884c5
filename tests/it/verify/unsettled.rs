//! A verify reports only what it proved. Runs it could not settle are reported apart as
//! unsettled — not drift, not repaired, never "in sync" (exit 2):
//! - the stream stopped (the daemon down: its slot stays, nobody streams from it) while a run
//!   changed: ClickHouse lacks the change, and `verify --repair` must neither call it drift nor
//!   rewrite it; once the stream resumes, it delivers the change and the verify is in sync;
//! - a run that changes through every re-check while the stream keeps up.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use super::{json, verify};
use crate::replication::start_worker;
use crate::support::expect::{actual_rows, assert_converges};
use crate::support::runs::insert_many_sql;
use crate::support::{TestEnv, process};

const CONVERGE: Duration = Duration::from_secs(60);

fn ids(r: &serde_json::Value, field: &str) -> Vec<String> {
    r[field]
        .as_array()
        .unwrap_or_else(|| panic!("no {field} list: {r}"))
        .iter()
        .map(|f| f["run_id"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn a_change_the_stopped_stream_has_not_delivered_is_unsettled_not_drift_and_not_repaired() {
    let env = TestEnv::new("vf_unsettled").await;
    let mut worker = start_worker(&env, "").await;
    let pg = env.pg_client().await;
    let runs: Vec<String> = (0..20).map(|i| format!("run_us_{i:02}")).collect();
    pg.batch_execute(&insert_many_sql("task_run_v2", &runs, &[]))
        .await
        .unwrap();
    assert_converges(&env, CONVERGE).await;

    // The daemon stops: its slot stays, nothing streams from it. A run changes meanwhile.
    assert_eq!(worker.terminate().code(), Some(0));
    pg.batch_execute("UPDATE task_run_v2 SET status = 'EXECUTING' WHERE id = 'run_us_03'")
        .await
        .unwrap();
    println!("injected: the daemon stopped, then run_us_03 became EXECUTING in Postgres");

    let path = env.write_config(process::free_port(), "[verify]\nwait_timeout_ms = 3000\n");
    let out = verify(&path, &["--repair", "--format", "json"]);
    let r = json(&out);
    println!(
        "verify --repair: exit {:?}, outcome {}, drift {}, unsettled {} {}, repair {}",
        out.status.code(),
        r["outcome"],
        r["drift"],
        r["unsettled"],
        r["unsettled_runs"],
        r["repair"]
    );
    assert_eq!(
        out.status.code(),
        Some(2),
        "nothing proven wrong, but not every run could be checked: not 0, and not 1 (drift): {r}"
    );
    assert_eq!(r["outcome"], "unsettled", "{r}");
    assert_eq!(
        r["drift"]["runs"], 0,
        "an undelivered change is not drift: {r}"
    );
    assert_eq!(ids(&r, "drifted"), Vec::<String>::new());
    assert_eq!(ids(&r, "unsettled_runs"), ["run_us_03"]);
    assert_eq!(r["unsettled"]["stream_behind"], 1, "{r}");
    let unsettled = &r["unsettled_runs"][0];
    assert_eq!(unsettled["reason"], "stream_behind");
    assert_eq!(unsettled["differed"], serde_json::json!(["stale"]));
    assert_eq!(r["runs_in_sync"], 19, "{r}");
    assert_eq!(
        r["repair"]["rewritten"], 0,
        "an unsettled run is never repaired: {r}"
    );
    assert_eq!(r["repair"]["tombstoned"], 0, "{r}");
    assert_eq!(
        actual_rows(&env).await["run_us_03"].status,
        "PENDING",
        "ClickHouse still holds what the stream delivered: the repair left it alone"
    );

    let text = verify(&path, &[]);
    let shown = String::from_utf8_lossy(&text.stdout);
    println!("{shown}");
    assert_eq!(text.status.code(), Some(2));
    assert!(
        shown.starts_with("verify: UNSETTLED: 1 of 20 runs could not be settled"),
        "{shown}"
    );
    assert!(
        shown.contains("run_us_03  the stream had not delivered"),
        "{shown}"
    );
    assert!(
        shown.contains("slot ") && shown.contains("is not streaming"),
        "{shown}"
    );

    // The stream resumes and delivers the change: it was in flight, not drift.
    let _worker = start_worker(&env, "").await;
    assert_converges(&env, CONVERGE).await;
    let again = verify(&path, &["--format", "json"]);
    let r = json(&again);
    assert_eq!(again.status.code(), Some(0), "{r}");
    assert_eq!(r["outcome"], "in_sync");
    println!("the stream resumed and delivered it: verify is in sync, exit 0");
}

#[tokio::test]
async fn a_run_changing_through_every_recheck_is_unsettled_and_never_exits_0() {
    let env = TestEnv::new("vf_hot").await;
    let _worker = start_worker(&env, "").await;
    let pg = env.pg_client().await;
    let runs: Vec<String> = (0..10).map(|i| format!("run_hot_{i:02}")).collect();
    pg.batch_execute(&insert_many_sql("task_run_v2", &runs, &[]))
        .await
        .unwrap();
    assert_converges(&env, CONVERGE).await;

    // One run updated in a tight loop, each update its own transaction, for the whole verify.
    let stop = Arc::new(AtomicBool::new(false));
    let url = env.pg.url(&env.pg_db);
    let flag = stop.clone();
    let writer = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
                .await
                .unwrap();
            tokio::spawn(conn);
            let mut n = 0u64;
            while !flag.load(Ordering::Relaxed) {
                client
                    .batch_execute(
                        "UPDATE task_run_v2 SET \"usageDurationMs\" = \"usageDurationMs\" + 1 \
                         WHERE id = 'run_hot_04'",
                    )
                    .await
                    .unwrap();
                n += 1;
            }
            n
        })
    });
    tokio::time::sleep(Duration::from_secs(1)).await;

    let path = env.write_config(
        process::free_port(),
        "[verify]\nrounds = 2\nwait_timeout_ms = 20000\n",
    );
    let out = verify(&path, &["--repair", "--format", "json"]);
    stop.store(true, Ordering::Relaxed);
    let updates = writer.join().unwrap();
    let r = json(&out);
    println!(
        "verify --repair during {updates} updates of run_hot_04: exit {:?}, outcome {}, rounds {}, \
         drift {}, unsettled {} {}",
        out.status.code(),
        r["outcome"],
        r["rounds"],
        r["drift"]["runs"],
        r["unsettled"],
        r["unsettled_runs"]
    );
    assert_eq!(
        out.status.code(),
        Some(2),
        "a run that never settled is not proven in sync: {r}"
    );
    assert_eq!(r["drift"]["runs"], 0, "{r}");
    assert_eq!(ids(&r, "unsettled_runs"), ["run_hot_04"]);
    assert_eq!(r["unsettled_runs"][0]["reason"], "changing", "{r}");
    assert_eq!(r["repair"]["rewritten"], 0, "{r}");

    assert_converges(&env, CONVERGE).await;
    let again = verify(&path, &["--format", "json"]);
    assert_eq!(again.status.code(), Some(0), "{}", json(&again));
}
