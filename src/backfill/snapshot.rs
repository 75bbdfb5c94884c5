//! The snapshot a backfill copies from, and the WAL position `L` its rows are stamped with.
//!
//! Every backfilled row gets `_version = generation << 56 | L`. That is safe against the live
//! stream when every transaction whose commit record lies before `L` is visible in the snapshot
//! (ARCHITECTURE.md, Invariants, "A backfilled row never beats a live change"):
//!
//! - [`SnapshotSource::Fresh`]: read `L = pg_current_wal_insert_lsn()` first; then the
//!   transactions that hold an xid at that moment; wait until each has ended; only then export
//!   the copy snapshot. A transaction whose commit record is before `L` was then either finished
//!   before we looked (visible) or among those we waited for (visible), so whatever the snapshot
//!   misses commits after `L` and its streamed version is higher.
//! - [`SnapshotSource::Exported`]: the snapshot a replication slot exported at creation, with
//!   `L` = the slot's consistent point. The slot streams exactly the transactions that commit
//!   after that point, and the snapshot shows exactly the ones before it.
//!
//! The running transactions are read from `pg_locks` (every xid holds an exclusive lock on
//! itself from its assignment until after it became visible), not from
//! `pg_snapshot_xip(pg_current_snapshot())`: a snapshot lists only xids below its `xmax`
//! (latest completed + 1), so the newest transactions in flight (often the only one) are not in
//! it, and a commit whose record is already written but not yet visible would be missed.

use std::time::{Duration, Instant};

use tokio_postgres::Client;

use super::BackfillError;
use crate::config::{Config, Source};

/// Session settings of every copy connection: the walsender's text rendering
/// (`source::stream::PINNED_OPTIONS`), so COPY writes each value exactly as pgoutput sends it, plus
/// what a long read-only copy needs to not be cut off by server defaults.
pub fn session_options() -> String {
    format!(
        "{} -c client_encoding=UTF8 -c standard_conforming_strings=on -c statement_timeout=0 \
         -c idle_in_transaction_session_timeout=0",
        crate::source::stream::PINNED_OPTIONS
    )
}

/// Where the copy snapshot comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SnapshotSource {
    /// Take one now, with `L` read before it as described above (the `backfill` command).
    Fresh,
    /// Import a snapshot exported elsewhere whose `L` is known: the one
    /// `CREATE_REPLICATION_SLOT … (SNAPSHOT 'export')` returns with the slot's consistent point
    /// (the daemon's bootstrap). The exporting session must stay open and idle until
    /// [`Snapshot::open`] returned.
    Exported { name: String, lsn: u64 },
}

/// Connections that all read one snapshot, inside a REPEATABLE READ READ ONLY transaction each,
/// and the `L` their rows are stamped with.
pub struct Snapshot {
    pub lsn: u64,
    /// A WAL position read once the snapshot was taken: every transaction the snapshot shows has
    /// its commit record before it. A slot confirmed past `upper` has delivered all of them (a
    /// verify waits for that before it reads ClickHouse). `lsn` for an exported snapshot.
    pub upper: u64,
    /// How long `open` waited for transactions in flight at `L` (zero for an exported one).
    pub waited: Duration,
    connections: Vec<Client>,
}

impl std::fmt::Debug for Snapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Snapshot")
            .field("lsn", &lsn_text(self.lsn))
            .field("connections", &self.connections.len())
            .finish()
    }
}

/// `0/16B6C50`, as Postgres writes an LSN.
pub fn lsn_text(lsn: u64) -> String {
    format!("{:X}/{:X}", lsn >> 32, lsn & 0xFFFF_FFFF)
}

pub fn parse_lsn(text: &str) -> Option<u64> {
    let (hi, lo) = text.split_once('/')?;
    Some((u64::from_str_radix(hi, 16).ok()? << 32) | u64::from_str_radix(lo, 16).ok()?)
}

fn pg_error(what: &'static str) -> impl Fn(tokio_postgres::Error) -> BackfillError {
    move |e| BackfillError::Postgres {
        what: what.to_string(),
        reason: crate::pg::describe(&e),
    }
}

/// One connection to `source`'s database with the copy session settings.
pub async fn connect(config: &Config, source: &Source) -> Result<Client, BackfillError> {
    crate::pg::connect_with_options(
        &source.url,
        config.connect_timeout_of(&source.url),
        Some(&session_options()),
    )
    .await
    .map_err(|e| BackfillError::Postgres {
        what: "connecting".into(),
        reason: e.to_string(),
    })
}

