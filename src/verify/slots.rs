//! Waiting for the stream to pass a verify's snapshot: every slot of a source must confirm a
//! position at or past the snapshot's upper bound (`Snapshot::upper`) before ClickHouse is read.
//! The worker confirms a position only once ClickHouse holds every change before it, so from then
//! on ClickHouse holds every change the snapshot shows (ARCHITECTURE.md, "A verify reports only
//! settled drift").
//!
//! A slot that does not exist or that no walsender streams from will not move: the wait stops at
//! once and says so. One that streams but lags is waited for up to the timeout.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::{Context, VerifyError};
use crate::backfill::snapshot::{lsn_text, parse_lsn};
use crate::config::Source;
use crate::pg::catalog;

/// How long a slot must stay without a walsender to count as not streaming.
const INACTIVE_GRACE: Duration = Duration::from_secs(2);

/// How waiting for one slot ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// It confirmed the position.
    Passed,
    /// It streams, but had not confirmed the position when the wait ended.
    TimedOut,
    /// No walsender streams from it (the daemon is not running, or another slot's turn).
    NotStreaming,
    /// There is no such slot (the daemon never ran, or it was dropped).
    NoSlot,
}

/// One slot's wait.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SlotWait {
    pub source: String,
    pub slot: String,
    pub outcome: Outcome,
    /// The position waited for.
    pub target: String,
    pub waited_s: f64,
}

impl SlotWait {
    /// One line for a person: `slot s passed 0/16B6C50 after 0.4 s`.
    pub fn describe(&self) -> String {
        match self.outcome {
            Outcome::Passed => format!(
                "slot {} confirmed {} after {:.1} s",
                self.slot, self.target, self.waited_s
            ),
            Outcome::TimedOut => format!(
                "slot {} had not passed {} after {:.0} s: the stream is behind, differences may be \
                 changes it has not delivered yet",
                self.slot, self.target, self.waited_s
            ),
            Outcome::NotStreaming => format!(
                "slot {} is not streaming: differences may be changes the stream has not delivered yet",
                self.slot
            ),
            Outcome::NoSlot => format!(
                "no slot {}: nothing streams this source, ClickHouse holds what a backfill copied",
                self.slot
            ),
        }
    }
}

/// Waits until every slot of `source` confirmed `target`, at most `verify.wait_timeout_ms` in all.
pub async fn wait(
    ctx: &Context,
    source: &Arc<Source>,
    target: u64,
) -> Result<Vec<SlotWait>, VerifyError> {
    let (config, timeout) = (&ctx.config, ctx.wait_timeout);
    let client = crate::pg::connect(&source.url, config.connect_timeout_of(&source.url))
        .await
        .map_err(|e| VerifyError::Postgres {
            what: format!("connecting to source {}", source.name),
            reason: e.to_string(),
        })?;
    let started = Instant::now();
    let mut out = Vec::new();
    for stream in source.streams() {
        ctx.doing(|| {
            format!(
                "waiting (at most {:.0} s) for slot {} to confirm {}",
                timeout.as_secs_f64(),
                stream.slot,
                lsn_text(target)
            )
        });
        let mut inactive_since: Option<Instant> = None;
        let outcome = loop {
            let reading = catalog::read_slot(&client, &stream.slot)
                .await
                .map_err(|e| VerifyError::Postgres {
                    what: format!("reading slot {}", stream.slot),
                    reason: e.reason,
                })?;
            let Some(reading) = reading else {
                break Outcome::NoSlot;
            };
            let confirmed = reading
                .confirmed_flush_lsn
                .as_deref()
                .and_then(parse_lsn)
                .unwrap_or(0);
            if confirmed >= target {
                break Outcome::Passed;
            }
            // A session restarting leaves the slot inactive for a moment: only a slot idle for
            // a while counts as not streaming.
            if reading.active {
                inactive_since = None;
            } else if inactive_since.get_or_insert_with(Instant::now).elapsed() >= INACTIVE_GRACE
                || started.elapsed() >= timeout
            {
                break Outcome::NotStreaming;
            }
            if started.elapsed() >= timeout {
                break Outcome::TimedOut;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        out.push(SlotWait {
            source: source.name.clone(),
            slot: stream.slot.clone(),
            outcome,
            target: lsn_text(target),
            waited_s: (started.elapsed().as_secs_f64() * 10.0).round() / 10.0,
        });
    }
    Ok(out)
}

/// Whether ClickHouse holds every change of the snapshot as far as the stream goes: every slot
/// passed its position, or has none to pass (no slot: nothing streams into ClickHouse, whose
/// content is then what a backfill copied, and nothing is in flight).
pub fn caught_up(waits: &[SlotWait]) -> bool {
    waits
        .iter()
        .all(|w| matches!(w.outcome, Outcome::Passed | Outcome::NoSlot))
}

/// Whether a slot exists that nobody streams from: it will not move, waiting again is pointless.
pub fn standing_still(waits: &[SlotWait]) -> bool {
    waits.iter().any(|w| w.outcome == Outcome::NotStreaming)
}
