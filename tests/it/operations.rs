//! What an operator sees: the metrics the dashboard and alerts query exist on a running worker,
//! the endpoints answer, logs are JSON when asked, and the CLI's own help and version.

use std::collections::BTreeSet;
use std::time::Duration;

use runs_replicator::testing::metrics::samples;
use runs_replicator::testing::wait::{poll, wait_for};

use crate::replication::start_worker;
use crate::support::expect::assert_converges;

use crate::support::runs::insert;
use crate::support::{TestEnv, Worker, process, worker};

/// Every `runs_replicator_*` name in a text (a dashboard, alert rules).
fn metric_names(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut rest = text;
    while let Some(i) = rest.find("runs_replicator_") {
        let tail = &rest[i..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        out.insert(tail[..end].to_string());
        rest = &tail[end..];
    }
    out
}

/// The series names a scrape exposes; a histogram also counts under its own name.
fn exposed(scrape: &str) -> BTreeSet<String> {
    let mut out: BTreeSet<String> = samples(scrape).map(|s| s.name.to_string()).collect();
    let histograms: Vec<String> = out
        .iter()
        .filter_map(|n| n.strip_suffix("_bucket").map(str::to_string))
        .collect();
    out.extend(histograms);
    out
}

#[tokio::test]
async fn every_metric_the_dashboard_and_alerts_query_exists() {
    let env = TestEnv::new("ops_metrics").await;
    let worker = start_worker(&env, "").await;
    let pg = env.pg_client().await;
    insert(&pg, "\"TaskRun\"", "run_ops_1", &[]).await;
    assert_converges(&env, Duration::from_secs(30)).await;
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut wanted = metric_names(
        &std::fs::read_to_string(root.join("config/grafana/dashboards/runs-replicator.json"))
            .unwrap(),
    );
    wanted.extend(metric_names(
        &std::fs::read_to_string(root.join("config/prometheus/alerts.yml")).unwrap(),
    ));
    assert!(
        wanted.len() > 20,
        "the dashboard queries the worker's metrics: {wanted:?}"
    );
    // Slot gauges come from the first poll of pg_replication_slots (every second in tests).
    poll(
        Duration::from_secs(20),
        Duration::from_millis(200),
        || async {
            let scrape = worker.get("/metrics").map(|m| m.1).unwrap_or_default();
            let have = exposed(&scrape);
            let missing: Vec<&String> = wanted.iter().filter(|w| !have.contains(*w)).collect();
            if missing.is_empty() {
                Ok(())
            } else {
                Err((missing, scrape))
            }
        },
    )
    .await
    .unwrap_or_else(|(missing, scrape)| panic!("not exposed: {missing:?}\n{scrape}"));
    println!(
        "checked: all {} metric names the dashboard and alert rules use are exposed",
        wanted.len()
    );
}

#[tokio::test]
async fn endpoints_answer_as_documented() {
    let env = TestEnv::new("ops_endpoints").await;
    let worker = start_worker(&env, "").await;
    assert_eq!(worker.get("/healthz").unwrap().0, 200);
    let (status, body) = worker.get("/readyz").unwrap();
    assert_eq!((status, body.trim()), (200, "leader, streaming"));
    let (status, metrics) = worker.get("/metrics").unwrap();
    assert_eq!(status, 200);
    // The version three ways: the metric (with the commit and the compatibility), the log's first
    // line, `--version`.
    let version = env!("CARGO_PKG_VERSION");
    let info = metrics
        .lines()
        .find(|l| l.starts_with("runs_replicator_build_info{"))
        .unwrap_or_else(|| panic!("no build_info series:\n{metrics}"));
    for label in [
        format!("version=\"{version}\""),
        "commit=\"".to_string(),
        "trigger_dev=\"v4.5.12\"".to_string(),
        "clickhouse_migration=\"041\"".to_string(),
    ] {
        assert!(info.contains(&label), "{label} not in {info}");
    }
    let log = worker.log_text();
    let first = log.lines().next().unwrap_or_default();
    assert!(
        first.contains(&format!("runs-replicator {version} (commit "))
            && first.contains("starting"),
        "first log line: {first}"
    );
    let out = std::process::Command::new(crate::support::worker::BIN)
        .arg("--version")
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("runs-replicator {}", runs_replicator::version::line())
    );
    // Its series, not its HELP line ("# HELP runs_replicator_leader 1 while ...").
    assert!(
        metrics.contains("\nruns_replicator_leader{source=\"default\"} 1\n"),
        "{metrics}"
    );
    assert!(
        metrics.contains("# TYPE runs_replicator_flush_duration_seconds histogram")
            || !metrics.contains("runs_replicator_flush_duration_seconds")
    );
    assert_eq!(worker.get("/nope").unwrap().0, 404);
}

