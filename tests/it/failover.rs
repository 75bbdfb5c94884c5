//! SPEC §11: a failover of the Postgres primary under a running worker, against real servers of
//! the version each case is about and a physical standby of the same version (made without
//! `pg_basebackup`: `support::standby`). The worker reaches the servers through a URL naming both
//! (several hosts) or through one name that moves (`support::relay`).
//!
//! - With a failover slot (17, 18): the standby's synchronized copy of the slot survives the
//!   promotion and streaming goes on from it; ClickHouse ends equal to the new primary, and the
//!   first change after the promotion arrives within 30 s.
//! - Without one (15, 16): the promotion loses the slot; the lost-slot rules apply.
//! - A standby named in `synchronized_standby_slots` that is down (17): the worker says why
//!   nothing arrives.
//!
//! Timelines and divergence (a lagging standby promoted, an old primary back) are in
//! `timelines.rs`, on the helpers here.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use runs_replicator::testing::metrics;
use runs_replicator::testing::wait::wait_for;

use crate::reliability::{wait_ready, wait_unready};
use crate::replication::start_worker;
use crate::support::expect::{actual_rows, assert_converges};
use crate::support::load::Rng;
use crate::support::relay::Relay;
use crate::support::runs::{insert, insert_sql, lit};
use crate::support::standby::StandbyOptions;
use crate::support::{PgCluster, TestEnv, Worker};

pub(crate) const CONVERGE: Duration = Duration::from_secs(120);
/// The physical slot (and application_name) of the standby.
pub(crate) const STANDBY: &str = "sb1";

fn leak(cluster: PgCluster) -> &'static PgCluster {
    Box::leak(Box::new(cluster))
}

/// A primary of `version` and its physical standby, slots synchronized when `sync_slots`.
pub(crate) fn pair(version: u32, sync_slots: bool) -> (&'static PgCluster, &'static PgCluster) {
    let primary = leak(PgCluster::start_version(version, &[]));
    let standby = leak(primary.start_standby(STANDBY, StandbyOptions { sync_slots }));
    (primary, standby)
}

/// `synchronized_standby_slots` on the primary (17+): a failover slot's changes are sent only
/// once the standby confirmed them, so the worker never holds a change the standby lacks.
pub(crate) async fn gate_on_standby(primary: &PgCluster) {
    let admin = primary.connect("postgres").await;
    // One statement each: ALTER SYSTEM may not run in the implicit transaction of a batch.
    for sql in [
        format!("ALTER SYSTEM SET synchronized_standby_slots = '{STANDBY}'"),
        "SELECT pg_reload_conf()".to_string(),
    ] {
        admin.batch_execute(&sql).await.unwrap();
    }
}

/// An environment whose database lives on `primary` (created after the standby was made: it
/// reaches the standby by replication).
pub(crate) async fn env_on(label: &str, primary: &'static PgCluster) -> TestEnv {
    let mut env = TestEnv::new(label).await;
    env.pg = primary;
    env.pg_db = primary.create_database(label).await;
    env
}

