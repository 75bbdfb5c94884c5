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
//!
//! Only transactions that can write the copied tables are waited for: those of sessions
//! connected to this database, and prepared transactions of it (a prepared transaction has no
//! session; `pg_prepared_xacts` names its database). A transaction of another database cannot
//! change these tables, so missing it from the snapshot changes nothing. The wait is bounded by
//! `backfill.snapshot_wait_timeout_s` (a forgotten prepared transaction never ends by itself):
//! past it the copy fails, naming what it waited on ([`BackfillError::SnapshotWait`]), and while
//! it waits the log and the caller's [`WaitReport`] name it too.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_postgres::Client;

use super::BackfillError;
use super::lease::{Lease, Terms};
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

/// Told what a snapshot waits on while it waits (`Some`), and `None` once it no longer waits:
/// the daemon shows it on `/readyz`.
pub type WaitReport = Arc<dyn Fn(Option<String>) + Send + Sync>;

/// Where the copy snapshot comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SnapshotSource {
    /// Take one now, with `L` read before it as described above (the `backfill` command).
    Fresh,
    /// Import a snapshot exported elsewhere whose `L` is known: the one
    /// `CREATE_REPLICATION_SLOT … EXPORT_SNAPSHOT` returns with the slot's consistent point
    /// (the daemon's bootstrap). The exporting session must stay open and idle until
    /// [`Snapshot::open`] returned.
    Exported { name: String, lsn: u64 },
}

/// Connections that all read one snapshot, inside a REPEATABLE READ READ ONLY transaction each,
/// and the `L` their rows are stamped with.
pub struct Snapshot {
    pub lsn: u64,
    /// Added to `lsn` in the rows' versions: the shift of the timeline segment `L` is in
    /// (`pipeline::version_map`; 0 unless the source's server failed over). Rows are stamped
    /// `generation << 56 | (lsn + shift)` ([`Snapshot::version_lsn`]).
    pub shift: u64,
    /// A WAL position read once the snapshot was taken: every transaction the snapshot shows has
    /// its commit record before it. A slot confirmed past `upper` has delivered all of them (a
    /// verify waits for that before it reads ClickHouse). `lsn` for an exported snapshot.
    pub upper: u64,
    /// How long `open` waited for transactions in flight at `L` (zero for an exported one).
    pub waited: Duration,
    /// When it was taken (or imported): how old it is.
    pub since: Instant,
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
        Snapshot::open_reporting(config, source, origin, connections, None).await
    }

    /// [`Snapshot::open`], telling `report` what a fresh snapshot waits on while it waits.
    pub async fn open_reporting(
        config: &Config,
        source: &Source,
        origin: SnapshotSource,
        connections: usize,
        report: Option<WaitReport>,
    ) -> Result<Snapshot, BackfillError> {
        let first = connect(config, source).await?;
        // Before the snapshot's transaction: a refused query inside it would abort it.
        let server = server_history(&first).await?;
        let since = Instant::now();
        let (lsn, name, waited, upper) = match origin {
            SnapshotSource::Fresh => {
                let limit = Duration::from_secs(config.backfill.snapshot_wait_timeout_s);
                let fresh =
                    take_fresh(&first, limit, config.query_timeout(), report.as_ref()).await?;
                let name: String = first
                    .query_one("SELECT pg_export_snapshot()", &[])
                    .await
                    .map_err(pg_error("exporting the copy snapshot"))?
                    .get(0);
                (fresh.lsn, name, fresh.waited, fresh.upper)
            }
            SnapshotSource::Exported { name, lsn } => {
                import(&first, &name).await?;
                (lsn, name, Duration::ZERO, lsn)
            }
        };
        let shift = version_shift(config, source, server, lsn).await?;
        let mut all = vec![first];
        for _ in 1..connections.max(1) {
            let client = connect(config, source).await?;
            import(&client, &name).await?;
            all.push(client);
        }
        Ok(Snapshot {
            lsn,
            shift,
            upper,
            waited,
            since,
            connections: all,
        })
    }

    /// The connections as leases holding this snapshot, each taking fresh ones on its own
    /// once it gets old (`lease`).
    pub fn into_leases(self, terms: &Terms) -> Vec<Lease> {
        terms.clock.taken();
        let (held, since) = ((self.lsn, self.upper, self.shift), self.since);
        self.connections
            .into_iter()
            .map(|c| Lease::holding(c, held, since, terms.clone()))
            .collect()
    }

    /// The connections, each inside the snapshot; the first is the one that planned (and, for a
    /// fresh snapshot, exported it).
    pub fn into_connections(self) -> Vec<Client> {
        self.connections
    }

    pub fn first(&self) -> &Client {
        &self.connections[0]
    }

    /// `L`'s position in `_version` (its low 56 bits): what the rows are stamped with and what
    /// a version is compared with.
    pub fn version_lsn(&self) -> u64 {
        self.lsn.saturating_add(self.shift)
    }
}

