//! The copies a stream owes and the marker that remembers them, across crashes at the moments
//! that matter (issue 21): the worker is stopped at a named failpoint (`src/failpoint.rs`) and
//! killed with SIGKILL there; the next start must still deliver everything.

use std::time::Duration;

use runs_replicator::testing::wait::wait_for;

use crate::reliability::{wait_ready, wait_unready};
use crate::replication::start_worker;
use crate::support::expect::assert_converges;
use crate::support::runs::{insert, insert_many_sql};
use crate::support::{TestEnv, Worker, process};

const CONVERGE: Duration = Duration::from_secs(120);

/// Starts the worker with `overrides`, stopped at `failpoint`; returns once it is there.
pub(crate) async fn stopped_at(env: &TestEnv, overrides: &str, failpoint: &str) -> Worker {
    let port = process::free_port();
    let config = env.write_config(port, overrides);
    let worker = Worker::start(
        &config,
        port,
        &[(runs_replicator::failpoint::VARIABLE, failpoint)],
    );
    let needle = format!("failpoint reached: {failpoint}");
    wait_for(&needle, Duration::from_secs(60), || async {
        worker.log_text().contains(&needle).then_some(())
    })
    .await;
    worker
}

/// `n` runs in each table, written before any slot exists (their `updatedAt` is days old).
pub(crate) async fn seed(pg: &tokio_postgres::Client, prefix: &str, n: usize) {
    for table in ["\"TaskRun\"", "task_run_v2"] {
        let ids: Vec<String> = (0..n)
            .map(|i| format!("{prefix}_{}_{i:04}", table.trim_matches('"')))
            .collect();
        pg.batch_execute(&insert_many_sql(table, &ids, &[]))
            .await
            .unwrap();
    }
}

pub(crate) async fn slot_count(pg: &tokio_postgres::Client, slot: &str) -> i64 {
    pg.query_one(
        "SELECT count(*) FROM pg_replication_slots WHERE slot_name = $1",
        &[&slot],
    )
    .await
    .unwrap()
    .get(0)
}

/// Drops `slot` once no walsender holds it.
pub(crate) async fn drop_slot(pg: &tokio_postgres::Client, slot: &str) {
    wait_for("the slot to be dropped", Duration::from_secs(20), || async {
        let _ = pg
            .execute(
                "SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots WHERE slot_name = $1 AND active_pid IS NOT NULL",
                &[&slot],
            )
            .await;
        pg.execute("SELECT pg_drop_replication_slot($1)", &[&slot])
            .await
            .ok()
            .map(|_| ())
    })
    .await;
}

#[tokio::test]
async fn a_kill_right_after_the_bootstrap_slot_is_created_loses_nothing() {
    let env = TestEnv::new("rc_boot_kill").await;
    let pg = env.pg_client().await;
    seed(&pg, "run_bk", 150).await;
    let overrides = "[backfill]\non_slot_create = true\n";
    let mut worker = stopped_at(&env, overrides, "slot.created").await;
    assert_eq!(slot_count(&pg, &env.slot).await, 1, "the slot exists");
    worker.kill9();
    println!("injected: SIGKILL with the slot created and its copy not yet made");
    insert(&pg, "\"TaskRun\"", "run_bk_after", &[]).await;
    let _worker = start_worker(&env, overrides).await;
    assert_converges(&env, CONVERGE).await;
    println!("checked: the restarted worker copied the 300 runs before the slot; equal");
}

#[tokio::test]
async fn a_kill_right_after_a_lost_slot_is_recreated_still_copies_the_gap() {
    let env = TestEnv::new("rc_gap_kill").await;
    let pg = env.pg_client().await;
    let overrides = "[postgres]\nrecreate_lost_slot = true\n";
    let mut worker = start_worker(&env, overrides).await;
    insert(&pg, "\"TaskRun\"", "run_gk_1", &[]).await;
    assert_converges(&env, CONVERGE).await;
    assert_eq!(worker.terminate().code(), Some(0));
    drop_slot(&pg, &env.slot).await;
    pg.batch_execute(
        "UPDATE \"TaskRun\" SET status = 'COMPLETED_SUCCESSFULLY', \"updatedAt\" = now() WHERE id = 'run_gk_1'",
    )
    .await
    .unwrap();
    insert(
        &pg,
        "task_run_v2",
        "run_gk_gap",
        &[("updatedAt", "now()".into())],
    )
    .await;
    println!(
        "injected: the slot lost while the worker was stopped; an update and a run in the gap"
    );
    let mut worker = stopped_at(&env, overrides, "slot.created").await;
    worker.kill9();
    println!("injected: SIGKILL with the new slot created and the gap not yet recorded");
    let _worker = start_worker(&env, overrides).await;
    assert_converges(&env, CONVERGE).await;
    println!("checked: the gap's changes arrived after the restart; equal");
}

