//! When a batch is written: at once when the streams caught up, but not more often than
//! `min_insert_interval`; in full batches while a stream drains a backlog.

use std::time::Duration;

use tokio::time::Instant;

use super::bench::{Bench, TASK_RUN, config};
use crate::testing::task_runs::{self, RunValues};

/// A Commit at `lsn` is acknowledged at its end.
const fn end(lsn: u64) -> u64 {
    lsn + crate::testing::feed::COMMIT_RECORD
}

#[tokio::test(start_paused = true)]
async fn a_caught_up_stream_is_written_at_once_not_at_the_flush_interval() {
    let bench = Bench::start(config(10_000, 2, 1000));
    let t0 = Instant::now();
    bench.insert(100, "run_a");
    bench.run_for(5).await;
    let writes = bench.sink.writes();
    assert_eq!(
        writes.len(),
        1,
        "written as soon as nothing more was coming"
    );
    assert!(
        writes[0].started - t0 < Duration::from_millis(5),
        "no wait for the 1 s flush interval: {:?}",
        writes[0].started - t0
    );
    assert_eq!(bench.feed.acked(), end(100));
    bench.stop().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_trickle_is_written_at_most_once_per_min_insert_interval() {
    let mut c = config(10_000, 2, 1000);
    c.batch.min_insert_interval_ms = 100;
    let bench = Bench::start(c);
    // 100 transactions a second for a second, each one alone on the wire.
    let mut sent = std::collections::HashMap::new();
    for n in 0..100u64 {
        let id = format!("run_{n}");
        sent.insert(id.clone(), Instant::now());
        bench.insert(100 + n * 10, &id);
        bench.run_for(10).await;
    }
    bench.run_for(200).await;
    let writes = bench.sink.writes();
    // Promptly: a change waits for the gap, not for the 1 s flush interval.
    let sent = &sent;
    let waits: Vec<Duration> = writes
        .iter()
        .flat_map(|w| w.runs.iter().map(move |r| w.started - sent[&r.run_id]))
        .collect();
    let longest = waits.iter().max().copied().unwrap_or_default();
    assert!(
        longest <= Duration::from_millis(110),
        "every change is written within min_insert_interval of arriving: {longest:?}"
    );
    let gaps: Vec<Duration> = writes
        .windows(2)
        .map(|w| w[1].started - w[0].started)
        .collect();
    println!("{} writes, gaps {gaps:?}", writes.len());
    assert!(
        gaps.iter().all(|g| *g >= Duration::from_millis(100)),
        "inserts start at least min_insert_interval apart: {gaps:?}"
    );
    assert!(
        (9..=11).contains(&writes.len()),
        "about one insert per 100 ms over one second, not one per transaction or per second: {}",
        writes.len()
    );
    assert_eq!(bench.sink.final_rows().len(), 100);
    assert_eq!(bench.feed.acked(), end(100 + 99 * 10));
    bench.stop().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_backlog_is_written_in_full_batches_until_a_keepalive_says_it_is_drained() {
    // An insert is two rows (the run and its payload): five transactions fill a batch.
    let mut c = config(10, 2, 1000);
    c.batch.min_insert_interval_ms = 0;
    let bench = Bench::start(c);
    // Sent a minute after they committed: the walsender is working through a backlog. They
    // arrive in spurts, with gaps in which the stream has nothing ready.
    for n in 0..23u64 {
        let insert = task_runs::insert(TASK_RUN, &RunValues::new(&format!("run_{n}")));
        bench
            .feed
            .transaction_sent(n as u32, 100 + n * 10, &[insert], 0, 60_000_000);
        bench.run_for(1).await;
    }
    let sizes: Vec<usize> = bench
        .sink
        .writes()
        .iter()
        .map(|w| w.runs.len() + w.payloads.len())
        .collect();
    assert_eq!(sizes, [10, 10, 10, 10], "only full batches while behind");
    assert_eq!(bench.feed.acked(), end(100 + 19 * 10));

    // The walsender has nothing more to send: it says so with a keepalive.
    bench.feed.keepalive(100_000);
    bench.run_for(1).await;
    let writes = bench.sink.writes();
    assert_eq!(
        writes.len(),
        5,
        "the rest is written at once, not after 1 s"
    );
    assert_eq!(writes[4].runs.len() + writes[4].payloads.len(), 6);
    assert_eq!(bench.feed.acked(), end(100 + 22 * 10));
    bench.stop().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn the_next_batch_fills_while_one_is_written_and_acknowledgements_keep_storage_order() {
    let mut c = config(10_000, 2, 1000);
    c.batch.min_insert_interval_ms = 50;
    let bench = Bench::start(c);
    let slow = bench.sink.hang_next();
    bench.insert(100, "run_a");
    bench.run_for(60).await;
    bench.insert(200, "run_b");
    // Caught up, the second batch waits for the first insert (`a_caught_up_batch_waits_for_the_
    // insert_in_flight`), but not beyond the flush interval (1 s after run_b arrived).
    bench.run_for(1100).await;
    assert_eq!(
        bench.sink.started(),
        2,
        "the second batch did not wait for the first past the flush interval"
    );
    assert!(bench.sink.run("run_b").is_some(), "the second is stored");
    assert_eq!(
        bench.feed.acked(),
        0,
        "but not acknowledged before the first"
    );
    slow.open();
    bench.run_for(10).await;
    assert_eq!(bench.feed.acked(), end(200));
    bench.stop().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_caught_up_batch_waits_for_the_insert_in_flight_then_goes_at_once() {
    let mut c = config(10_000, 2, 1000);
    c.batch.min_insert_interval_ms = 50;
    let bench = Bench::start(c);
    let slow = bench.sink.hang_next();
    bench.insert(100, "run_a");
    bench.run_for(10).await;
    // A steady trickle while the first insert takes 400 ms: one batch collects it all.
    for n in 0..30u64 {
        bench.insert(200 + n * 10, &format!("run_{n}"));
        bench.run_for(10).await;
    }
    bench.run_for(90).await;
    assert_eq!(
        bench.sink.started(),
        1,
        "no small insert queued behind a slow one"
    );
    let opened = Instant::now();
    slow.open();
    bench.run_for(5).await;
    let writes = bench.sink.writes();
    assert_eq!(
        writes.len(),
        2,
        "written as soon as the insert before it finished"
    );
    assert!(writes[1].started - opened < Duration::from_millis(5));
    assert_eq!(
        writes[1].runs.len(),
        30,
        "every change of the wait in one insert"
    );
    assert_eq!(bench.feed.acked(), end(200 + 29 * 10));
    bench.stop().await.unwrap();
}
