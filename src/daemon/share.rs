//! Sharing the streams among instances (`leadership.share`), on the daemon's side: this
//! instance's id, a member session per database that keeps the roster fresh (`leader::roster`),
//! and per stream a [`StreamShare`] telling its supervisor what to do as a standby and when to
//! hand the stream over as a leader. The decisions themselves are `leader::share`'s; the hand-over
//! is the loop's graceful release (`pipeline::replicator`).

use std::collections::BTreeMap;
use std::hash::{BuildHasher, Hasher};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;

use super::control::PgControl;
use super::supervisor::pause;
use crate::config::{Config, PgUrl, Stream};
use crate::leader::lock_key;
use crate::leader::roster::{Membership, Roster};
use crate::leader::share::{self, Move};
use crate::metrics as m;
use crate::pipeline::control::Control;

/// How often the roster is read.
const READ_EVERY: Duration = Duration::from_millis(500);
/// The pauses before the member session is tried again after a failure: a quarter second,
/// doubling to half a second, as a stream's session is.
const RETRY_FIRST: Duration = Duration::from_millis(250);
const RETRY_MAX: Duration = Duration::from_millis(500);
/// A reading older than this is no reading (the member session is stuck or gone).
const STALE_AFTER: Duration = Duration::from_secs(3);
/// How long a free stream is left to the instance it is assigned to before any standby takes
/// it: that instance normally takes it within a second; one that does not may be unable to.
const CLAIM_GRACE: Duration = Duration::from_secs(5);
/// How long a standby waits in a lock's queue at a time, between two looks at the roster.
pub const QUEUE_WAIT: Duration = Duration::from_secs(1);
/// How often a leader looks whether a stream should be handed over.
pub const HANDOVER_CHECK: Duration = Duration::from_millis(500);
/// How long a released stream's lock is kept while its walsender is still exiting, so the next
/// leader's START_REPLICATION finds the slot free.
const WALSENDER_EXIT: Duration = Duration::from_secs(5);

/// A roster and when it was read.
#[derive(Clone)]
struct Reading {
    roster: Roster,
    at: Instant,
}

/// A database as the streams name it: every host of its URL (the primary among them is the one
/// connected to), and the database name.
type Database = (Vec<(String, u16)>, String);

fn database(url: &PgUrl) -> Database {
    (url.hosts.clone(), url.dbname.clone())
}

/// This instance's part in sharing: its id and a roster per database.
pub struct Sharing {
    me: u32,
    rosters: BTreeMap<Database, watch::Receiver<Option<Reading>>>,
    min_hold: Duration,
    /// Each source's streams' lock keys, by source name.
    pools: BTreeMap<String, Arc<[i64]>>,
}

/// A fresh instance id: random, so two instances (or two starts of one) never share one.
fn instance_id() -> u32 {
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u32(std::process::id());
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    h.finish() as u32
}

impl Sharing {
    /// Starts a member session per database the streams read from.
    pub fn start(config: &Arc<Config>, streams: &[Stream], stop: &watch::Sender<bool>) -> Sharing {
        let me = instance_id();
        let mut rosters = BTreeMap::new();
        let mut pools: BTreeMap<String, Vec<i64>> = BTreeMap::new();
        let mut sources: BTreeMap<Database, (PgUrl, Vec<String>)> = BTreeMap::new();
        for stream in streams {
            let url = &stream.source.url;
            pools
                .entry(stream.source.name.clone())
                .or_default()
                .push(lock_key(&url.dbname, &stream.slot));
            let entry = sources
                .entry(database(url))
                .or_insert_with(|| (url.clone(), Vec::new()));
            if !entry.1.contains(&stream.source.name) {
                entry.1.push(stream.source.name.clone());
            }
        }
        for (db, (url, names)) in sources {
            let (tx, rx) = watch::channel(None);
            for name in &names {
                metrics::gauge!(m::INSTANCES, "source" => name.clone()).set(0.0);
            }
            let timeouts = (config.connect_timeout_of(&url), config.query_timeout());
            tokio::spawn(keep_roster(url, timeouts, me, names, tx, stop.subscribe()));
            rosters.insert(db, rx);
        }
        tracing::info!(
            instance = %format!("{me:08x}"),
            host = %std::env::var("HOSTNAME").unwrap_or_default(),
            min_hold_ms = config.leadership.min_hold_ms,
            "sharing the streams with the other instances (leadership.share)"
        );
        Sharing {
            me,
            rosters,
            min_hold: Duration::from_millis(config.leadership.min_hold_ms),
            pools: pools.into_iter().map(|(k, v)| (k, v.into())).collect(),
        }
    }

    /// The share of one stream, for its supervisor.
    pub fn stream(&self, stream: &Stream) -> StreamShare {
        let url = &stream.source.url;
        StreamShare {
            me: self.me,
            key: lock_key(&url.dbname, &stream.slot),
            pool: self.pools[&stream.source.name].clone(),
            roster: self.rosters[&database(url)].clone(),
            min_hold: self.min_hold,
            free_since: None,
        }
    }
}

