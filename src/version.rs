//! The worker's version as it reports it, in one place: `--version`, the
//! `runs_replicator_build_info` metric and the daemon's first log line all read it from here.
//!
//! The commit is the build's, given at compile time as `RUNS_REPLICATOR_GIT_COMMIT` (the
//! Dockerfile passes its `GIT_COMMIT` build argument; `cargo build` alone leaves it `unknown`).
//! The compatibility is what this version's transform and schema were checked against.

use std::sync::LazyLock;

/// `Cargo.toml`'s version.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The git commit the binary was built from, or `unknown`.
pub const COMMIT: &str = match option_env!("RUNS_REPLICATOR_GIT_COMMIT") {
    Some(c) if !c.is_empty() => c,
    _ => "unknown",
};

/// The trigger.dev release whose schemas and transform this version follows (its chart's
/// appVersion at commit b082e443, `reference/upstream-trigger-dev.md`).
pub const TRIGGER_DEV: &str = "v4.5.12";

/// The newest of trigger.dev's ClickHouse migrations (`internal-packages/clickhouse/schema`) whose
/// `task_runs_v2` columns this version writes: 041_add_task_runs_v2_external_deployment_id.
pub const CLICKHOUSE_MIGRATION: &str = "041";

/// `0.1.0 (commit 1a2b3c4; trigger.dev v4.5.12, ClickHouse migrations up to 041)`.
pub fn line() -> &'static str {
    static LINE: LazyLock<String> = LazyLock::new(|| {
        format!(
            "{VERSION} (commit {COMMIT}; trigger.dev {TRIGGER_DEV}, ClickHouse migrations up to \
             {CLICKHOUSE_MIGRATION})"
        )
    });
    &LINE
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_line_names_version_commit_and_compatibility() {
        let line = super::line();
        assert!(line.starts_with(env!("CARGO_PKG_VERSION")), "{line}");
        assert!(line.contains("(commit "), "{line}");
        assert!(
            line.ends_with("trigger.dev v4.5.12, ClickHouse migrations up to 041)"),
            "{line}"
        );
    }
}
