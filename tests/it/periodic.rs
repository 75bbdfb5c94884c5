//! The worker's periodic checks — the leader ping and the slot reading, every
//! `postgres.slot_poll_interval_ms` — run on time while the loop drains a backlog at full speed
//! (they run on a task of their own, not between the loop's events); and a hard stop is
//! re-checked on its back-off schedule (3 s, doubling, at most a minute).

use std::time::{Duration, Instant};

use runs_replicator::testing::wait::poll;

use crate::reliability::wait_unready;
use crate::replication::start_worker;
use crate::support::TestEnv;
use crate::support::expect::assert_converges;
use crate::support::runs::{insert, insert_many_sql};

/// The worker's control session: the backend holding its leader lock (a stream lock, the
/// bigint form: objsubid 1; not an instance's member lock or tag, `leader::roster`).
async fn control_backend(
    pg: &tokio_postgres::Client,
) -> Option<(i32, Option<std::time::SystemTime>)> {
    let row = pg
        .query_opt(
            "SELECT a.pid, a.query_start FROM pg_locks l JOIN pg_stat_activity a USING (pid) \
             WHERE l.locktype = 'advisory' AND l.objsubid = 1 AND l.granted \
               AND a.datname = current_database() \
             LIMIT 1",
            &[],
        )
        .await
        .unwrap()?;
    Some((row.get(0), row.get(1)))
}

/// The walsender streaming the test's slot.
async fn walsender(env: &TestEnv, pg: &tokio_postgres::Client) -> Option<i32> {
    pg.query_opt(
        "SELECT active_pid FROM pg_replication_slots WHERE slot_name = $1 AND active",
        &[&env.slot],
    )
    .await
    .unwrap()
    .and_then(|r| r.get(0))
}

