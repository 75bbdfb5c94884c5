//! Several streams in one loop: each acknowledged on its own, one failing leaves the others
//! streaming, and a run present in two sources ends as its higher generation's copy.

use std::sync::Arc;

/// A Commit at `lsn` is acknowledged at its end.
const fn end(lsn: u64) -> u64 {
    lsn + crate::testing::feed::COMMIT_RECORD
}

use super::bench::{Bench, TASK_RUN, config};
use crate::config::Source;
use crate::pipeline::errors::PipelineError;
use crate::source::pgoutput::ReplicaIdentity;
use crate::testing::task_runs::{self, RunValues};

/// trigger.dev's run-ops source: its `"TaskRun"` at generation 1.
fn run_ops(bench: &Bench) -> Arc<Source> {
    let mut source = (*bench.config().sources()[0]).clone();
    source.name = "new".into();
    source.tables = vec!["TaskRun".into()];
    source.generations = [("TaskRun".to_string(), 1)].into();
    Arc::new(source)
}

/// The legacy source: `"TaskRun"` at generation 0.
fn legacy_config() -> crate::config::Config {
    let mut c = config(10_000, 2, 100);
    c.postgres.tables = vec!["TaskRun".into()];
    c.postgres.generations = [("TaskRun".to_string(), 0)].into();
    c
}

#[tokio::test(start_paused = true)]
async fn a_run_in_both_sources_ends_as_the_higher_generations_copy_in_either_order() {
    for run_ops_first in [true, false] {
        let bench = Bench::start(legacy_config());
        let new = bench.attach("new", run_ops(&bench));
        let completed = RunValues::new("run_same").status("COMPLETED_SUCCESSFULLY");
        let pending = RunValues::new("run_same").status("PENDING");
        // The legacy copy always has the larger raw LSN.
        let write_new = || new.txn(0x100, &[task_runs::insert(TASK_RUN, &completed)]);
        let write_legacy = || bench.txn(0x9000, &[task_runs::insert(TASK_RUN, &pending)]);
        if run_ops_first {
            write_new();
            bench.run_for(200).await;
            write_legacy();
        } else {
            write_legacy();
            bench.run_for(200).await;
            write_new();
        }
        // Distinct runs in each source both land.
        bench.insert(0x9100, "run_legacy_only");
        new.insert(0x200, "run_new_only");
        bench.run_for(300).await;
        let run = bench.sink.run("run_same").expect("one row under FINAL");
        assert_eq!(
            (run.status.as_str(), run._version),
            ("COMPLETED_SUCCESSFULLY", (1 << 56) | end(0x100)),
            "run-ops first: {run_ops_first}"
        );
        assert!(bench.sink.run("run_legacy_only").is_some());
        assert!(bench.sink.run("run_new_only").is_some());
        assert_eq!(bench.feed.acked(), end(0x9100));
        assert_eq!(new.feed.acked(), end(0x200));
        bench.stop().await.unwrap();
    }
}

