//! Configuration rules that cross the process boundary: trigger.dev's `RUN_REPLICATION_*`
//! environment as the worker process reads it (disabled, log level, ignored names), refused
//! generations, and a publication name that only streams when it is quoted.

use std::path::PathBuf;
use std::process::ExitStatus;
use std::time::Duration;

use crate::support::expect::{actual_rows, assert_converges};
use crate::support::runs::insert;
use crate::support::{TestEnv, Worker, process};
use runs_replicator::testing::wait::wait_for;

/// A config whose Postgres and ClickHouse do not exist: a worker that starts keeps retrying
/// them, so an exit can only come from the rule under test.
fn offline_config(label: &str) -> (PathBuf, u16) {
    let dir = process::temp_dir(label);
    let metrics = process::free_port();
    let dead = process::free_port();
    let text = format!(
        r#"[postgres]
url = "postgres://postgres@127.0.0.1:{dead}/trigger"
connect_timeout_ms = 500

[clickhouse]
url = "http://127.0.0.1:{dead}"

[metrics]
listen = "127.0.0.1:{metrics}"

[log]
level = "info"
"#
    );
    let path = dir.join("runs-replicator.toml");
    std::fs::write(&path, text).unwrap();
    (path, metrics)
}

async fn wait_exit(w: &mut Worker, timeout: Duration) -> ExitStatus {
    wait_for("the worker to exit", timeout, || {
        let s = w.child.try_wait().ok().flatten();
        async move { s }
    })
    .await
}

#[tokio::test]
async fn run_replication_enabled_0_exits_0_with_one_line() {
    let (config, port) = offline_config("cfg_disabled");
    eprintln!(
        "inject: RUN_REPLICATION_ENABLED=0, servers that do not exist; \
         check: exit 0 within 10 s, exactly one line saying replication is disabled"
    );
    let mut w = Worker::start(&config, port, &[("RUN_REPLICATION_ENABLED", "0")]);
    let status = wait_exit(&mut w, Duration::from_secs(10)).await;
    let log = w.log_text();
    assert_eq!(status.code(), Some(0), "{log}");
    assert_eq!(log.lines().count(), 1, "one line:\n{log}");
    assert!(
        log.contains("RUN_REPLICATION_ENABLED=\"0\"") && log.contains("replication is disabled"),
        "{log}"
    );

    eprintln!(
        "inject: RUN_REPLICATION_ENABLED unset (a user who never heard of it), then =1; \
         check: the worker keeps running (retrying the absent Postgres) for 2 s"
    );
    for envs in [&[][..], &[("RUN_REPLICATION_ENABLED", "1")][..]] {
        let mut w = Worker::start(&config, port, envs);
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert!(
            w.child.try_wait().unwrap().is_none(),
            "{envs:?}: the worker exited:\n{}",
            w.log_text()
        );
        w.terminate();
    }
}

#[tokio::test]
async fn run_replication_log_level_log_still_logs() {
    let env = TestEnv::new("cfg_loglevel").await;
    env.pg_client()
        .await
        .batch_execute("ALTER TABLE task_run_v2 REPLICA IDENTITY DEFAULT")
        .await
        .unwrap();
    eprintln!(
        "inject: RUN_REPLICATION_LOG_LEVEL=log (trigger.dev's quietest level) and a failing \
         preflight (task_run_v2 REPLICA IDENTITY DEFAULT); check: exit 1, the ERROR line saying \
         why is logged, no INFO or DEBUG line"
    );
    let port = process::free_port();
    let config = env.write_config(port, "");
    let mut w = Worker::start(&config, port, &[("RUN_REPLICATION_LOG_LEVEL", "log")]);
    let status = wait_exit(&mut w, Duration::from_secs(20)).await;
    let log = w.log_text();
    assert_eq!(status.code(), Some(1), "{log}");
    assert!(
        log.lines()
            .any(|l| l.contains("ERROR") && l.contains("preflight failed")),
        "the error is logged:\n{log}"
    );
    assert!(
        !log.lines()
            .any(|l| l.contains(" INFO ") || l.contains("DEBUG")),
        "log maps to error:\n{log}"
    );
}

