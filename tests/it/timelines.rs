//! SPEC §11: the server's identity and timelines, and the divergence a failover leaves, against
//! real servers of the version each case is about and a physical standby of the same version
//! (`failover.rs` has the helpers and the failovers that lose nothing).
//!
//! - A lagging standby (17, 18): it stops receiving while the worker acknowledges more of the
//!   primary's history, the primary dies, the stale standby is promoted and written to.
//!   ClickHouse ends equal to the new primary: no run that exists only on the lost timeline stays
//!   visible, a delete the new primary never had is undone, and a new-timeline change whose LSN
//!   is below the lost row of the same run still wins.
//! - A primary that comes back (17): the old primary restarted alone and written to, reached under
//!   the moving name: nothing of it reaches ClickHouse and the worker says why; pointed back at
//!   the real primary, it streams again.

use std::time::{Duration, Instant};

use runs_replicator::testing::wait::wait_for;

use crate::failover::{CONVERGE, env_on, gate_on_standby, hosts, metric, pair, wait_synced_copy};
use crate::reliability::{wait_ready, wait_unready};
use crate::replication::start_worker;
use crate::support::expect::{actual_rows, assert_converges};
use crate::support::process::free_port;
use crate::support::relay::Relay;
use crate::support::runs::{insert, lit};
use crate::support::{PgCluster, Worker};

/// The slot's confirmed position on `pg`'s server has reached its WAL's end: the worker
/// acknowledged everything written so far.
async fn wait_acknowledged(pg: &tokio_postgres::Client, slot: &str) {
    let end: String = pg
        .query_one("SELECT pg_current_wal_lsn()::text", &[])
        .await
        .unwrap()
        .get(0);
    wait_for(
        "the worker to acknowledge the primary's WAL",
        Duration::from_secs(30),
        || async {
            let row = pg
                .query_one(
                    "SELECT confirmed_flush_lsn >= $2::text::pg_lsn FROM pg_replication_slots \
                     WHERE slot_name = $1",
                    &[&slot, &end],
                )
                .await
                .ok()?;
            row.get::<_, Option<bool>>(0).unwrap_or(false).then_some(())
        },
    )
    .await;
}

async fn lagging_standby(version: u32, moving_name: bool) {
    let started = Instant::now();
    let label = format!("lagging{version}");
    // Slots synchronized, but no synchronized_standby_slots: the logical slot may run ahead of
    // the standby, which is the point.
    let (primary, standby) = pair(version, true);
    let mut env = env_on(&label, primary).await;
    let relay = moving_name.then(|| Relay::start(primary.port));
    env.pg_hosts = Some(match &relay {
        Some(relay) => hosts(&[relay.port]),
        None => hosts(&[primary.port, standby.port]),
    });
    let worker = start_worker(&env, "").await;
    let pg = env.pg_client().await;
    for id in ["run_shared_1", "run_shared_2", "run_shared_3"] {
        insert(&pg, "\"TaskRun\"", id, &[("status", lit("PENDING"))]).await;
    }
    assert_converges(&env, CONVERGE).await;
    wait_synced_copy(standby, &env.slot).await;
    standby.wait_replayed_from(primary).await;

    // The standby stops receiving; the primary goes on, and the worker stores and acknowledges
    // what the standby never gets: new runs, an update, a delete, and (after 2 MB of other WAL,
    // so that its LSN is above anything the new timeline writes soon) another update.
    standby.stop();
    pg.batch_execute(
        "UPDATE \"TaskRun\" SET status = 'EXECUTING' WHERE id = 'run_shared_1';
         DELETE FROM \"TaskRun\" WHERE id = 'run_shared_2';",
    )
    .await
    .unwrap();
    insert(&pg, "\"TaskRun\"", "run_lost_1", &[]).await;
    insert(&pg, "\"TaskRun\"", "run_lost_2", &[]).await;
    pg.batch_execute(
        "CREATE TABLE filler AS SELECT g, repeat('x', 500) AS pad FROM generate_series(1, 4000) g;
         UPDATE \"TaskRun\" SET status = 'CANCELED' WHERE id = 'run_shared_3';",
    )
    .await
    .unwrap();
    wait_for("the lost history in ClickHouse", CONVERGE, || async {
        let rows = actual_rows(&env).await;
        (rows.contains_key("run_lost_2")
            && !rows.contains_key("run_shared_2")
            && rows
                .get("run_shared_3")
                .is_some_and(|r| r.status == "CANCELED"))
        .then_some(())
    })
    .await;
    wait_acknowledged(&pg, &env.slot).await;
    println!(
        "injected: the standby stopped receiving; the worker stored and acknowledged runs, an \
         update, a delete and 2 MB of WAL past it"
    );

    primary.kill9();
    standby.start_again();
    standby.promote().await;
    if let Some(relay) = &relay {
        relay.switch(standby.port);
    }
    println!("injected: primary SIGKILLed, the stale standby promoted (PostgreSQL {version})");
    let new = standby.connect(&env.pg_db).await;
    new.batch_execute(
        "UPDATE \"TaskRun\" SET status = 'COMPLETED_SUCCESSFULLY' WHERE id = 'run_shared_3'",
    )
    .await
    .unwrap();
    insert(&new, "\"TaskRun\"", "run_new_1", &[]).await;
    env.pg = standby;
    assert_converges(&env, CONVERGE).await;
    let rows = actual_rows(&env).await;
    assert!(!rows.contains_key("run_lost_1") && !rows.contains_key("run_lost_2"));
    assert_eq!(
        rows["run_shared_1"].status, "PENDING",
        "the lost update undone"
    );
    assert!(rows.contains_key("run_shared_2"), "the lost delete undone");
    assert_eq!(
        rows["run_shared_3"].status, "COMPLETED_SUCCESSFULLY",
        "the new timeline's change wins over the lost one's higher LSN"
    );
    let log = worker.log_text();
    assert!(
        log.contains("divergence:"),
        "the window is reported:\n{log}"
    );
    assert!(
        log.contains("repaired the runs written from the lost timeline history"),
        "{log}"
    );
    let repaired = metric(&worker, "runs_replicator_divergence_runs_total")
        .await
        .unwrap_or(0.0);
    let bytes = metric(&worker, "runs_replicator_divergence_bytes")
        .await
        .unwrap_or(0.0);
    assert!(
        repaired >= 4.0 && bytes > 0.0,
        "runs {repaired}, bytes {bytes}"
    );
    assert_eq!(metric(&worker, "runs_replicator_timeline").await, Some(2.0));
    println!(
        "checked: ClickHouse equals the new primary column by column; {repaired} runs repaired, \
         {bytes} bytes of lost WAL reported ({:.1} s in all)",
        started.elapsed().as_secs_f64()
    );
}

