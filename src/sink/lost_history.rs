//! Rows of a lost history: what ClickHouse holds, and never receives again, of a timeline the
//! source's server left at a failover (`daemon::timeline`).
//!
//! After a failover that lost history, the versions a source's rows of that history can carry
//! form a *zone*: positions `(from, to]` of the source's generations (`pipeline::version_map`:
//! the shared history is at or below `from`, the new timeline above `to`). Nothing the worker
//! writes from then on is stamped inside it, so a zone row is always one of the lost history.
//!
//! - **Forgotten.** [`LostHistory::forget`] makes every later write leave zone rows out (a
//!   session of the old timeline still finishing its batch in this process, or an insert being
//!   retried through a ClickHouse outage, would otherwise land after the repair that looked for
//!   them), and returns once every write that began before it has ended. After that, what
//!   ClickHouse holds of the zone is all it will ever hold of it.
//! - **Found.** [`ClickHouseSink::zone_runs`] lists the runs with a row in a zone (one scan of
//!   `_version` and `run_id`), [`ClickHouseSink::highest_position`] the highest position held.

use std::collections::BTreeMap;
use std::sync::Mutex;

use super::insert::ClickHouseSink;
use crate::pipeline::sink::SinkError;
use crate::rows::RunRow;

/// `_version`'s low 56 bits.
const POSITION: u64 = (1 << 56) - 1;

/// Positions `(from, to]` of rows of `generations`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Zone {
    pub generations: Vec<u8>,
    pub from: u64,
    pub to: u64,
}

impl Zone {
    pub fn contains(&self, version: u64) -> bool {
        let position = version & POSITION;
        self.generations.contains(&((version >> 56) as u8))
            && position > self.from
            && position <= self.to
    }

    /// The condition on the runs table.
    fn condition(&self) -> String {
        let generations = self
            .generations
            .iter()
            .map(u8::to_string)
            .collect::<Vec<_>>()
            .join(", ");
        format!(
            "bitShiftRight(_version, 56) IN ({generations}) AND bitAnd(_version, {POSITION}) > {} \
             AND bitAnd(_version, {POSITION}) <= {}",
            self.from, self.to
        )
    }
}

#[derive(Default)]
struct Inner {
    zones: Vec<Zone>,
    /// Bumped by every `forget`; a write is counted under the epoch it began in.
    epoch: u64,
    writing: BTreeMap<u64, usize>,
}

/// The zones this process no longer writes to, and the writes in progress.
#[derive(Default)]
pub struct LostHistory {
    inner: Mutex<Inner>,
    ended: tokio::sync::Notify,
}

/// A write in progress; dropped when it ends.
pub struct Writing<'a> {
    lost: &'a LostHistory,
    epoch: u64,
}

impl Drop for Writing<'_> {
    fn drop(&mut self) {
        let mut inner = self.lost.lock();
        if let Some(n) = inner.writing.get_mut(&self.epoch) {
            *n -= 1;
            if *n == 0 {
                inner.writing.remove(&self.epoch);
            }
        }
        drop(inner);
        self.lost.ended.notify_waiters();
    }
}

impl LostHistory {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A write begins: `runs` without the rows of a forgotten zone (`None` when it has none).
    #[allow(clippy::vec_box)] // rows stay boxed (`collapse`)
    pub fn begin(&self, runs: &[Box<RunRow>]) -> (Writing<'_>, Option<Vec<Box<RunRow>>>) {
        let mut inner = self.lock();
        let epoch = inner.epoch;
        *inner.writing.entry(epoch).or_default() += 1;
        let kept = (!inner.zones.is_empty()
            && runs
                .iter()
                .any(|r| inner.zones.iter().any(|z| z.contains(r._version))))
        .then(|| {
            runs.iter()
                .filter(|r| !inner.zones.iter().any(|z| z.contains(r._version)))
                .cloned()
                .collect::<Vec<_>>()
        });
        drop(inner);
        if let Some(kept) = &kept {
            tracing::warn!(
                left_out = runs.len() - kept.len(),
                "left rows of a lost timeline history out of a write (a session of the old \
                 timeline finishing its batch): the new primary never had them"
            );
        }
        (Writing { lost: self, epoch }, kept)
    }

