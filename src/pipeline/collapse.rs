//! A set of runs-table rows collapsed by ClickHouse identity.
//!
//! Two rows with the same ORDER BY key are versions of one ClickHouse row, and ReplacingMergeTree
//! keeps the one with the highest `_version` (the later insert on a tie). Collapsing in memory by
//! the same rule sends ClickHouse exactly what it would keep, and nothing more.

use std::collections::HashMap;
use std::hash::{BuildHasher, BuildHasherDefault};

use crate::rows::{PayloadRow, RunRow};

/// Below this many rows a set is searched linearly: most transactions hold one row, and hashing
/// its key would cost more than comparing it.
const LINEAR: usize = 8;

/// Rows in arrival order, found by their sort key without copying it: the index maps the key's
/// hash to the row's position. Keys used to be owned copies (four `String`s per row, per set the
/// row passed through), which a drain's profile showed among the top allocation sites.
#[derive(Debug, Default)]
pub struct CollapsedRows {
    rows: Vec<RunRow>,
    /// Hash of a row's sort key → its position; empty while the set is small.
    index: HashMap<u64, usize, BuildHasherDefault<IdentityHasher>>,
    /// Positions of rows whose key hash another key already took (in practice never; it keeps
    /// the set exact).
    collided: Vec<usize>,
    /// Rows `..indexed` are in the index (it is built once the set outgrows `LINEAR`).
    indexed: usize,
    /// [`run_bytes`] of the rows here, kept as they come and go.
    bytes: usize,
}

/// What a row costs in memory, estimated cheaply: the struct and the bytes of its strings
/// (lengths, not capacities: the transform sizes them to fit). Memory is bounded with it
/// (`batch.max_bytes`), so a run with a megabyte of output counts as a megabyte, not as one row.
pub fn run_bytes(r: &RunRow) -> usize {
    let list = |v: &[String]| {
        v.iter()
            .map(|s| s.len() + size_of::<String>())
            .sum::<usize>()
    };
    size_of::<RunRow>()
        + r.environment_id.len()
        + r.organization_id.len()
        + r.project_id.len()
        + r.run_id.len()
        + r.status.len()
        + r.environment_type.len()
        + r.friendly_id.len()
        + r.engine.len()
        + r.task_identifier.len()
        + r.queue.len()
        + r.schedule_id.len()
        + r.batch_id.len()
        + r.output.len()
        + r.error.len()
        + r.error_fingerprint.len()
        + list(&r.tags)
        + r.task_version.len()
        + r.sdk_version.len()
        + r.cli_version.len()
        + r.machine_preset.len()
        + r.root_run_id.len()
        + r.parent_run_id.len()
        + r.span_id.len()
        + r.trace_id.len()
        + r.idempotency_key.len()
        + r.idempotency_key_user.len()
        + r.idempotency_key_scope.len()
        + r.expiration_ttl.len()
        + r.concurrency_key.len()
        + list(&r.bulk_action_group_ids)
        + r.worker_queue.len()
        + r.region.len()
        + r.plan_type.len()
        + r.trigger_source.len()
        + r.root_trigger_source.len()
        + r.task_kind.len()
        + r.external_deployment_id.len()
}

/// [`run_bytes`] for a payload row.
pub fn payload_bytes(p: &PayloadRow) -> usize {
    size_of::<PayloadRow>() + p.run_id.len() + p.payload.len()
}

/// The index's keys are already hashes.
#[derive(Default)]
struct IdentityHasher(u64);

impl std::hash::Hasher for IdentityHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, _: &[u8]) {
        unreachable!("only u64 keys")
    }
    fn write_u64(&mut self, v: u64) {
        self.0 = v;
    }
}

impl std::fmt::Debug for IdentityHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("IdentityHasher")
    }
}

/// FxHash (rustc's hasher): a multiply per word. The keys are our own ids, not attacker-chosen
/// input aimed at a HashMap, and SipHash cost four times as much in the profile.
fn key_hash(row: &RunRow) -> u64 {
    rustc_hash::FxBuildHasher.hash_one(row.sort_key())
}

impl CollapsedRows {
    /// An empty set that fills `buffer` (emptied first) instead of a new allocation.
    pub fn with_buffer(mut buffer: Vec<RunRow>) -> CollapsedRows {
        buffer.clear();
        CollapsedRows {
            rows: buffer,
            ..CollapsedRows::default()
        }
    }

