//! The transform: one pure function from a decoded Postgres row to ClickHouse rows.
//!
//! Both source tables go through it unchanged. It follows trigger.dev's column rules
//! (`reference/upstream-trigger-dev.md` §3) column by column. No I/O, no clocks, no globals:
//! the same input always gives the same output, which is what makes replays collapse.

pub mod input;
pub mod output;

pub use input::{Col, SourceRow};
pub use output::{PayloadRow, RunRow};

/// Switches of the transform that come from configuration.
#[derive(Clone, Debug)]
pub struct TransformOptions {
    /// Compute `error_fingerprint` for failed runs (`RUN_REPLICATION_DISABLE_ERROR_FINGERPRINTING` turns it off).
    pub fingerprint_errors: bool,
}

impl Default for TransformOptions {
    fn default() -> Self {
        TransformOptions {
            fingerprint_errors: true,
        }
    }
}

/// Why a row produces nothing. Skipped rows are counted, never an error.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum SkipReason {
    MissingOrganizationId,
    MissingEnvironmentType,
}

impl SkipReason {
    /// The `reason` label of `runs_replicator_rows_skipped_total`.
    pub fn label(self) -> &'static str {
        match self {
            SkipReason::MissingOrganizationId => "missing_organization_id",
            SkipReason::MissingEnvironmentType => "missing_environment_type",
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum TransformError {
    #[error("row skipped: {}", .0.label())]
    Skip(SkipReason),
    /// A value whose text form the transform cannot read. Postgres validated it, so this means the
    /// rendering is not what the worker expects (for example DateStyle not pinned to ISO).
    #[error("column \"{column}\" has value {value:?}, expected {expected}")]
    InvalidValue {
        column: &'static str,
        value: String,
        expected: &'static str,
    },
}
