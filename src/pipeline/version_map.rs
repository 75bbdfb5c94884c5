//! Where a WAL position of the current timeline sits in `_version`'s low 56 bits.
//!
//! `_version = generation << 56 | position`. Until a source's server fails over with history
//! lost, the position is the LSN itself. After such a failover the new timeline's commits carry
//! LSNs from the fork position up, below rows ClickHouse may already hold from the lost history
//! of the same runs: those rows would win. So each timeline switch a source went through adds a
//! *shift* to every position after its fork: `position = lsn + shift`, where the shift puts the
//! new timeline's first position above everything the lost history could have written
//! (`daemon::timeline` decides it and records it before anything of the new timeline is
//! written). Positions up to the fork are shared history and keep the position they had.
//!
//! The map is monotonic along the current timeline's history, so "a later commit has a higher
//! version" holds inside it as it holds for plain LSNs, and every consumer of versions — the
//! stream's stamping (`Transaction::shifted`), a backfill's and a verify's `L`, a repair's
//! tombstones, the `lsn_overflow` bound — goes through the same map.

use serde::{Deserialize, Serialize};

/// One timeline switch's shift: positions after `after` get `shift` added.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Segment {
    /// The fork position (an LSN of the shared history).
    pub after: u64,
    pub shift: u64,
}

/// The shifts in force on a timeline, oldest fork first. Empty: positions are LSNs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VersionMap {
    segments: Vec<Segment>,
}

impl VersionMap {
    /// The map of a timeline reached through `switches`, in the order they happened. A switch
    /// that forked before an earlier one (a sibling branch of an older timeline) drops the
    /// shifts past its fork: that history is not this timeline's.
    pub fn from_switches(switches: impl IntoIterator<Item = Segment>) -> VersionMap {
        let mut segments: Vec<Segment> = Vec::new();
        for s in switches {
            segments.retain(|x| x.after < s.after);
            segments.push(s);
        }
        VersionMap { segments }
    }

    pub fn is_identity(&self) -> bool {
        self.segments.iter().all(|s| s.shift == 0)
    }

    /// The shift of positions at `lsn`: that of the newest fork before it.
    pub fn shift_at(&self, lsn: u64) -> u64 {
        self.segments
            .iter()
            .rev()
            .find(|s| s.after < lsn)
            .map_or(0, |s| s.shift)
    }

    /// `lsn`'s position in `_version` (saturating: past 2^56 it is an `lsn_overflow` anyway).
    pub fn position(&self, lsn: u64) -> u64 {
        lsn.saturating_add(self.shift_at(lsn))
    }

    /// The shift of a transaction whose commit record starts at `final_lsn`: every version it
    /// gets (`final_lsn + 1 + k` for a spilled part, its end LSN) lies in one segment, as a fork
    /// is a record boundary and a commit record never straddles it.
    pub fn shift_of_commit(&self, final_lsn: u64) -> u64 {
        self.shift_at(final_lsn.saturating_add(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_after_a_fork_are_shifted_and_the_shared_history_is_not() {
        let map = VersionMap::from_switches([Segment {
            after: 1000,
            shift: 5000,
        }]);
        assert_eq!(map.position(999), 999);
        assert_eq!(
            map.position(1000),
            1000,
            "the fork itself is shared history"
        );
        assert_eq!(map.position(1001), 6001);
        assert_eq!(
            map.shift_of_commit(1000),
            5000,
            "a commit record starting at the fork"
        );
        assert!(VersionMap::default().is_identity());
        assert_eq!(VersionMap::default().position(42), 42);
    }

    #[test]
    fn a_later_switch_adds_its_own_and_a_sibling_fork_drops_what_is_not_its_history() {
        let two = [
            Segment {
                after: 1000,
                shift: 5000,
            },
            Segment {
                after: 3000,
                shift: 9000,
            },
        ];
        let map = VersionMap::from_switches(two);
        assert_eq!(map.position(2000), 7000);
        assert_eq!(map.position(3001), 12001);
        // Monotonic along the history.
        let mut last = 0;
        for lsn in (0..5000).step_by(7) {
            assert!(map.position(lsn) >= last);
            last = map.position(lsn);
        }
        let sibling = VersionMap::from_switches(two.into_iter().chain([Segment {
            after: 2000,
            shift: 20000,
        }]));
        assert_eq!(sibling.position(1500), 6500);
        assert_eq!(sibling.position(3001), 23001);
    }

    /// The stream's hook: a transaction stamped through the map, spilled parts included, and
    /// the `lsn_overflow` bound applied to the shifted position.
    #[test]
    fn a_transaction_after_the_fork_is_stamped_with_its_shifted_position() {
        use crate::pipeline::transaction::{LsnOverflow, Transaction};
        use crate::testing::runs::run_row;
        let map = VersionMap::from_switches([Segment {
            after: 1000,
            shift: 5000,
        }]);
        let stamped = |final_lsn: u64, end_lsn: u64, spill: bool| {
            let mut t = Transaction::new(1, final_lsn).shifted(map.shift_of_commit(final_lsn));
            t.add_row(1, run_row("run_1"));
            let mut versions = Vec::new();
            if spill {
                versions.push(t.spill().0.into_sorted()[0]._version);
                t.add_row(1, run_row("run_1"));
            }
            let committed = t.commit(end_lsn, 0).unwrap();
            assert_eq!(committed.end_lsn, end_lsn, "acknowledged unshifted");
            versions.push(committed.rows.into_sorted()[0]._version);
            versions
        };
        assert_eq!(stamped(900, 960, false), vec![1 << 56 | 960]);
        assert_eq!(
            stamped(2000, 2060, true),
            vec![1 << 56 | 7001, 1 << 56 | 7060]
        );
        let near = VersionMap::from_switches([Segment {
            after: 0,
            shift: (1 << 56) - 100,
        }]);
        let t = Transaction::new(1, 200).shifted(near.shift_of_commit(200));
        assert!(matches!(t.check_lsn(), Err(LsnOverflow { .. })));
    }
}