/// The version shift of the snapshots `client` takes of `source` from now on (outside a
/// transaction): that of its server's current timeline, past every fork it has (`version_shift`
/// at the current WAL position; a later `L` on the same server is in the same segment).
pub async fn connection_shift(
    config: &Config,
    source: &Source,
    client: &Client,
) -> Result<u64, BackfillError> {
    let server = server_history(client).await?;
    let lsn = current_lsn(client).await?;
    version_shift(config, source, server, lsn).await
}

/// The timeline `client`'s server writes its WAL on now (`pg_walfile_name` of the insert
/// position), and its system identifier when this role may read `pg_control_system()`.
async fn server_history(client: &Client) -> Result<(u32, Option<String>), BackfillError> {
    let file: String = client
        .query_one("SELECT pg_walfile_name(pg_current_wal_insert_lsn())", &[])
        .await
        .map_err(pg_error("reading the server's timeline"))?
        .get(0);
    let timeline = file
        .get(..8)
        .and_then(|t| u32::from_str_radix(t, 16).ok())
        .ok_or_else(|| BackfillError::Postgres {
            what: "reading the server's timeline".into(),
            reason: format!("unexpected WAL file name {file:?}"),
        })?;
    let system = client
        .query_one(
            "SELECT system_identifier::text FROM pg_control_system()",
            &[],
        )
        .await
        .ok()
        .map(|r| r.get::<_, String>(0));
    Ok((timeline, system))
}

/// The shift of `L` = `lsn` on the server `(timeline, system identifier)` against the source's
/// version record (`backfill::versions`), which refuses a timeline the worker has not taken over
/// or an older one (an old primary). A record of another cluster (a new one behind the name)
/// says nothing about this one; a role that may not read the system identifier is taken to be on
/// the recorded cluster.
async fn version_shift(
    config: &Config,
    source: &Source,
    (timeline, system): (u32, Option<String>),
    lsn: u64,
) -> Result<u64, BackfillError> {
    let ch = crate::sink::client::build(config).map_err(BackfillError::State)?;
    let store = crate::sink::state::StateStore::new(
        ch,
        Duration::from_millis(config.clickhouse.request_timeout_ms),
    );
    store.ensure().await?;
    let record = super::versions::load(&store, &source.name)
        .await
        .map_err(BackfillError::State)?
        .filter(|r| system.as_ref().is_none_or(|s| *s == r.system_identifier));
    super::versions::shift_for_snapshot(record.as_ref(), timeline, lsn)
        .map_err(|e| BackfillError::Request(format!("source {}: {e}", source.name)))
}

/// A snapshot taken on one connection by the rule of [`SnapshotSource::Fresh`].
#[derive(Debug, Clone, Copy)]
pub struct Fresh {
    pub lsn: u64,
    pub upper: u64,
    pub waited: Duration,
    /// When it was taken.
    pub since: Instant,
}

/// Takes a fresh snapshot on `client` (outside any transaction): reads `L`, waits (at most
/// `limit`) for the transactions in flight that can write this database, then begins a
/// REPEATABLE READ READ ONLY transaction whose first statement takes the snapshot and reads
/// `upper` (evaluated once the snapshot exists: every commit it shows was inserted before it).
pub async fn take_fresh(
    client: &Client,
    limit: Duration,
    query_timeout: Duration,
    report: Option<&WaitReport>,
) -> Result<Fresh, BackfillError> {
    let lsn = current_lsn(client).await?;
    let waited = wait_for_running(client, limit, query_timeout, report).await?;
    client
        .batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        .await
        .map_err(pg_error("opening the copy snapshot"))?;
    let since = Instant::now();
    let upper = current_lsn(client).await?.max(lsn);
    Ok(Fresh {
        lsn,
        upper,
        waited,
        since,
    })
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

/// One transaction in flight, as the snapshot's wait names it.
#[derive(Debug, Clone, PartialEq)]
pub struct InFlight {
    pub xid: String,
    /// Its backend; `None` for a prepared transaction (no session holds it).
    pub pid: Option<i32>,
    /// A prepared transaction's name.
    pub gid: Option<String>,
    /// The database it runs in, when the server says.
    pub database: Option<String>,
    /// Seconds since it started (or was prepared), when the server shows it to this role.
    pub age_s: Option<f64>,
}

impl std::fmt::Display for InFlight {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let db = self.database.as_deref().unwrap_or("?");
        let age = self
            .age_s
            .map(|a| format!(", for {} s", a.max(0.0).round()))
            .unwrap_or_default();
        match (&self.gid, self.pid) {
            (Some(gid), _) => write!(
                f,
                "prepared transaction {} (xid {}, database {db}{age})",
                crate::pg::quote_literal(gid),
                self.xid
            ),
            (None, Some(pid)) => write!(f, "xid {} of pid {pid} (database {db}{age})", self.xid),
            (None, None) => write!(f, "xid {} (database {db}{age})", self.xid),
        }
    }
}

