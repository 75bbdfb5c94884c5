//! Log output: `tracing` to stderr, human-readable by default, JSON lines for log pipelines.
//!
//! The filter is `log.level`, which the configuration reads from the file, the environment
//! (`RUST_LOG` included, the usual escape hatch while debugging) and `--log-level`, and which it
//! checks: it never silences the worker's own lines. The configuration's warnings (trigger.dev
//! variables it ignores, URL parameters, `--null-sink`) go to their own target, which shows at
//! every level: at trigger.dev's `log` level too, a person must see what the worker ignored.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

use crate::config::{Config, LogConfig, LogFormat};

/// The target of the configuration's warnings, enabled at `warn` whatever the filter says.
pub const CONFIG_TARGET: &str = "runs_replicator::config";

pub fn init(config: &LogConfig) {
    // The configuration validated the filter; the fallback only guards a caller that did not.
    let filter = EnvFilter::try_new(&config.level)
        .unwrap_or_else(|_| EnvFilter::new("info"))
        .add_directive(
            format!("{CONFIG_TARGET}=warn")
                .parse()
                .expect("a valid directive"),
        );
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colours only for a person at a terminal, not for files and log collectors.
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false);
    let _ = match config.format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .try_init(),
    };
}

/// One configuration warning, shown at every level.
pub fn config_warning(message: &str) {
    tracing::warn!(target: CONFIG_TARGET, "{message}");
}

/// Every warning the configuration collected, shown at every level.
pub fn config_warnings(config: &Config) {
    for warning in config.warnings() {
        config_warning(warning);
    }
}
