//! The loop's invariants, one test each.

use super::bench::{Bench, TASK_RUN, config};
use crate::pipeline::errors::{HardStop, PipelineError};
use crate::rows::Col;
use crate::source::pgoutput::ReplicaIdentity;
use crate::testing::memory_sink::Fault;
use crate::testing::task_runs::{self, RunValues};

/// A Commit at `lsn` is acknowledged at its end.
const fn end(lsn: u64) -> u64 {
    lsn + crate::testing::feed::COMMIT_RECORD
}

#[tokio::test(start_paused = true)]
async fn nothing_is_acknowledged_past_a_row_that_is_not_stored() {
    // An insert is two rows (the run and its payload): batches of two transactions, two
    // batches written at once, so the second can finish first.
    let bench = Bench::start(config(3, 2, 1000));
    let first = bench.sink.hang_next();
    for (n, lsn) in [100, 200, 300, 400].into_iter().enumerate() {
        bench.insert(lsn, &format!("run_{n}"));
    }
    bench.run_for(50).await;
    assert_eq!(bench.sink.started(), 2, "both batches are being written");
    assert!(
        bench.sink.run("run_3").is_some(),
        "the second batch is stored"
    );
    assert_eq!(
        bench.feed.acked(),
        0,
        "the first batch is not stored, so no position may be acknowledged"
    );

    first.open();
    bench.run_for(50).await;
    assert_eq!(bench.feed.acked(), end(400), "both stored: the last commit");
    bench.stop().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_failed_write_ends_the_session_without_acknowledging_it() {
    let bench = Bench::start(config(10_000, 2, 100));
    bench.insert(100, "run_a");
    bench.run_for(200).await;
    assert_eq!(bench.feed.acked(), end(100));

    bench
        .sink
        .push_fault(Fault::Fail("ClickHouse is down".into()));
    bench.insert(200, "run_b");
    bench.insert(300, "run_c");
    let acked = bench.feed.clone();
    let error = bench.ended().await;
    assert!(matches!(error, PipelineError::Sink(_)), "{error}");
    assert_eq!(
        acked.acked(),
        end(100),
        "the failed batch and everything after it stay unacknowledged"
    );
}

#[tokio::test(start_paused = true)]
async fn a_keepalive_is_acknowledged_only_when_nothing_is_pending() {
    let bench = Bench::start(config(10_000, 2, 1000));
    bench.feed.keepalive(50);
    bench.run_for(10).await;
    assert_eq!(bench.feed.acked(), 50, "idle: the server's position");

    // A row buffered, then being written: the keepalive must not confirm past it.
    let gate = bench.sink.hang_next();
    bench.insert(100, "run_a");
    bench.feed.keepalive(150);
    bench.run_for(10).await;
    assert_eq!(bench.feed.acked(), 50, "a row is buffered, not stored");
    bench.feed.keepalive(160);
    bench.run_for(10).await;
    assert_eq!(bench.feed.acked(), 50, "a row is being written, not stored");

    // Stored; an open transaction also holds keepalives back.
    gate.open();
    bench.run_for(10).await;
    assert_eq!(bench.feed.acked(), 160);
    bench
        .feed
        .push(pgwire_replication::ReplicationEvent::Begin {
            final_lsn: pgwire_replication::Lsn::from_u64(300),
            xid: 3,
            commit_time_micros: 0,
        });
    bench.feed.keepalive(250);
    bench.run_for(10).await;
    assert_eq!(bench.feed.acked(), 160, "a transaction is open");
    bench.feed.push(crate::testing::feed::commit(300));
    bench.feed.keepalive(400);
    bench.run_for(10).await;
    assert_eq!(bench.feed.acked(), 400, "idle again");
    bench.stop().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_full_batch_with_every_insert_busy_stops_the_reading() {
    // Two transactions (four rows) fill a batch; one insert at a time.
    let bench = Bench::start(config(3, 1, 1000));
    let gate = bench.sink.hang_next();
    for n in 0..10u64 {
        bench.insert(100 * (n + 1), &format!("run_{n}"));
    }
    bench.run_for(100).await;
    // Two Relations, then Begin/XLogData/Commit of two transactions (the batch being written)
    // and of two more (the full batch waiting for the busy slot): nothing more is read.
    assert_eq!(bench.feed.taken(), 2 + 4 * 3);
    assert_eq!(bench.sink.started(), 1);

    gate.open();
    bench.run_for(100).await;
    assert_eq!(
        bench.feed.taken(),
        2 + 10 * 3,
        "everything read once the slot frees"
    );
    assert_eq!(bench.sink.final_rows().len(), 10);
    assert_eq!(bench.feed.acked(), end(1000));
    bench.stop().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn parts_of_a_large_transaction_land_in_order_and_its_final_state_wins() {
    // Batches of two rows: a transaction of five changes is written in parts before its Commit.
    let bench = Bench::start(config(2, 2, 1000));
    let gate = bench.sink.hang_next();
    let statuses = ["PENDING", "DEQUEUED", "EXECUTING", "COMPLETED_SUCCESSFULLY"];
    let mut messages = vec![task_runs::insert(TASK_RUN, &RunValues::new("run_x"))];
    let mut old = RunValues::new("run_x");
    for (n, status) in statuses.iter().enumerate().skip(1) {
        // Each update also touches its own second run, so the transaction outgrows the batch.
        messages.push(task_runs::insert(
            TASK_RUN,
            &RunValues::new(&format!("run_other_{n}")),
        ));
        let new = old.clone().status(status);
        messages.push(task_runs::update(TASK_RUN, &old, &new));
        old = new;
    }
    bench.txn(500, &messages);
    bench.run_for(100).await;
    assert_eq!(
        bench.sink.started(),
        1,
        "the next part waits until the first is stored: parts share a version"
    );
    assert_eq!(
        bench.feed.acked(),
        0,
        "nothing is acknowledged before the Commit"
    );

    gate.open();
    bench.run_for(1100).await;
    let writes = bench.sink.writes();
    assert!(writes.len() >= 3, "written in parts: {}", writes.len());
    let run = bench.sink.run("run_x").expect("run_x is visible once");
    assert_eq!(run.status, "COMPLETED_SUCCESSFULLY");
    assert_eq!(
        run._version,
        end(500),
        "the rows left at the Commit get its end, above every part"
    );
    assert_eq!(bench.sink.final_rows().len(), 4);
    assert_eq!(bench.feed.acked(), end(500));
    bench.stop().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_part_that_lands_again_after_the_commit_does_not_bring_back_an_earlier_state() {
    // Batches of two rows: run_x's PENDING state goes out in the first part, its later states
    // in later parts and at the Commit. The first part's insert is also committed again by the
    // server after everything else (a timed-out attempt the sink retried).
    let bench = Bench::start(config(2, 2, 1000));
    let gate = crate::testing::memory_sink::Gate::default();
    bench.sink.push_fault(Fault::LandsAgainLater(gate.clone()));
    let mut messages = vec![
        task_runs::insert(TASK_RUN, &RunValues::new("run_x")),
        task_runs::insert(TASK_RUN, &RunValues::new("run_y")),
    ];
    let mut old = RunValues::new("run_x");
    for (n, status) in ["DEQUEUED", "EXECUTING", "COMPLETED_SUCCESSFULLY"]
        .iter()
        .enumerate()
    {
        messages.push(task_runs::insert(
            TASK_RUN,
            &RunValues::new(&format!("run_other_{n}")),
        ));
        let new = old.clone().status(status);
        messages.push(task_runs::update(TASK_RUN, &old, &new));
        old = new;
    }
    bench.txn(500, &messages);
    bench.run_for(1100).await;
    assert_eq!(bench.feed.acked(), end(500));
    gate.open();
    bench.run_for(100).await;
    let writes = bench.sink.writes();
    let first = &writes[0];
    assert!(
        writes.last().unwrap().runs == first.runs && writes.len() >= 4,
        "the first part landed again, last"
    );
    let run = bench.sink.run("run_x").expect("run_x is visible once");
    assert_eq!(
        run.status, "COMPLETED_SUCCESSFULLY",
        "a later state has a higher version than every earlier part"
    );
    bench.stop().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_transaction_of_any_number_of_parts_ends_in_its_last_state_whatever_lands_late() {
    // Batches of two rows: every change below is a part of its own, 90 parts in all. run_x is
    // updated between parts throughout, its last state (the 45th) in a part, not in the rest
    // left for the Commit; run_y only in parts 60 and 70. The inserts of parts 40 and 61 are
    // committed by the server once more after everything else (attempts the client gave up on).
    let bench = Bench::start(config(2, 2, 1000));
    let late: Vec<_> = (0..2)
        .map(|_| crate::testing::memory_sink::Gate::default())
        .collect();
    // Faults apply to writes in order: 40 plain ones, part 40, 20 more, part 61.
    for (plain, gate) in [(40, &late[0]), (20, &late[1])] {
        for _ in 0..plain {
            bench.sink.push_fault(Fault::Pass);
        }
        bench.sink.push_fault(Fault::LandsAgainLater(gate.clone()));
    }
    let statuses = ["DEQUEUED", "EXECUTING", "WAITING_TO_RESUME"];
    let mut x = RunValues::new("run_x");
    let mut y = RunValues::new("run_y");
    let mut messages = vec![task_runs::insert(TASK_RUN, &RunValues::new("run_x"))];
    for n in 0..88 {
        messages.push(task_runs::insert(
            TASK_RUN,
            &RunValues::new(&format!("run_filler_{n:02}")),
        ));
        if n < 45 {
            let status = if n == 44 {
                "COMPLETED_SUCCESSFULLY"
            } else {
                statuses[n % 3]
            };
            let new = x.clone().status(status);
            messages.push(task_runs::update(TASK_RUN, &x, &new));
            x = new;
        }
        if n == 58 {
            messages.push(task_runs::insert(TASK_RUN, &y));
        }
        if n == 68 {
            let new = y.clone().status("CANCELED");
            messages.push(task_runs::update(TASK_RUN, &y, &new));
            y = new;
        }
    }
    bench.txn(500, &messages);
    bench.run_for(5000).await;
    assert_eq!(bench.feed.acked(), end(500), "the transaction is stored");
    let parts = bench.sink.writes().len();
    assert!(parts > 80, "written in many parts: {parts}");
    for gate in &late {
        gate.open();
        bench.run_for(100).await;
    }
    assert_eq!(
        bench.sink.writes().len(),
        parts + 2,
        "parts 40 and 61 landed again after everything else"
    );
    assert_eq!(
        bench.sink.run("run_x").expect("run_x").status,
        "COMPLETED_SUCCESSFULLY",
        "run_x ends in its last state"
    );
    assert_eq!(
        bench.sink.run("run_y").expect("run_y").status,
        "CANCELED",
        "run_y ends in its last state"
    );
    bench.stop().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn replica_identity_default_is_a_hard_stop_while_the_table_is_still_broken() {
    let bench = Bench::start(config(10_000, 2, 100));
    bench.insert(100, "run_a");
    bench.run_for(200).await;
    assert_eq!(bench.feed.acked(), end(100));

    bench.relation(TASK_RUN, "TaskRun", ReplicaIdentity::Default);
    bench.txn(200, &[task_runs::delete_by_key(TASK_RUN, "run_a")]);
    let feed = bench.feed.clone();
    let sink = bench.sink.clone();
    let error = bench.ended().await;
    match &error {
        PipelineError::HardStop(h) => assert_eq!(h.kind(), "replica_identity", "{error}"),
        other => panic!("expected a hard stop, got {other}"),
    }
    assert_eq!(feed.acked(), end(100), "nothing past the last good commit");
    assert!(sink.run("run_a").is_some(), "the run is not touched");
}

#[tokio::test(start_paused = true)]
async fn once_the_table_is_fixed_a_key_only_delete_tombstones_what_the_sink_shows() {
    let bench = Bench::start(config(10_000, 2, 100));
    bench.insert(100, "run_a");
    bench.insert(110, "run_b");
    bench.run_for(200).await;
    assert_eq!(bench.sink.final_rows().len(), 2);

    bench.control.set_complete("TaskRun", true);
    bench.relation(TASK_RUN, "TaskRun", ReplicaIdentity::Default);
    bench.txn(200, &[task_runs::delete_by_key(TASK_RUN, "run_a")]);
    bench.run_for(200).await;
    assert!(bench.sink.run("run_a").is_none(), "tombstoned");
    assert!(bench.sink.run("run_b").is_some());
    assert_eq!(bench.feed.acked(), end(200));
    bench.stop().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn the_repaired_deletes_of_one_transaction_share_one_lookup() {
    let bench = Bench::start(config(10_000, 2, 100));
    bench
        .health
        .set_role("default", crate::health::Role::Leader);
    let ids: Vec<String> = (0..50).map(|i| format!("run_{i:02}")).collect();
    for (i, id) in ids.iter().enumerate() {
        bench.insert(100 + i as u64, id);
    }
    bench.run_for(200).await;
    assert_eq!(bench.sink.final_rows().len(), 50);

    bench.control.set_complete("TaskRun", true);
    bench.relation(TASK_RUN, "TaskRun", ReplicaIdentity::Default);
    let deletes: Vec<_> = ids[..40]
        .iter()
        .map(|id| task_runs::delete_by_key(TASK_RUN, id))
        .collect();
    bench.txn(500, &deletes);
    bench.run_for(200).await;
    assert_eq!(bench.sink.final_rows().len(), 10, "40 runs tombstoned");
    assert_eq!(
        bench.sink.lookups(),
        1,
        "one read of the sink for 40 deletes"
    );
    assert_eq!(bench.feed.acked(), end(500));
    let ready = bench.health.readiness();
    assert!(
        ready.ready && ready.detail.contains("repairing") && ready.detail.contains("40 so far"),
        "{ready:?}"
    );
    // The table is complete again: the next transaction needs no repair.
    bench.relation(TASK_RUN, "TaskRun", ReplicaIdentity::Full);
    bench.insert(600, "run_new");
    bench.run_for(200).await;
    let ready = bench.health.readiness();
    assert!(!ready.detail.contains("repairing"), "{ready:?}");
    bench.stop().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn an_update_without_its_old_row_that_moves_the_run_tombstones_its_old_key() {
    let bench = Bench::start(config(10_000, 2, 100));
    bench.insert(100, "run_a");
    bench.insert(110, "run_b");
    bench.run_for(200).await;

    bench.control.set_complete("TaskRun", true);
    bench.relation(TASK_RUN, "TaskRun", ReplicaIdentity::Default);
    // DEFAULT identity sends no old row when the key (id) is unchanged, even though the
    // run's createdAt and project (part of the ClickHouse key) changed.
    let moved = RunValues::new("run_a")
        .with(Col::CreatedAt, Some("2026-11-02 09:00:00.000"))
        .with(Col::ProjectId, Some("proj_2"))
        .status("EXECUTING");
    let same = RunValues::new("run_b").status("EXECUTING");
    bench.txn(
        200,
        &[
            task_runs::update_without_old(TASK_RUN, &moved),
            task_runs::update_without_old(TASK_RUN, &same),
        ],
    );
    bench.run_for(200).await;
    let rows = bench.sink.final_rows();
    let a: Vec<_> = rows.values().filter(|r| r.run_id == "run_a").collect();
    assert_eq!(a.len(), 1, "one row of run_a under FINAL: {a:?}");
    assert_eq!(a[0].project_id, "proj_2");
    assert_eq!(a[0].status, "EXECUTING");
    let b: Vec<_> = rows.values().filter(|r| r.run_id == "run_b").collect();
    assert_eq!(b.len(), 1);
    assert_eq!(b[0].status, "EXECUTING", "an unmoved run keeps its one row");
    assert_eq!(bench.sink.lookups(), 1);
    bench.stop().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn an_incomplete_update_is_completed_from_the_current_row() {
    let bench = Bench::start(config(10_000, 2, 100));
    bench.control.set_complete("TaskRun", true);
    bench
        .control
        .set_value("run_a", Col::Output, Some(r#"{"big":true}"#));
    // A relation without the output column: the update cannot carry it.
    let columns: Vec<&str> = Col::ALL
        .iter()
        .map(|c| c.pg_name())
        .filter(|c| *c != "output")
        .collect();
    let rel = crate::testing::pgoutput::text_relation(TASK_RUN, "public", "TaskRun", &columns);
    bench.feed.push(crate::testing::feed::xlog(
        crate::testing::pgoutput::encode(&crate::source::pgoutput::Message::Relation(rel)),
    ));
    let values: Vec<Option<String>> = Col::ALL
        .iter()
        .filter(|c| **c != Col::Output)
        .map(|c| {
            RunValues::new("run_a")
                .status("COMPLETED_SUCCESSFULLY")
                .get(*c)
                .map(str::to_string)
        })
        .collect();
    let insert = crate::testing::pgoutput::encode(&crate::source::pgoutput::Message::Insert(
        crate::source::pgoutput::Insert {
            relation_id: TASK_RUN,
            new: crate::testing::pgoutput::text_tuple(&values),
        },
    ));
    bench.txn(100, &[insert]);
    bench.run_for(200).await;
    let run = bench.sink.run("run_a").expect("repaired");
    assert_eq!(run.status, "COMPLETED_SUCCESSFULLY");
    assert_eq!(run.output, r#"{"data":{"big":true}}"#);
    bench.stop().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_dropped_slot_or_lost_leadership_stops_streaming() {
    let bench = Bench::start(config(10_000, 2, 100));
    bench.insert(100, "run_a");
    bench.run_for(200).await;
    bench.control.set_slot(None);
    let error = bench.ended().await;
    assert!(
        matches!(error, PipelineError::HardStop(HardStop::SlotMissing { .. })),
        "{error}"
    );

    let bench = Bench::start(config(10_000, 2, 100));
    bench.control.lose_leadership();
    let error = bench.ended().await;
    assert!(matches!(error, PipelineError::LockLost), "{error}");
}

#[tokio::test(start_paused = true)]
async fn an_undecodable_message_is_a_hard_stop() {
    let bench = Bench::start(config(10_000, 2, 100));
    bench.txn(100, &[bytes::Bytes::from_static(b"I\x00")]);
    let error = bench.ended().await;
    match &error {
        PipelineError::HardStop(h) => assert_eq!(h.kind(), "decode", "{error}"),
        other => panic!("expected a hard stop, got {other}"),
    }
}

#[tokio::test(start_paused = true)]
async fn a_graceful_stop_stores_what_was_committed_and_drops_the_open_transaction() {
    // An insert a moment ago: the next may only start a minute later.
    let mut c = config(10_000, 2, 60_000);
    c.batch.min_insert_interval_ms = 60_000;
    let bench = Bench::start(c);
    bench.insert(50, "run_before");
    bench.run_for(10).await;
    assert_eq!(bench.sink.writes().len(), 1);
    bench.insert(100, "run_a");
    bench
        .feed
        .push(pgwire_replication::ReplicationEvent::Begin {
            final_lsn: pgwire_replication::Lsn::from_u64(200),
            xid: 2,
            commit_time_micros: 0,
        });
    bench
        .feed
        .push(crate::testing::feed::xlog(task_runs::insert(
            TASK_RUN,
            &RunValues::new("run_open"),
        )));
    bench.run_for(10).await;
    assert_eq!(
        bench.sink.writes().len(),
        1,
        "the batch waits for its interval"
    );
    let feed = bench.feed.clone();
    let sink = bench.sink.clone();
    bench.stop().await.unwrap();
    assert!(
        sink.run("run_a").is_some(),
        "committed: stored on the way out"
    );
    assert!(
        sink.run("run_open").is_none(),
        "not committed: sent again later"
    );
    assert_eq!(feed.acked(), end(100));
    assert!(feed.closed());
}

#[tokio::test(start_paused = true)]
async fn a_refused_row_is_skipped_and_its_batch_lands() {
    let bench = Bench::start(config(10_000, 2, 100));
    bench.sink.refuse("run_poison");
    bench.insert(100, "run_a");
    bench.insert(110, "run_poison");
    bench.insert(120, "run_c");
    bench.run_for(200).await;
    assert!(bench.sink.run("run_a").is_some() && bench.sink.run("run_c").is_some());
    assert!(bench.sink.run("run_poison").is_none());
    assert_eq!(bench.feed.acked(), end(120));
    bench.stop().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_shutdown_during_an_endless_write_ends_without_acknowledging_it() {
    let bench = Bench::start(config(10_000, 2, 100));
    let _never = bench.sink.hang_next();
    bench.insert(100, "run_a");
    bench.run_for(200).await;
    assert_eq!(bench.sink.started(), 1, "the write hangs");
    let feed = bench.feed.clone();
    let stopped = tokio::time::Instant::now();
    bench.stop().await.unwrap();
    let waited = stopped.elapsed();
    assert!(
        waited >= std::time::Duration::from_secs(10) && waited < std::time::Duration::from_secs(12),
        "the shutdown waits out its grace, then gives up: {waited:?}"
    );
    assert_eq!(feed.acked(), 0, "the unstored batch is not acknowledged");
    assert!(feed.closed());
}
