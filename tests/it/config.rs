//! Configuration rules that cross the process boundary: trigger.dev's `RUN_REPLICATION_*`
//! environment as the worker process reads it (its switch that never stops the worker, log
//! levels, ignored names), the worker's own switch, log filters that would silence it, refused
//! generations and source entries, and a publication name that only streams when it is quoted.

use std::path::PathBuf;
use std::process::ExitStatus;
use std::time::Duration;

use crate::support::expect::{actual_rows, assert_converges};
use crate::support::runs::insert;
use crate::support::{TestEnv, Worker, process, worker};
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

/// Runs a one-shot subcommand with `config` and `envs`.
fn one_shot(
    config: &std::path::Path,
    args: &[&str],
    envs: &[(&str, &str)],
) -> std::process::Output {
    let mut cmd = worker::command(config);
    cmd.args(args).envs(envs.iter().copied());
    cmd.output().expect("run runs-replicator")
}

#[tokio::test]
async fn run_replication_enabled_0_stops_neither_the_worker_nor_a_one_shot() {
    let off = [("RUN_REPLICATION_ENABLED", "0")];
    let (config, port) = offline_config("cfg_disabled");
    eprintln!(
        "inject: RUN_REPLICATION_ENABLED=0 (trigger.dev's webapp switch, in a shared .env), \
         servers that do not exist; check: the daemon keeps running (retrying) for 2 s"
    );
    let mut w = Worker::start(&config, port, &off);
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        w.child.try_wait().unwrap().is_none(),
        "the worker exited:\n{}",
        w.log_text()
    );
    w.terminate();

    eprintln!(
        "inject: the same with a config file that does not exist, for verify and backfill; \
         check: exit 2 naming the file (never 0)"
    );
    let missing = config.with_file_name("missing.toml");
    for args in [&["verify"][..], &["backfill"][..]] {
        let out = one_shot(&missing, args, &off);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains("missing.toml"), "{args:?}: {err}");
    }

    let env = TestEnv::new("cfg_disabled_drift").await;
    let pg = env.pg_client().await;
    insert(&pg, "\"TaskRun\"", "run_not_in_clickhouse", &[]).await;
    let config = env.write_config(process::free_port(), "");
    eprintln!(
        "inject: drift (a run Postgres has and ClickHouse lacks), RUN_REPLICATION_ENABLED=0; \
         check: verify exits 1 naming it, backfill copies it (exit 0), verify then exits 0"
    );
    let out = one_shot(&config, &["verify"], &off);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("run_not_in_clickhouse"), "{text}");
    let out = one_shot(&config, &["backfill", "--payloads"], &off);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        actual_rows(&env)
            .await
            .contains_key("run_not_in_clickhouse")
    );
    let out = one_shot(&config, &["verify"], &off);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[tokio::test]
async fn the_workers_own_switch_keeps_it_up_streaming_nothing() {
    let env = TestEnv::new("cfg_switch").await;
    let port = process::free_port();
    let config = env.write_config(port, "");
    eprintln!(
        "inject: RUNS_REPLICATOR_ENABLED=0; check: it stays up, /healthz and /readyz answer 200 \
         saying disabled, no slot is created, a run written meanwhile is not streamed, SIGTERM \
         exits 0"
    );
    let mut w = Worker::start(&config, port, &[("RUNS_REPLICATOR_ENABLED", "0")]);
    w.wait_ready(Duration::from_secs(20)).await;
    let (status, body) = w.get("/readyz").unwrap();
    assert_eq!(status, 200);
    assert!(body.contains("disabled"), "{body}");
    assert_eq!(w.get("/healthz").unwrap().0, 200);
    let pg = env.pg_client().await;
    insert(&pg, "\"TaskRun\"", "run_while_disabled", &[]).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let slots: i64 = pg
        .query_one(
            "SELECT count(*) FROM pg_replication_slots WHERE slot_name = $1",
            &[&env.slot],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(slots, 0);
    assert!(actual_rows(&env).await.is_empty());
    assert_eq!(w.terminate().code(), Some(0), "{}", w.log_text());
}

#[tokio::test]
async fn configuration_warnings_show_at_every_level_and_silencing_filters_are_refused() {
    let (config, port) = offline_config("cfg_levels");
    let ignored = ("RUN_REPLICATION_REDIS_HOST", "redis");
    let cases: [(&str, &[(&str, &str)]); 4] = [
        (
            "trigger.dev's log level",
            &[("RUN_REPLICATION_LOG_LEVEL", "log")],
        ),
        (
            "its log level as the worker's own",
            &[("RUNS_REPLICATOR_LOG_LEVEL", "log")],
        ),
        ("warning", &[("RUNS_REPLICATOR_LOG_LEVEL", "warning")]),
        ("RUST_LOG empty", &[("RUST_LOG", "")]),
    ];
    for (what, envs) in cases {
        eprintln!(
            "inject: {what} {envs:?} and an ignored trigger.dev variable; check: the worker runs \
             and the WARN line naming the variable is logged"
        );
        let mut all = envs.to_vec();
        all.push(ignored);
        let mut w = Worker::start(&config, port, &all);
        wait_for("the warning", Duration::from_secs(10), || {
            let log = w.log_text();
            async move {
                log.contains("WARN ignored: RUN_REPLICATION_REDIS_HOST")
                    .then_some(())
            }
        })
        .await;
        assert!(
            w.child.try_wait().unwrap().is_none(),
            "{what}: {}",
            w.log_text()
        );
        w.terminate();
    }
    for (name, value) in [
        ("RUNS_REPLICATOR_LOG_LEVEL", "warnings"),
        ("RUNS_REPLICATOR_LOG_LEVEL", "off"),
        ("RUST_LOG", "hyper"),
    ] {
        eprintln!(
            "inject: {name}={value}; check: exit 2, one line saying it would silence the worker"
        );
        let mut w = Worker::start(&config, port, &[(name, value)]);
        let status = wait_exit(&mut w, Duration::from_secs(10)).await;
        let err = w.log_text();
        assert_eq!(status.code(), Some(2), "{name}={value}: {err}");
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(
            err.contains("invalid log.level")
                && err.contains(&format!("(from env {name})"))
                && err.contains("silence"),
            "{err}"
        );
    }
}

#[tokio::test]
async fn a_source_without_a_name_exits_2_naming_the_entry() {
    let (config, port) = offline_config("cfg_source_name");
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str(
        "\n[[postgres.sources]]\nurl = \"postgres://repl:ops-Secret-9@ops.example:6543/run_ops\"\n",
    );
    std::fs::write(&config, text).unwrap();
    eprintln!(
        "inject: a [[postgres.sources]] entry without name; check: exit 2, one line naming the \
         entry by position and host, the password hidden"
    );
    let mut w = Worker::start(&config, port, &[]);
    let status = wait_exit(&mut w, Duration::from_secs(10)).await;
    let err = w.log_text();
    assert_eq!(status.code(), Some(2), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("invalid postgres.sources[0].name")
            && err.contains("needs a name")
            && err.contains("entry 1 of 1, url postgres://repl:***@ops.example:6543/run_ops"),
        "{err}"
    );
    assert!(!err.contains("ops-Secret-9"), "{err}");
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
