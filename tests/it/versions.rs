//! Every supported server (SPEC §11): what a version lacks is refused at the preflight with one
//! line, and what the worker does differently on a version (a failover slot on 17+) is checked
//! on that version's real server. The data path itself runs on each version through
//! `RUNS_REPLICATOR_TEST_PG_VERSION` (`scripts/test.sh`).

use std::time::Duration;

use crate::replication::start_worker;
use crate::support::expect::assert_converges;
use crate::support::runs::insert;
use runs_replicator::testing::wait::wait_for;

use crate::support::{PgCluster, TestEnv, Worker, process, worker};

const CONVERGE: Duration = Duration::from_secs(120);

async fn env_on_version(label: &str, version: u32) -> TestEnv {
    let cluster: &'static PgCluster = Box::leak(Box::new(PgCluster::start_version(version, &[])));
    let mut env = TestEnv::new(label).await;
    env.pg = cluster;
    env.pg_db = cluster.create_database(label).await;
    env
}

/// Runs the preflight with `overrides` and returns (exit code, stdout + stderr).
fn preflight(env: &TestEnv, overrides: &str) -> (Option<i32>, String) {
    let out = worker::preflight(&env.write_config(process::free_port(), overrides), &[]);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code(), text)
}

/// The daemon refuses to start, within a minute, with one line naming the gap.
async fn refuses_to_start(env: &TestEnv, overrides: &str, needle: &str) {
    let port = process::free_port();
    let mut worker = Worker::start(&env.write_config(port, overrides), port, &[]);
    let status = wait_for(
        "the daemon to refuse to start",
        Duration::from_secs(60),
        || {
            let exited = worker.child.try_wait().ok().flatten();
            async move { exited }
        },
    )
    .await;
    let log = worker.log_text();
    let last = log.lines().last().unwrap_or_default();
    assert_ne!(status.code(), Some(0), "{log}");
    assert!(last.contains(needle), "the last line names the gap: {log}");
}

#[tokio::test]
async fn shards_on_14_are_refused_with_one_line() {
    let env = env_on_version("v14_shards", 14).await;
    let (code, text) = preflight(&env, "[postgres]\nshards = 2\n");
    assert_eq!(code, Some(1), "{text}");
    let line = "postgres.shards = 2 on PostgreSQL 14.";
    assert!(text.contains(line), "{text}");
    assert!(
        text.contains("shards need row filters (PostgreSQL 15+)"),
        "{text}"
    );
    refuses_to_start(&env, "[postgres]\nshards = 2\n", "shards need row filters").await;
    println!("checked: shards on 14 refused at the preflight and at start, one line each");
    let (code, text) = preflight(&env, "");
    assert_eq!(code, Some(0), "one stream on 14 passes: {text}");
}

#[tokio::test]
async fn failover_slots_on_before_17_are_refused_with_one_line() {
    let env = env_on_version("v16_failover_on", 16).await;
    let on = "[postgres]\nfailover_slot = \"on\"\n";
    let (code, text) = preflight(&env, on);
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("has no failover slots (17+)"), "{text}");
    refuses_to_start(&env, on, "has no failover slots (17+)").await;
    let (code, text) = preflight(&env, "");
    assert_eq!(code, Some(0), "auto passes on 16: {text}");
    println!("checked: failover_slot = on refused on 16 with one line; auto passes");
}

#[tokio::test]
async fn on_17_a_new_slot_is_a_failover_slot_and_an_old_one_is_altered() {
    let env = env_on_version("v17_failover", 17).await;
    let pg = env.pg_client().await;
    // A slot made before, without FAILOVER, as an older worker or an operator made it.
    pg.execute(
        "SELECT pg_create_logical_replication_slot($1, 'pgoutput')",
        &[&env.slot],
    )
    .await
    .unwrap();
    let failover = |pg: tokio_postgres::Client, slot: String| async move {
        pg.query_one(
            "SELECT failover FROM pg_replication_slots WHERE slot_name = $1",
            &[&slot],
        )
        .await
        .unwrap()
        .get::<_, bool>(0)
    };
    let worker = start_worker(&env, "").await;
    insert(&pg, "\"TaskRun\"", "run_v17_1", &[]).await;
    assert_converges(&env, CONVERGE).await;
    assert!(failover(env.pg_client().await, env.slot.clone()).await);
    assert!(
        worker
            .log_text()
            .contains("the slot is now a failover slot"),
        "{}",
        worker.log_text()
    );
    println!("checked: an existing slot without FAILOVER was altered before streaming from it");

    let mut off = TestEnv::new("v17_failover_off").await;
    off.pg = env.pg;
    off.pg_db = env.pg.create_database("v17_failover_off").await;
    let _worker = start_worker(&off, "[postgres]\nfailover_slot = \"off\"\n").await;
    assert!(!failover(off.pg_client().await, off.slot.clone()).await);
    println!("checked: failover_slot = off makes a slot without FAILOVER");
}
