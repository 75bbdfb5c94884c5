//! A backfill's durable progress, in the worker's state table (`sink::state`): the job (what it
//! copies and its chunk plan) and each chunk once its rows are stored, with the `L` they were
//! copied at.
//!
//! Format (JSON values):
//! - kind `backfill_job`, key = job id: [`JobRecord`] — the [`JobSpec`], the epoch (bumped by
//!   `--restart`, which also plans anew) and the plan of every table.
//! - kind `backfill_chunk`, key = `<job id>/<epoch>/<table>/<chunk index>`: [`ChunkDone`].
//! - A dry run (`--null-sink`: rows encoded and discarded) keeps the same records under kinds of
//!   its own, `backfill_dry_run_job` and `backfill_dry_run_chunk` ([`Ledger::DryRun`]): it can
//!   resume itself, and no real copy ever takes its chunks for stored rows.
//!
//! Which job a request is: its [`JobSpec`] — what it copies, and for a copy a stream owes (the
//! daemon's bootstrap, a lost slot's gap) the pending copy it fills (`owner`). So an operator's
//! `backfill`, a dry run, or the copy an earlier slot owed never stands in for the copy a new slot
//! owes: each is another job. A chunk also counts as done only when its `L` is at or above the
//! job's floor ([`Checkpoints::with_floor`]: the consistent point of the slot the copy completes).
//!
//! A chunk is marked done only after the sink stored all its rows, so a run killed at any point
//! copies again at most the chunks it had not marked. Each chunk's rows carry the `L` of the
//! snapshot they were read from, so chunks copied by different runs (different snapshots) are
//! each correct on their own; that is what makes resuming with a new snapshot safe.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::BackfillError;
use super::chunks::{Chunk, TablePlan, Window};
use crate::sink::state::StateStore;

pub const JOB_KIND: &str = "backfill_job";
pub const CHUNK_KIND: &str = "backfill_chunk";
pub const DRY_RUN_JOB_KIND: &str = "backfill_dry_run_job";
pub const DRY_RUN_CHUNK_KIND: &str = "backfill_dry_run_chunk";

/// Where a job's records go: a real copy's, or a dry run's (rows discarded), which no real copy
/// reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ledger {
    Real,
    DryRun,
}

impl Ledger {
    /// The ledger of a run whose sink discards rows (`--null-sink`) or stores them.
    pub fn of(null_sink: bool) -> Ledger {
        if null_sink {
            Ledger::DryRun
        } else {
            Ledger::Real
        }
    }

    fn kinds(self) -> (&'static str, &'static str) {
        match self {
            Ledger::Real => (JOB_KIND, CHUNK_KIND),
            Ledger::DryRun => (DRY_RUN_JOB_KIND, DRY_RUN_CHUNK_KIND),
        }
    }
}

/// What a job copies. Its hash is the job id: the same command line against the same database
/// is the same job, whatever the order its tables were named in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobSpec {
    pub source: String,
    /// `host:port/dbname` of the source (never credentials).
    pub database: String,
    pub schema: String,
    pub tables: Vec<String>,
    pub window: Window,
    pub payloads: bool,
    /// For a copy a stream owes: the pending copy it fills (`<system id>/<database>/<slot>/<copy
    /// id>`, from the stream's marker). Absent for an operator's `backfill`, whose job ids stay
    /// what they were before this field existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
}

impl JobSpec {
    pub fn id(&self) -> String {
        let mut canonical = self.clone();
        canonical.tables.sort();
        canonical.tables.dedup();
        let text = serde_json::to_string(&canonical).expect("a JobSpec serialises");
        let digest = Sha256::digest(text.as_bytes());
        digest[..8].iter().map(|b| format!("{b:02x}")).collect()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobRecord {
    pub spec: JobSpec,
    pub epoch: u32,
    pub plans: Vec<TablePlan>,
}

impl JobRecord {
    pub fn chunks(&self) -> Vec<Chunk> {
        self.plans.iter().flat_map(TablePlan::chunks).collect()
    }
}

/// One chunk whose rows are stored.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ChunkDone {
    /// The `L` its rows were stamped with.
    pub lsn: u64,
    pub rows_read: u64,
    pub rows_written: u64,
    pub skipped: u64,
    pub rejected: u64,
    pub seconds: f64,
}

/// The checkpoints of one job.
#[derive(Clone)]
pub struct Checkpoints {
    store: Arc<StateStore>,
    pub job_id: String,
    job_kind: &'static str,
    chunk_kind: &'static str,
    /// Chunks copied below this `L` are not done (0: every chunk counts).
    floor: u64,
}

fn chunk_key(job_id: &str, epoch: u32, table: &str, index: usize) -> String {
    format!("{job_id}/{epoch:06}/{table}/{index:06}")
}

fn corrupt(what: String) -> impl Fn(serde_json::Error) -> BackfillError {
    move |e| BackfillError::State(format!("{what} is not readable: {e}"))
}

impl Checkpoints {
    pub fn new(store: Arc<StateStore>, spec: &JobSpec, ledger: Ledger) -> Checkpoints {
        let (job_kind, chunk_kind) = ledger.kinds();
        Checkpoints {
            store,
            job_id: spec.id(),
            job_kind,
            chunk_kind,
            floor: 0,
        }
    }

    /// Only chunks copied at `L >= floor` count as done.
    pub fn with_floor(mut self, floor: u64) -> Checkpoints {
        self.floor = floor;
        self
    }

    pub async fn load_job(&self) -> Result<Option<JobRecord>, BackfillError> {
        let Some(text) = self.store.get(self.job_kind, &self.job_id).await? else {
            return Ok(None);
        };
        serde_json::from_str(&text)
            .map(Some)
            .map_err(corrupt(format!("backfill job {}", self.job_id)))
    }

    pub async fn save_job(&self, job: &JobRecord) -> Result<(), BackfillError> {
        let text = serde_json::to_string(job).expect("a JobRecord serialises");
        Ok(self.store.put(self.job_kind, &self.job_id, &text).await?)
    }

    /// The chunks of `job` already done (at or above the floor), by (table, index).
    pub async fn done(
        &self,
        job: &JobRecord,
    ) -> Result<BTreeMap<(String, usize), ChunkDone>, BackfillError> {
        let prefix = format!("{}/{:06}/", self.job_id, job.epoch);
        let mut out = BTreeMap::new();
        for (key, value) in self.store.scan(self.chunk_kind, &prefix).await? {
            let Some((table, index)) = key[prefix.len()..].rsplit_once('/') else {
                continue;
            };
            let Ok(index) = index.parse::<usize>() else {
                continue;
            };
            let done: ChunkDone = serde_json::from_str(&value).map_err(corrupt(key.clone()))?;
            if done.lsn >= self.floor {
                out.insert((table.to_string(), index), done);
            }
        }
        Ok(out)
    }

    pub async fn mark_done(
        &self,
        epoch: u32,
        chunk: &Chunk,
        done: &ChunkDone,
    ) -> Result<(), BackfillError> {
        let key = chunk_key(&self.job_id, epoch, &chunk.table, chunk.index);
        let text = serde_json::to_string(done).expect("a ChunkDone serialises");
        Ok(self.store.put(self.chunk_kind, &key, &text).await?)
    }
}
