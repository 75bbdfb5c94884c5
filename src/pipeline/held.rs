//! The committed transactions of one stream held back until the repair lookups they need are
//! answered, and those lookups done together.
//!
//! A repaired change that may leave a run's rows in ClickHouse under a key the stream cannot
//! name (a key-only DELETE, an UPDATE without its old row: `pipeline::repair`) marks the run for
//! a lookup. Its transaction is committed as any other, then held here instead of going to the
//! batch, and every later transaction of the stream queues behind it (a position is
//! acknowledged only once everything before it is stored). The loop reads the other streams
//! meanwhile: a repair replay no longer stalls every stream.
//!
//! One lookup answers every held transaction at once ([`Held::start_lookup`]): it is read once
//! everything of the stream before the first held transaction is stored, so ClickHouse shows
//! what it would have shown that transaction. The later held transactions are not stored yet;
//! what ClickHouse would show them is what it shows overlaid with the rows of the held
//! transactions before them, in order (the highest version of each key; a tombstone hides it),
//! which [`Held::resolve`] keeps as it goes. Each transaction tombstones every row shown of its
//! looked-up runs under a key it holds no row for, stamped with its own version, then is handed
//! to the batch in order. While a lookup is in flight more transactions queue up, and the next
//! lookup takes them all: on a load of one run per transaction, the lookups are a few per
//! second, not one (and a flush) per change.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};

use super::transaction::{Committed, version};
use crate::rows::RunRow;

/// A held transaction and the runs it asked to look up (run id → its table's generation).
struct HeldTxn {
    committed: Committed,
    lookups: BTreeMap<String, u8>,
}

/// One stream's held transactions.
#[derive(Default)]
pub struct Held {
    txns: VecDeque<HeldTxn>,
    /// Estimated bytes of the held rows (`collapse::run_bytes`).
    bytes: usize,
    /// A lookup is in flight for the first this many transactions.
    in_flight: Option<usize>,
    /// Numbers the lookups, so that the answer to one given up on is not taken for another's.
    round: u64,
}

/// What a resolved lookup hands over.
pub struct Resolved {
    /// In commit order, ready for the batch.
    pub committed: Vec<Committed>,
    /// Rows tombstoned.
    pub tombstoned: usize,
}

impl Held {
    pub fn is_empty(&self) -> bool {
        self.txns.is_empty()
    }

    /// How many transactions are held.
    pub fn len(&self) -> usize {
        self.txns.len()
    }

    pub fn bytes(&self) -> usize {
        self.bytes
    }

    pub fn lookup_in_flight(&self) -> bool {
        self.in_flight.is_some()
    }

    /// Holds a committed transaction (after those held before it).
    pub fn push(&mut self, committed: Committed, lookups: BTreeMap<String, u8>) {
        self.bytes += committed.rows.bytes() + committed.payloads_bytes;
        self.txns.push_back(HeldTxn { committed, lookups });
    }

    /// The runs every held transaction asked about, for one lookup; the transactions are now
    /// waiting for its answer. Call only once everything of the stream before the first held
    /// transaction is stored, and with no lookup in flight.
    pub fn start_lookup(&mut self) -> (u64, Vec<String>) {
        self.round += 1;
        self.in_flight = Some(self.txns.len());
        let ids: BTreeSet<&String> = self.txns.iter().flat_map(|t| t.lookups.keys()).collect();
        (self.round, ids.into_iter().cloned().collect())
    }

    /// Gives up the lookup in flight (it failed, or is asked again); the transactions stay
    /// held, and its answer, should it come, is ignored.
    pub fn give_up_lookup(&mut self) {
        self.in_flight = None;
    }

    /// Resolves the transactions lookup `round` was for, with `shown`: the rows a reader saw of
    /// those runs once everything before them was stored. `None` for an answer given up on.
    pub fn resolve(&mut self, round: u64, shown: Vec<RunRow>) -> Option<Resolved> {
        if round != self.round || self.in_flight.is_none() {
            return None;
        }
        let n = self.in_flight.take().unwrap_or(0).min(self.txns.len());
        // What a reader would see of the looked-up runs, by key, as each transaction lands.
        let mut view: HashMap<(String, String, String, i64, String), RunRow> =
            shown.into_iter().map(|r| (owned_key(&r), r)).collect();
        // Only the looked-up runs matter to the view: no held transaction asks about another.
        let wanted: BTreeSet<String> = self
            .txns
            .iter()
            .take(n)
            .flat_map(|t| t.lookups.keys().cloned())
            .collect();
        let mut committed = Vec::with_capacity(n);
        let mut tombstoned = 0;
        for mut txn in self.txns.drain(..n) {
            self.bytes = self
                .bytes
                .saturating_sub(txn.committed.rows.bytes() + txn.committed.payloads_bytes);
            if !txn.lookups.is_empty() {
                let stale: Vec<RunRow> = view
                    .values()
                    .filter(|r| txn.lookups.contains_key(&r.run_id))
                    .cloned()
                    .collect();
                tombstoned += tombstone_stale(&mut txn.committed, &txn.lookups, stale);
            }
            for row in txn.committed.rows.iter() {
                if !wanted.contains(&row.run_id) {
                    continue;
                }
                let key = owned_key(row);
                if row._is_deleted == 1 {
                    view.remove(&key);
                } else if view.get(&key).is_none_or(|v| v._version <= row._version) {
                    view.insert(key, row.clone());
                }
            }
            committed.push(txn.committed);
        }
        Some(Resolved {
            committed,
            tombstoned,
        })
    }
}

fn owned_key(r: &RunRow) -> (String, String, String, i64, String) {
    (
        r.organization_id.clone(),
        r.project_id.clone(),
        r.environment_id.clone(),
        r.created_at,
        r.run_id.clone(),
    )
}

/// Tombstones each of `shown` whose key `txn` holds no row for, at `txn`'s version (its
/// table's generation, its commit's end LSN). Returns how many.
fn tombstone_stale(
    txn: &mut Committed,
    lookups: &BTreeMap<String, u8>,
    shown: Vec<RunRow>,
) -> usize {
    let mut n = 0;
    for mut row in shown {
        let Some(&generation) = lookups.get(&row.run_id) else {
            continue;
        };
        if txn.rows.contains_key(&row) {
            continue;
        }
        // The commit's end LSN fits: `Transaction::commit` checked it.
        row._version = version(generation, txn.end_lsn).unwrap_or(row._version);
        row._is_deleted = 1;
        txn.rows.upsert(row);
        n += 1;
    }
    n
}

#[cfg(test)]
mod tests;
