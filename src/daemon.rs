//! The long-running daemon.

use std::process::ExitCode;

use crate::config::Config;

pub async fn run(_config: Config) -> ExitCode {
    tracing::error!("the daemon is not implemented yet");
    ExitCode::from(2)
}
