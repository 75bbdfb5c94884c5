//! [`FrameFeed`]: a replication stream in memory, for running the streaming loop in-process.
//!
//! A test pushes events through the [`FeedHandle`] — whole transactions of pgoutput messages,
//! keepalives — and reads back what the loop acknowledged and how many events it took. When
//! nothing is queued, `recv` waits like an idle server; dropping the handle ends the stream.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

use bytes::Bytes;
use pgwire_replication::{Lsn, ReplicationEvent};
use tokio::sync::mpsc;

use crate::source::stream::EventStream;

#[derive(Default)]
struct Shared {
    acked: AtomicU64,
    taken: AtomicUsize,
    closed: AtomicBool,
}

/// The loop's side: implements [`EventStream`].
pub struct FrameFeed {
    events: mpsc::UnboundedReceiver<ReplicationEvent>,
    shared: Arc<Shared>,
}

/// The test's side.
#[derive(Clone)]
pub struct FeedHandle {
    events: mpsc::UnboundedSender<ReplicationEvent>,
    shared: Arc<Shared>,
}

/// A feed and the handle that fills it.
pub fn feed() -> (FrameFeed, FeedHandle) {
    let (tx, rx) = mpsc::unbounded_channel();
    let shared = Arc::new(Shared::default());
    (
        FrameFeed {
            events: rx,
            shared: shared.clone(),
        },
        FeedHandle { events: tx, shared },
    )
}

impl FeedHandle {
    pub fn push(&self, event: ReplicationEvent) {
        let _ = self.events.send(event);
    }

    /// One transaction: Begin, one XLogData per message, Commit. Its commit record is at
    /// `commit_lsn` and ends at `commit_lsn + COMMIT_RECORD`, so transactions pushed with increasing
    /// `commit_lsn` are ordered as a server would send them.
    pub fn transaction(&self, xid: u32, commit_lsn: u64, messages: &[Bytes]) {
        self.transaction_sent(xid, commit_lsn, messages, 0, 0);
    }

    /// [`Self::transaction`] committed at `commit_time_micros` and sent by the walsender at
    /// `sent_micros` (both µs since 2000-01-01, the server's clock): sent long after its commit,
    /// it is part of a backlog.
    pub fn transaction_sent(
        &self,
        xid: u32,
        commit_lsn: u64,
        messages: &[Bytes],
        commit_time_micros: i64,
        sent_micros: i64,
    ) {
        self.push(ReplicationEvent::Begin {
            final_lsn: Lsn::from_u64(commit_lsn),
            xid,
            commit_time_micros,
        });
        for data in messages {
            self.push(ReplicationEvent::XLogData {
                wal_start: Lsn::from_u64(0),
                wal_end: Lsn::from_u64(0),
                server_time_micros: sent_micros,
                data: data.clone(),
            });
        }
        self.push(ReplicationEvent::Commit {
            lsn: Lsn::from_u64(commit_lsn),
            end_lsn: Lsn::from_u64(commit_lsn + COMMIT_RECORD),
            commit_time_micros,
        });
    }

    /// A keepalive with the server's WAL end at `wal_end`.
    pub fn keepalive(&self, wal_end: u64) {
        self.push(ReplicationEvent::KeepAlive {
            wal_end: Lsn::from_u64(wal_end),
            reply_requested: false,
            server_time_micros: 0,
        });
    }

    /// The highest position the loop acknowledged.
    pub fn acked(&self) -> u64 {
        self.shared.acked.load(Ordering::SeqCst)
    }

    /// Events the loop has taken from the feed.
    pub fn taken(&self) -> usize {
        self.shared.taken.load(Ordering::SeqCst)
    }

    /// The loop closed the stream (a graceful stop).
    pub fn closed(&self) -> bool {
        self.shared.closed.load(Ordering::SeqCst)
    }
}

/// An XLogData event carrying one pgoutput message.
pub fn xlog(data: Bytes) -> ReplicationEvent {
    ReplicationEvent::XLogData {
        wal_start: Lsn::from_u64(0),
        wal_end: Lsn::from_u64(0),
        server_time_micros: 0,
        data,
    }
}

/// The size of the commit records the feed makes: PostgreSQL's smallest (a 24-byte record header,
/// a 2-byte data header and the 8-byte commit time, aligned to 8).
pub const COMMIT_RECORD: u64 = 40;

/// The Commit of a transaction whose commit record is at `commit_lsn`.
pub fn commit(commit_lsn: u64) -> ReplicationEvent {
    ReplicationEvent::Commit {
        lsn: Lsn::from_u64(commit_lsn),
        end_lsn: Lsn::from_u64(commit_lsn + COMMIT_RECORD),
        commit_time_micros: 0,
    }
}

impl EventStream for FrameFeed {
    async fn recv(&mut self) -> Result<Option<ReplicationEvent>, String> {
        let event = self.events.recv().await;
        if event.is_some() {
            self.shared.taken.fetch_add(1, Ordering::SeqCst);
        }
        Ok(event)
    }

    fn is_running(&self) -> bool {
        !self.events.is_closed() || !self.events.is_empty()
    }

    fn acknowledge(&self, lsn: u64) {
        self.shared.acked.fetch_max(lsn, Ordering::SeqCst);
    }

    fn reported(&self) -> u64 {
        self.shared.acked.load(Ordering::SeqCst)
    }

    async fn close(&mut self) {
        self.shared.closed.store(true, Ordering::SeqCst);
    }

    fn abort(&mut self) {
        self.events.close();
    }
}