#[tokio::test(start_paused = true)]
async fn a_hard_stopped_stream_leaves_the_others_streaming() {
    let bench = Bench::start(legacy_config());
    let mut new = bench.attach("new", run_ops(&bench));
    bench.insert(100, "run_a");
    new.insert(100, "run_b");
    bench.run_for(200).await;
    assert_eq!((bench.feed.acked(), new.feed.acked()), (end(100), end(100)));

    new.relation(TASK_RUN, "TaskRun", ReplicaIdentity::Default);
    new.txn(200, &[task_runs::delete_by_key(TASK_RUN, "run_b")]);
    let error = new.ended().await;
    assert!(matches!(error, PipelineError::HardStop(_)), "{error}");

    for n in 0..5u64 {
        bench.insert(300 + n * 10, &format!("run_after_{n}"));
    }
    bench.run_for(200).await;
    assert_eq!(bench.feed.acked(), end(340), "the legacy stream goes on");
    assert!(bench.sink.run("run_after_4").is_some());
    assert_eq!(
        new.feed.acked(),
        end(100),
        "nothing past the stop for the stopped one"
    );
    assert!(bench.sink.run("run_b").is_some(), "its run is not touched");
    bench.stop().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_silent_stream_never_holds_back_anothers_acknowledgements() {
    let bench = Bench::start(legacy_config());
    let new = bench.attach("new", run_ops(&bench));
    // One batch with both streams' rows; then only the legacy stream writes.
    bench.insert(100, "run_a");
    new.insert(50, "run_b");
    bench.run_for(200).await;
    assert_eq!((bench.feed.acked(), new.feed.acked()), (end(100), end(50)));
    for n in 0..20u64 {
        bench.insert(200 + n, &format!("run_{n}"));
        bench.run_for(150).await;
        assert_eq!(
            bench.feed.acked(),
            end(200 + n),
            "acknowledged within one batch"
        );
    }
    assert_eq!(
        new.feed.acked(),
        end(50),
        "the silent stream keeps its own position"
    );
    new.feed.keepalive(end(50) + 10);
    bench.run_for(10).await;
    assert_eq!(
        new.feed.acked(),
        end(50) + 10,
        "and confirms its idle position on its own"
    );
    bench.stop().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_batch_is_written_early_only_when_every_stream_caught_up() {
    let mut c = legacy_config();
    c.batch.min_insert_interval_ms = 0;
    let bench = Bench::start(c);
    let new = bench.attach("new", run_ops(&bench));
    // The legacy stream drains a backlog (sent a minute after commit), the new one is live.
    bench.feed.transaction_sent(
        1,
        100,
        &[task_runs::insert(TASK_RUN, &RunValues::new("run_old"))],
        0,
        60_000_000,
    );
    new.insert(100, "run_live");
    bench.run_for(50).await;
    assert!(
        bench.sink.writes().is_empty(),
        "one stream still has more to send: not caught up"
    );
    // The legacy walsender reaches the end of its WAL.
    bench.feed.keepalive(500);
    bench.run_for(1).await;
    assert_eq!(bench.sink.writes().len(), 1, "now every stream caught up");
    assert_eq!((bench.feed.acked(), new.feed.acked()), (end(100), end(100)));
    bench.stop().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_released_stream_stores_and_acknowledges_its_commits_then_ends_alone() {
    let bench = Bench::start(legacy_config());
    let mut new = bench.attach("new", run_ops(&bench));
    new.insert(100, "run_a");
    bench.run_for(200).await;
    assert_eq!(new.feed.acked(), end(100));
    // A committed transaction whose insert hangs, then one still open when the release comes.
    let gate = bench.sink.hang_next();
    new.insert(200, "run_b");
    bench.run_for(200).await;
    new.feed.push(pgwire_replication::ReplicationEvent::Begin {
        final_lsn: pgwire_replication::Lsn::from_u64(300),
        xid: 300,
        commit_time_micros: 0,
    });
    new.feed.push(crate::testing::feed::xlog(task_runs::insert(
        TASK_RUN,
        &RunValues::new("run_open"),
    )));
    bench.run_for(50).await;
    new.release();
    bench.run_for(500).await;
    assert!(
        !new.feed.closed(),
        "not closed before its committed rows are stored"
    );
    assert_eq!(new.feed.acked(), end(100));
    // Pushed after the release: never read.
    let taken = new.feed.taken();
    new.insert(400, "run_after_release");
    bench.insert(500, "run_legacy");
    bench.run_for(200).await;
    assert_eq!(new.feed.taken(), taken, "a released stream is not read");
    assert!(
        bench.sink.run("run_legacy").is_some(),
        "the other stream goes on meanwhile"
    );
    gate.open();
    let ended = new.end().await;
    assert!(ended.is_ok(), "a graceful end: {ended:?}");
    assert!(new.feed.closed());
    assert_eq!(
        new.feed.acked(),
        end(200),
        "acknowledged through its last commit, never into the open transaction"
    );
    assert!(bench.sink.run("run_b").is_some());
    assert!(
        bench.sink.run("run_open").is_none() && bench.sink.run("run_after_release").is_none(),
        "the open transaction and what follows are the next leader's, from the slot"
    );
    bench.insert(600, "run_legacy_later");
    bench.run_for(200).await;
    assert!(bench.sink.run("run_legacy_later").is_some());
    assert_eq!(bench.feed.acked(), end(600));
    bench.stop().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_repair_replay_on_one_stream_neither_stalls_another_nor_looks_up_per_change() {
    let bench = Bench::start(config(10_000, 2, 100));
    let mut source = (*bench.config().sources()[0]).clone();
    source.name = "other".into();
    let other = bench.attach("other", Arc::new(source));
    for i in 0..30 {
        bench.insert(100 + i, &format!("run_r_{i:02}"));
    }
    bench.run_for(300).await;
    assert_eq!(bench.sink.final_rows().len(), 30);

    // The first stream replays changes made under REPLICA IDENTITY DEFAULT: 30 transactions of
    // one UPDATE each without its old row, each needing a lookup of ClickHouse, which takes
    // 500 ms (a FINAL read of a large table).
    bench
        .sink
        .slow_lookups(std::time::Duration::from_millis(500));
    bench.control.set_complete("TaskRun", true);
    bench.relation(TASK_RUN, "TaskRun", ReplicaIdentity::Default);
    for i in 0..30u64 {
        let run = RunValues::new(&format!("run_r_{i:02}")).status("EXECUTING");
        bench.txn(
            1000 + i * 10,
            &[task_runs::update_without_old(TASK_RUN, &run)],
        );
    }
    other.insert(0x100, "run_other_1");
    bench.run_for(300).await;
    assert!(
        bench.sink.run("run_other_1").is_some(),
        "the other stream's change is stored while the first one's lookups are answered"
    );
    assert_eq!(other.feed.acked(), end(0x100), "and acknowledged");
    other.insert(0x200, "run_other_2");
    bench.run_for(300).await;
    assert!(bench.sink.run("run_other_2").is_some(), "still streaming");

    bench.run_for(3000).await;
    assert_eq!(
        bench.feed.acked(),
        end(1290),
        "every repaired transaction acknowledged"
    );
    let executing = bench
        .sink
        .final_rows()
        .values()
        .filter(|r| r.run_id.starts_with("run_r_") && r.status == "EXECUTING")
        .count();
    assert_eq!(executing, 30, "every repaired change applied");
    let lookups = bench.sink.lookups();
    assert!(
        lookups <= 3,
        "the transactions that queued while a lookup was in flight share the next: {lookups} lookups for 30"
    );
    bench.stop().await.unwrap();
}

/// A stream with repaired transactions held for their lookups, released: the release waits for
/// the lookups and stores them before it ends; one that runs out of time first acknowledges
/// only what ClickHouse stored, and a late answer is ignored.
#[tokio::test(start_paused = true)]
async fn a_released_stream_stores_its_held_transactions_or_leaves_them_unacknowledged() {
    for lookup_ms in [500u64, 30_000] {
        let bench = Bench::start(config(10_000, 2, 100));
        let mut source = (*bench.config().sources()[0]).clone();
        source.name = "other".into();
        let mut other = bench.attach("other", Arc::new(source));
        for i in 0..5 {
            other.insert(100 + i, &format!("run_h_{i}"));
        }
        bench.run_for(300).await;
        assert_eq!(other.feed.acked(), end(104));

        // Five repaired transactions, each holding back for a lookup that takes `lookup_ms`.
        bench
            .sink
            .slow_lookups(std::time::Duration::from_millis(lookup_ms));
        other.control.set_complete("TaskRun", true);
        other.relation(TASK_RUN, "TaskRun", ReplicaIdentity::Default);
        for i in 0..5u64 {
            let run = RunValues::new(&format!("run_h_{i}")).status("EXECUTING");
            other.txn(
                1000 + i * 10,
                &[task_runs::update_without_old(TASK_RUN, &run)],
            );
        }
        bench.run_for(100).await;
        assert_eq!(bench.sink.lookups(), 1, "a lookup in flight");
        other.release();
        other.insert(2000, "run_after_release");
        bench.insert(3000, "run_default");
        bench.run_for(200).await;
        assert_eq!(
            other.feed.acked(),
            end(104),
            "nothing held is acknowledged before its lookup is answered and its rows stored"
        );
        assert!(!other.feed.closed(), "the release waits for the lookup");
        assert!(
            bench.sink.run("run_default").is_some(),
            "the other stream goes on meanwhile"
        );

        let ended = other.end().await;
        assert!(ended.is_ok(), "a graceful end: {ended:?}");
        assert!(other.feed.closed());
        let executing = bench
            .sink
            .final_rows()
            .values()
            .filter(|r| r.run_id.starts_with("run_h_") && r.status == "EXECUTING")
            .count();
        if lookup_ms < 10_000 {
            assert_eq!(executing, 5, "the held transactions were stored");
            assert_eq!(other.feed.acked(), end(1040), "and acknowledged");
        } else {
            assert_eq!(executing, 0, "out of time: nothing held was stored");
            assert_eq!(
                other.feed.acked(),
                end(104),
                "so nothing held is acknowledged: the next leader receives it again"
            );
        }
        assert!(bench.sink.run("run_after_release").is_none());
        // A late answer to the lookup finds the stream gone.
        bench.run_for(lookup_ms).await;
        bench.insert(4000, "run_default_later");
        bench.run_for(300).await;
        assert_eq!(bench.feed.acked(), end(4000));
        bench.stop().await.unwrap();
    }
}
