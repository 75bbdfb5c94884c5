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
///
/// Rows are boxed: a `RunRow` is over a kilobyte, and on its way from the transform to a sealed
/// batch it moved six to eight times (into the transaction, out of it into the batch, the swaps
/// of the sort); `memmove` was 12% of a drain's CPU. Boxed, each move is a pointer, all the way
/// to the sink, which encodes the rows where the transform put them.
#[derive(Debug, Default)]
pub struct CollapsedRows {
    // Boxed on purpose (see above): clippy's vec_box assumes small elements.
    #[allow(clippy::vec_box)]
    rows: Vec<Box<RunRow>>,
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
pub(super) fn key_hash(row: &RunRow) -> u64 {
    rustc_hash::FxBuildHasher.hash_one(row.sort_key())
}

impl CollapsedRows {
    /// Adds `row` unless a row with the same key and a higher `_version` is already here.
    pub fn upsert(&mut self, row: RunRow) {
        self.upsert_boxed(Box::new(row));
    }

    /// [`Self::upsert`] of a row already boxed (one moving from another set).
    pub fn upsert_boxed(&mut self, row: Box<RunRow>) {
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
        if self.indexed == 0 {
            // Sized once for what the set has room for (a batch reserves max_rows), instead of
            // rehashing as it doubles.
            self.index.reserve(self.rows.capacity());
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

    fn push(&mut self, row: Box<RunRow>) {
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

    /// Whether a row with `row`'s ClickHouse key is here.
    pub fn contains_key(&mut self, row: &RunRow) -> bool {
        self.position(row).is_some()
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
            .map(|r| RunRow::clone(r))
            .collect()
    }

    /// Every row, to read.
    pub fn iter(&self) -> impl Iterator<Item = &RunRow> + '_ {
        self.rows.iter().map(|r| &**r)
    }

    /// Every row, for re-collapsing into another set.
    pub fn drain(&mut self) -> impl Iterator<Item = Box<RunRow>> + '_ {
        self.index.clear();
        self.collided.clear();
        self.indexed = 0;
        self.bytes = 0;
        self.rows.drain(..)
    }

    /// Every row, to change in place something that is not part of the key.
    pub fn iter_mut(&mut self) -> impl Iterator<Item = &mut RunRow> + '_ {
        self.rows.iter_mut().map(|r| &mut **r)
    }

    /// The rows sorted by the table's ORDER BY key, the order ClickHouse stores them in.
    #[allow(clippy::vec_box)] // boxed on purpose, see the type's comment
    pub fn into_sorted(self) -> Vec<Box<RunRow>> {
        self.into_sorted_with(Vec::new())
    }

    /// [`Self::into_sorted`] into `buffer` (emptied first): the rows vector of an inserted batch,
    /// reused. The rows stay boxed: unboxing them into a vector of rows copied a kilobyte per
    /// row into a vector of ten megabytes (faulted in fresh for the first batches), 10% of a
    /// drain's CPU in the profile.
    #[allow(clippy::vec_box)] // boxed on purpose, see the type's comment
    pub fn into_sorted_with(self, mut buffer: Vec<Box<RunRow>>) -> Vec<Box<RunRow>> {
        // Comparing whole keys costs three string comparisons per step, and most rows of a batch
        // share their organization, project and environment: rank the few (organization,
        // project, environment) groups (one hash per row), then sort one small key per row,
        // (group rank, created_at, run id), held side by side so the sort does not chase a
        // pointer into a different row at every comparison (that was most of a seal's time).
        let rows = self.rows;
        let mut groups: rustc_hash::FxHashMap<(&str, &str, &str), u32> = Default::default();
        let mut group_of = Vec::with_capacity(rows.len());
        for r in &rows {
            let next = groups.len() as u32;
            let g = *groups
                .entry((&r.organization_id, &r.project_id, &r.environment_id))
                .or_insert(next);
            group_of.push(g);
        }
        let mut ranked: Vec<((&str, &str, &str), u32)> = groups.into_iter().collect();
        ranked.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        let mut rank = vec![0u32; ranked.len()];
        for (position, (_, g)) in ranked.iter().enumerate() {
            rank[*g as usize] = position as u32;
        }
        let mut keys: Vec<(u32, i64, &str, u32)> = rows
            .iter()
            .zip(&group_of)
            .enumerate()
            .map(|(i, (r, &g))| (rank[g as usize], r.created_at, r.run_id.as_str(), i as u32))
            .collect();
        keys.sort_unstable();
        let order: Vec<u32> = keys.iter().map(|k| k.3).collect();
        drop(keys);
        let mut rows: Vec<Option<Box<RunRow>>> = rows.into_iter().map(Some).collect();
        buffer.clear();
        buffer.reserve(rows.len());
        for i in order {
            buffer.push(rows[i as usize].take().expect("each position once"));
        }
        buffer
    }
}

#[cfg(test)]
mod tests;