impl Snapshot {
    /// Opens `connections` (at least one) connections reading a snapshot of `source`'s database.
    pub async fn open(
        config: &Config,
        source: &Source,
        origin: SnapshotSource,
        connections: usize,
    ) -> Result<Snapshot, BackfillError> {
        let first = connect(config, source).await?;
        let (lsn, name, waited, upper) = match origin {
            SnapshotSource::Fresh => {
                let lsn = current_lsn(&first).await?;
                let waited = wait_for_running(&first).await?;
                first
                    .batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
                    .await
                    .map_err(pg_error("opening the copy snapshot"))?;
                let name: String = first
                    .query_one("SELECT pg_export_snapshot()", &[])
                    .await
                    .map_err(pg_error("exporting the copy snapshot"))?
                    .get(0);
                // Read once the snapshot exists (the function reads shared memory, not the
                // snapshot): every commit the snapshot shows was inserted before this position.
                let upper = current_lsn(&first).await?.max(lsn);
                (lsn, name, waited, upper)
            }
            SnapshotSource::Exported { name, lsn } => {
                import(&first, &name).await?;
                (lsn, name, Duration::ZERO, lsn)
            }
        };
        let mut all = vec![first];
        for _ in 1..connections.max(1) {
            let client = connect(config, source).await?;
            import(&client, &name).await?;
            all.push(client);
        }
        Ok(Snapshot {
            lsn,
            upper,
            waited,
            connections: all,
        })
    }

    /// The connections, each inside the snapshot; the first is the one that planned (and, for a
    /// fresh snapshot, exported it).
    pub fn into_connections(self) -> Vec<Client> {
        self.connections
    }

    pub fn first(&self) -> &Client {
        &self.connections[0]
    }
}

async fn import(client: &Client, name: &str) -> Result<(), BackfillError> {
    client
        .batch_execute(&format!(
            "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; SET TRANSACTION SNAPSHOT {}",
            crate::pg::quote_literal(name)
        ))
        .await
        .map_err(pg_error("importing the copy snapshot"))
}

async fn current_lsn(client: &Client) -> Result<u64, BackfillError> {
    let text: String = client
        .query_one("SELECT pg_current_wal_insert_lsn()::text", &[])
        .await
        .map_err(pg_error("reading the WAL position"))?
        .get(0);
    parse_lsn(&text).ok_or_else(|| BackfillError::Postgres {
        what: "reading the WAL position".into(),
        reason: format!("unexpected LSN {text:?}"),
    })
}

/// Transaction ids holding their own lock: every transaction that has an xid and has not yet
/// become visible to new snapshots (its lock is released after that), prepared ones included.
const RUNNING: &str = "SELECT DISTINCT transactionid::text FROM pg_locks \
     WHERE locktype = 'transactionid' AND mode = 'ExclusiveLock' AND granted";

/// The oldest of `$1` still running: its xid, backend pid (NULL for a prepared transaction) and
/// age in xids.
const OLDEST_STILL_RUNNING: &str = "SELECT transactionid::text, pid, age(transactionid) FROM pg_locks \
     WHERE locktype = 'transactionid' AND mode = 'ExclusiveLock' AND granted \
       AND transactionid::text = ANY($1) \
     ORDER BY age(transactionid) DESC";

/// Waits until every transaction in flight now has ended. Logs after a few seconds, naming the
/// oldest, and then every 30 s: a forgotten open transaction blocks a backfill here.
async fn wait_for_running(client: &Client) -> Result<Duration, BackfillError> {
    let started = Instant::now();
    let running: Vec<String> = client
        .query(RUNNING, &[])
        .await
        .map_err(pg_error("reading the transactions in flight"))?
        .iter()
        .map(|r| r.get(0))
        .collect();
    if running.is_empty() {
        return Ok(Duration::ZERO);
    }
    tracing::debug!(
        transactions = running.len(),
        "waiting for the transactions in flight to end before taking the snapshot"
    );
    let mut delay = Duration::from_millis(10);
    let mut next_log = started + Duration::from_secs(5);
    loop {
        let left = client
            .query(OLDEST_STILL_RUNNING, &[&running])
            .await
            .map_err(pg_error("watching the transactions in flight"))?;
        let Some(oldest) = left.first() else {
            return Ok(started.elapsed());
        };
        if Instant::now() >= next_log {
            let xid: String = oldest.get(0);
            let pid: Option<i32> = oldest.get(1);
            tracing::warn!(
                waiting_s = started.elapsed().as_secs(),
                transactions = left.len(),
                oldest_xid = %xid,
                oldest_pid = ?pid,
                "waiting for transactions that were running when the backfill started to end \
                 (pid None: a prepared transaction); the snapshot is taken once they have"
            );
            next_log = Instant::now() + Duration::from_secs(30);
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_millis(500));
    }
}