    /// Leaves `zones` out of every write from now on, and waits until every write that began
    /// before has ended.
    pub async fn forget(&self, zones: &[Zone]) {
        let epoch = {
            let mut inner = self.lock();
            for z in zones {
                if !inner.zones.contains(z) {
                    inner.zones.push(z.clone());
                }
            }
            inner.epoch += 1;
            inner.epoch
        };
        loop {
            let ended = self.ended.notified();
            tokio::pin!(ended);
            ended.as_mut().enable();
            if self.lock().writing.range(..epoch).next().is_none() {
                return;
            }
            ended.await;
        }
    }
}

impl ClickHouseSink {
    /// The highest position (`_version`'s low 56 bits) of a runs row of `generations`; 0 when
    /// there is none.
    pub async fn highest_position(&self, generations: &[u8]) -> Result<u64, SinkError> {
        let list = generations
            .iter()
            .map(u8::to_string)
            .collect::<Vec<_>>()
            .join(", ");
        let query = self
            .client
            .query(&format!(
                "SELECT max(bitAnd(_version, {POSITION})) FROM {} \
                 WHERE bitShiftRight(_version, 56) IN ({list})",
                self.runs_table
            ))
            .fetch_one::<u64>();
        super::catalog::answer("the highest version", self.timeout, query)
            .await
            .map_err(|e| SinkError::Read {
                what: format!("the highest version in {}", self.runs_table),
                reason: e.reason,
            })
    }

    /// The runs with a row (of any state, tombstones included) in `zone`.
    pub async fn zone_runs(&self, zone: &Zone) -> Result<Vec<String>, SinkError> {
        let query = self
            .client
            .query(&format!(
                "SELECT DISTINCT run_id FROM {} WHERE {}",
                self.runs_table,
                zone.condition()
            ))
            .fetch_all::<String>();
        super::catalog::answer("the runs of a lost history", self.timeout, query)
            .await
            .map_err(|e| SinkError::Read {
                what: format!("the runs of a lost history in {}", self.runs_table),
                reason: e.reason,
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn row(generation: u8, position: u64) -> Box<RunRow> {
        let mut r = crate::testing::runs::run_row("run_1");
        r._version = (generation as u64) << 56 | position;
        Box::new(r)
    }

    #[test]
    fn a_zone_holds_only_its_generations_positions() {
        let z = Zone {
            generations: vec![0, 1],
            from: 100,
            to: 200,
        };
        assert!(!z.contains(100));
        assert!(z.contains(101));
        assert!(z.contains(1 << 56 | 200));
        assert!(!z.contains(201));
        assert!(!z.contains(2 << 56 | 150));
        assert!(z.condition().contains("IN (0, 1)"));
    }

    #[tokio::test]
    async fn a_forgotten_zone_is_left_out_and_forget_waits_for_the_writes_begun_before() {
        let lost = Arc::new(LostHistory::default());
        let rows = vec![row(0, 150), row(0, 250)];
        let (before, kept) = lost.begin(&rows);
        assert!(kept.is_none(), "nothing forgotten yet");
        let zone = Zone {
            generations: vec![0],
            from: 100,
            to: 200,
        };
        let forget = {
            let lost = lost.clone();
            let zone = zone.clone();
            tokio::spawn(async move { lost.forget(&[zone]).await })
        };
        tokio::task::yield_now().await;
        assert!(!forget.is_finished(), "a write begun before is still going");
        let (after, kept) = lost.begin(&rows);
        let kept = kept.expect("the zone's row left out");
        assert_eq!(kept.len(), 1);
        assert_eq!(kept[0]._version, 250);
        drop(after);
        tokio::task::yield_now().await;
        assert!(!forget.is_finished(), "a write begun after does not count");
        drop(before);
        forget.await.unwrap();
    }
}
