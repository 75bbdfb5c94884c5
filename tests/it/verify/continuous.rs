//! The daemon's background verify (`verify.interval`): drift planted in ClickHouse is found within
//! one interval and `/metrics` says so; with `verify.repair` it is repaired, and the next verify
//! finds nothing. A verify that cannot finish (its snapshot waits for a transaction left open) is
//! abandoned at `verify.timeout`, says in `/readyz` and the log what it waited for, and the next
//! one runs.

use std::time::{Duration, Instant};

use runs_replicator::testing::metrics::value_with as metric_with;
use runs_replicator::testing::wait::poll;

use super::{load, plant};
use crate::replication::start_worker;
use crate::support::expect::{actual_rows, assert_converges};
use crate::support::runs::insert_many_sql;
use crate::support::{TestEnv, Worker, process};

const INTERVAL: Duration = Duration::from_secs(10);

fn drift(worker: &Worker, kind: &str) -> Option<f64> {
    let (_, text) = worker.get("/metrics")?;
    metric_with(&text, "runs_replicator_drift_rows", &[("kind", kind)])
}

fn metric(worker: &Worker, name: &str) -> Option<f64> {
    let (_, text) = worker.get("/metrics")?;
    metric_with(&text, name, &[])
}

#[tokio::test]
async fn the_background_verify_finds_drift_within_an_interval_and_repairs_it() {
    let env = TestEnv::new("vf_bg").await;
    let worker = start_worker(
        &env,
        "[verify]\ninterval = \"10s\"\nwindow = \"1h\"\nrepair = true\nwait_timeout_ms = 5000\n",
    )
    .await;
    let pg = env.pg_client().await;
    let ids: Vec<String> = (0..30).map(|i| format!("run_bg_{i:02}")).collect();
    pg.batch_execute(&insert_many_sql(
        "task_run_v2",
        &ids,
        &[("createdAt", "now()".into())],
    ))
    .await
    .unwrap();
    assert_converges(&env, Duration::from_secs(60)).await;
    assert_eq!(
        metric(&worker, "runs_replicator_verify_interval_seconds"),
        Some(10.0)
    );

    // The first background verify that saw the 30 runs (on a busy machine one may have run
    // before they were written): in sync.
    let first = poll(
        Duration::from_secs(40),
        Duration::from_millis(200),
        || async {
            let done = metric(
                &worker,
                "runs_replicator_verify_last_success_timestamp_seconds",
            );
            let runs = metric(&worker, "runs_replicator_verify_runs_compared");
            match (done, runs) {
                (Some(t), Some(30.0)) if t > 0.0 => Ok(t),
                other => Err(other),
            }
        },
    )
    .await
    .expect("a background verify of the 30 runs completes");
    assert_eq!(drift(&worker, "stale"), Some(0.0));
    println!("first background verify done at {first}: in sync, 30 runs");

    // Drift: a stale status and a run Postgres never had.
    let config = load(&env.write_config(crate::support::process::free_port(), ""));
    let rows = actual_rows(&env).await;
    let mut stale = rows["run_bg_07"].clone();
    stale.status = "CANCELED".into();
    stale._version += 1;
    let mut ghost = rows["run_bg_08"].clone();
    ghost.run_id = "run_bg_ghost".into();
    plant(&config, vec![stale, ghost]).await;
    let planted = Instant::now();
    println!("planted: a stale status, an extra run");

    poll(INTERVAL * 3, Duration::from_millis(100), || async {
        match (drift(&worker, "stale"), drift(&worker, "extra")) {
            (Some(1.0), Some(1.0)) => Ok(()),
            other => Err(other),
        }
    })
    .await
    .unwrap_or_else(|seen| panic!("the drift gauges say {seen:?}:\n{}", worker.log_text()));
    let found = planted.elapsed();
    println!("runs_replicator_drift_rows says stale 1, extra 1, {found:?} after planting");
    // The first verify to start after the planting finds it: at most the rest of one already
    // running, the interval's pause, then the verify itself (each about as long as this one).
    let took = Duration::from_secs_f64(
        metric(&worker, "runs_replicator_verify_duration_seconds").unwrap_or(0.0),
    );
    let bound = INTERVAL + took * 2 + Duration::from_secs(2);
    assert!(
        found < bound,
        "found within one interval of a verify: {found:?} (a verify took {took:?})"
    );
    assert_eq!(drift(&worker, "missing"), Some(0.0));
    let (_, text) = worker.get("/metrics").unwrap();
    let repaired = |action| {
        metric_with(
            &text,
            "runs_replicator_verify_repairs_total",
            &[("action", action)],
        )
    };
    assert_eq!(repaired("rewritten"), Some(1.0));
    assert_eq!(repaired("tombstoned"), Some(1.0));
    assert!(
        worker
            .log_text()
            .contains("background verify: ClickHouse differs from Postgres")
    );

    // verify.repair put it right: ClickHouse equals Postgres, and the next verify says so.
    assert_converges(&env, Duration::from_secs(10)).await;
    poll(INTERVAL * 3, Duration::from_millis(200), || async {
        match (drift(&worker, "stale"), drift(&worker, "extra")) {
            (Some(0.0), Some(0.0)) => Ok(()),
            other => Err(other),
        }
    })
    .await
    .expect("the next background verify finds no drift");
    println!("repaired by the background verify; the next one finds none");
}

