//! Why streaming stopped: [`PipelineError`], and among its causes the [`HardStop`]s that no
//! retry can fix, each with the short label its metric and `/readyz` carry.

use super::changes::ChangeError;
use super::sink::SinkError;
use super::transaction::LsnOverflow;
use crate::source::pgoutput::DecodeError;
use crate::source::relation::RelationError;

#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// Replicating further would write wrong or incomplete rows: an operator must act.
    #[error("{0}")]
    HardStop(HardStop),
    #[error("replication stream: {0}")]
    Stream(String),
    #[error("ClickHouse: {0}")]
    Sink(#[from] SinkError),
    #[error("the leader lock's Postgres session was lost")]
    LockLost,
}

#[derive(Debug, thiserror::Error)]
pub enum HardStop {
    #[error(transparent)]
    Change(#[from] ChangeError),
    #[error("undecodable pgoutput message: {0}")]
    Decode(#[from] DecodeError),
    #[error(
        "replication slot {slot} was invalidated (wal_status lost, or an invalidation_reason: WAL or rows it \
         needed were removed, or it sat idle too long) and can never stream again; \
         drop it (SELECT pg_drop_replication_slot('{slot}')): the worker then creates a new one and \
         copies the runs changed in the gap (postgres.recreate_lost_slot = true does both without asking)"
    )]
    SlotInvalidated { slot: String },
    #[error(
        "replication slot {slot} disappeared while the worker used it; changes since then are lost to it: \
         recreate it (or set postgres.recreate_lost_slot = true) and backfill the gap"
    )]
    SlotMissing { slot: String },
    #[error(transparent)]
    LsnOverflow(#[from] LsnOverflow),
}

impl HardStop {
    /// A short label for the `reason` of the hard-stop gauge (`metrics::HARD_STOP_REASONS`).
    pub fn kind(&self) -> &'static str {
        match self {
            HardStop::Change(ChangeError::Relation(RelationError::ReplicaIdentity { .. }))
            | HardStop::Change(ChangeError::KeyOnlyOldTuple { .. }) => "replica_identity",
            HardStop::Change(ChangeError::Relation(RelationError::MissingColumns { .. })) => {
                "missing_column"
            }
            HardStop::Change(ChangeError::Relation(RelationError::UnresolvedToast { .. })) => {
                "unresolved_toast"
            }
            HardStop::Change(_) => "bad_change",
            HardStop::Decode(_) => "decode",
            HardStop::SlotInvalidated { .. } => "slot_invalidated",
            HardStop::SlotMissing { .. } => "slot_missing",
            HardStop::LsnOverflow(_) => "lsn_overflow",
        }
    }
}

impl From<RelationError> for PipelineError {
    fn from(e: RelationError) -> Self {
        ChangeError::from(e).into()
    }
}

impl From<ChangeError> for PipelineError {
    fn from(e: ChangeError) -> Self {
        PipelineError::HardStop(HardStop::Change(e))
    }
}

impl From<LsnOverflow> for PipelineError {
    fn from(e: LsnOverflow) -> Self {
        PipelineError::HardStop(HardStop::LsnOverflow(e))
    }
}

impl From<DecodeError> for PipelineError {
    fn from(e: DecodeError) -> Self {
        PipelineError::HardStop(HardStop::Decode(e))
    }
}
