//! A backfill's durable progress, in the worker's state table (`sink::state`): the job (what it
//! copies and its chunk plan) and each chunk once its rows are stored, with the `L` they were
//! copied at.
//!
//! Format (JSON values):
//! - kind `backfill_job`, key = job id: [`JobRecord`] — the [`JobSpec`], the epoch (bumped by
//!   `--restart`, which also plans anew) and the plan of every table.
//! - kind `backfill_chunk`, key = `<job id>/<epoch>/<table>/<chunk index>`: [`ChunkDone`].
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
}

fn chunk_key(job_id: &str, epoch: u32, table: &str, index: usize) -> String {
    format!("{job_id}/{epoch:06}/{table}/{index:06}")
}

fn corrupt(what: String) -> impl Fn(serde_json::Error) -> BackfillError {
    move |e| BackfillError::State(format!("{what} is not readable: {e}"))
}

impl Checkpoints {
    pub fn new(store: Arc<StateStore>, spec: &JobSpec) -> Checkpoints {
        Checkpoints {
            store,
            job_id: spec.id(),
        }
    }

    pub async fn load_job(&self) -> Result<Option<JobRecord>, BackfillError> {
        let Some(text) = self.store.get(JOB_KIND, &self.job_id).await? else {
            return Ok(None);
        };
        serde_json::from_str(&text)
            .map(Some)
            .map_err(corrupt(format!("backfill job {}", self.job_id)))
    }

    pub async fn save_job(&self, job: &JobRecord) -> Result<(), BackfillError> {
        let text = serde_json::to_string(job).expect("a JobRecord serialises");
        Ok(self.store.put(JOB_KIND, &self.job_id, &text).await?)
    }

    /// The chunks of `job` already done, by (table, index).
    pub async fn done(
        &self,
        job: &JobRecord,
    ) -> Result<BTreeMap<(String, usize), ChunkDone>, BackfillError> {
        let prefix = format!("{}/{:06}/", self.job_id, job.epoch);
        let mut out = BTreeMap::new();
        for (key, value) in self.store.scan(CHUNK_KIND, &prefix).await? {
            let Some((table, index)) = key[prefix.len()..].rsplit_once('/') else {
                continue;
            };
            let Ok(index) = index.parse::<usize>() else {
                continue;
            };
            let done: ChunkDone = serde_json::from_str(&value).map_err(corrupt(key.clone()))?;
            out.insert((table.to_string(), index), done);
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
        Ok(self.store.put(CHUNK_KIND, &key, &text).await?)
    }
}
