//! Security against the real services, one file per topic; each scenario prints what it
//! injected and what it checked.
//!
//! - `tls_postgres`: sslmode require and verify-full, a foreign CA, a wrong name, plaintext
//!   against a hostssl-only server.
//! - `tls_clickhouse`: https with a private CA.
//! - `secrets`: no password in any output, on happy and error paths.
//! - `least_privilege`: a role with only what the worker needs.
//!
//! Here: what several topics use to run the binary and feed it changes.

use std::path::Path;
use std::process::Output;
use std::time::Duration;

use runs_replicator::testing::wait::wait_for;

use crate::support::runs::insert;
use crate::support::{TestEnv, Worker};

mod least_privilege;
mod secrets;
mod tls_clickhouse;
mod tls_postgres;

const CONVERGE: Duration = Duration::from_secs(30);
const READY: Duration = Duration::from_secs(30);

/// Percent-encodes everything but RFC 3986's unreserved characters, as a URL's userinfo needs.
fn pct(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The preflight's exit 2: exactly one line on stderr, nothing on stdout; returns the line.
fn cannot_check_line(out: &Output) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.status.code(), Some(2), "{}", text(out));
    assert!(out.stdout.is_empty(), "{}", text(out));
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "one line expected:\n{stderr}");
    lines[0].to_string()
}

async fn wait_log(worker: &Worker, what: &str, needles: &[&str]) -> String {
    wait_for(what, Duration::from_secs(20), || async {
        worker
            .log_text()
            .lines()
            .find(|l| needles.iter().all(|n| l.contains(n)))
            .map(String::from)
    })
    .await
}

async fn start_ready(config: &Path, port: u16, envs: &[(&str, &str)]) -> Worker {
    let mut w = Worker::start(config, port, envs);
    w.wait_ready(READY).await;
    w
}

/// Inserts, updates and deletes runs in both tables.
async fn write_changes(env: &TestEnv, prefix: &str) {
    let pg = env.pg_client().await;
    for (table, short) in [("\"TaskRun\"", "v1"), ("task_run_v2", "v2")] {
        for i in 0..3 {
            insert(&pg, table, &format!("{prefix}_{short}_{i}"), &[]).await;
        }
        pg.batch_execute(&format!(
            "UPDATE {table} SET status = 'COMPLETED_SUCCESSFULLY', \"completedAt\" = now(), \
             output = '{{\"ok\": true}}' WHERE id = '{prefix}_{short}_0'; \
             DELETE FROM {table} WHERE id = '{prefix}_{short}_1'"
        ))
        .await
        .unwrap();
    }
}