pub(crate) fn hosts(servers: &[u16]) -> String {
    servers
        .iter()
        .map(|p| format!("127.0.0.1:{p}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// A writer that keeps changing runs on whichever of `ports` is the primary, reconnecting after
/// the primary dies, until stopped: inserts, and updates that set `updatedAt` as trigger.dev does.
struct Writer {
    stop: Arc<AtomicBool>,
    commits: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl Writer {
    fn start(cluster: &PgCluster, db: &str, ports: &[u16], seed: u64) -> Writer {
        let urls: Vec<String> = ports
            .iter()
            .map(|p| cluster.url_at(&format!("127.0.0.1:{p}"), db))
            .collect();
        let stop = Arc::new(AtomicBool::new(false));
        let commits = Arc::new(AtomicU64::new(0));
        let (s, c) = (stop.clone(), commits.clone());
        let task = tokio::spawn(async move {
            let mut rng = Rng::new(seed);
            let mut ids: Vec<String> = Vec::new();
            let mut next = 0u64;
            let mut client: Option<tokio_postgres::Client> = None;
            while !s.load(Ordering::Relaxed) {
                if client.as_ref().is_none_or(|c| c.is_closed()) {
                    client = primary_of(&urls).await;
                    if client.is_none() {
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                }
                let mut sql = vec!["BEGIN".to_string()];
                for _ in 0..1 + rng.below(5) {
                    if ids.is_empty() || rng.below(3) == 0 {
                        let id = format!("run_w{seed}_{next:06}");
                        next += 1;
                        sql.push(insert_sql(
                            "\"TaskRun\"",
                            &id,
                            &[("status", lit("PENDING")), ("updatedAt", "now()".into())],
                        ));
                        ids.push(id);
                    } else {
                        let id = &ids[rng.below(ids.len() as u64) as usize];
                        sql.push(format!(
                            "UPDATE \"TaskRun\" SET status = 'EXECUTING', \"attemptNumber\" = {}, \
                             \"updatedAt\" = now() WHERE id = '{id}'",
                            rng.below(100)
                        ));
                    }
                }
                sql.push("COMMIT".into());
                match client
                    .as_ref()
                    .unwrap()
                    .batch_execute(&sql.join(";\n"))
                    .await
                {
                    Ok(()) => {
                        c.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(_) => client = None,
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        });
        Writer {
            stop,
            commits,
            task,
        }
    }

    async fn stop(self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.task.await;
        self.commits.load(Ordering::Relaxed)
    }
}

/// A connection to the first of `urls` that is not in recovery.
async fn primary_of(urls: &[String]) -> Option<tokio_postgres::Client> {
    for url in urls {
        let Ok(Ok((client, conn))) = tokio::time::timeout(
            Duration::from_secs(2),
            tokio_postgres::connect(url, tokio_postgres::NoTls),
        )
        .await
        else {
            continue;
        };
        tokio::spawn(conn);
        if let Ok(row) = client.query_one("SELECT pg_is_in_recovery()", &[]).await
            && !row.get::<_, bool>(0)
        {
            return Some(client);
        }
    }
    None
}

/// Waits until the standby holds a synchronized, persisted, valid copy of `slot`.
pub(crate) async fn wait_synced_copy(standby: &PgCluster, slot: &str) {
    let client = standby.connect("postgres").await;
    wait_for(
        "the standby's synchronized copy of the slot",
        Duration::from_secs(90),
        || async {
            let row = client
                .query_opt(
                    "SELECT synced AND NOT temporary AND invalidation_reason IS NULL \
                     FROM pg_replication_slots WHERE slot_name = $1",
                    &[&slot],
                )
                .await
                .ok()??;
            row.get::<_, bool>(0).then_some(())
        },
    )
    .await;
}

pub(crate) async fn metric(worker: &Worker, name: &str) -> Option<f64> {
    let (_, text) = worker.get("/metrics")?;
    metrics::value_with(&text, name, &[("source", "default")])
}

/// How the worker reaches the servers.
enum Reach {
    /// `postgres://…@primary,standby/db`.
    SeveralHosts,
    /// One name that moves at the failover: a relay switched to the promoted standby.
    MovingName,
}

async fn happy_failover(version: u32, reach: Reach) {
    let label = format!("failover{version}");
    let (primary, standby) = pair(version, true);
    gate_on_standby(primary).await;
    let mut env = env_on(&label, primary).await;
    let relay = match reach {
        Reach::SeveralHosts => {
            env.pg_hosts = Some(hosts(&[primary.port, standby.port]));
            None
        }
        Reach::MovingName => {
            let relay = Relay::start(primary.port);
            env.pg_hosts = Some(hosts(&[relay.port]));
            Some(relay)
        }
    };
    let worker = start_worker(&env, "").await;
    let writer = Writer::start(primary, &env.pg_db, &[primary.port, standby.port], 7);
    let failover: bool = env
        .pg_client()
        .await
        .query_one(
            "SELECT failover FROM pg_replication_slots WHERE slot_name = $1",
            &[&env.slot],
        )
        .await
        .unwrap()
        .get(0);
    assert!(
        failover,
        "postgres.failover_slot = auto makes a failover slot on {version}"
    );
    wait_synced_copy(standby, &env.slot).await;
    if relay.is_none() {
        wait_for("failover_ready = 1", Duration::from_secs(60), || async {
            (metric(&worker, "runs_replicator_failover_ready").await == Some(1.0)).then_some(())
        })
        .await;
        println!(
            "checked: runs_replicator_failover_ready = 1, the copy {} bytes behind",
            metric(&worker, "runs_replicator_failover_slot_lag_bytes")
                .await
                .unwrap_or(-1.0)
        );
    }
    tokio::time::sleep(Duration::from_secs(2)).await;

    primary.kill9();
    standby.promote().await;
    if let Some(relay) = &relay {
        relay.switch(standby.port);
    }
    let promoted = Instant::now();
    println!("injected: primary SIGKILLed mid-write, standby promoted (PostgreSQL {version})");
    let pg = standby.connect(&env.pg_db).await;
    insert(&pg, "\"TaskRun\"", "run_after_promotion", &[]).await;
    wait_for(
        "the first change after the promotion in ClickHouse",
        Duration::from_secs(30),
        || async {
            actual_rows(&env)
                .await
                .contains_key("run_after_promotion")
                .then_some(())
        },
    )
    .await;
    println!(
        "checked: the first change committed after the promotion arrived {:.1} s after it",
        promoted.elapsed().as_secs_f64()
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    let commits = writer.stop().await;
    env.pg = standby;
    assert_converges(&env, CONVERGE).await;
    let log = worker.log_text();
    assert!(
        !log.contains("hard stop"),
        "no hard stop at a failover with a synced slot:\n{log}"
    );
    println!(
        "checked: {commits} writer transactions across the failover; ClickHouse equals the new primary column by column, with no hard stop"
    );
}

#[tokio::test]
async fn happy_failover_17_several_hosts() {
    happy_failover(17, Reach::SeveralHosts).await;
}

#[tokio::test]
async fn happy_failover_18_moving_name() {
    happy_failover(18, Reach::MovingName).await;
}

/// Without failover slots, the promoted standby has no slot: `recreate_lost_slot` decides.
async fn no_failover_slot(version: u32, recreate: bool) {
    let label = format!("nofailover{version}_{recreate}");
    let (primary, standby) = pair(version, false);
    let mut env = env_on(&label, primary).await;
    env.pg_hosts = Some(hosts(&[primary.port, standby.port]));
    let overrides = format!("[postgres]\nrecreate_lost_slot = {recreate}\n");
    let worker = start_worker(&env, &overrides).await;
    let writer = Writer::start(primary, &env.pg_db, &[primary.port, standby.port], 11);
    wait_for(
        "the stream to carry the writer's runs",
        CONVERGE,
        || async { (actual_rows(&env).await.len() >= 20).then_some(()) },
    )
    .await;
    primary.kill9();
    standby.promote().await;
    println!(
        "injected: primary SIGKILLed mid-write, standby promoted (PostgreSQL {version}, no failover slot)"
    );
    if !recreate {
        let body = wait_unready(&worker, "disappeared", Duration::from_secs(60)).await;
        println!("checked: /readyz fails: {}", body.trim());
        assert!(
            body.contains("runs-replicator backfill --source default --payloads --updated-since"),
            "the hard stop names the gap to copy: {body}"
        );
        let slots: i64 = standby
            .connect(&env.pg_db)
            .await
            .query_one(
                "SELECT count(*) FROM pg_replication_slots WHERE slot_name = $1",
                &[&env.slot],
            )
            .await
            .unwrap()
            .get(0);
        assert_eq!(slots, 0, "no slot is made silently on the new primary");
        writer.stop().await;
        println!("checked: a hard stop naming the gap and the backfill that fills it; no new slot");
        return;
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let commits = writer.stop().await;
    env.pg = standby;
    assert_converges(&env, CONVERGE).await;
    assert!(
        worker
            .log_text()
            .contains("the slot was lost; created a new one; copying the runs changed in the gap"),
        "{}",
        worker.log_text()
    );
    println!(
        "checked: {commits} writer transactions; the slot lost at the promotion was recreated, the gap copied, ClickHouse equals the new primary"
    );
}

#[tokio::test]
async fn no_failover_slot_15_is_a_hard_stop_naming_the_gap() {
    no_failover_slot(15, false).await;
}

#[tokio::test]
async fn no_failover_slot_15_recreated_and_the_gap_copied() {
    no_failover_slot(15, true).await;
}

#[tokio::test]
async fn no_failover_slot_16_is_a_hard_stop_naming_the_gap() {
    no_failover_slot(16, false).await;
}

#[tokio::test]
async fn no_failover_slot_16_recreated_and_the_gap_copied() {
    no_failover_slot(16, true).await;
}

#[tokio::test]
async fn a_down_standby_in_synchronized_standby_slots_is_named_not_silent() {
    let (primary, standby) = pair(17, true);
    gate_on_standby(primary).await;
    let mut env = env_on("gated17", primary).await;
    env.pg_hosts = Some(hosts(&[primary.port, standby.port]));
    let worker = start_worker(&env, "").await;
    let pg = env.pg_client().await;
    insert(&pg, "\"TaskRun\"", "run_gate_1", &[]).await;
    assert_converges(&env, CONVERGE).await;
    let restarts = |text: &str| metrics::sum(text, "runs_replicator_stream_restarts_total");
    let before = restarts(&worker.get("/metrics").unwrap().1);

    standby.stop();
    insert(&pg, "\"TaskRun\"", "run_gate_2", &[]).await;
    println!("injected: the standby named in synchronized_standby_slots stopped; a run written");
    let body = wait_unready(
        &worker,
        "synchronized_standby_slots",
        Duration::from_secs(30),
    )
    .await;
    println!("checked: /readyz fails: {}", body.trim());
    assert!(
        body.contains("nothing arrives") && body.contains(STANDBY),
        "{body}"
    );
    assert_eq!(
        metric(&worker, "runs_replicator_held_by_standby_slots").await,
        Some(1.0)
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(
        !actual_rows(&env).await.contains_key("run_gate_2"),
        "held back by the primary, as synchronized_standby_slots says"
    );
    let text = worker.get("/metrics").unwrap().1;
    assert_eq!(
        restarts(&text),
        before,
        "the worker waits, it does not reconnect in a loop"
    );
    assert!(
        worker.log_text().contains("nothing arrives"),
        "{}",
        worker.log_text()
    );
    println!(
        "checked: log, /readyz and runs_replicator_held_by_standby_slots say why; no restarts"
    );

    standby.start_again();
    wait_ready(&worker, Duration::from_secs(60)).await;
    assert_converges(&env, CONVERGE).await;
    assert_eq!(
        metric(&worker, "runs_replicator_held_by_standby_slots").await,
        Some(0.0)
    );
    println!("checked: the standby back, the held run arrived and /readyz passes again");
}

#[tokio::test]
async fn a_standby_listed_first_is_passed_over() {
    // 16: the first version where a standby could decode and hold a logical slot.
    let (primary, standby) = pair(16, false);
    let mut env = env_on("standby_first", primary).await;
    env.pg_hosts = Some(hosts(&[standby.port, primary.port]));
    let _worker = start_worker(&env, "").await;
    let pg = env.pg_client().await;
    insert(&pg, "\"TaskRun\"", "run_sf_1", &[]).await;
    assert_converges(&env, CONVERGE).await;
    let count = |c: tokio_postgres::Client, slot: String| async move {
        c.query_one(
            "SELECT count(*) FILTER (WHERE active) FROM pg_replication_slots WHERE slot_name = $1",
            &[&slot],
        )
        .await
        .unwrap()
        .get::<_, i64>(0)
    };
    assert_eq!(
        count(pg, env.slot.clone()).await,
        1,
        "streams from the primary"
    );
    let on_standby: i64 = standby
        .connect(&env.pg_db)
        .await
        .query_one("SELECT count(*) FROM pg_replication_slots", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(on_standby, 0, "nothing created on the standby");
    println!(
        "checked: with the standby first in postgres.url, the worker streams from the primary and made nothing on the standby"
    );
}