/// Keeps this instance a member of `url`'s database and its roster fresh, until shutdown.
async fn keep_roster(
    url: PgUrl,
    (connect_timeout, query_timeout): (Duration, Duration),
    me: u32,
    sources: Vec<String>,
    tx: watch::Sender<Option<Reading>>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut last_warning: Option<Instant> = None;
    let mut retry = RETRY_FIRST;
    loop {
        match Membership::join(&url, connect_timeout, query_timeout, me).await {
            Ok(Some(member)) => loop {
                retry = RETRY_FIRST;
                let read = tokio::time::timeout(STALE_AFTER, member.read()).await;
                match read {
                    Ok(Ok(roster)) => {
                        for name in &sources {
                            metrics::gauge!(m::INSTANCES, "source" => name.clone())
                                .set(roster.members.len() as f64);
                        }
                        tx.send_replace(Some(Reading {
                            roster,
                            at: Instant::now(),
                        }));
                    }
                    Ok(Err(e)) => {
                        tracing::debug!(postgres = %url, error = %e, "cannot read the instances; reconnecting");
                        break;
                    }
                    Err(_) => {
                        tracing::debug!(postgres = %url, "no answer reading the instances; reconnecting");
                        break;
                    }
                }
                if !pause(READ_EVERY, &mut shutdown).await {
                    return;
                }
            },
            // Our id's member lock is held: by our own previous member session, which Postgres
            // has not seen go yet (`pg::DEAD_PEER_OPTIONS` bounds that), or — one chance in four
            // billion — by another instance that drew the same id.
            Ok(None) => {
                if last_warning.is_none_or(|t| t.elapsed() >= Duration::from_secs(60)) {
                    last_warning = Some(Instant::now());
                    tracing::warn!(postgres = %url, instance = %format!("{me:08x}"), "this instance's member lock is held by another session; retrying (it leads what it can meanwhile)");
                }
            }
            Err(e) => tracing::debug!(postgres = %url, error = %e, "cannot join the instances yet"),
        }
        tx.send_replace(None);
        // As often as the streams' sessions are retried (`supervisor::reconnect_backoff`): after
        // a Postgres restart the roster must be back before they reach their election (a
        // standby without a fresh roster leaves a stream to others for `CLAIM_GRACE`), so that
        // streaming still resumes within a second or two of Postgres answering.
        if !pause(retry, &mut shutdown).await {
            return;
        }
        retry = (retry * 2).min(RETRY_MAX);
    }
}

/// One stream's share: what its supervisor asks while it is a standby or a leader.
pub struct StreamShare {
    me: u32,
    key: i64,
    pool: Arc<[i64]>,
    roster: watch::Receiver<Option<Reading>>,
    min_hold: Duration,
    /// Since when the stream has shown no holder (or no fresh reading), as a standby.
    free_since: Option<Instant>,
}

impl StreamShare {
    pub fn me(&self) -> u32 {
        self.me
    }

    fn fresh(&self) -> Option<Roster> {
        self.roster
            .borrow()
            .as_ref()
            .filter(|r| r.at.elapsed() < STALE_AFTER)
            .map(|r| r.roster.clone())
    }

    /// A fresh roster reading is at hand (none: the member session is reconnecting).
    pub fn sees_roster(&self) -> bool {
        self.fresh().is_some()
    }

    /// A standby starts waiting: a free stream that is not its own is left to its instance for
    /// the grace from now on.
    pub fn standby(&mut self) {
        self.free_since = None;
    }

    /// What the standby does now.
    pub fn next_move(&mut self) -> Move {
        let roster = self.fresh();
        let held = roster
            .as_ref()
            .is_some_and(|r| r.holders.contains_key(&self.key));
        let free_for = if held {
            self.free_since = None;
            Duration::ZERO
        } else {
            self.free_since.get_or_insert_with(Instant::now).elapsed()
        };
        share::standby_move(
            &self.pool,
            roster.as_ref(),
            self.me,
            self.key,
            free_for,
            CLAIM_GRACE,
        )
    }

    /// The instance to hand the stream over to now, after leading it for `held_for`.
    pub fn hand_over(&self, held_for: Duration) -> Option<u32> {
        share::hand_over(
            &self.pool,
            self.fresh().as_ref(),
            self.me,
            self.key,
            held_for,
            self.min_hold,
        )
    }
}

/// After a release, waits (a few seconds at most) until the slot's walsender is gone, so the
/// lock passes only when the next leader can start streaming at once.
pub async fn await_walsender_exit(control: &PgControl) {
    let deadline = Instant::now() + WALSENDER_EXIT;
    while Instant::now() < deadline {
        match control.slot().await {
            Ok(Some(slot)) if slot.active => {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            _ => return,
        }
    }
}