/// Which transactions can matter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Those that can write this database's tables: its sessions' and its prepared ones (and any
    /// whose database the server does not say). A transaction of another database cannot touch
    /// the copied tables, so a fresh snapshot never waits for it.
    Database,
    /// Every one in the cluster: what creating a logical slot waits for inside Postgres.
    Cluster,
}

/// Transactions holding an xid now: every transaction that has one and has not yet become visible
/// to new snapshots holds an exclusive lock on it (released after that), prepared ones included
/// (with no pid: their database comes from `pg_prepared_xacts`). `$1`: only these xids (all when
/// empty); `$2`: only those that can write the current database.
const IN_FLIGHT: &str = "SELECT l.transactionid::text, l.pid, p.gid, coalesce(a.datname, p.database)::text, \
       extract(epoch FROM now() - coalesce(a.xact_start, p.prepared))::float8 \
     FROM pg_locks l \
     LEFT JOIN pg_stat_activity a ON a.pid = l.pid \
     LEFT JOIN pg_prepared_xacts p ON p.transaction = l.transactionid \
     WHERE l.locktype = 'transactionid' AND l.mode = 'ExclusiveLock' AND l.granted \
       AND (cardinality($1::text[]) = 0 OR l.transactionid::text = ANY($1)) \
       AND (NOT $2 OR coalesce(a.datname, p.database, current_database()) = current_database()) \
     ORDER BY 5 DESC NULLS LAST";

/// The transactions in flight now that can matter to `scope`, oldest first; only those of
/// `among` when it is not empty.
pub async fn in_flight(
    client: &Client,
    scope: Scope,
    among: &[String],
) -> Result<Vec<InFlight>, tokio_postgres::Error> {
    let this_database = scope == Scope::Database;
    Ok(client
        .query(IN_FLIGHT, &[&among, &this_database])
        .await?
        .iter()
        .map(|r| InFlight {
            xid: r.get(0),
            pid: r.get(1),
            gid: r.get(2),
            database: r.get(3),
            age_s: r.get(4),
        })
        .collect())
}

/// Up to five of `waiting`, and how many more.
pub fn describe_in_flight(waiting: &[InFlight]) -> String {
    let mut text = waiting
        .iter()
        .take(5)
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ");
    if waiting.len() > 5 {
        text.push_str(&format!("; and {} more", waiting.len() - 5));
    }
    text
}

/// Waits until every transaction in flight now that can write this database has ended, for at
/// most `limit`. Logs after a few seconds, naming them, and then every 30 s, and tells `report`
/// what it waits on (and `None` once it is done): a forgotten open or prepared transaction
/// blocks a backfill here, until the limit.
async fn wait_for_running(
    client: &Client,
    limit: Duration,
    query_timeout: Duration,
    report: Option<&WaitReport>,
) -> Result<Duration, BackfillError> {
    let started = Instant::now();
    // Each reading bounded: a backend that stops answering fails the copy, it does not hang it.
    let read = |what: &'static str, among: Vec<String>| async move {
        match tokio::time::timeout(query_timeout, in_flight(client, Scope::Database, &among)).await
        {
            Ok(r) => r.map_err(pg_error(what)),
            Err(_) => Err(BackfillError::Postgres {
                what: what.to_string(),
                reason: format!(
                    "no answer within {} ms (postgres.query_timeout_ms)",
                    query_timeout.as_millis()
                ),
            }),
        }
    };
    let running: Vec<String> = read("reading the transactions in flight", Vec::new())
        .await?
        .into_iter()
        .map(|t| t.xid)
        .collect();
    if running.is_empty() {
        return Ok(Duration::ZERO);
    }
    tracing::debug!(
        transactions = running.len(),
        "waiting for the transactions in flight to end before taking the snapshot"
    );
    let told = |text: Option<String>| {
        if let Some(report) = report {
            report(text);
        }
    };
    let mut delay = Duration::from_millis(10);
    let mut next_log = started + Duration::from_secs(5);
    let mut next_report = started + Duration::from_secs(1);
    loop {
        let left = read("watching the transactions in flight", running.clone()).await?;
        if left.is_empty() {
            told(None);
            return Ok(started.elapsed());
        }
        let waited = started.elapsed();
        if waited >= limit {
            told(None);
            return Err(BackfillError::SnapshotWait {
                waited_s: waited.as_secs(),
                waiting_on: describe_in_flight(&left),
            });
        }
        let now = Instant::now();
        if now >= next_report {
            told(Some(format!(
                "waiting {} s (of at most {} s) for transactions in flight before taking the copy \
                 snapshot: {}",
                waited.as_secs(),
                limit.as_secs(),
                describe_in_flight(&left)
            )));
            next_report = now + Duration::from_secs(5);
        }
        if now >= next_log {
            tracing::warn!(
                waiting_s = waited.as_secs(),
                limit_s = limit.as_secs(),
                transactions = left.len(),
                waiting_on = %describe_in_flight(&left),
                "waiting for transactions that were running when the copy started to end; the \
                 snapshot is taken once they have (backfill.snapshot_wait_timeout_s bounds it)"
            );
            next_log = now + Duration::from_secs(30);
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_millis(500));
    }
}
