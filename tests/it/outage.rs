//! Recovery after an outage with the default settings (not the shortened retry caps the other
//! tests use): ingestion resumes within 2 s of ClickHouse, or Postgres, answering again, and
//! `/readyz` shows a known outage at once and clears after it.

use std::time::{Duration, Instant};

use runs_replicator::testing::wait::poll;

use crate::reliability::{readyz, wait_ready};
use crate::replication::start_worker;
use crate::support::expect::assert_converges;
use crate::support::runs::insert;
use crate::support::{ChServer, PgCluster, TestEnv};

/// The worker's defaults for every setting the test harness shortens (`TestEnv::config_toml`).
const DEFAULTS: &str = "[postgres]\nstatus_interval_ms = 1000\nconnect_timeout_ms = 5000\n\
    slot_poll_interval_ms = 10000\n[clickhouse]\nretry_min_delay_ms = 100\n\
    retry_max_delay_ms = 2000\n[batch]\nmax_rows = 10000\nflush_interval_ms = 1000\n\
    [metrics]\nclickhouse_unready_after_ms = 30000\n";

/// How long recovery may take once the server answers again.
const RESUME: Duration = Duration::from_secs(2);

/// Rows of the runs table whose run id starts with `prefix`, as stored.
async fn stored(env: &TestEnv, prefix: &str) -> u64 {
    env.ch_client()
        .query("SELECT count() FROM task_runs_v2 WHERE startsWith(run_id, ?)")
        .bind(prefix)
        .fetch_one::<u64>()
        .await
        .unwrap_or(0)
}

/// Polls `/readyz` until it fails, at most `within`; returns how long it took and the body.
async fn unready_within(
    worker: &crate::support::worker::Worker,
    within: Duration,
) -> (Duration, String) {
    let since = Instant::now();
    let body = poll(within, Duration::from_millis(50), || async {
        match readyz(worker).await {
            Some((503, body)) => Ok(body),
            other => Err(other),
        }
    })
    .await
    .unwrap_or_else(|last| panic!("/readyz still passes {within:?} into the outage: {last:?}"));
    (since.elapsed(), body)
}

#[tokio::test]
async fn with_the_defaults_ingestion_resumes_within_2_s_of_clickhouse_answering_again() {
    let ch: &'static ChServer = Box::leak(Box::new(ChServer::start(&[])));
    let mut env = TestEnv::new("default_ch_recovery").await;
    env.ch = ch;
    env.ch_db = ch.create_database("default_ch_recovery").await;
    let worker = start_worker(&env, DEFAULTS).await;
    let pg = env.pg_client().await;
    // A run every 100 ms, before, during and after the outage.
    let trickle = tokio::spawn(async move {
        for i in 0..450 {
            insert(&pg, "task_run_v2", &format!("run_dc_{i:03}"), &[]).await;
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    tokio::time::sleep(Duration::from_secs(3)).await;
    ch.kill();
    println!("injected: ClickHouse killed for 30 s, the worker on its default settings");
    let (took, body) = unready_within(&worker, Duration::from_secs(5)).await;
    println!(
        "checked: /readyz failed {took:?} into the outage: {}",
        body.trim()
    );
    assert!(
        took <= Duration::from_secs(3),
        "a known outage shows at once: {took:?}"
    );
    assert!(body.contains("ClickHouse"), "{body}");
    tokio::time::sleep(Duration::from_secs(30).saturating_sub(took)).await;
    ch.restart();
    let answering = Instant::now();
    let before = stored(&env, "run_dc_").await;
    poll(
        Duration::from_secs(30),
        Duration::from_millis(20),
        || async {
            let now = stored(&env, "run_dc_").await;
            if now > before { Ok(now) } else { Err(now) }
        },
    )
    .await
    .unwrap_or_else(|n| panic!("no rows after the outage ({n})"));
    let resumed = answering.elapsed();
    println!("checked: rows landed {resumed:?} after ClickHouse answered again");
    assert!(
        resumed <= RESUME,
        "resumed {resumed:?} after ClickHouse answered"
    );
    wait_ready(&worker, Duration::from_secs(5)).await;
    println!(
        "checked: /readyz passes again {:?} after",
        answering.elapsed()
    );
    trickle.await.unwrap();
    assert_converges(&env, Duration::from_secs(60)).await;
}

#[tokio::test]
async fn with_the_defaults_ingestion_resumes_within_2_s_of_postgres_answering_again() {
    let cluster: &'static PgCluster = Box::leak(Box::new(PgCluster::start(&[])));
    let mut env = TestEnv::new("default_pg_recovery").await;
    env.pg = cluster;
    env.pg_db = cluster.create_database("default_pg_recovery").await;
    let worker = start_worker(&env, DEFAULTS).await;
    let pg = env.pg_client().await;
    insert(&pg, "task_run_v2", "run_dp_before", &[]).await;
    assert_converges(&env, Duration::from_secs(30)).await;
    drop(pg);
    cluster.kill();
    println!("injected: Postgres crashed (immediate shutdown), down for 20 s");
    let (took, body) = unready_within(&worker, Duration::from_secs(5)).await;
    println!(
        "checked: /readyz failed {took:?} into the outage: {}",
        body.trim()
    );
    assert!(
        took <= Duration::from_secs(3),
        "a known outage shows at once: {took:?}"
    );
    tokio::time::sleep(Duration::from_secs(20).saturating_sub(took)).await;
    cluster.restart();
    let answering = Instant::now();
    let pg = env.pg_client().await;
    insert(&pg, "task_run_v2", "run_dp_after", &[]).await;
    poll(
        Duration::from_secs(30),
        Duration::from_millis(20),
        || async {
            match stored(&env, "run_dp_after").await {
                0 => Err(()),
                n => Ok(n),
            }
        },
    )
    .await
    .unwrap_or_else(|()| panic!("the run written after the restart did not arrive"));
    let resumed = answering.elapsed();
    println!("checked: a run written once Postgres answered landed {resumed:?} after");
    assert!(
        resumed <= RESUME,
        "resumed {resumed:?} after Postgres answered"
    );
    wait_ready(&worker, Duration::from_secs(5)).await;
    println!(
        "checked: /readyz passes again {:?} after",
        answering.elapsed()
    );
    assert_converges(&env, Duration::from_secs(30)).await;
}
