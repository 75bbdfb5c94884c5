//! `--check-replica-identity` against real servers: exit codes, the failing check named with its
//! target, and the SQL that fixes it.

use std::time::{Duration, Instant};

use crate::support::{TestEnv, process, worker};

fn stdout(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stdout).to_string()
}

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).to_string()
}

/// Runs the preflight with the environment's config plus `overrides`; checks that no password
/// shows up in its output.
fn run(env: &TestEnv, overrides: &str, extra: &[&str]) -> std::process::Output {
    let config = env.write_config(process::free_port(), overrides);
    let out = worker::preflight(&config, extra);
    let all = format!("{}{}", stdout(&out), stderr(&out));
    assert!(
        !all.contains(crate::support::postgres::SUPERUSER_PASSWORD),
        "password leaked:\n{all}"
    );
    out
}

#[tokio::test]
async fn passes_on_the_shipped_schema() {
    let env = TestEnv::new("pf_pass").await;
    let out = run(&env, "", &[]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    let text = stdout(&out);
    assert!(text.contains("0 failed"), "{text}");
    assert!(
        text.contains("replica_identity") && text.contains("full (relreplident = 'f')"),
        "{text}"
    );

    let out = run(&env, "", &["--format", "json"]);
    assert_eq!(out.status.code(), Some(0));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json report");
    assert_eq!(report["ok"], true);
    let checks = report["checks"].as_array().unwrap();
    for name in [
        "wal_level",
        "replica_identity",
        "table_columns",
        "publication",
        "slot",
        "clickhouse_table",
        "clickhouse_columns",
    ] {
        assert!(
            checks.iter().any(|c| c["check"] == name),
            "{name} missing in {report}"
        );
    }
    assert!(checks.iter().all(|c| c["status"] != "fail"), "{report}");
}

/// Asserts exit 1 and that the report names `check` failing on `target` with `fix`.
fn assert_fails(out: &std::process::Output, check: &str, target: &str, fix: &str) {
    let text = stdout(out);
    assert_eq!(out.status.code(), Some(1), "{text}{}", stderr(out));
    let line = text
        .lines()
        .find(|l| l.contains("FAIL") && l.contains(check) && l.contains(target))
        .unwrap_or_else(|| panic!("no FAIL line for {check} {target}:\n{text}"));
    let fix_line = text
        .lines()
        .skip_while(|l| *l != line)
        .nth(1)
        .unwrap_or_default();
    assert!(
        fix_line.contains("fix:") && fix_line.contains(fix),
        "fix {fix:?} not under {line:?}:\n{text}"
    );
}

#[tokio::test]
async fn fails_on_replica_identity_default() {
    let env = TestEnv::new("pf_identity").await;
    env.pg_client()
        .await
        .batch_execute("ALTER TABLE task_run_v2 REPLICA IDENTITY DEFAULT")
        .await
        .unwrap();
    let out = run(&env, "", &[]);
    assert_fails(
        &out,
        "replica_identity",
        "\"public\".\"task_run_v2\"",
        "ALTER TABLE \"public\".\"task_run_v2\" REPLICA IDENTITY FULL;",
    );
    assert!(stdout(&out).contains("default (relreplident = 'd')"));
    // The other table is fine and says so.
    assert!(
        stdout(&out)
            .lines()
            .any(|l| l.contains("ok") && l.contains("replica_identity") && l.contains("TaskRun"))
    );
}

#[tokio::test]
async fn a_publication_lacking_task_run_v2_is_added_to_named_or_refused() {
    let env = TestEnv::new("pf_pub_table").await;
    env.pg_client()
        .await
        .batch_execute(&format!(
            "CREATE PUBLICATION {} FOR TABLE \"TaskRun\"",
            env.publication
        ))
        .await
        .unwrap();
    let sql = format!(
        "ALTER PUBLICATION \"{}\" ADD TABLE \"public\".\"task_run_v2\";",
        env.publication
    );
    eprintln!("inject: a publication without task_run_v2; check: the worker adds it (pass)");
    let out = run(&env, "", &[]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    assert!(stdout(&out).contains("added at start"), "{}", stdout(&out));

    eprintln!(
        "inject: the same, create_publication = false, the default tables; check: exit 0, a warn \
         line with the SQL to run"
    );
    let out = run(&env, "[postgres]\ncreate_publication = false\n", &[]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    let line = text
        .lines()
        .position(|l| l.contains("warn") && l.contains("publication_table"))
        .unwrap_or_else(|| panic!("no warn line:\n{text}"));
    assert!(text.lines().nth(line + 1).unwrap().contains(&sql), "{text}");

    eprintln!("inject: the same with task_run_v2 named alone; check: exit 1 with the SQL");
    let named = "[postgres]\ncreate_publication = false\ntables = [\"task_run_v2\"]\n\
                 generations = { task_run_v2 = 1 }\n";
    let out = run(&env, named, &[]);
    assert_fails(
        &out,
        "publication_table",
        "\"public\".\"task_run_v2\"",
        &sql,
    );
}

#[tokio::test]
async fn passes_on_trigger_devs_schema_with_taskrun_alone() {
    let env = TestEnv::new("pf_taskrun_alone").await;
    env.pg_client()
        .await
        .batch_execute("DROP TABLE task_run_v2")
        .await
        .unwrap();
    eprintln!(
        "inject: trigger.dev's schema (\"TaskRun\" alone), the default tables; check: exit 0, \
         task_run_v2 reported as not existing yet, no advice to create it"
    );
    let out = run(&env, "", &[]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}{}", stderr(&out));
    assert!(
        text.lines()
            .any(|l| l.contains("table_exists") && l.contains("does not exist yet")),
        "{text}"
    );
    assert!(!text.contains("create it"), "{text}");

    eprintln!("inject: a schema that has none of the tables; check: exit 1, fix names the schema");
    let out = run(&env, "[postgres]\nschema = \"nowhere\"\n", &[]);
    assert_fails(
        &out,
        "table_exists",
        "\"nowhere\".\"TaskRun\"",
        "none of postgres.tables exists: check postgres.schema",
    );
}

#[tokio::test]
async fn fails_when_the_publication_does_not_publish_delete() {
    let env = TestEnv::new("pf_pub_delete").await;
    env.pg_client()
        .await
        .batch_execute(&format!(
            "CREATE PUBLICATION {} FOR TABLE \"TaskRun\", task_run_v2 WITH (publish = 'insert, update')",
            env.publication
        ))
        .await
        .unwrap();
    let out = run(&env, "", &[]);
    assert_fails(
        &out,
        "publication_actions",
        &env.publication,
        "SET (publish = 'insert, update, delete')",
    );
    assert!(stdout(&out).contains("publish = 'insert, update'"));
}

#[tokio::test]
async fn fails_when_the_publication_is_missing_and_may_not_be_created() {
    let env = TestEnv::new("pf_pub_missing").await;
    let out = run(&env, "[postgres]\ncreate_publication = false\n", &[]);
    assert_fails(&out, "publication", &env.publication, "CREATE PUBLICATION");
}

#[tokio::test]
async fn fails_on_wal_level_replica() {
    let cluster = crate::support::PgCluster::start(&[("wal_level", "replica")]);
    let mut env = TestEnv::new("pf_wal").await;
    let db = cluster.create_database("pf_wal").await;
    let overrides = format!("[postgres]\nurl = \"{}\"\n", cluster.url(&db));
    env.label = "pf_wal_replica".into();
    let out = run(&env, &overrides, &[]);
    assert_fails(
        &out,
        "wal_level",
        "server",
        "ALTER SYSTEM SET wal_level = logical;",
    );
    assert!(
        stdout(&out)
            .lines()
            .any(|l| l.contains("wal_level") && l.contains("replica"))
    );
}

#[tokio::test]
async fn fails_on_a_configured_table_that_does_not_exist() {
    let env = TestEnv::new("pf_no_table").await;
    let out = run(
        &env,
        "[postgres]\ntables = [\"TaskRun\", \"task_run_v3\"]\ngenerations = { TaskRun = 0, task_run_v3 = 1 }\n",
        &[],
    );
    assert_fails(
        &out,
        "table_exists",
        "\"public\".\"task_run_v3\"",
        "config/postgres",
    );
}

#[tokio::test]
async fn fails_when_the_clickhouse_runs_table_is_missing() {
    let env = TestEnv::new("pf_ch_table").await;
    env.ch_client()
        .query(&format!("DROP TABLE {}.task_runs_v2", env.ch_db))
        .execute()
        .await
        .unwrap();
    let out = run(&env, "", &[]);
    assert_fails(
        &out,
        "clickhouse_table",
        &format!("{}.task_runs_v2", env.ch_db),
        "config/clickhouse/002_task_runs_v2.sql",
    );
}

#[tokio::test]
async fn fails_when_a_clickhouse_column_is_missing() {
    let env = TestEnv::new("pf_ch_column").await;
    env.ch_client()
        .query(&format!(
            "ALTER TABLE {}.task_runs_v2 DROP COLUMN region",
            env.ch_db
        ))
        .execute()
        .await
        .unwrap();
    let out = run(&env, "", &[]);
    assert_fails(
        &out,
        "clickhouse_columns",
        "task_runs_v2",
        "ADD COLUMN region String;",
    );
}

/// Exit 2, one line on stderr that contains `needle`, within 10 seconds.
fn assert_cannot_check(env: &TestEnv, overrides: &str, needle: &str) {
    let started = Instant::now();
    let out = run(env, overrides, &[]);
    let elapsed = started.elapsed();
    let err = stderr(&out);
    assert_eq!(
        out.status.code(),
        Some(2),
        "stdout:{}\nstderr:{err}",
        stdout(&out)
    );
    assert!(elapsed < Duration::from_secs(10), "took {elapsed:?}");
    assert_eq!(err.trim_end().lines().count(), 1, "one line: {err}");
    assert!(err.contains(needle), "{needle:?} not in {err}");
}

#[tokio::test]
async fn unreachable_postgres_exits_2_with_one_line() {
    let env = TestEnv::new("pf_pg_down").await;
    let port = process::free_port();
    assert_cannot_check(
        &env,
        &format!("[postgres]\nurl = \"postgres://postgres:hunter2@127.0.0.1:{port}/trigger\"\n"),
        &format!("cannot connect to Postgres at postgres://postgres:***@127.0.0.1:{port}/trigger"),
    );
}

#[tokio::test]
async fn unresponsive_postgres_exits_2_within_the_timeout() {
    // A listener that accepts and never answers: the startup handshake hangs.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let env = TestEnv::new("pf_pg_hang").await;
    assert_cannot_check(
        &env,
        &format!(
            "[postgres]\nurl = \"postgres://postgres@127.0.0.1:{port}/trigger\"\nconnect_timeout_ms = 2000\n"
        ),
        "no answer within",
    );
    drop(listener);
}

#[tokio::test]
async fn unreachable_clickhouse_exits_2_with_one_line() {
    let env = TestEnv::new("pf_ch_down").await;
    let port = process::free_port();
    assert_cannot_check(
        &env,
        &format!("[clickhouse]\nurl = \"http://default:chsecret@127.0.0.1:{port}\"\n"),
        &format!("cannot check ClickHouse at http://127.0.0.1:{port}"),
    );
}

#[tokio::test]
async fn a_malformed_config_exits_2_naming_file_and_key() {
    let dir = process::temp_dir("pf_badcfg");
    let path = dir.join("bad.toml");
    std::fs::write(&path, "[batch]\nmax_rows = \"lots\"\n").unwrap();
    let started = Instant::now();
    let out = worker::preflight(&path, &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(started.elapsed() < Duration::from_secs(10));
    let err = stderr(&out);
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(
        err.contains("bad.toml") && err.contains("batch.max_rows"),
        "{err}"
    );

    std::fs::write(&path, "[postgres]\nslot = \"Has-Dash\"\n").unwrap();
    let out = worker::preflight(&path, &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("postgres.slot"), "{}", stderr(&out));
}

/// The `replication_role` check of a JSON report: (status, observed, fix).
fn role_verdict(out: &std::process::Output) -> (String, String, String) {
    let report: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("json report: {e}: {}{}", stdout(out), stderr(out)));
    let c = report["checks"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["check"] == "replication_role"))
        .unwrap_or_else(|| panic!("no replication_role check in {report}"))
        .clone();
    let s = |k: &str| c[k].as_str().unwrap_or_default().to_string();
    (s("status"), s("observed"), s("fix"))
}

/// Managed Postgres grants replication through roles of its own: the catalog reading finds them
/// on a real server. A throwaway cluster of its own, since the roles are cluster-wide and name
/// the provider to every other test's preflight: `rds_replication` (RDS/Aurora) made a member,
/// then Cloud SQL's `cloudsqlsuperuser` with its `cloudsql.logical_decoding` flag (a placeholder
/// setting here, set on the role) off, then on.
#[tokio::test]
async fn managed_provider_roles_grant_replication() {
    let cluster = crate::support::PgCluster::start(&[]);
    let db = cluster.create_database("pf_managed").await;
    let admin = cluster.connect(&db).await;
    let role = "rr_managed";
    admin
        .batch_execute(&format!(
            "CREATE ROLE rds_replication NOLOGIN; CREATE ROLE rds_superuser NOLOGIN; \
             CREATE ROLE {role} LOGIN NOREPLICATION PASSWORD 'managed-pw'; \
             GRANT CONNECT ON DATABASE {db} TO {role}"
        ))
        .await
        .unwrap();
    let env = TestEnv::new("pf_managed").await;
    let overrides = format!(
        "[postgres]\nurl = \"{}\"\n",
        cluster.url_as(role, "managed-pw", &db)
    );
    let json = ["--format", "json"];

    let (status, observed, fix) = role_verdict(&run(&env, &overrides, &json));
    assert_eq!(
        (status.as_str(), observed.as_str()),
        ("fail", "no REPLICATION attribute (Amazon RDS/Aurora)")
    );
    assert!(
        fix.starts_with(&format!("GRANT rds_replication TO \"{role}\";")),
        "{fix}"
    );
    admin
        .batch_execute(&format!("GRANT rds_replication TO {role}"))
        .await
        .unwrap();
    let (status, observed, _) = role_verdict(&run(&env, &overrides, &json));
    assert_eq!(
        (status.as_str(), observed.as_str()),
        ("pass", "member of rds_replication (Amazon RDS/Aurora)")
    );
    println!("checked: RDS: fails with GRANT rds_replication, passes as its member");

    admin
        .batch_execute(&format!(
            "REVOKE rds_replication FROM {role}; DROP ROLE rds_replication; DROP ROLE rds_superuser; \
             CREATE ROLE cloudsqlsuperuser NOLOGIN; GRANT cloudsqlsuperuser TO {role}; \
             ALTER ROLE {role} SET cloudsql.logical_decoding = 'off'"
        ))
        .await
        .unwrap();
    let (status, observed, fix) = role_verdict(&run(&env, &overrides, &json));
    assert_eq!(
        (status.as_str(), observed.as_str()),
        (
            "fail",
            "member of cloudsqlsuperuser, cloudsql.logical_decoding off (Cloud SQL)"
        )
    );
    assert!(fix.contains("cloudsql.logical_decoding=on"), "{fix}");
    admin
        .batch_execute(&format!(
            "ALTER ROLE {role} SET cloudsql.logical_decoding = 'on'"
        ))
        .await
        .unwrap();
    let (status, observed, _) = role_verdict(&run(&env, &overrides, &json));
    assert_eq!(
        (status.as_str(), observed.as_str()),
        (
            "pass",
            "member of cloudsqlsuperuser, cloudsql.logical_decoding on (Cloud SQL)"
        )
    );
    println!("checked: Cloud SQL: fails with the flag off, passes with it on");
}
