//! The durable record of a stream's slot (its *marker*): whether the slot exists or is being
//! created, how far it was known safe, what the server said about itself, and the copies the
//! stream still owes. It tells a lost slot from one never made across restarts, and no copy owed
//! is forgotten by a crash.
//!
//! It lives where the worker already writes — ClickHouse's state table (`sink::state`, kind
//! `slot`) — keyed by what identifies the slot, not by how a URL spells the server:
//! `<system identifier>/<database>/<slot>` (the system identifier from `IDENTIFY_SYSTEM`, see
//! `source::identity`). The same server reached under another host name (a DNS alias, a
//! failover endpoint, a promoted physical standby) finds the same marker.
//!
//! Rules (ARCHITECTURE.md, Invariants):
//! - **Intent first.** Before the worker creates a slot it records `Creating` with every copy
//!   the new slot will owe ([`Pending`]); only then does it create the slot, then it records
//!   `Exists` and each copy's `floor` (the slot's consistent point). A copy is removed only once
//!   it is done. Killed anywhere in between, the next session finds either no slot and `Creating`
//!   (it creates it, nothing was streamed) or the slot and its pending copies (it copies them
//!   from a fresh snapshot, whose `L` is after the slot's point, before it streams).
//! - **Evidence.** `safe_since` (Unix seconds) means: every change the slot has not confirmed was
//!   written after it. A slot the worker creates is safe from just before its creation; a slot
//!   it finds without a marker (adopted) has no such time until the running stream proves one
//!   ([`Progress`], about once a minute). When a slot with a marker is lost, its gap is the runs
//!   updated since `safe_since` minus `backfill.gap_margin_s` — or every run when there is no
//!   evidence.
//! - **Copies accumulate.** A new copy is added to the pending ones ([`owe`]), never written over
//!   them; a copy of everything subsumes the others.
//! - **Fail closed.** A marker that cannot be read is an error (the session hard-stops), never
//!   "no marker"; so is a marker this stream recorded on a server with another system
//!   identifier (another cluster behind the same name: what it streamed cannot be resumed here).
//! - **Ordered writes.** A later write wins whatever the writers' clocks say: the state table's
//!   versions only go up (`StateStore::put`). Every write reads the current record first and
//!   changes only what its writer owns ([`Supervisor::update_marker`]).
//!
//! For failover handling (SPEC §11), each write also records the server's `timeline` (from
//! `IDENTIFY_SYSTEM` at the session's start) and `acknowledged`, the slot's confirmed position
//! as last read (every change before it is stored in ClickHouse; refreshed about once a minute
//! while streaming). A session compares them with what `IDENTIFY_SYSTEM` says at its start.
//!
//! Format 1 (before these rules: keyed by `host:port/database/slot`, one optional pending copy)
//! is read when no record exists under the new key, taken over, and its old key marked moved.
//!
//! [`Supervisor::update_marker`]: super::supervisor::Supervisor

use std::collections::VecDeque;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::config::Stream;
use crate::pg::catalog::SlotReading;
use crate::sink::state::StateStore;
use crate::source::identity::ServerIdentity;

pub const KIND: &str = "slot";
/// The record's format.
pub const FORMAT: u32 = 2;

/// What the worker knows of the slot itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SlotRecord {
    /// About to be created (recorded before the CREATE): missing, it was never made; present, it
    /// was made after `since` (Unix seconds).
    Creating { since: u64 },
    /// Seen to exist: missing later, it was lost.
    Exists,
}

/// A copy the stream owes before it streams, recorded before the act that makes it owed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pending {
    /// Unique: part of the copy's backfill job identity (nothing else stands in for it).
    pub id: String,
    /// `bootstrap` (the rows before a slot the worker created), `gap` (what a lost slot did not
    /// deliver), `everything` (a lost slot without evidence of a safe time).
    pub reason: String,
    /// Only runs updated at or after this time (UTC, `YYYY-MM-DD HH:MM:SS`); none for all.
    pub updated_since: Option<String>,
    /// The consistent point of the slot whose stream this copy completes (`0/16B6C50`): chunks
    /// copied below it do not count. Unknown until that slot exists.
    pub floor: Option<String>,
    /// Unix seconds.
    pub recorded_at: u64,
}