#[tokio::test]
async fn a_stuck_background_verify_is_abandoned_at_its_timeout_and_the_next_one_runs() {
    let env = TestEnv::new("vf_stuck").await;
    let port = process::free_port();
    let config = env.write_config(
        port,
        "[verify]\ninterval = \"10s\"\nwindow = \"1h\"\nwait_timeout_ms = 5000\n",
    );
    // verify.timeout from the environment (RUNS_REPLICATOR_VERIFY_TIMEOUT), as any key.
    let mut worker = Worker::start(&config, port, &[("RUNS_REPLICATOR_VERIFY_TIMEOUT", "12s")]);
    worker.wait_ready(Duration::from_secs(90)).await;
    let pg = env.pg_client().await;
    let ids: Vec<String> = (0..10).map(|i| format!("run_st_{i:02}")).collect();
    pg.batch_execute(&insert_many_sql(
        "task_run_v2",
        &ids,
        &[("createdAt", "now()".into())],
    ))
    .await
    .unwrap();
    assert_converges(&env, Duration::from_secs(60)).await;

    // A transaction left open: a snapshot waits for the transactions in flight to end, so no
    // verify started from now on can finish.
    let blocker = env.pg_client().await;
    blocker
        .batch_execute("BEGIN; UPDATE task_run_v2 SET status = 'EXECUTING' WHERE id = 'run_st_00'")
        .await
        .unwrap();
    println!("injected: a transaction left open (it holds an xid)");

    let body = poll(
        Duration::from_secs(40),
        Duration::from_millis(200),
        || async {
            match worker.get("/readyz") {
                Some((200, body))
                    if body.contains("background verify running for")
                        && body.contains("waits for the transactions in flight to end") =>
                {
                    Ok(body)
                }
                other => Err(other),
            }
        },
    )
    .await
    .unwrap_or_else(|seen| {
        panic!(
            "/readyz never said a verify runs: {seen:?}\n{}",
            worker.log_text()
        )
    });
    println!("/readyz while the verify waits (still 200):\n{body}");

    poll(
        Duration::from_secs(60),
        Duration::from_millis(200),
        || async {
            match metric(&worker, "runs_replicator_verify_timeouts_total") {
                Some(n) if n >= 1.0 => Ok(()),
                other => Err(other),
            }
        },
    )
    .await
    .unwrap_or_else(|seen| panic!("no verify was abandoned ({seen:?}):\n{}", worker.log_text()));
    let abandoned = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let log = worker.log_text();
    let line = log
        .lines()
        .find(|l| l.contains("background verify abandoned after 12s"))
        .unwrap_or_else(|| panic!("no log line says the verify was abandoned:\n{log}"));
    println!("logged: {line}");
    assert!(
        line.contains("transactions in flight"),
        "the line says what it waited for: {line}"
    );
    assert_eq!(worker.get("/readyz").map(|(s, _)| s), Some(200));

    // The transaction ends: the next interval's verify completes.
    blocker.batch_execute("ROLLBACK").await.unwrap();
    poll(
        Duration::from_secs(60),
        Duration::from_millis(200),
        || async {
            match metric(
                &worker,
                "runs_replicator_verify_last_success_timestamp_seconds",
            ) {
                Some(t) if t > abandoned => Ok(t),
                other => Err(other),
            }
        },
    )
    .await
    .unwrap_or_else(|seen| {
        panic!(
            "no verify completed after the abandoned one ({seen:?}):\n{}",
            worker.log_text()
        )
    });
    let (_, body) = worker.get("/readyz").unwrap();
    println!("a later verify completed; /readyz: {body}");
}
