//! A set of runs-table rows collapsed by ClickHouse identity.
//!
//! Two rows with the same ORDER BY key are versions of one ClickHouse row, and ReplacingMergeTree
//! keeps the one with the highest `_version` (the later insert on a tie). Collapsing in memory by
//! the same rule sends ClickHouse exactly what it would keep, and nothing more.

use std::collections::HashMap;

use crate::transform::RunRow;

/// The owned form of [`RunRow::sort_key`].
type Key = (String, String, String, i64, String);

fn key(row: &RunRow) -> Key {
    (
        row.organization_id.clone(),
        row.project_id.clone(),
        row.environment_id.clone(),
        row.created_at,
        row.run_id.clone(),
    )
}

#[derive(Debug, Default)]
pub struct CollapsedRows {
    rows: HashMap<Key, RunRow>,
}

impl CollapsedRows {
    /// Adds `row` unless a row with the same key and a higher `_version` is already here.
    pub fn upsert(&mut self, row: RunRow) {
        match self.rows.entry(key(&row)) {
            std::collections::hash_map::Entry::Occupied(mut e) => {
                if row._version >= e.get()._version {
                    e.insert(row);
                }
            }
            std::collections::hash_map::Entry::Vacant(e) => {
                e.insert(row);
            }
        }
    }

    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// Copies of the rows of run `id` that are not tombstones.
    pub fn visible_rows(&self, id: &str) -> Vec<RunRow> {
        self.rows
            .values()
            .filter(|r| r.run_id == id && r._is_deleted == 0)
            .cloned()
            .collect()
    }

    /// Every row, for re-collapsing into another set.
    pub fn drain(&mut self) -> impl Iterator<Item = RunRow> + '_ {
        self.rows.drain().map(|(_, r)| r)
    }

    /// The rows sorted by the table's ORDER BY key, the order ClickHouse stores them in.
    pub fn into_sorted(self) -> Vec<RunRow> {
        let mut rows: Vec<RunRow> = self.rows.into_values().collect();
        rows.sort_unstable_by(|a, b| a.sort_key().cmp(&b.sort_key()));
        rows
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transform::testing::run_row;

    #[test]
    fn highest_version_wins_and_ties_go_to_the_later_row() {
        let mut set = CollapsedRows::default();
        let mut a = run_row("run_a");
        a._version = 5;
        a.status = "EXECUTING".into();
        set.upsert(a.clone());
        let mut older = a.clone();
        older._version = 4;
        older.status = "PENDING".into();
        set.upsert(older);
        let mut tie = a.clone();
        tie.status = "COMPLETED_SUCCESSFULLY".into();
        set.upsert(tie);
        let rows = set.into_sorted();
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].status, "COMPLETED_SUCCESSFULLY");
    }

    #[test]
    fn rows_with_different_keys_stay_apart_and_come_out_sorted() {
        let mut set = CollapsedRows::default();
        for (org, id, created) in [
            ("org_b", "r1", 1),
            ("org_a", "r2", 2),
            ("org_a", "r1", 2),
            ("org_a", "r1", 1),
        ] {
            let mut r = run_row(id);
            r.organization_id = org.into();
            r.created_at = created;
            set.upsert(r);
        }
        let keys: Vec<_> = set
            .into_sorted()
            .iter()
            .map(|r| (r.organization_id.clone(), r.created_at, r.run_id.clone()))
            .collect();
        assert_eq!(
            keys,
            [
                ("org_a".to_string(), 1, "r1".to_string()),
                ("org_a".into(), 2, "r1".into()),
                ("org_a".into(), 2, "r2".into()),
                ("org_b".into(), 1, "r1".into())
            ]
        );
    }
}