#[tokio::test]
async fn a_slot_found_without_a_marker_gives_no_evidence_for_a_later_gap() {
    let env = TestEnv::new("rc_no_evidence").await;
    let pg = env.pg_client().await;
    // A slot made before this worker (trigger.dev's own service used the same name), holding
    // changes it never delivered: their `updatedAt` is days old.
    pg.batch_execute(&format!(
        "CREATE PUBLICATION {} FOR TABLE \"TaskRun\", task_run_v2",
        env.publication
    ))
    .await
    .unwrap();
    pg.execute(
        "SELECT pg_create_logical_replication_slot($1, 'pgoutput')",
        &[&env.slot],
    )
    .await
    .unwrap();
    seed(&pg, "run_ne", 40).await;
    let overrides = "[postgres]\nrecreate_lost_slot = true\n";
    let mut worker = stopped_at(&env, overrides, "slot.ensured").await;
    worker.kill9();
    drop_slot(&pg, &env.slot).await;
    println!(
        "injected: the worker adopted an existing slot, was killed before streaming, and the slot was lost"
    );
    let _worker = start_worker(&env, overrides).await;
    assert_converges(&env, CONVERGE).await;
    println!("checked: without evidence of a safe time the gap was everything; equal");
}

#[tokio::test]
async fn a_bootstrap_interrupted_and_then_its_slot_lost_copies_both() {
    let env = TestEnv::new("rc_boot_lost").await;
    let pg = env.pg_client().await;
    seed(&pg, "run_bl", 150).await;
    let overrides = "[backfill]\non_slot_create = true\n[postgres]\nrecreate_lost_slot = true\n";
    let mut worker = stopped_at(&env, overrides, "copy.started").await;
    worker.kill9();
    drop_slot(&pg, &env.slot).await;
    insert(
        &pg,
        "\"TaskRun\"",
        "run_bl_gap",
        &[("updatedAt", "now()".into())],
    )
    .await;
    println!("injected: SIGKILL as the bootstrap began; then the slot was lost; a run in the gap");
    let worker = start_worker(&env, overrides).await;
    assert_converges(&env, CONVERGE).await;
    println!("checked: both the bootstrap and the gap were copied; equal");
    drop(worker);
}

#[tokio::test]
async fn the_marker_follows_the_server_not_the_spelling_of_its_url() {
    let env = TestEnv::new("rc_alias").await;
    let pg = env.pg_client().await;
    let mut worker = start_worker(&env, "").await;
    insert(&pg, "\"TaskRun\"", "run_alias_1", &[]).await;
    assert_converges(&env, CONVERGE).await;
    assert_eq!(worker.terminate().code(), Some(0));
    drop_slot(&pg, &env.slot).await;
    insert(&pg, "\"TaskRun\"", "run_alias_gap", &[]).await;
    // The same server under another name (a DNS alias, a failover endpoint).
    let alias = env.pg.url(&env.pg_db).replace("127.0.0.1", "localhost");
    let port = process::free_port();
    let config = env.write_config(port, &format!("[postgres]\nurl = \"{alias}\"\n"));
    println!(
        "injected: the slot dropped; the worker restarted with the server's host as localhost"
    );
    let worker = Worker::start(&config, port, &[]);
    let body = wait_unready(&worker, "disappeared", Duration::from_secs(30)).await;
    println!("checked: the restarted worker refuses: {}", body.trim());
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(slot_count(&pg, &env.slot).await, 0, "no new slot");
}

#[tokio::test]
async fn an_unreadable_marker_is_a_hard_stop_not_no_marker() {
    let env = TestEnv::new("rc_bad_marker").await;
    let pg = env.pg_client().await;
    let mut worker = start_worker(&env, "").await;
    insert(&pg, "\"TaskRun\"", "run_bm_1", &[]).await;
    assert_converges(&env, CONVERGE).await;
    assert_eq!(worker.terminate().code(), Some(0));
    drop_slot(&pg, &env.slot).await;
    let ch = env.ch_client();
    ch.query(
        "INSERT INTO runs_replicator_state (kind, key, value, updated_at, _version) \
         SELECT kind, key, '{\"slot\": 3', updated_at, _version + 1 FROM runs_replicator_state FINAL WHERE kind = 'slot'",
    )
    .execute()
    .await
    .unwrap();
    println!("injected: the slot dropped and its marker overwritten with unreadable text");
    let port = process::free_port();
    let worker = Worker::start(&env.write_config(port, ""), port, &[]);
    let body = wait_unready(&worker, "marker", Duration::from_secs(30)).await;
    println!("checked: /readyz: {}", body.trim());
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(slot_count(&pg, &env.slot).await, 0, "no new slot");
    let _ = wait_ready;
}

