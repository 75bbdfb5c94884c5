//! A copy connection's snapshot, held for a bounded time (`backfill.snapshot_max_s`).
//!
//! A snapshot open for the whole of a long copy holds back vacuum on the busiest tables of the
//! database. So a [`Lease`] — one connection and the snapshot it reads through now — takes a
//! fresh snapshot, with its own `L` (`snapshot::take_fresh`: the same rule as the first one, so
//! every row is stamped with the `L` of the snapshot it was read from), before the current one
//! gets too old, and ends a snapshot that would outlive the bound:
//!
//! - [`Lease::ensure`] before a statement: a snapshot with less than the time asked for left is
//!   ended and a fresh one taken;
//! - [`Lease::limit_statement`]: the statement runs with `statement_timeout` set to the time left
//!   (Postgres itself ends it, and the snapshot with it: an aborted transaction holds none);
//! - [`Lease::during`]: work done while the connection idles inside the snapshot (a write to
//!   ClickHouse) ends the snapshot (ROLLBACK) when the bound is reached first.
//!
//! A copy that needs more than one snapshot is correct piece by piece: each piece carries its own
//! `L`, as chunks copied by a resumed backfill always have (ARCHITECTURE.md, "A backfilled row
//! never beats a live change"). The snapshot a slot exported (the bootstrap) is the first one a
//! lease holds; every later one is fresh, so its `L` is above the slot's point.
//!
//! [`SnapshotClock`] keeps the longest snapshot held and how many were taken, for the summaries
//! and `runs_replicator_snapshot_longest_seconds`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio_postgres::Client;

use super::BackfillError;
use super::snapshot::{self, WaitReport};
use crate::config::Config;
use crate::metrics as m;

/// The snapshots one backfill or verify took, and the longest one held.
#[derive(Debug)]
pub struct SnapshotClock {
    command: &'static str,
    longest_ms: AtomicU64,
    taken: AtomicU64,
}

impl SnapshotClock {
    /// `command` labels the metrics: `backfill` (a stream's copies too) or `verify`.
    pub fn new(command: &'static str) -> Arc<SnapshotClock> {
        metrics::gauge!(m::SNAPSHOT_LONGEST, "command" => command).set(0.0);
        Arc::new(SnapshotClock {
            command,
            longest_ms: AtomicU64::new(0),
            taken: AtomicU64::new(0),
        })
    }

    pub fn taken(&self) {
        self.taken.fetch_add(1, Ordering::Relaxed);
        metrics::counter!(m::SNAPSHOTS_TAKEN, "command" => self.command).increment(1);
    }

    /// A snapshot ended after being held `held`.
    pub fn held(&self, held: Duration) {
        let ms = held.as_millis() as u64;
        let before = self.longest_ms.fetch_max(ms, Ordering::Relaxed);
        if ms > before {
            metrics::gauge!(m::SNAPSHOT_LONGEST, "command" => self.command).set(ms as f64 / 1000.0);
        }
    }

    pub fn longest(&self) -> Duration {
        Duration::from_millis(self.longest_ms.load(Ordering::Relaxed))
    }

    pub fn count(&self) -> u64 {
        self.taken.load(Ordering::Relaxed)
    }
}

/// The snapshot a lease holds now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Held {
    /// Its `L`: every transaction that commits before it is visible in it.
    pub lsn: u64,
    /// Every transaction it shows committed before this position.
    pub upper: u64,
    /// Added to `lsn` in the rows' versions (`Snapshot::shift`): the connection's, the same for
    /// every snapshot it takes (one server, whose timeline a primary keeps while connected).
    pub shift: u64,
    since: Instant,
}

/// How a lease takes its snapshots.
#[derive(Clone)]
pub struct Terms {
    /// The longest a snapshot may be held.
    pub bound: Duration,
    /// How long taking a fresh one may wait for the transactions in flight.
    pub wait_limit: Duration,
    pub query_timeout: Duration,
    /// Told what a fresh snapshot waits on (the daemon's `/readyz`).
    pub report: Option<WaitReport>,
    pub clock: Arc<SnapshotClock>,
}

