//! [`FakeControl`]: the pipeline's [`Control`] in memory. Tests set what Postgres would answer:
//! whether leadership holds, the slot's reading, which tables are complete again, runs' current
//! rows.

use std::collections::HashMap;
use std::sync::Mutex;

use crate::pg::catalog::{CatalogError, SlotReading};
use crate::pipeline::control::Control;
use crate::rows::Col;

pub struct FakeControl {
    state: Mutex<State>,
}

struct State {
    leader: bool,
    slot: Option<SlotReading>,
    complete: HashMap<String, bool>,
    rows: HashMap<String, HashMap<Col, Option<String>>>,
}

/// A healthy slot.
pub fn healthy_slot() -> SlotReading {
    SlotReading {
        plugin: "pgoutput".into(),
        slot_type: "logical".into(),
        database: Some("trigger".into()),
        active: true,
        wal_status: Some("reserved".into()),
        confirmed_flush_lsn: None,
        lag_bytes: Some(0),
        retained_bytes: Some(0),
        safe_wal_size: None,
        ..SlotReading::default()
    }
}

impl Default for FakeControl {
    fn default() -> Self {
        FakeControl {
            state: Mutex::new(State {
                leader: true,
                slot: Some(healthy_slot()),
                complete: HashMap::new(),
                rows: HashMap::new(),
            }),
        }
    }
}

impl FakeControl {
    fn with<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        f(&mut self.state.lock().unwrap_or_else(|e| e.into_inner()))
    }

    pub fn lose_leadership(&self) {
        self.with(|s| s.leader = false);
    }

    /// The slot as the next check reads it (`None`: dropped).
    pub fn set_slot(&self, slot: Option<SlotReading>) {
        self.with(|s| s.slot = slot);
    }

    /// Whether `table` reads as complete (FULL identity, every column) now.
    pub fn set_complete(&self, table: &str, complete: bool) {
        self.with(|s| s.complete.insert(table.to_string(), complete));
    }

    /// The current value of `col` in run `id`'s row.
    pub fn set_value(&self, id: &str, col: Col, value: Option<&str>) {
        self.with(|s| {
            s.rows
                .entry(id.to_string())
                .or_default()
                .insert(col, value.map(str::to_string))
        });
    }
}

impl Control for FakeControl {
    async fn leader_alive(&self) -> bool {
        self.with(|s| s.leader)
    }

    async fn slot(&self) -> Result<Option<SlotReading>, CatalogError> {
        Ok(self.with(|s| s.slot.clone()))
    }

    async fn table_complete(&self, _schema: &str, table: &str) -> Result<bool, CatalogError> {
        Ok(self.with(|s| s.complete.get(table).copied().unwrap_or(false)))
    }

    async fn current_values(
        &self,
        _schema: &str,
        _table: &str,
        id: &str,
        columns: &[Col],
    ) -> Result<Option<Vec<Option<String>>>, CatalogError> {
        Ok(self.with(|s| {
            s.rows.get(id).map(|row| {
                columns
                    .iter()
                    .map(|c| row.get(c).cloned().flatten())
                    .collect()
            })
        }))
    }
}
