//! Who is alive and who leads what, as one database's advisory locks show it.
//!
//! Every instance that shares streams (`leadership.share`) holds, on a session of its own, a
//! *member* lock `(MEMBER_SPACE, id)` (the two-int form of advisory keys, which never meets the
//! bigint stream locks: `pg_locks.objsubid` 2 against 1), and tags each of its stream sessions
//! with the shared lock `(TAG_SPACE, id)`. One reading of `pg_locks` then says which instances
//! are alive, which instance's session holds each stream's lock, and which instances wait in a
//! stream lock's queue. Nothing else is needed — no table, no heartbeat: a member lock goes with
//! its session exactly as a stream lock does, when the process dies or Postgres notices its host
//! is gone (`pg::DEAD_PEER_OPTIONS`).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use super::{LockError, bounded};
use crate::config::PgUrl;
use crate::pg;

/// The key space (`classid`) of the member locks: "RRM1".
pub const MEMBER_SPACE: i32 = 0x5252_4d31;
/// The key space of the tags on stream sessions: "RRT1".
pub const TAG_SPACE: i32 = 0x5252_5431;

/// One reading of a database's advisory locks.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Roster {
    /// The instances alive: each holds its member lock.
    pub members: BTreeSet<u32>,
    /// Stream lock → the member whose session holds it; `None` for a session no member tagged
    /// (an instance that does not share, or an older version).
    pub holders: BTreeMap<i64, Option<u32>>,
    /// Stream lock → the members whose sessions wait in its queue.
    pub waiters: BTreeMap<i64, BTreeSet<u32>>,
}

/// One advisory lock of `pg_locks`.
#[derive(Clone, Debug)]
pub struct LockRow {
    pub classid: u32,
    pub objid: u32,
    /// 1 for a bigint key, 2 for a pair of int4 keys.
    pub objsubid: i32,
    pub pid: Option<i32>,
    pub granted: bool,
}

/// The bigint key of a stream lock from its two halves as `pg_locks` shows them.
fn stream_key(classid: u32, objid: u32) -> i64 {
    ((u64::from(classid) << 32) | u64::from(objid)) as i64
}

impl Roster {
    pub fn from_rows(rows: &[LockRow]) -> Roster {
        let space = |row: &LockRow, space: i32| {
            row.objsubid == 2 && row.classid == space as u32 && row.granted
        };
        let mut roster = Roster::default();
        let mut member_of_pid = BTreeMap::new();
        for row in rows {
            if space(row, MEMBER_SPACE) {
                roster.members.insert(row.objid);
            } else if space(row, TAG_SPACE)
                && let Some(pid) = row.pid
            {
                member_of_pid.insert(pid, row.objid);
            }
        }
        for row in rows.iter().filter(|r| r.objsubid == 1) {
            let key = stream_key(row.classid, row.objid);
            let member = row.pid.and_then(|p| member_of_pid.get(&p).copied());
            if row.granted {
                roster.holders.insert(key, member);
            } else if let Some(m) = member {
                roster.waiters.entry(key).or_default().insert(m);
            }
        }
        roster
    }

    /// `member` waits in the queue of `key`'s lock.
    pub fn waits(&self, key: i64, member: u32) -> bool {
        self.waiters.get(&key).is_some_and(|w| w.contains(&member))
    }
}

/// The session that keeps an instance a member of a database's roster, and reads the roster.
pub struct Membership {
    client: tokio_postgres::Client,
    /// How long one query may take (`postgres.query_timeout_ms`).
    timeout: Duration,
}

impl Membership {
    /// Connects (within `connect_timeout`) to the primary among `url`'s hosts and takes member
    /// lock `id`; `Ok(None)` when another session holds it (another instance drew the same id,
    /// or a session of ours that Postgres has not seen go yet). Every query is bounded by
    /// `query_timeout`, on the server (`statement_timeout`) and here.
    pub async fn join(
        url: &PgUrl,
        connect_timeout: Duration,
        query_timeout: Duration,
        id: u32,
    ) -> Result<Option<Membership>, LockError> {
        let client =
            pg::connect_with_options(url, connect_timeout, Some(pg::DEAD_PEER_OPTIONS)).await?;
        bounded(
            "setting the member session's statement_timeout",
            query_timeout,
            client.batch_execute(&format!(
                "SET statement_timeout = {}",
                query_timeout.as_millis()
            )),
        )
        .await?;
        let row = bounded(
            "the member lock (pg_try_advisory_lock)",
            query_timeout,
            client.query_one(
                "SELECT pg_try_advisory_lock($1::int4, $2::int4)",
                &[&MEMBER_SPACE, &(id as i32)],
            ),
        )
        .await?;
        Ok(row.get::<_, bool>(0).then_some(Membership {
            client,
            timeout: query_timeout,
        }))
    }

    /// The database's advisory locks now.
    pub async fn read(&self) -> Result<Roster, LockError> {
        let rows = bounded(
            "reading the instances (pg_locks)",
            self.timeout,
            self.client.query(
                "SELECT classid::int8, objid::int8, objsubid::int4, pid, granted FROM pg_locks \
                 WHERE locktype = 'advisory' \
                   AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
                &[],
            ),
        )
        .await?;
        let rows: Vec<LockRow> = rows
            .iter()
            .map(|r| LockRow {
                classid: r.get::<_, i64>(0) as u32,
                objid: r.get::<_, i64>(1) as u32,
                objsubid: r.get(2),
                pid: r.get(3),
                granted: r.get(4),
            })
            .collect();
        Ok(Roster::from_rows(&rows))
    }
}
