//! How a session of a stream ended, and what a pipeline error means for the next one: the
//! vocabulary between a session (`session`) and the supervisor that restarts it (`supervisor`).

use crate::pipeline::errors::PipelineError;

/// How a session ended.
#[derive(Debug)]
pub enum SessionEnd {
    /// Shutdown was requested and everything was flushed.
    Shutdown,
    /// The stream was handed over to the instance it belongs to (`share`), everything received
    /// stored and acknowledged: this instance becomes its standby.
    HandedOver,
    /// Worth retrying after a pause.
    Retry { cause: &'static str, error: String },
    /// An operator must act; `kind` labels the metric.
    HardStop { kind: &'static str, reason: String },
    /// The preflight failed.
    Preflight(String),
}

/// The session end a pipeline error means.
pub fn end_of(e: PipelineError) -> SessionEnd {
    match e {
        PipelineError::HardStop(h) => SessionEnd::HardStop {
            kind: h.kind(),
            reason: h.to_string(),
        },
        PipelineError::Sink(e) => SessionEnd::Retry {
            cause: "clickhouse",
            error: e.to_string(),
        },
        PipelineError::Stream(e) => SessionEnd::Retry {
            cause: "postgres",
            error: e,
        },
        PipelineError::LockLost => SessionEnd::Retry {
            cause: "lock_lost",
            error: e.to_string(),
        },
    }
}