/// The worker turns transparent huge pages off for itself (their page zeroing was ~12% of its CPU
/// in a drain, BENCHMARKS.md); the kernel reports it per process.
#[tokio::test]
async fn the_worker_runs_without_transparent_huge_pages() {
    let env = TestEnv::new("ops_thp").await;
    let worker = start_worker(&env, "").await;
    let status = std::fs::read_to_string(format!("/proc/{}/status", worker.child.id())).unwrap();
    let Some(line) = status.lines().find(|l| l.starts_with("THP_enabled:")) else {
        println!("this kernel does not report THP_enabled (before Linux 5.0); nothing to check");
        return;
    };
    println!("worker /proc/<pid>/status: {line}");
    assert_eq!(line.split_whitespace().nth(1), Some("0"), "{line}");
}

#[tokio::test]
async fn logs_are_json_lines_when_asked() {
    let env = TestEnv::new("ops_json").await;
    let port = process::free_port();
    let config = env.write_config(port, "");
    let mut w = Worker::start(&config, port, &[("RUNS_REPLICATOR_LOG_FORMAT", "json")]);
    w.wait_ready(Duration::from_secs(30)).await;
    assert_eq!(w.terminate().code(), Some(0));
    let log = w.log_text();
    let mut messages = Vec::new();
    for line in log.lines() {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        assert!(
            v["level"].is_string() && v["timestamp"].is_string(),
            "{line}"
        );
        messages.push(v["message"].as_str().unwrap_or_default().to_string());
    }
    for expected in [
        "leader lock acquired",
        "leader: streaming",
        "stream closed after flushing and acknowledging",
    ] {
        assert!(
            messages.iter().any(|m| m.contains(expected)),
            "{expected:?} not logged: {messages:?}"
        );
    }
}

#[tokio::test]
async fn help_and_version() {
    let dir = process::temp_dir("ops_cli");
    let out = std::process::Command::new(worker::BIN)
        .arg("--version")
        .output()
        .unwrap();
    assert!(out.status.success());
    // The version, then what it is compatible with (src/version.rs).
    let version = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert!(
        version.starts_with(&format!(
            "runs-replicator {} (commit ",
            env!("CARGO_PKG_VERSION")
        )),
        "{version}"
    );
    assert!(version.contains("trigger.dev v"), "{version}");
    let out = std::process::Command::new(worker::BIN)
        .arg("--help")
        .env("DATABASE_URL", "postgres://u:help-secret@h/db")
        .env("RUNS_REPLICATOR_CONFIG", dir.join("none.toml"))
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    for flag in [
        "--config",
        "--check-replica-identity",
        "--format",
        "--health-check",
        "--postgres-url",
    ] {
        assert!(help.contains(flag), "{flag} missing from --help:\n{help}");
    }
    assert!(!help.contains("help-secret"));
}

#[tokio::test]
async fn the_daemon_refuses_to_start_on_a_failed_preflight() {
    let env = TestEnv::new("ops_refuse").await;
    env.pg_client()
        .await
        .batch_execute("ALTER TABLE task_run_v2 REPLICA IDENTITY DEFAULT")
        .await
        .unwrap();
    let port = process::free_port();
    let mut w = Worker::start(&env.write_config(port, ""), port, &[]);
    let status = wait_for("the worker to exit", Duration::from_secs(20), || {
        let s = w.child.try_wait().ok().flatten();
        async move { s }
    })
    .await;
    assert_eq!(status.code(), Some(1));
    let log = w.log_text();
    let line = log
        .lines()
        .find(|l| l.contains("preflight failed"))
        .expect("says why");
    assert!(
        line.contains("ALTER TABLE \"public\".\"task_run_v2\" REPLICA IDENTITY FULL"),
        "{line}"
    );
}