#[tokio::test]
async fn a_later_state_write_wins_over_an_earlier_one_from_a_clock_ahead() {
    use runs_replicator::sink::state::StateStore;
    let env = TestEnv::new("rc_versions").await;
    let store = StateStore::new(env.ch_client(), Duration::from_secs(30));
    store.ensure().await.unwrap();
    store.put("test", "k", "first").await.unwrap();
    // Another instance whose clock runs an hour ahead wrote the key.
    env.ch_client()
        .query(
            "INSERT INTO runs_replicator_state (kind, key, value, updated_at, _version) \
             VALUES ('test', 'k', 'from a clock ahead', now64(3), toUInt64(toUnixTimestamp(now()) + 3600) * 1000000)",
        )
        .execute()
        .await
        .unwrap();
    store.put("test", "k", "latest").await.unwrap();
    assert_eq!(
        store.get("test", "k").await.unwrap().as_deref(),
        Some("latest")
    );
    println!("checked: the last write wins although an earlier one carries a later clock");
}

#[tokio::test]
async fn a_bootstrap_killed_at_every_moment_in_turn_loses_nothing() {
    let env = TestEnv::new("rc_every_moment").await;
    let pg = env.pg_client().await;
    seed(&pg, "run_em", 100).await;
    let overrides = "[backfill]\non_slot_create = true\n";
    for (i, moment) in ["slot.intent_recorded", "slot.created", "copy.started"]
        .iter()
        .enumerate()
    {
        let mut worker = stopped_at(&env, overrides, moment).await;
        worker.kill9();
        println!("injected: SIGKILL at {moment}");
        insert(&pg, "\"TaskRun\"", &format!("run_em_between_{i}"), &[]).await;
    }
    let _worker = start_worker(&env, overrides).await;
    assert_converges(&env, CONVERGE).await;
    println!("checked: after three kills, one at each moment, everything arrived; equal");
}

#[tokio::test]
async fn a_marker_of_the_previous_format_is_taken_over() {
    let env = TestEnv::new("rc_v1").await;
    let pg = env.pg_client().await;
    let mut worker = start_worker(&env, "").await;
    insert(&pg, "\"TaskRun\"", "run_v1_1", &[]).await;
    assert_converges(&env, CONVERGE).await;
    assert_eq!(worker.terminate().code(), Some(0));
    // What the previous version wrote: keyed by how the URL spelled the server.
    let ch = env.ch_client();
    ch.query(
        "ALTER TABLE runs_replicator_state DELETE WHERE kind = 'slot' SETTINGS mutations_sync = 2",
    )
    .execute()
    .await
    .unwrap();
    let key = format!("{}:{}/{}/{}", env.pg.host, env.pg.port, env.pg_db, env.slot);
    let value = format!(
        "{{\"slot\":\"{}\",\"database\":\"{}:{}/{}\",\"safe_since\":1796000000,\"pending\":null,\"updated_at\":1796000000}}",
        env.slot, env.pg.host, env.pg.port, env.pg_db
    );
    ch.query(
        "INSERT INTO runs_replicator_state (kind, key, value, updated_at, _version) VALUES ('slot', ?, ?, now64(3), 1)",
    )
    .bind(&key)
    .bind(&value)
    .execute()
    .await
    .unwrap();
    drop_slot(&pg, &env.slot).await;
    println!("injected: only a format-1 marker; the slot dropped");
    let port = process::free_port();
    let worker = Worker::start(&env.write_config(port, ""), port, &[]);
    let body = wait_unready(&worker, "disappeared", Duration::from_secs(30)).await;
    assert!(
        body.contains("--updated-since '2026-11-30 00:38:20"),
        "{body}"
    );
    println!("checked: the old marker was honoured: {}", body.trim());
    assert_eq!(slot_count(&pg, &env.slot).await, 0, "no new slot");
}

#[tokio::test]
async fn a_stream_pointed_at_another_cluster_is_a_hard_stop() {
    let env = TestEnv::new("rc_other_server").await;
    let pg = env.pg_client().await;
    let mut worker = start_worker(&env, "").await;
    insert(&pg, "\"TaskRun\"", "run_os_1", &[]).await;
    assert_converges(&env, CONVERGE).await;
    assert_eq!(worker.terminate().code(), Some(0));
    // Another cluster, with a database of the same name (a restore into a new cluster).
    let other: &'static crate::support::PgCluster =
        Box::leak(Box::new(crate::support::PgCluster::start(&[])));
    other
        .connect("postgres")
        .await
        .batch_execute(&format!(
            "CREATE DATABASE {} TEMPLATE rr_template",
            env.pg_db
        ))
        .await
        .unwrap();
    let url = other.url(&env.pg_db);
    let port = process::free_port();
    let config = env.write_config(port, &format!("[postgres]\nurl = \"{url}\"\n"));
    println!("injected: the same stream's URL now reaches another cluster");
    let worker = Worker::start(&config, port, &[]);
    let body = wait_unready(&worker, "system identifier", Duration::from_secs(30)).await;
    println!("checked: /readyz: {}", body.trim());
    let slots: i64 = other
        .connect(&env.pg_db)
        .await
        .query_one("SELECT count(*) FROM pg_replication_slots", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(slots, 0, "nothing is created on the other cluster");
}
