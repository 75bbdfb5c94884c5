//! The durable record of the timelines a source's server went through and the version map they
//! left (`pipeline::version_map`): the state table's kind `versions`, one record per source (its
//! tables' generations are its own, so the versions in ClickHouse are the source's).
//!
//! The daemon writes it (`daemon::timeline`): when it first reads a source, and when it takes a
//! timeline switch over — before anything of the new timeline is written. Every writer of
//! versions reads it: the stream (its map), and every snapshot a copy, a verify or a repair
//! stamps rows from ([`shift_for_snapshot`]), so all agree on where a position sits.

use serde::{Deserialize, Serialize};

use crate::pipeline::version_map::{Segment, VersionMap};
use crate::sink::state::StateStore;
use crate::source::timeline::Ancestor;

pub const KIND: &str = "versions";
pub const FORMAT: u32 = 1;

/// One timeline switch the worker took over.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Switch {
    pub from_timeline: u32,
    pub to_timeline: u32,
    /// Where the histories part (`0/5000028`): the end of what both share.
    pub fork: String,
    pub fork_lsn: u64,
    /// Added to every position after the fork on the new timeline.
    pub shift: u64,
    /// The versions' positions (low 56 bits) the lost history may hold: `(lost_from, lost_to]`.
    /// Nothing else is ever stamped there: the shared history is at or below `lost_from`, the new
    /// timeline above `lost_to`.
    pub lost_from: u64,
    pub lost_to: u64,
    /// The highest position ClickHouse held of the lost history when the switch was taken over
    /// (`lost_from` when it held none): the window reported.
    pub held_to: u64,
    /// Unix seconds.
    pub at: u64,
}

impl Switch {
    /// WAL bytes of the lost history ClickHouse held.
    pub fn held_bytes(&self) -> u64 {
        self.held_to.saturating_sub(self.lost_from)
    }

    /// The old timeline's LSN of the highest position held: the end of the window reported.
    pub fn held_lsn(&self) -> u64 {
        self.fork_lsn.saturating_add(self.held_bytes())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionRecord {
    pub format: u32,
    pub source: String,
    pub system_identifier: String,
    /// The newest timeline taken over: versions are stamped with [`Self::map`] on it.
    pub timeline: u32,
    /// Its ancestors (`TIMELINE_HISTORY`), to find where a later timeline forks from it.
    pub ancestors: Vec<Ancestor>,
    pub switches: Vec<Switch>,
    pub updated_at: u64,
}

impl VersionRecord {
    pub fn map(&self) -> VersionMap {
        VersionMap::from_switches(self.switches.iter().map(|s| Segment {
            after: s.fork_lsn,
            shift: s.shift,
        }))
    }
}

/// The record of `source`, if the daemon wrote one.
pub async fn load(store: &StateStore, source: &str) -> Result<Option<VersionRecord>, String> {
    let Some(text) = store.get(KIND, source).await.map_err(|e| e.to_string())? else {
        return Ok(None);
    };
    serde_json::from_str(&text).map(Some).map_err(|e| {
        format!(
            "the {KIND} record of source {source} in runs_replicator_state cannot be read ({e}): \
             the worker cannot tell which versions the source's rows get, and will not guess"
        )
    })
}

pub async fn save(store: &StateStore, record: &VersionRecord) -> Result<(), String> {
    let value = serde_json::to_string(record).expect("a version record serializes");
    store
        .put(KIND, &record.source, &value)
        .await
        .map_err(|e| e.to_string())
}

/// The shift of a copy snapshot's `L` = `lsn`, read on a server on `timeline`. Refused when the
/// server is on a timeline the worker has not taken over (its stream does so at its next
/// session, repairing what the failover lost, before anything of it is written), or on one older
/// than it already streamed from (an old primary back after a failover, never read).
pub fn shift_for_snapshot(
    record: Option<&VersionRecord>,
    timeline: u32,
    lsn: u64,
) -> Result<u64, String> {
    let Some(record) = record else {
        return Ok(0);
    };
    if timeline > record.timeline {
        return Err(format!(
            "the server is on timeline {timeline}, which the worker has not taken over yet (it \
             streamed timeline {}): its stream takes the failover over at its next session, \
             repairing what the old timeline left in ClickHouse; try again once it streams",
            record.timeline
        ));
    }
    if timeline < record.timeline {
        return Err(format!(
            "the server is on timeline {timeline}, older than timeline {} the worker already \
             streamed from: an old primary back after a failover (or a restore), whose rows must \
             not reach ClickHouse; point postgres.url at the current primary",
            record.timeline
        ));
    }
    Ok(record.map().shift_at(lsn))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(timeline: u32, switches: Vec<Switch>) -> VersionRecord {
        VersionRecord {
            format: FORMAT,
            source: "default".into(),
            system_identifier: "7".into(),
            timeline,
            ancestors: Vec::new(),
            switches,
            updated_at: 0,
        }
    }

    #[test]
    fn a_snapshot_is_shifted_on_the_timeline_taken_over_and_refused_on_any_other() {
        let switch = Switch {
            from_timeline: 1,
            to_timeline: 2,
            fork: "0/3E8".into(),
            fork_lsn: 1000,
            shift: 5000,
            lost_from: 1000,
            lost_to: 6000,
            held_to: 1500,
            at: 0,
        };
        assert_eq!(switch.held_bytes(), 500);
        let r = record(2, vec![switch]);
        assert_eq!(shift_for_snapshot(Some(&r), 2, 2000), Ok(5000));
        assert_eq!(shift_for_snapshot(Some(&r), 2, 900), Ok(0));
        assert!(
            shift_for_snapshot(Some(&r), 3, 2000)
                .unwrap_err()
                .contains("not taken over yet")
        );
        assert!(
            shift_for_snapshot(Some(&r), 1, 2000)
                .unwrap_err()
                .contains("old primary")
        );
        assert_eq!(shift_for_snapshot(None, 4, 2000), Ok(0));
        let text = serde_json::to_string(&r).unwrap();
        assert_eq!(serde_json::from_str::<VersionRecord>(&text).unwrap(), r);
    }
}