#[tokio::test]
async fn unused_trigger_dev_variables_are_named_in_one_warn_line() {
    let (config, port) = offline_config("cfg_ignored");
    let ignored = [
        ("RUN_REPLICATION_REDIS_HOST", "redis"),
        ("RUN_REPLICATION_REDIS_PASSWORD", "redis-secret"),
        ("RUN_REPLICATION_LEADER_LOCK_TIMEOUT_MS", "30000"),
        ("RUN_REPLICATION_KEEP_ALIVE_ENABLED", "1"),
    ];
    let mut envs = ignored.to_vec();
    envs.push(("RUN_REPLICATION_SLOT_NAME", "honoured_slot"));
    eprintln!(
        "inject: four RUN_REPLICATION_* names the worker has no use for and a honoured one; \
         check: one WARN line names exactly the four, no value is shown"
    );
    let mut w = Worker::start(&config, port, &envs);
    wait_for("the warnings", Duration::from_secs(10), || async {
        w.log_text().contains("WARN ignored:").then_some(())
    })
    .await;
    w.terminate();
    let log = w.log_text();
    let lines: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("WARN ignored:"))
        .collect();
    assert_eq!(lines.len(), 1, "{log}");
    let names = lines[0]
        .split_once("WARN ignored: ")
        .unwrap()
        .1
        .split_once(", because ")
        .unwrap_or_else(|| panic!("says why: {}", lines[0]))
        .0;
    let expected: Vec<&str> = ignored.iter().map(|(n, _)| *n).collect();
    assert_eq!(names, expected.join(", "));
    assert!(!log.contains("redis-secret"), "{log}");
}

#[tokio::test]
async fn bad_generations_exit_2_with_one_line() {
    let (config, port) = offline_config("cfg_generations");
    let cases = [
        (
            "RUNS_REPLICATOR_POSTGRES_GENERATIONS",
            "TaskRun=0",
            "\"TaskRun=0\"",
            "task_run_v2 has none",
        ),
        (
            "RUNS_REPLICATOR_POSTGRES_GENERATIONS",
            "TaskRun=1,task_run_v2=1",
            "\"TaskRun=1,task_run_v2=1\"",
            "TaskRun and task_run_v2 both have 1",
        ),
        (
            "RUN_REPLICATION_LEGACY_ORIGIN_GENERATION",
            "255",
            "\"255\"",
            "expected 0 to 254",
        ),
    ];
    for (name, value, shown, allowed) in cases {
        eprintln!(
            "inject: {name}={value}; check: exit 2, one line naming postgres.generations, the value, the variable and {allowed:?}"
        );
        // Accepted, the worker would keep retrying the absent servers: waited for 10 s at most.
        let mut w = Worker::start(&config, port, &[(name, value)]);
        let status = wait_exit(&mut w, Duration::from_secs(10)).await;
        let err = w.log_text();
        assert_eq!(status.code(), Some(2), "{name}={value}: {err}");
        assert_eq!(err.lines().count(), 1, "one line: {err}");
        assert!(
            err.contains(&format!("invalid postgres.generations = {shown}"))
                && err.contains(&format!("(from env {name})"))
                && err.contains(allowed),
            "{err}"
        );
    }
}

#[tokio::test]
async fn a_publication_name_with_upper_case_a_comma_and_quotes_streams() {
    let env = TestEnv::new("cfg_pub_name").await;
    let name = r#"Runs,Pub "Q" 'v1'"#;
    eprintln!(
        "inject: RUN_REPLICATION_PUBLICATION_NAME={name} (upper case, a comma, both quotes); \
         check: the worker creates that publication, streams from it, both tables converge"
    );
    let port = process::free_port();
    let config = env.write_config(port, "");
    let mut w = Worker::start(&config, port, &[("RUN_REPLICATION_PUBLICATION_NAME", name)]);
    w.wait_ready(Duration::from_secs(30)).await;
    let pg = env.pg_client().await;
    let found: i64 = pg
        .query_one(
            "SELECT count(*) FROM pg_publication WHERE pubname = $1",
            &[&name],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(found, 1, "the publication is named exactly {name}");
    insert(&pg, "\"TaskRun\"", "run_pub_name", &[]).await;
    insert(&pg, "task_run_v2", "2bq8aDrQkxTvTwXAhFCJrQEXbtE", &[]).await;
    wait_for(
        "both runs in ClickHouse",
        Duration::from_secs(30),
        || async {
            let rows = actual_rows(&env).await;
            (rows.contains_key("run_pub_name") && rows.contains_key("2bq8aDrQkxTvTwXAhFCJrQEXbtE"))
                .then_some(())
        },
    )
    .await;
    assert_converges(&env, Duration::from_secs(30)).await;
    drop(w);
}
