//! The harness: a replicator running on its own task against in-memory parts.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::config::Config;
use crate::pipeline::errors::PipelineError;
use crate::pipeline::replicator::Replicator;
use crate::source::pgoutput::ReplicaIdentity;
use crate::testing::control::FakeControl;
use crate::testing::feed::{FeedHandle, feed};
use crate::testing::memory_sink::MemorySink;
use crate::testing::task_runs::{self, RunValues};

/// OID of `"TaskRun"` in the feed.
pub const TASK_RUN: u32 = 16_400;
/// OID of `task_run_v2` in the feed.
pub const TASK_RUN_V2: u32 = 16_500;

pub struct Bench {
    pub feed: FeedHandle,
    pub sink: MemorySink,
    pub control: Arc<FakeControl>,
    shutdown: watch::Sender<bool>,
    task: JoinHandle<Result<(), PipelineError>>,
}

/// The default configuration with these batch settings.
pub fn config(max_rows: usize, max_inflight: usize, flush_interval_ms: u64) -> Config {
    let mut config = Config::default();
    config.batch.max_rows = max_rows;
    config.batch.max_inflight = max_inflight;
    config.batch.flush_interval_ms = flush_interval_ms;
    config
}

impl Bench {
    /// Starts the loop; the feed already carries both tables' Relation messages (FULL).
    pub fn start(config: Config) -> Bench {
        let (mut stream, handle) = feed();
        let sink = MemorySink::new();
        let control = Arc::new(FakeControl::default());
        let (shutdown, mut stop) = watch::channel(false);
        let task = {
            let sink = Arc::new(sink.clone());
            let control = control.clone();
            tokio::spawn(async move {
                let mut replicator = Replicator::new(Arc::new(config), sink);
                replicator.run(&mut stream, &*control, &mut stop).await
            })
        };
        let bench = Bench {
            feed: handle,
            sink,
            control,
            shutdown,
            task,
        };
        bench.relation(TASK_RUN, "TaskRun", ReplicaIdentity::Full);
        bench.relation(TASK_RUN_V2, "task_run_v2", ReplicaIdentity::Full);
        bench
    }

    /// A Relation message, in a transaction of its own (as the server sends one before a
    /// relation's first change; an empty transaction around it changes nothing).
    pub fn relation(&self, oid: u32, table: &str, identity: ReplicaIdentity) {
        self.feed
            .push(crate::testing::feed::xlog(task_runs::relation(
                oid, table, identity,
            )));
    }

    /// One transaction of `messages` with its commit record at `commit_lsn`.
    pub fn txn(&self, commit_lsn: u64, messages: &[Bytes]) {
        self.feed
            .transaction(commit_lsn as u32, commit_lsn, messages);
    }

    /// A transaction inserting run `id` into `"TaskRun"`.
    pub fn insert(&self, commit_lsn: u64, id: &str) {
        self.txn(
            commit_lsn,
            &[task_runs::insert(TASK_RUN, &RunValues::new(id))],
        );
    }

    /// Lets the loop and the inserts run until all of them wait, moving the paused clock by
    /// `ms` at most.
    pub async fn run_for(&self, ms: u64) {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }

    /// Requests a graceful stop and returns how the loop ended.
    pub async fn stop(self) -> Result<(), PipelineError> {
        let _ = self.shutdown.send(true);
        self.task.await.expect("the loop does not panic")
    }

    /// Waits for the loop to end on its own (an error) and returns it.
    pub async fn ended(self) -> PipelineError {
        let result = tokio::time::timeout(Duration::from_secs(600), self.task)
            .await
            .expect("the loop ends")
            .expect("the loop does not panic");
        result.expect_err("the loop ends with an error")
    }
}