    /// Adds `row` unless a row with the same key and a higher `_version` is already here.
    pub fn upsert(&mut self, row: RunRow) {
        match self.position(&row) {
            Some(i) => {
                if row._version >= self.rows[i]._version {
                    self.bytes = self.bytes - run_bytes(&self.rows[i]) + run_bytes(&row);
                    self.rows[i] = row;
                }
            }
            None => {
                self.bytes += run_bytes(&row);
                self.push(row);
            }
        }
    }

    /// [`run_bytes`] of the rows here.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    fn position(&mut self, row: &RunRow) -> Option<usize> {
        let key = row.sort_key();
        if self.rows.len() <= LINEAR {
            return self.rows.iter().position(|r| r.sort_key() == key);
        }
        while self.indexed < self.rows.len() {
            self.index_row(self.indexed);
            self.indexed += 1;
        }
        match self.index.get(&key_hash(row)) {
            Some(&i) if self.rows[i].sort_key() == key => Some(i),
            Some(_) => self
                .collided
                .iter()
                .copied()
                .find(|&i| self.rows[i].sort_key() == key),
            None => None,
        }
    }

    fn push(&mut self, row: RunRow) {
        self.rows.push(row);
    }

    fn index_row(&mut self, i: usize) {
        match self.index.entry(key_hash(&self.rows[i])) {
            std::collections::hash_map::Entry::Vacant(e) => {
                e.insert(i);
            }
            std::collections::hash_map::Entry::Occupied(_) => self.collided.push(i),
        }
    }

    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// Room for `additional` more rows without growing.
    pub fn reserve(&mut self, additional: usize) {
        self.rows.reserve(additional);
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// Copies of the rows of run `id` that are not tombstones.
    pub fn visible_rows(&self, id: &str) -> Vec<RunRow> {
        self.rows
            .iter()
            .filter(|r| r.run_id == id && r._is_deleted == 0)
            .cloned()
            .collect()
    }

    /// Every row, for re-collapsing into another set.
    pub fn drain(&mut self) -> impl Iterator<Item = RunRow> + '_ {
        self.index.clear();
        self.collided.clear();
        self.indexed = 0;
        self.bytes = 0;
        self.rows.drain(..)
    }

    /// Every row, to change in place something that is not part of the key.
    pub fn iter_mut(&mut self) -> impl Iterator<Item = &mut RunRow> + '_ {
        self.rows.iter_mut()
    }

    /// The rows sorted by the table's ORDER BY key, the order ClickHouse stores them in.
    pub fn into_sorted(self) -> Vec<RunRow> {
        // Comparing whole keys costs three string comparisons per step, and most rows of a batch
        // share their organization, project and environment: group by those three (one hash per
        // row), order the few groups, and sort each group by (created_at, run_id). And a RunRow
        // is over a kilobyte, so positions are sorted, then rows are swapped into place. (Sorting
        // the rows themselves by the full key was most of a seal in the profile.)
        let mut rows = self.rows;
        let mut groups: rustc_hash::FxHashMap<(&str, &str, &str), Vec<u32>> = Default::default();
        for (i, r) in rows.iter().enumerate() {
            groups
                .entry((&r.organization_id, &r.project_id, &r.environment_id))
                .or_default()
                .push(i as u32);
        }
        let mut groups: Vec<_> = groups.into_iter().collect();
        groups.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        let mut order = Vec::with_capacity(rows.len());
        for (_, mut members) in groups {
            members.sort_unstable_by(|&a, &b| {
                let (a, b) = (&rows[a as usize], &rows[b as usize]);
                (a.created_at, &a.run_id).cmp(&(b.created_at, &b.run_id))
            });
            order.extend(members);
        }
        permute(&mut rows, order);
        rows
    }
}

/// Reorders `rows` in place so that position k holds what was at `order[k]`, following each
/// cycle with swaps. In place, because a second vector of a whole batch's rows is megabytes of
/// fresh memory, and the page faults it caused showed in the profile.
fn permute(rows: &mut [RunRow], mut order: Vec<u32>) {
    for start in 0..order.len() {
        let mut k = start;
        while order[k] as usize != start {
            let src = order[k] as usize;
            order[k] = k as u32;
            rows.swap(k, src);
            k = src;
        }
        order[k] = k as u32;
    }
}

#[cfg(test)]
mod tests;
