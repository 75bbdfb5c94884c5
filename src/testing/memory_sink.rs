//! [`MemorySink`]: the pipeline's [`Sink`] in memory, with faults queued on demand (after
//! supabase/etl's memory destination and its fault actions).
//!
//! It stores every write in order and answers reads the way ClickHouse's `FINAL` would: per sort
//! key the highest `_version`, the later write on a tie, tombstones hidden. Tests queue what the
//! next writes do — fail, hang until released, refuse some rows — and then assert on what was
//! stored and in which order.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;

use crate::pipeline::sink::{Sink, SinkError, Written};
use crate::rows::{PayloadRow, RunRow};

/// What the next write does instead of storing its rows.
#[derive(Clone)]
pub enum Fault {
    /// Stores as usual: places a later fault on a later write.
    Pass,
    /// Fails as a sink does when its retries are used up; nothing is stored.
    Fail(String),
    /// Waits until the [`Gate`] opens, then stores.
    Hang(Gate),
    /// Stores and succeeds, and stores the same rows once more when the [`Gate`] opens: an
    /// attempt the client gave up on (a timeout) and retried, which the server committed
    /// after all, later than anything written meanwhile.
    LandsAgainLater(Gate),
}

/// Holds back a hanging write until [`Gate::open`].
#[derive(Clone, Default)]
pub struct Gate(Arc<Notify>);

impl Gate {
    pub fn open(&self) {
        self.0.notify_one();
    }
}

/// One write as the sink received it.
#[derive(Debug, Clone)]
pub struct Write {
    pub runs: Vec<RunRow>,
    pub payloads: Vec<PayloadRow>,
    /// It was stored (false for a failed write).
    pub stored: bool,
    /// When the write started (the paused clock of the loop's tests).
    pub started: tokio::time::Instant,
}

#[derive(Default)]
struct Inner {
    writes: Vec<Write>,
    faults: VecDeque<Fault>,
    /// Run ids whose rows are refused one by one (a poison row): left out and counted.
    refused: Vec<String>,
    /// Writes started, including failed and hanging ones.
    started: usize,
    /// Calls of `visible_rows`.
    lookups: usize,
    /// How long each `visible_rows` takes (a `FINAL` read of a large table).
    lookup_delay: std::time::Duration,
}

#[derive(Default, Clone)]
pub struct MemorySink {
    inner: Arc<Mutex<Inner>>,
    stored: Arc<Notify>,
}

