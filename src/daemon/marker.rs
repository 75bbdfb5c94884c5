//! The durable evidence that a stream's slot existed, and how far it was safe.
//!
//! "The slot existed" used to live in memory, so a hard-stopped worker that was restarted (a
//! deploy, an eviction) found the slot missing, created a fresh one and streamed on: the gap was
//! gone with one WARN line. The marker lives where the worker already writes — ClickHouse's
//! state table (`sink::state`) — keyed by the stream's server, database and slot. A slot that is
//! missing while its marker exists was lost, not never made: a hard stop unless
//! `postgres.recreate_lost_slot`, and then its gap is backfilled. A slot that exists without a
//! marker (an operator replacing trigger.dev's built-in service, whose slot has the same name)
//! simply continues and gets one.
//!
//! While a stream runs, its supervisor samples the server's WAL position and the slot's
//! confirmed position about once a minute ([`Progress`]). A sample taken at `t` with the WAL at
//! `w` proves, once the slot confirmed `w`, that every change the slot has not confirmed was
//! written after `t`: the marker keeps the latest such `t` as `safe_since`, the lower bound of a
//! lost slot's gap (minus `backfill.gap_margin_s` for transactions open across it).

use std::collections::VecDeque;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::config::Stream;
use crate::pg::catalog::SlotReading;
use crate::sink::state::StateStore;

const KIND: &str = "slot";

/// A copy the stream owes before (or while) it streams, recorded so a crash cannot drop it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pending {
    /// `bootstrap` (the rows before a slot the worker created) or `gap` (a lost slot's).
    pub reason: String,
    /// Only runs updated at or after this time (UTC, `YYYY-MM-DD HH:MM:SS`); none for all.
    pub updated_since: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Marker {
    pub slot: String,
    /// `host:port/database`.
    pub database: String,
    /// Unix seconds: every change the slot has not confirmed was written after it.
    pub safe_since: Option<u64>,
    pub pending: Option<Pending>,
    /// Unix seconds of the last write.
    pub updated_at: u64,
}

fn key(stream: &Stream) -> String {
    let url = &stream.source.url;
    format!("{}:{}/{}/{}", url.host, url.port, url.dbname, stream.slot)
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

pub async fn read(store: &StateStore, stream: &Stream) -> Result<Option<Marker>, String> {
    let value = store
        .get(KIND, &key(stream))
        .await
        .map_err(|e| e.to_string())?;
    Ok(value.and_then(|v| serde_json::from_str(&v).ok()))
}

pub async fn write(store: &StateStore, stream: &Stream, marker: &Marker) -> Result<(), String> {
    let mut marker = marker.clone();
    marker.updated_at = unix_now();
    let value = serde_json::to_string(&marker).expect("a marker serializes");
    store
        .put(KIND, &key(stream), &value)
        .await
        .map_err(|e| e.to_string())
}

/// A fresh marker for `stream`, safe from now.
pub fn new(stream: &Stream) -> Marker {
    let url = &stream.source.url;
    Marker {
        slot: stream.slot.clone(),
        database: format!("{}:{}/{}", url.host, url.port, url.dbname),
        safe_since: Some(unix_now()),
        pending: None,
        updated_at: unix_now(),
    }
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

fn parse_lsn(text: &str) -> Option<u64> {
    let (hi, lo) = text.split_once('/')?;
    Some((u64::from_str_radix(hi, 16).ok()? << 32) | u64::from_str_radix(lo, 16).ok()?)
}

#[cfg(test)]
mod tests;