impl Terms {
    pub fn of(config: &Config, clock: Arc<SnapshotClock>, report: Option<WaitReport>) -> Terms {
        Terms {
            bound: Duration::from_secs(config.backfill.snapshot_max_s),
            wait_limit: Duration::from_secs(config.backfill.snapshot_wait_timeout_s),
            query_timeout: config.query_timeout(),
            report,
            clock,
        }
    }
}

/// One copy connection and the snapshot it reads through now, if any.
pub struct Lease {
    client: Client,
    held: Option<Held>,
    terms: Terms,
    /// `Held::shift` of every snapshot this connection takes.
    shift: u64,
}

fn pg_error(what: &'static str) -> impl Fn(tokio_postgres::Error) -> BackfillError {
    move |e| BackfillError::Postgres {
        what: what.to_string(),
        reason: crate::pg::describe(&e),
    }
}

impl Lease {
    /// A connection inside a snapshot opened at `since` (a shared or exported one).
    pub fn holding(
        client: Client,
        (lsn, upper, shift): (u64, u64, u64),
        since: Instant,
        terms: Terms,
    ) -> Lease {
        Lease {
            client,
            held: Some(Held {
                lsn,
                upper,
                shift,
                since,
            }),
            terms,
            shift,
        }
    }

    /// A connection outside any transaction, whose snapshots' versions shift by `shift`
    /// ([`snapshot::connection_shift`]): its first [`Lease::ensure`] takes a fresh snapshot.
    pub fn idle(client: Client, terms: Terms, shift: u64) -> Lease {
        Lease {
            client,
            held: None,
            terms,
            shift,
        }
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    pub fn bound(&self) -> Duration {
        self.terms.bound
    }

    pub fn held(&self) -> Option<Held> {
        self.held
    }

    /// How long the snapshot held now may still be held (zero without one).
    pub fn remaining(&self) -> Duration {
        match &self.held {
            Some(h) => self.terms.bound.saturating_sub(h.since.elapsed()),
            None => Duration::ZERO,
        }
    }

    /// A snapshot with at least `need` left (at most the bound): the one held, or a fresh one.
    pub async fn ensure(&mut self, need: Duration) -> Result<Held, BackfillError> {
        let need = need.min(self.terms.bound);
        if let Some(h) = self.held
            && self.remaining() >= need
        {
            return Ok(h);
        }
        self.release().await?;
        let fresh = snapshot::take_fresh(
            &self.client,
            self.terms.wait_limit,
            self.terms.query_timeout,
            self.terms.report.as_ref(),
        )
        .await?;
        self.terms.clock.taken();
        let held = Held {
            lsn: fresh.lsn,
            upper: fresh.upper,
            shift: self.shift,
            since: fresh.since,
        };
        self.held = Some(held);
        Ok(held)
    }

    /// Ends the snapshot held, if any (ROLLBACK: it only read; an aborted transaction too).
    pub async fn release(&mut self) -> Result<(), BackfillError> {
        if let Some(h) = self.held.take() {
            self.terms.clock.held(h.since.elapsed());
            self.client
                .batch_execute("ROLLBACK")
                .await
                .map_err(pg_error("ending the copy snapshot"))?;
        }
        Ok(())
    }

    /// Bounds the next statement by the time the snapshot has left: past it Postgres cancels the
    /// statement (SQLSTATE 57014), which ends the snapshot.
    pub async fn limit_statement(&self) -> Result<(), BackfillError> {
        let ms = self.remaining().as_millis().max(1);
        self.client
            .batch_execute(&format!("SET LOCAL statement_timeout = {ms}"))
            .await
            .map_err(pg_error("bounding the copy statement"))
    }

    /// Runs `work` while the connection idles inside its snapshot; if the bound comes first, the
    /// snapshot is ended then, and `work` goes on without it.
    pub async fn during<F: std::future::Future>(
        &mut self,
        work: F,
    ) -> Result<F::Output, BackfillError> {
        if self.held.is_none() {
            return Ok(work.await);
        }
        let left = self.remaining();
        tokio::pin!(work);
        tokio::select! {
            out = &mut work => Ok(out),
            _ = tokio::time::sleep(left) => {
                self.release().await?;
                Ok(work.await)
            }
        }
    }
}