impl Pending {
    pub fn new(reason: &str, updated_since: Option<String>) -> Pending {
        let micros = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_micros())
            .unwrap_or(0);
        Pending {
            id: format!("{reason}-{micros}"),
            reason: reason.to_string(),
            updated_since,
            floor: None,
            recorded_at: unix_now(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Marker {
    pub format: u32,
    /// The stream's name (`source`, or `source.k` for a shard).
    pub stream: String,
    /// The server's system identifier (decimal text) — with `database` and `slot`, the key.
    pub system_identifier: String,
    pub database: String,
    pub slot: String,
    /// The server's timeline when this was last written (`IDENTIFY_SYSTEM`).
    pub timeline: u32,
    /// The slot's confirmed position as last read (`0/16B6C50`): every change before it is
    /// stored in ClickHouse.
    pub acknowledged: Option<String>,
    pub slot_state: SlotRecord,
    /// Unix seconds: every change the slot has not confirmed was written after it. None: no
    /// evidence (a lost slot's gap is everything).
    pub safe_since: Option<u64>,
    pub pending: Vec<Pending>,
    /// Unix seconds of the last write.
    pub updated_at: u64,
}

/// What identifies a slot: its server, database and name.
pub fn key_of(system_identifier: &str, database: &str, slot: &str) -> String {
    format!("{system_identifier}/{database}/{slot}")
}

impl Marker {
    /// A marker for `stream`'s slot on the server `identity` names, with no evidence and nothing
    /// owed.
    pub fn new(stream: &Stream, identity: &ServerIdentity, slot_state: SlotRecord) -> Marker {
        Marker {
            format: FORMAT,
            stream: stream.name.clone(),
            system_identifier: identity.system_identifier.clone(),
            database: stream.source.url.dbname.clone(),
            slot: stream.slot.clone(),
            timeline: identity.timeline,
            acknowledged: None,
            slot_state,
            safe_since: None,
            pending: Vec::new(),
            updated_at: unix_now(),
        }
    }

    pub fn key(&self) -> String {
        key_of(&self.system_identifier, &self.database, &self.slot)
    }

    /// Records that the stream reads `timeline` now. A position acknowledged on another
    /// timeline says nothing about this one, so it is forgotten with it.
    pub fn move_to(&mut self, timeline: u32) {
        if self.timeline != timeline {
            self.acknowledged = None;
        }
        self.timeline = timeline;
    }
}

/// Adds `copy` to the copies owed. A copy of everything replaces them all (it is copied from a
/// snapshot after every slot they complete); a gap already covered by a pending copy not yet
/// tied to a slot (it will be copied after the same new slot, over at least the same runs) adds
/// nothing; anything else is added.
pub fn owe(pending: &mut Vec<Pending>, copy: Pending) {
    if copy.updated_since.is_none() {
        pending.clear();
    } else if pending.iter().any(|p| {
        p.floor.is_none()
            && match (&p.updated_since, &copy.updated_since) {
                (None, _) => true,
                (Some(a), Some(b)) => a <= b,
                (Some(_), None) => false,
            }
    }) {
        return;
    }
    pending.push(copy);
}

/// Why a marker cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum MarkerError {
    /// The state table did not answer: try again.
    #[error("reading the slot's marker: {0}")]
    Store(String),
    #[error(
        "the marker of slot {slot} ({KIND} record {key:?} in runs_replicator_state) cannot be \
         read ({reason}): the worker cannot tell whether the slot existed, how far it was safe, \
         or which copies are owed, and will not guess. Fix or remove the record (removing it \
         forgets what it knew: run `runs-replicator backfill --source {source_name} --payloads` then)"
    )]
    Unreadable {
        slot: String,
        key: String,
        source_name: String,
        reason: String,
    },
    #[error(
        "stream {stream} recorded its slot {slot} on the server with system identifier {recorded}, \
         but the server answering now has system identifier {now} (another cluster behind the same \
         name: pg_upgrade, a restore into a new cluster, another database): what was streamed \
         there cannot be resumed here. If this is the same data, copy it all (`runs-replicator \
         backfill --source {source_name} --payloads`) and remove the old marker: ALTER TABLE \
         runs_replicator_state DELETE WHERE kind = 'slot' AND key = '{old_key}'"
    )]
    OtherServer {
        stream: String,
        slot: String,
        source_name: String,
        recorded: String,
        now: String,
        old_key: String,
    },
}

/// Format 1, read once to take it over.
#[derive(Deserialize)]
struct MarkerV1 {
    safe_since: Option<u64>,
    pending: Option<PendingV1>,
}

#[derive(Deserialize)]
struct PendingV1 {
    reason: String,
    updated_since: Option<String>,
}

/// What a format-1 key holds once its marker was taken over.
#[derive(Serialize, Deserialize)]
struct Moved {
    moved_to: String,
}

/// Format 1's key: how the URL spelled the server.
fn v1_key(stream: &Stream) -> String {
    let url = &stream.source.url;
    format!("{}:{}/{}/{}", url.host, url.port, url.dbname, stream.slot)
}