#[tokio::test]
async fn the_leader_ping_and_slot_readings_keep_their_interval_during_a_full_speed_drain() {
    let env = TestEnv::new("periodic").await;
    let overrides = "[postgres]\nslot_poll_interval_ms = 1000\n[batch]\nmax_rows = 10000\n";
    let mut worker = start_worker(&env, overrides).await;
    assert_eq!(worker.terminate().code(), Some(0));
    // A backlog the worker drains at full speed when it starts: 40,000 inserts and as many
    // updates, in four transactions.
    let pg = env.pg_client().await;
    for k in 0..2 {
        let ids: Vec<String> = (0..20_000).map(|i| format!("run_p{k}_{i:05}")).collect();
        pg.batch_execute(&insert_many_sql("task_run_v2", &ids, &[]))
            .await
            .unwrap();
        pg.batch_execute(&format!(
            "UPDATE task_run_v2 SET status = 'EXECUTING' WHERE id LIKE 'run_p{k}_%'"
        ))
        .await
        .unwrap();
    }
    println!("injected: a backlog of 80,000 changes; slot_poll_interval_ms 1000");
    let worker = start_worker(&env, overrides).await;
    // Every reading of the control session, by when Postgres says it started, while the drain
    // runs: a check is two queries (the ping, the slot), each tick moves query_start.
    let started = Instant::now();
    let mut seen: Vec<std::time::SystemTime> = Vec::new();
    let mut ticks_while_draining = 0;
    let drained = loop {
        if let Some((_, Some(at))) = control_backend(&pg).await
            && seen.last() != Some(&at)
        {
            seen.push(at);
        }
        let n: u64 = env
            .ch_client()
            .query("SELECT count() FROM task_runs_v2 FINAL WHERE status = 'EXECUTING'")
            .fetch_one()
            .await
            .unwrap_or(0);
        if n == 40_000 {
            break started.elapsed();
        }
        ticks_while_draining += 1;
        assert!(
            started.elapsed() < Duration::from_secs(300),
            "the backlog drains"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let gaps: Vec<Duration> = seen
        .windows(2)
        .map(|w| w[1].duration_since(w[0]).unwrap_or_default())
        .collect();
    let worst = gaps.iter().max().copied().unwrap_or_default();
    println!(
        "checked: drained in {drained:.1?} ({ticks_while_draining} samples); the control \
         session was queried {} times, at most {worst:?} apart",
        seen.len()
    );
    assert!(
        seen.len() as f64 >= drained.as_secs_f64() * 0.6,
        "about once a second during the drain: {} readings in {drained:?}",
        seen.len()
    );
    assert!(
        worst <= Duration::from_millis(2_000),
        "a check came {worst:?} late"
    );

    // The leader ping under load: the control session killed mid-drain ends the stream at the
    // next check.
    let ids: Vec<String> = (0..20_000).map(|i| format!("run_p9_{i:05}")).collect();
    pg.batch_execute(&insert_many_sql("task_run_v2", &ids, &[]))
        .await
        .unwrap();
    pg.batch_execute(
        "UPDATE task_run_v2 SET status = 'COMPLETED_SUCCESSFULLY' WHERE id LIKE 'run_p9_%'",
    )
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let sender = walsender(&env, &pg).await.expect("streaming");
    let (control, _) = control_backend(&pg).await.expect("leading");
    pg.execute("SELECT pg_terminate_backend($1)", &[&control])
        .await
        .unwrap();
    let killed = Instant::now();
    println!("injected: the leader's control session terminated mid-drain");
    let noticed = poll(
        Duration::from_secs(15),
        Duration::from_millis(20),
        || async {
            match walsender(&env, &pg).await {
                Some(pid) if pid == sender => Err(()),
                _ => Ok(killed.elapsed()),
            }
        },
    )
    .await
    .unwrap_or_else(|()| panic!("the stream kept streaming without its leader lock"));
    println!("checked: the stream stopped {noticed:?} after its leader lock was lost");
    assert!(
        noticed <= Duration::from_millis(2_500),
        "lost leadership noticed in {noticed:?}"
    );
    assert_converges(&env, Duration::from_secs(120)).await;
    drop(worker);
}

#[tokio::test]
async fn a_hard_stop_is_rechecked_after_pauses_of_3_6_and_12_seconds() {
    let env = TestEnv::new("hard_stop_backoff").await;
    let worker = start_worker(&env, "").await;
    let pg = env.pg_client().await;
    insert(&pg, "\"TaskRun\"", "run_hs_1", &[]).await;
    assert_converges(&env, Duration::from_secs(30)).await;
    pg.batch_execute(
        "ALTER TABLE \"TaskRun\" REPLICA IDENTITY DEFAULT; \
         UPDATE \"TaskRun\" SET status = 'EXECUTING' WHERE id = 'run_hs_1'",
    )
    .await
    .unwrap();
    wait_unready(&worker, "REPLICA IDENTITY DEFAULT", Duration::from_secs(20)).await;
    println!("injected: a hard stop (REPLICA IDENTITY DEFAULT), left unfixed for 30 s");
    tokio::time::sleep(Duration::from_secs(30)).await;
    // Each re-check logs "still failing" (debug); its timestamp is the line's first field.
    let log = worker.log_text();
    let stopped = log
        .lines()
        .find(|l| l.contains("hard stop, not streaming until fixed"))
        .and_then(timestamp)
        .expect("the hard stop is logged");
    let checks: Vec<f64> = log
        .lines()
        .filter(|l| l.contains("still failing"))
        .filter_map(timestamp)
        .map(|t| t - stopped)
        .collect();
    println!("checked: re-checked {checks:.1?} s after the hard stop");
    // Each re-check is logged when it is done: at the sum of the pauses before it (3, 6, 12 s)
    // plus the time each check took (a connection and the preflight, `c`).
    assert!(checks.len() >= 3, "{checks:?}");
    let gaps = [checks[0], checks[1] - checks[0], checks[2] - checks[1]];
    let c = gaps[0] - 3.0;
    assert!((0.0..2.5).contains(&c), "the first after 3 s: {checks:?}");
    for (gap, pause) in gaps.iter().zip([3.0, 6.0, 12.0]) {
        assert!(
            (gap - pause - c).abs() < 0.8,
            "a pause of {:.1} s where {pause} s was due: {checks:?}",
            gap - c
        );
    }
    assert_eq!(
        checks.len(),
        3,
        "none between or after them within 30 s: {checks:?}"
    );
    pg.batch_execute("ALTER TABLE \"TaskRun\" REPLICA IDENTITY FULL")
        .await
        .unwrap();
    crate::reliability::wait_ready(&worker, Duration::from_secs(90)).await;
    assert_converges(&env, Duration::from_secs(60)).await;
}

/// Seconds since the epoch of a log line's leading RFC 3339 timestamp (`tracing`'s format).
fn timestamp(line: &str) -> Option<f64> {
    let stamp = line.split_whitespace().next()?;
    let (date, time) = stamp.trim_end_matches('Z').split_once('T')?;
    let mut d = date.split('-').map(|p| p.parse::<i64>().ok());
    let (y, m, day) = (d.next()??, d.next()??, d.next()??);
    let mut t = time.split(':');
    let (h, min, s) = (
        t.next()?.parse::<f64>().ok()?,
        t.next()?.parse::<f64>().ok()?,
        t.next()?.parse::<f64>().ok()?,
    );
    // Days since the epoch (the civil calendar), enough for differences within a test.
    let days = (y * 372 + m * 31 + day) as f64;
    Some(days * 86_400.0 + h * 3_600.0 + min * 60.0 + s)
}
