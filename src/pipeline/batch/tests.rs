//! Unit tests of `batch`.

use super::*;
use crate::pipeline::transaction::Transaction;
use crate::testing::runs::run_row;

fn committed(id: &str, status: &str, end_lsn: u64) -> Committed {
    let mut t = Transaction::new(1, 0);
    t.add_row(0, run_row(id).with_status(status));
    t.commit(end_lsn, 0).unwrap()
}

#[test]
fn later_transactions_win_and_the_end_lsn_is_the_last_commit() {
    let now = Instant::now();
    let mut b = Batch::default();
    b.add(0, committed("run_1", "EXECUTING", 10), now);
    b.add(0, committed("run_2", "PENDING", 20), now);
    b.add(0, committed("run_1", "COMPLETED_SUCCESSFULLY", 30), now);
    b.add(0, Transaction::new(2, 0).commit(40, 0).unwrap(), now);
    assert_eq!(b.len(), 2);
    assert_eq!(
        b.deadline(Duration::from_secs(1)),
        Some(now + Duration::from_secs(1))
    );
    let sealed = b.seal();
    assert_eq!(sealed.ends, [(0, 40)]);
    assert_eq!(sealed.commit_times.len(), 3);
    let statuses: Vec<_> = sealed
        .runs
        .iter()
        .map(|r| (r.run_id.as_str(), r.status.as_str()))
        .collect();
    assert_eq!(
        statuses,
        [("run_1", "COMPLETED_SUCCESSFULLY"), ("run_2", "PENDING")]
    );
    assert!(b.is_empty() && b.deadline(Duration::from_secs(1)).is_none());
}

#[test]
fn an_empty_transaction_opens_no_deadline() {
    let mut b = Batch::default();
    b.add(
        0,
        Transaction::new(1, 0).commit(5, 0).unwrap(),
        Instant::now(),
    );
    assert!(b.is_empty());
    assert_eq!(b.deadline(Duration::from_secs(1)), None);
}

#[test]
fn each_stream_keeps_its_own_end() {
    let now = Instant::now();
    let mut b = Batch::default();
    b.add(1, committed("run_1", "PENDING", 100), now);
    b.add(2, committed("run_2", "PENDING", 7), now);
    b.add(1, Transaction::new(3, 0).commit(120, 0).unwrap(), now);
    assert!(b.holds(1) && b.holds(2) && !b.holds(3));
    let sealed = b.seal();
    assert_eq!(sealed.ends, [(1, 120), (2, 7)]);
    assert!(!b.holds(1), "a sealed batch leaves an empty one");
}