/// The marker of `stream`'s slot on the server `identity` names; `None` when nothing durable
/// knows the slot. Fails closed: see [`MarkerError`].
pub async fn load(
    store: &StateStore,
    stream: &Stream,
    identity: &ServerIdentity,
) -> Result<Option<Marker>, MarkerError> {
    let database = &stream.source.url.dbname;
    let key = key_of(&identity.system_identifier, database, &stream.slot);
    let unreadable = |key: &str, reason: String| MarkerError::Unreadable {
        slot: stream.slot.clone(),
        key: key.to_string(),
        source_name: stream.source.name.clone(),
        reason,
    };
    let store_error = |e: crate::pipeline::sink::SinkError| MarkerError::Store(e.to_string());
    if let Some(text) = store.get(KIND, &key).await.map_err(store_error)? {
        let marker: Marker =
            serde_json::from_str(&text).map_err(|e| unreadable(&key, e.to_string()))?;
        return Ok(Some(marker));
    }
    // The same stream's slot recorded on another server?
    for (other_key, text) in store.scan(KIND, "").await.map_err(store_error)? {
        let Ok(other) = serde_json::from_str::<Marker>(&text) else {
            continue;
        };
        if other.stream == stream.name
            && other.database == *database
            && other.slot == stream.slot
            && other.system_identifier != identity.system_identifier
        {
            return Err(MarkerError::OtherServer {
                stream: stream.name.clone(),
                slot: stream.slot.clone(),
                source_name: stream.source.name.clone(),
                recorded: other.system_identifier,
                now: identity.system_identifier.clone(),
                old_key: other_key,
            });
        }
    }
    let old = v1_key(stream);
    let Some(text) = store.get(KIND, &old).await.map_err(store_error)? else {
        return Ok(None);
    };
    if serde_json::from_str::<Moved>(&text).is_ok() {
        return Ok(None);
    }
    let v1: MarkerV1 = serde_json::from_str(&text).map_err(|e| unreadable(&old, e.to_string()))?;
    let mut marker = Marker::new(stream, identity, SlotRecord::Exists);
    marker.safe_since = v1.safe_since;
    if let Some(p) = v1.pending {
        marker
            .pending
            .push(Pending::new(&p.reason, p.updated_since));
    }
    tracing::info!(stream = %stream.name, old_key = %old, key = %marker.key(), "taking over the slot's marker from its format-1 key");
    save(store, &marker).await.map_err(MarkerError::Store)?;
    let moved = serde_json::to_string(&Moved {
        moved_to: marker.key(),
    })
    .expect("serializes");
    store
        .put(KIND, &old, &moved)
        .await
        .map_err(|e| MarkerError::Store(e.to_string()))?;
    Ok(Some(marker))
}

/// Writes `marker` under its key (the caller read it first: see the module's rules).
pub async fn save(store: &StateStore, marker: &Marker) -> Result<(), String> {
    let mut marker = marker.clone();
    marker.updated_at = unix_now();
    let value = serde_json::to_string(&marker).expect("a marker serializes");
    store
        .put(KIND, &marker.key(), &value)
        .await
        .map_err(|e| e.to_string())
}

pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// `t` (Unix seconds) as Postgres reads a UTC timestamp.
pub fn timestamp_text(t: u64) -> String {
    let secs = t % 86_400;
    let (y, m, d) = crate::transform::civil_from_days((t / 86_400) as i64);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}",
        secs / 3600,
        (secs / 60) % 60,
        secs % 60
    )
}

/// The gap a lost slot leaves: the runs updated since the marker's safe time minus `margin`
/// seconds, or every run (`None`) without evidence.
pub fn gap_since(marker: Option<&Marker>, margin: u64) -> Option<String> {
    marker
        .and_then(|m| m.safe_since)
        .map(|t| timestamp_text(t.saturating_sub(margin)))
}

/// Samples of (time, WAL position), to turn the slot's confirmed position into a time.
#[derive(Debug, Default)]
pub struct Progress {
    samples: VecDeque<(u64, u64)>,
}

/// Samples kept: a day at one a minute. Past that, a stream is so far behind that its gap, if
/// the slot is lost, is everything since the oldest sample.
const MAX_SAMPLES: usize = 1440;

/// How often a running stream's marker is refreshed.
pub const REFRESH: Duration = Duration::from_secs(60);

impl Progress {
    /// Records a reading taken at `now` and returns the time every unconfirmed change was
    /// written after, when a sample proves one.
    pub fn observe(&mut self, now: u64, reading: &SlotReading) -> Option<u64> {
        let confirmed = reading.confirmed_flush_lsn.as_deref().and_then(parse_lsn)?;
        let wal = confirmed + reading.lag_bytes.unwrap_or(0).max(0) as u64;
        self.samples.push_back((now, wal));
        if self.samples.len() > MAX_SAMPLES {
            self.samples.pop_front();
        }
        let safe = self
            .samples
            .iter()
            .rev()
            .find(|(_, w)| *w <= confirmed)
            .map(|(t, _)| *t);
        // Samples before the latest confirmed one prove nothing more; later ones still may.
        while self.samples.len() > 1 && self.samples[1].1 <= confirmed {
            self.samples.pop_front();
        }
        safe
    }
}

pub fn parse_lsn(text: &str) -> Option<u64> {
    let (hi, lo) = text.split_once('/')?;
    Some((u64::from_str_radix(hi, 16).ok()? << 32) | u64::from_str_radix(lo, 16).ok()?)
}

#[cfg(test)]
mod tests;
