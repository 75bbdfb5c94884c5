//! The daemon's own copies (SPEC §9): a bootstrap when it creates its slot, and the gap a lost
//! slot left — and the durable marker that tells a lost slot from one never made.

use std::time::Duration;

use runs_replicator::testing::wait::wait_for;

use crate::reliability::{wait_ready, wait_unready};
use crate::replication::start_worker;
use crate::support::expect::assert_converges;
use crate::support::load::Rng;
use crate::support::runs::{insert, insert_many_sql, lit};
use crate::support::{TestEnv, Worker, process};

const CONVERGE: Duration = Duration::from_secs(120);

async fn slot_count(pg: &tokio_postgres::Client, slot: &str) -> i64 {
    pg.query_one(
        "SELECT count(*) FROM pg_replication_slots WHERE slot_name = $1",
        &[&slot],
    )
    .await
    .unwrap()
    .get(0)
}

/// Drops `slot`, once its walsender is gone.
async fn drop_slot(pg: &tokio_postgres::Client, slot: &str) {
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
async fn bootstrap_copies_what_existed_before_the_slot_while_a_writer_keeps_changing_it() {
    let env = TestEnv::new("bootstrap").await;
    let pg = env.pg_client().await;
    let mut ids = Vec::new();
    for (t, table) in ["\"TaskRun\"", "task_run_v2"].iter().enumerate() {
        for part in 0..5 {
            let batch: Vec<String> = (0..5_000)
                .map(|i| format!("run_b{t}_{part}_{i:04}"))
                .collect();
            pg.batch_execute(&insert_many_sql(table, &batch, &[]))
                .await
                .unwrap();
            ids.extend(batch.into_iter().map(|id| (*table, id)));
        }
    }
    println!("injected: 50,000 runs in both tables before the worker and its slot exist");
    let url = env.pg.url(&env.pg_db);
    let targets = ids.clone();
    let writer = tokio::spawn(async move {
        let (pg, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(conn);
        let mut rng = Rng::new(3);
        let mut live = targets;
        let (mut updates, mut deletes) = (0, 0);
        for round in 0..400 {
            let mut sql = vec!["BEGIN".to_string()];
            for _ in 0..10 {
                let i = rng.below(live.len() as u64) as usize;
                if rng.below(5) == 0 {
                    let (table, id) = live.swap_remove(i);
                    sql.push(format!("DELETE FROM {table} WHERE id = '{id}'"));
                    deletes += 1;
                } else {
                    let (table, id) = &live[i];
                    sql.push(format!(
                        "UPDATE {table} SET status = 'EXECUTING', output = '{{\"round\": {round}}}', \"updatedAt\" = now() WHERE id = '{id}'"
                    ));
                    updates += 1;
                }
            }
            sql.push("COMMIT".into());
            pg.batch_execute(&sql.join(";\n")).await.unwrap();
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        (updates, deletes)
    });
    // Not gated on /readyz within a bound: streaming starts only after the copy of 50,000 runs,
    // which a loaded machine makes slow; convergence below is the bound that matters.
    let port = process::free_port();
    let config = env.write_config(port, "[backfill]\non_slot_create = true\n");
    let mut worker = Worker::start(&config, port, &[]);
    worker.wait_ready(CONVERGE).await;
    let (updates, deletes) = writer.await.unwrap();
    println!(
        "injected: a writer made {updates} updates and {deletes} deletes of those runs while the worker bootstrapped"
    );
    assert_converges(&env, CONVERGE).await;
    let log = worker.log_text();
    assert!(
        log.contains("created the slot with its snapshot") && log.contains("bootstrap copied"),
        "{log}"
    );
    println!(
        "checked: the slot was created with its snapshot, the snapshot copied, and ClickHouse equals Postgres column by column"
    );
}

#[tokio::test]
async fn a_slot_lost_while_the_worker_was_down_is_a_hard_stop_not_a_new_slot() {
    let env = TestEnv::new("marker").await;
    let pg = env.pg_client().await;
    let mut worker = start_worker(&env, "").await;
    insert(&pg, "\"TaskRun\"", "run_m_1", &[]).await;
    assert_converges(&env, CONVERGE).await;
    assert_eq!(worker.terminate().code(), Some(0));
    drop_slot(&pg, &env.slot).await;
    insert(&pg, "\"TaskRun\"", "run_m_gap", &[]).await;
    println!("injected: the worker stopped, its slot was dropped, a run was written meanwhile");

    let port = crate::support::process::free_port();
    let config = env.write_config(port, "");
    let worker = crate::support::Worker::start(&config, port, &[]);
    let body = wait_unready(&worker, "disappeared", Duration::from_secs(30)).await;
    println!("checked: the restarted worker refuses: {}", body.trim());
    assert!(
        body.contains("runs-replicator backfill --source default --payloads --updated-since"),
        "the hard stop names the backfill that fills the gap: {body}"
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        slot_count(&pg, &env.slot).await,
        0,
        "a restart does not recreate a slot that existed"
    );
    println!("checked: no new slot: the gap is not silently lost");
}

#[tokio::test]
async fn a_lost_slot_recreated_by_the_worker_is_followed_by_a_backfill_of_the_gap() {
    let env = TestEnv::new("gap").await;
    let pg = env.pg_client().await;
    let overrides = "[postgres]\nrecreate_lost_slot = true\n";
    let mut worker = start_worker(&env, overrides).await;
    for i in 0..20 {
        insert(&pg, "\"TaskRun\"", &format!("run_g_{i:02}"), &[]).await;
    }
    assert_converges(&env, CONVERGE).await;
    assert_eq!(worker.terminate().code(), Some(0));
    drop_slot(&pg, &env.slot).await;
    // Changes while no slot exists: updates, new runs, in both tables.
    pg.batch_execute(
        "UPDATE \"TaskRun\" SET status = 'COMPLETED_SUCCESSFULLY', \"updatedAt\" = now() WHERE id IN ('run_g_03', 'run_g_07')",
    )
    .await
    .unwrap();
    // As trigger.dev writes them: `updatedAt` is the time of the write (Prisma's @updatedAt).
    insert(
        &pg,
        "task_run_v2",
        "run_g_new",
        &[("status", lit("EXECUTING")), ("updatedAt", "now()".into())],
    )
    .await;
    println!(
        "injected: the slot dropped while the worker was down; two updates and a new run in the gap"
    );
    let worker = start_worker(&env, overrides).await;
    assert_converges(&env, CONVERGE).await;
    assert!(
        worker
            .log_text()
            .contains("copying the runs changed in the gap")
    );
    assert_eq!(slot_count(&pg, &env.slot).await, 1);
    println!("checked: a new slot, and the gap's changes arrived (ClickHouse equals Postgres)");
    wait_ready(&worker, Duration::from_secs(10)).await;
}

#[tokio::test]
async fn a_dry_run_backfill_does_not_stand_in_for_the_bootstrap() {
    let env = TestEnv::new("boot_dry").await;
    let pg = env.pg_client().await;
    crate::recovery::seed(&pg, "run_dry", 300).await;
    let port = process::free_port();
    let config = env.write_config(port, "[backfill]\non_slot_create = true\n");
    let out = crate::backfill::backfill(&config, &["--null-sink", "--payloads"]);
    assert!(out.status.success(), "{out:?}");
    println!("injected: a dry run (`backfill --null-sink --payloads`) of the 600 runs");
    let mut worker = Worker::start(&config, port, &[]);
    worker.wait_ready(CONVERGE).await;
    assert_converges(&env, CONVERGE).await;
    println!("checked: the first start's bootstrap copied every run; equal");
}

#[tokio::test]
async fn an_earlier_backfill_does_not_stand_in_for_the_bootstrap() {
    let env = TestEnv::new("boot_earlier").await;
    let pg = env.pg_client().await;
    crate::recovery::seed(&pg, "run_early", 100).await;
    let port = process::free_port();
    let config = env.write_config(port, "[backfill]\non_slot_create = true\n");
    let out = crate::backfill::backfill(&config, &["--payloads"]);
    assert!(out.status.success(), "{out:?}");
    // Changes after the operator's backfill and before the worker's slot: only the bootstrap
    // can carry them.
    pg.batch_execute(
        "UPDATE \"TaskRun\" SET status = 'COMPLETED_SUCCESSFULLY', output = '{\"after\": 1}' WHERE id LIKE '%_00%'; \
         UPDATE task_run_v2 SET status = 'EXECUTING' WHERE id LIKE '%_001%'",
    )
    .await
    .unwrap();
    println!("injected: an operator's backfill, then updates before the first start");
    let mut worker = Worker::start(&config, port, &[]);
    worker.wait_ready(CONVERGE).await;
    assert_converges(&env, CONVERGE).await;
    println!("checked: the bootstrap copied the snapshot of its slot, not the earlier job; equal");
}