#[tokio::test]
async fn lagging_standby_17_promoted_clickhouse_equals_the_new_primary() {
    lagging_standby(17, false).await;
}

#[tokio::test]
async fn lagging_standby_18_promoted_clickhouse_equals_the_new_primary() {
    lagging_standby(18, true).await;
}

/// Ends the worker's replication session on `server`, so that it reconnects through the name.
async fn end_stream(server: &PgCluster, db: &str, slot: &str) {
    server
        .connect(db)
        .await
        .execute(
            "SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots \
             WHERE slot_name = $1 AND active_pid IS NOT NULL",
            &[&slot],
        )
        .await
        .unwrap();
}

#[tokio::test]
async fn an_old_primary_that_comes_back_is_refused_and_the_real_one_streams_again() {
    let started = Instant::now();
    let (primary, standby) = pair(17, true);
    gate_on_standby(primary).await;
    let mut env = env_on("oldprimary17", primary).await;
    let relay = Relay::start(primary.port);
    env.pg_hosts = Some(hosts(&[relay.port]));
    let mut worker = start_worker(&env, "").await;
    insert(&env.pg_client().await, "\"TaskRun\"", "run_before", &[]).await;
    assert_converges(&env, CONVERGE).await;
    wait_synced_copy(standby, &env.slot).await;

    primary.kill9();
    standby.promote().await;
    relay.switch(standby.port);
    let new = standby.connect(&env.pg_db).await;
    insert(&new, "\"TaskRun\"", "run_after", &[]).await;
    env.pg = standby;
    assert_converges(&env, CONVERGE).await;
    println!("injected: a failover to timeline 2; the worker streams from the new primary");

    // The old primary back on its own (without the standby gate, which would hold its changes
    // back anyway), written to, and the name moved back to it.
    primary.start_again();
    let old = primary.connect(&env.pg_db).await;
    for sql in [
        "ALTER SYSTEM RESET synchronized_standby_slots",
        "SELECT pg_reload_conf()",
    ] {
        old.batch_execute(sql).await.unwrap();
    }
    insert(&old, "\"TaskRun\"", "run_zombie", &[]).await;
    relay.switch(primary.port);
    end_stream(standby, &env.pg_db, &env.slot).await;
    println!("injected: the old primary restarted alone, written to, reached under the name");
    let body = wait_unready(&worker, "older than timeline 2", Duration::from_secs(30)).await;
    println!("checked: /readyz fails: {}", body.trim());
    assert!(body.contains("old primary"), "{body}");
    assert!(
        worker.log_text().contains("older than timeline 2"),
        "{}",
        worker.log_text()
    );
    // A new process (nothing in memory of the failover) refuses it too.
    worker.kill9();
    let port = free_port();
    let worker = Worker::start(&env.write_config(port, ""), port, &[]);
    wait_unready(&worker, "older than timeline 2", Duration::from_secs(30)).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(
        !actual_rows(&env).await.contains_key("run_zombie"),
        "nothing of the old primary reaches ClickHouse"
    );
    let active: i64 = old
        .query_one(
            "SELECT count(*) FROM pg_replication_slots WHERE active",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(active, 0, "nothing streams from the old primary");
    println!("checked: a restarted worker refuses it too; nothing of it in ClickHouse");

    relay.switch(standby.port);
    wait_ready(&worker, Duration::from_secs(30)).await;
    insert(&new, "\"TaskRun\"", "run_after_2", &[]).await;
    assert_converges(&env, CONVERGE).await;
    assert!(!actual_rows(&env).await.contains_key("run_zombie"));
    println!(
        "checked: the name back on the real primary, the worker streams again; ClickHouse equals \
         it ({:.1} s in all)",
        started.elapsed().as_secs_f64()
    );
}
