//! Memory bounded by bytes as well as rows (`batch.max_bytes`, shared as `crate::budget` says):
//! the batch, the inserts in flight and an open transaction, each with runs of a third of a
//! megabyte.

use super::bench::{Bench, TASK_RUN, config};
use crate::pipeline::collapse::{payload_bytes, run_bytes};
use crate::rows::Col;
use crate::testing::feed::{COMMIT_RECORD, commit, xlog};
use crate::testing::task_runs::{self, RunValues};

const MIB: u64 = 1 << 20;

/// A run whose output is about 300 KB.
fn big_run(id: &str) -> RunValues {
    let output = format!(r#"{{"blob":"{}"}}"#, "x".repeat(300_000));
    RunValues::new(id).with(Col::Output, Some(&output))
}

/// max_bytes 6 MiB for one stream, two inserts in flight: the batch and the inserts in flight
/// get half (3 MiB, a batch's share is 1 MiB), the open transaction an eighth (0.75 MiB).
fn six_mib() -> crate::config::Config {
    let mut c = config(10_000, 2, 60_000);
    c.batch.max_bytes = 6 * MIB;
    c
}

fn bytes_of(w: &crate::testing::memory_sink::Write) -> usize {
    w.runs.iter().map(run_bytes).sum::<usize>()
        + w.payloads.iter().map(payload_bytes).sum::<usize>()
}

#[tokio::test(start_paused = true)]
async fn a_batch_is_sealed_at_its_share_of_max_bytes() {
    let bench = Bench::start(six_mib());
    for n in 0..10u64 {
        bench.txn(
            100 + n,
            &[task_runs::insert(TASK_RUN, &big_run(&format!("run_{n}")))],
        );
    }
    bench.run_for(200).await;
    let writes = bench.sink.writes();
    let runs: Vec<usize> = writes.iter().map(|w| w.runs.len()).collect();
    println!("runs per write: {runs:?}");
    assert_eq!(runs, [4, 4, 2], "sealed at 1 MiB, not at 10,000 rows");
    for w in &writes {
        assert!(bytes_of(w) < (MIB as usize) + 400_000, "{}", bytes_of(w));
    }
    assert_eq!(bench.sink.final_rows().len(), 10);
    bench.stop().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn reading_stops_while_the_batch_and_the_inserts_in_flight_hold_max_bytes() {
    let bench = Bench::start(six_mib());
    let gates = [bench.sink.hang_next(), bench.sink.hang_next()];
    for n in 0..20u64 {
        bench.txn(
            100 + n,
            &[task_runs::insert(TASK_RUN, &big_run(&format!("run_{n}")))],
        );
    }
    bench.run_for(100).await;
    // Two Relations, then 3 events per transaction: two batches of four runs in flight (2.4 MB)
    // and three runs in the batch (0.9 MB) pass 3 MiB; nothing more is read.
    let taken = bench.feed.taken();
    println!("events taken while both inserts hang: {taken}");
    assert_eq!(taken, 2 + 3 * 11);
    assert_eq!(bench.sink.started(), 2);

    for gate in &gates {
        gate.open();
    }
    bench.run_for(100).await;
    assert_eq!(
        bench.feed.taken(),
        2 + 3 * 20,
        "read again as inserts finish"
    );
    assert_eq!(bench.sink.final_rows().len(), 20);
    assert_eq!(bench.feed.acked(), 100 + 19 + COMMIT_RECORD);
    bench.stop().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_transaction_past_its_byte_share_is_written_in_parts_before_its_commit() {
    let bench = Bench::start(six_mib());
    bench
        .feed
        .push(pgwire_replication::ReplicationEvent::Begin {
            final_lsn: pgwire_replication::Lsn::from_u64(500),
            xid: 5,
            commit_time_micros: 0,
        });
    for n in 0..10u64 {
        bench.feed.push(xlog(task_runs::insert(
            TASK_RUN,
            &big_run(&format!("run_{n}")),
        )));
    }
    bench.run_for(100).await;
    let parts = bench.sink.writes();
    let runs: Vec<usize> = parts.iter().map(|w| w.runs.len()).collect();
    println!("runs per part before the Commit: {runs:?}");
    assert_eq!(
        runs,
        [3, 3, 3],
        "spilled at 0.75 MiB, not held until 10,000 rows"
    );
    assert_eq!(
        bench.feed.acked(),
        0,
        "nothing acknowledged before the Commit"
    );

    bench.feed.push(commit(500));
    bench.run_for(100).await;
    assert_eq!(bench.sink.final_rows().len(), 10);
    assert_eq!(bench.feed.acked(), 500 + COMMIT_RECORD);
    let run = bench.sink.run("run_0").unwrap();
    assert_eq!(
        run._version, 501,
        "the first part's version: the commit LSN + 1"
    );
    bench.stop().await.unwrap();
}
