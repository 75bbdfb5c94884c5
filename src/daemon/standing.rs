//! Where the worker stands against the server, as pure judgements (`daemon::timeline` asks and
//! acts): [`judge`] compares the server's identity with the stream's marker and the source's
//! `versions` record — the same timeline, a newer one to take over, or a refusal (an older
//! timeline, or WAL ending before what was acknowledged) — and [`switch`] decides what taking a
//! newer timeline over records: the fork, the shift of the new timeline's versions, and the zone
//! of versions the lost history can hold (ARCHITECTURE.md, Invariants, "The newer state wins
//! across a timeline switch").

use super::marker::{self, Marker};
use crate::backfill::snapshot::lsn_text;
use crate::backfill::versions::{Switch, VersionRecord};
use crate::source::identity::ServerIdentity;
use crate::source::timeline::{self, Ancestor, Lineage};

/// Room left above the highest version ClickHouse held of a lost history: a write of it still
/// in flight elsewhere (another instance, an insert retried through an outage) carries a position
/// at most a few seconds of WAL past it. 1 TiB of WAL; 2^56 leaves room for 65,536 such switches.
pub const MARGIN: u64 = 1 << 40;

/// How the server compares with what was recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Standing {
    /// The timeline recorded (or nothing recorded yet).
    Current,
    /// A newer timeline than the source's record: taken over from `from` (with its ancestors).
    Newer { from: u32, ancestors: Vec<Ancestor> },
    /// Refused: why.
    Refused(String),
}

/// Judges `identity` against the source's record and the stream's marker.
pub fn judge(
    record: Option<&VersionRecord>,
    marker: Option<&Marker>,
    identity: &ServerIdentity,
    stream: &str,
) -> Standing {
    let known = record
        .map(|r| r.timeline)
        .into_iter()
        .chain(marker.map(|m| m.timeline))
        .max();
    if let Some(known) = known
        && identity.timeline < known
    {
        return Standing::Refused(format!(
            "the server (system identifier {}) is on timeline {}, older than timeline {known} \
             that stream {stream} already read: an old primary back after a failover, or a \
             restore of an older backup. Nothing is read from it or written to it; point the \
             name postgres.url uses at the current primary (the worker resumes by itself when it \
             reaches it)",
            identity.system_identifier, identity.timeline
        ));
    }
    if let Some(m) = marker
        && m.timeline == identity.timeline
        && let Some(ack) = m.acknowledged.as_deref().and_then(marker::parse_lsn)
        && identity.flushed < ack
    {
        return Standing::Refused(format!(
            "the server's WAL on timeline {} ends at {}, before {} that stream {stream} already \
             acknowledged there: a restore of an older backup, or a server that lost WAL it had \
             confirmed. What it would stream is not the history ClickHouse holds; point the name \
             postgres.url uses at the current primary",
            identity.timeline,
            lsn_text(identity.flushed),
            lsn_text(ack)
        ));
    }
    match (record, marker) {
        (Some(r), _) if r.timeline < identity.timeline => Standing::Newer {
            from: r.timeline,
            ancestors: r.ancestors.clone(),
        },
        // Recorded by a worker before the source's record existed.
        (None, Some(m)) if m.timeline < identity.timeline => Standing::Newer {
            from: m.timeline,
            ancestors: Vec::new(),
        },
        _ => Standing::Current,
    }
}

/// The switch from `from` (with `ancestors`, as recorded) to the server `identity` names:
/// versions after the fork start above `held` (the highest position ClickHouse holds of the
/// source) plus [`MARGIN`].
pub fn switch(
    record: Option<&VersionRecord>,
    from: u32,
    ancestors: &[Ancestor],
    identity: &ServerIdentity,
    held: u64,
    now: u64,
) -> Switch {
    let fork = timeline::fork(
        Lineage {
            timeline: from,
            ancestors,
        },
        identity.lineage(),
    )
    .min(identity.flushed);
    let map = record.map(VersionRecord::map).unwrap_or_default();
    let lost_from = map.position(fork);
    let held_to = held.max(lost_from);
    let lost_to = held_to.saturating_add(MARGIN);
    Switch {
        from_timeline: from,
        to_timeline: identity.timeline,
        fork: lsn_text(fork),
        fork_lsn: fork,
        shift: lost_to - fork,
        lost_from,
        lost_to,
        held_to,
        at: now,
    }
}

#[cfg(test)]
mod tests;
