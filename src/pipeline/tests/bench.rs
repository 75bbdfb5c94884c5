//! The harness: a replicator running on its own task against in-memory parts, with one or more
//! streams attached to it.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;

use crate::config::{Config, Source};
use crate::health::Health;
use crate::pipeline::attached::{Attach, Ended};
use crate::pipeline::errors::PipelineError;
use crate::pipeline::replicator::Replicator;
use crate::source::pgoutput::ReplicaIdentity;
use crate::testing::control::FakeControl;
use crate::testing::feed::{FeedHandle, FrameFeed, feed, xlog};
use crate::testing::memory_sink::MemorySink;
use crate::testing::task_runs::{self, RunValues};

/// OID of `"TaskRun"` in the feed.
pub const TASK_RUN: u32 = 16_400;
/// OID of `task_run_v2` in the feed.
pub const TASK_RUN_V2: u32 = 16_500;

/// One attached stream, as the test drives it.
pub struct Stream {
    pub feed: FeedHandle,
    pub control: Arc<FakeControl>,
    ended: Option<oneshot::Receiver<Ended>>,
    release: Option<oneshot::Sender<()>>,
}

impl Stream {
    /// A Relation message (as the server sends one before a relation's first change).
    pub fn relation(&self, oid: u32, table: &str, identity: ReplicaIdentity) {
        self.feed
            .push(xlog(task_runs::relation(oid, table, identity)));
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

    /// Waits for the loop to end this stream's session with an error, and returns it.
    pub async fn ended(&mut self) -> PipelineError {
        self.end()
            .await
            .expect_err("the session ends with an error")
    }

    /// Waits for the loop to end this stream's session, and returns how.
    pub async fn end(&mut self) -> Ended {
        let ended = self.ended.take().expect("ended once");
        tokio::time::timeout(Duration::from_secs(600), ended)
            .await
            .expect("the session ends")
            .expect("the loop reports it")
    }

    /// Asks the loop to release the stream (the daemon handing it over to another instance).
    pub fn release(&mut self) {
        let _ = self.release.take().expect("released once").send(());
    }
}

pub struct Bench {
    /// The first stream.
    pub first: Stream,
    pub sink: MemorySink,
    /// What the loop reports for `/readyz` (the first stream is "default").
    pub health: Arc<Health>,
    config: Arc<Config>,
    attach: mpsc::Sender<Attach<FrameFeed, FakeControl>>,
    shutdown: watch::Sender<bool>,
    task: JoinHandle<()>,
}

/// The default configuration with these batch settings.
pub fn config(max_rows: usize, max_inflight: usize, flush_interval_ms: u64) -> Config {
    let mut config = Config::default();
    config.batch.max_rows = max_rows;
    config.batch.max_inflight = max_inflight;
    config.batch.flush_interval_ms = flush_interval_ms;
    config
}

impl std::ops::Deref for Bench {
    type Target = Stream;

    fn deref(&self) -> &Stream {
        &self.first
    }
}

impl Bench {
    /// Starts the loop with the configuration's first source attached; its feed already carries
    /// both tables' Relation messages (FULL).
    pub fn start(config: Config) -> Bench {
        let config = Arc::new(config);
        let sink = MemorySink::new();
        let (attach, mut attach_rx) = mpsc::channel(8);
        let (shutdown, mut stop) = watch::channel(false);
        let task = {
            let sink = Arc::new(sink.clone());
            let config = config.clone();
            tokio::spawn(async move {
                let mut replicator = Replicator::new(config, sink);
                replicator.run(&mut attach_rx, &mut stop).await
            })
        };
        let source = config.sources().remove(0);
        let mut bench = Bench {
            first: Stream {
                feed: feed().1,
                control: Arc::new(FakeControl::default()),
                ended: None,
                release: None,
            },
            sink,
            health: Arc::new(Health::new(
                Duration::from_secs(1),
                &["default".to_string()],
            )),
            config,
            attach,
            shutdown,
            task,
        };
        bench.first = bench.attach("default", source);
        bench
    }

    /// Attaches another stream of `source` (its feed carries both tables' Relations).
    pub fn attach(&self, name: &str, source: Arc<Source>) -> Stream {
        let (events, feed) = feed();
        let control = Arc::new(FakeControl::default());
        let (ended, ended_rx) = oneshot::channel();
        let (release, release_rx) = oneshot::channel();
        self.attach
            .try_send(Attach {
                name: name.into(),
                slot: format!("{name}_slot"),
                source,
                events,
                control: control.clone(),
                ended,
                health: Some(self.health.clone()),
                versions: Default::default(),
                release: Some(release_rx),
            })
            .expect("the loop takes it");
        let stream = Stream {
            feed,
            control,
            ended: Some(ended_rx),
            release: Some(release),
        };
        stream.relation(TASK_RUN, "TaskRun", ReplicaIdentity::Full);
        stream.relation(TASK_RUN_V2, "task_run_v2", ReplicaIdentity::Full);
        stream
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Lets the loop and the inserts run until all of them wait, moving the paused clock by
    /// `ms` at most.
    pub async fn run_for(&self, ms: u64) {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }

    /// Requests a graceful stop; returns how the first stream's session ended.
    pub async fn stop(mut self) -> Ended {
        let _ = self.shutdown.send(true);
        self.task.await.expect("the loop does not panic");
        let ended = self.first.ended.take().expect("not ended yet");
        ended.await.expect("the loop reports every session")
    }

    /// Waits for the loop to end the first stream's session with an error, and returns it.
    pub async fn ended(mut self) -> PipelineError {
        self.first.ended().await
    }
}