impl MemorySink {
    pub fn new() -> MemorySink {
        MemorySink::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues what the next write (after those already queued) does.
    pub fn push_fault(&self, fault: Fault) {
        self.lock().faults.push_back(fault);
    }

    /// Makes the next write hang; returns the gate that releases it.
    pub fn hang_next(&self) -> Gate {
        let gate = Gate::default();
        self.push_fault(Fault::Hang(gate.clone()));
        gate
    }

    /// Rows of `run_id` are refused from now on (a poison row).
    pub fn refuse(&self, run_id: &str) {
        self.lock().refused.push(run_id.to_string());
    }

    /// Every write received, in the order they were decided.
    pub fn writes(&self) -> Vec<Write> {
        self.lock().writes.clone()
    }

    /// Writes that started, including failed and still hanging ones.
    /// How many times `visible_rows` was asked (repairs batch their lookups per transaction).
    /// Makes every later `visible_rows` take `delay`.
    pub fn slow_lookups(&self, delay: std::time::Duration) {
        self.lock().lookup_delay = delay;
    }

    pub fn lookups(&self) -> usize {
        self.lock().lookups
    }

    pub fn started(&self) -> usize {
        self.lock().started
    }

    /// What a reader sees under `FINAL`: per sort key the highest version (the later write on a
    /// tie), tombstones hidden; keyed by (organization, project, environment, created_at, run id).
    pub fn final_rows(&self) -> BTreeMap<(String, String, String, i64, String), RunRow> {
        let mut rows: BTreeMap<_, RunRow> = BTreeMap::new();
        for write in self.lock().writes.iter().filter(|w| w.stored) {
            for row in &write.runs {
                let key = (
                    row.organization_id.clone(),
                    row.project_id.clone(),
                    row.environment_id.clone(),
                    row.created_at,
                    row.run_id.clone(),
                );
                match rows.get(&key) {
                    Some(old) if old._version > row._version => {}
                    _ => {
                        rows.insert(key, row.clone());
                    }
                }
            }
        }
        rows.retain(|_, r| r._is_deleted == 0);
        rows
    }

    /// The visible row of `run_id`, when there is exactly one.
    pub fn run(&self, run_id: &str) -> Option<RunRow> {
        let mut found = self
            .final_rows()
            .into_values()
            .filter(|r| r.run_id == run_id);
        let row = found.next()?;
        assert!(found.next().is_none(), "run {run_id} is visible twice");
        Some(row)
    }

    /// Payload rows stored, in write order.
    pub fn payloads(&self) -> Vec<PayloadRow> {
        self.lock()
            .writes
            .iter()
            .filter(|w| w.stored)
            .flat_map(|w| w.payloads.clone())
            .collect()
    }

    /// Waits until a write is stored (or failed) after this call.
    pub async fn next_write(&self) {
        self.stored.notified().await;
    }
}

impl Sink for MemorySink {
    async fn write(
        &self,
        runs: &[Box<RunRow>],
        payloads: &[PayloadRow],
    ) -> Result<Written, SinkError> {
        let runs: Vec<RunRow> = runs.iter().map(|r| RunRow::clone(r)).collect();
        let runs = runs.as_slice();
        let started = tokio::time::Instant::now();
        let fault = {
            let mut inner = self.lock();
            inner.started += 1;
            inner.faults.pop_front()
        };
        let mut failed = None;
        match fault {
            Some(Fault::Hang(gate)) => gate.0.notified().await,
            Some(Fault::Fail(reason)) => failed = Some(reason),
            Some(Fault::LandsAgainLater(gate)) => {
                let late = Write {
                    runs: runs.to_vec(),
                    payloads: payloads.to_vec(),
                    stored: true,
                    started,
                };
                let sink = self.clone();
                tokio::spawn(async move {
                    gate.0.notified().await;
                    sink.lock().writes.push(late);
                    sink.stored.notify_waiters();
                });
            }
            Some(Fault::Pass) | None => {}
        }
        let mut inner = self.lock();
        if let Some(reason) = failed {
            inner.writes.push(Write {
                runs: runs.to_vec(),
                payloads: payloads.to_vec(),
                stored: false,
                started,
            });
            drop(inner);
            self.stored.notify_waiters();
            return Err(SinkError::Insert {
                table: "memory".into(),
                attempts: 1,
                reason,
            });
        }
        let refused = |id: &str| inner.refused.iter().any(|r| r == id);
        let kept: Vec<RunRow> = runs
            .iter()
            .filter(|r| !refused(&r.run_id))
            .cloned()
            .collect();
        let kept_payloads: Vec<PayloadRow> = payloads
            .iter()
            .filter(|p| !refused(&p.run_id))
            .cloned()
            .collect();
        let written = Written {
            runs: kept.len(),
            payloads: kept_payloads.len(),
            rejected: runs.len() - kept.len() + payloads.len() - kept_payloads.len(),
        };
        inner.writes.push(Write {
            runs: kept,
            payloads: kept_payloads,
            stored: true,
            started,
        });
        drop(inner);
        self.stored.notify_waiters();
        Ok(written)
    }

    async fn visible_rows(&self, run_ids: &[String]) -> Result<Vec<RunRow>, SinkError> {
        let delay = {
            let mut inner = self.lock();
            inner.lookups += 1;
            inner.lookup_delay
        };
        tokio::time::sleep(delay).await;
        Ok(self
            .final_rows()
            .into_values()
            .filter(|r| run_ids.contains(&r.run_id))
            .collect())
    }
}
