//! The worker dropped into a trigger.dev install as it is: trigger.dev's own environment
//! (its compose file's `DATABASE_URL`, its ClickHouse URLs, its `RUN_REPLICATION_*` values), a
//! database with trigger.dev's schema (`"TaskRun"` alone), and `task_run_v2` created later
//! while the worker streams.

use std::path::Path;
use std::time::Duration;

use crate::support::expect::{actual_rows, assert_converges};
use crate::support::postgres::SUPERUSER_PASSWORD;
use crate::support::runs::{insert, insert_many_sql};
use crate::support::{TestEnv, Worker, clickhouse, process};
use runs_replicator::testing::wait::wait_for;

/// trigger.dev's `CLICKHOUSE_PASSWORD` as its generate-secrets.sh writes one.
const CH_PASSWORD: &str = "a1b2c3d4e5f60718293a4b5c6d7e8f90";

/// The ClickHouse database trigger.dev's migrations create; the worker's default.
const CH_DATABASE: &str = "trigger_dev";

/// `task_run_v2` as the seed's migrations create it (config/postgres/003_task_run_v2.sql: the
/// table, its indexes, REPLICA IDENTITY FULL).
fn task_run_v2_ddl() -> String {
    std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("config/postgres/003_task_run_v2.sql"),
    )
    .unwrap()
}

/// Makes `env`'s databases look like a trigger.dev install: `"TaskRun"` alone in Postgres, the
/// runs tables in ClickHouse's `trigger_dev` database.
async fn trigger_dev_install(env: &mut TestEnv) {
    env.pg_client()
        .await
        .batch_execute("DROP TABLE task_run_v2")
        .await
        .unwrap();
    let ch = env.ch.client("default");
    ch.query(&format!("DROP DATABASE IF EXISTS {CH_DATABASE}"))
        .execute()
        .await
        .unwrap();
    for statement in clickhouse::schema_statements(CH_DATABASE) {
        ch.query(&statement).execute().await.unwrap();
    }
    env.ch_db = CH_DATABASE.into();
}

/// trigger.dev's environment, from hosting/docker/webapp/docker-compose.yml (snapshot
/// b082e44): `DATABASE_URL`'s default, the webapp's `CLICKHOUSE_URL` and
/// `RUN_REPLICATION_CLICKHOUSE_URL`, `RUN_REPLICATION_ENABLED`, `RUN_REPLICATION_LOG_LEVEL`; the
/// host names are this test's servers. `RUN_REPLICATION_SLOT_NAME` (trigger.dev's variable)
/// keeps the slot apart from other tests on the shared cluster.
fn trigger_dev_env(env: &TestEnv) -> Vec<(String, String)> {
    let ch = env.ch.url.trim_start_matches("http://");
    vec![
        (
            "DATABASE_URL".into(),
            format!(
                "postgresql://postgres:{SUPERUSER_PASSWORD}@{}:{}/{}?schema=public&sslmode=disable",
                env.pg.host, env.pg.port, env.pg_db
            ),
        ),
        (
            "CLICKHOUSE_URL".into(),
            format!("http://default:{CH_PASSWORD}@{ch}?secure=false"),
        ),
        ("RUN_REPLICATION_ENABLED".into(), "1".into()),
        (
            "RUN_REPLICATION_CLICKHOUSE_URL".into(),
            format!("http://default:{CH_PASSWORD}@{ch}"),
        ),
        ("RUN_REPLICATION_LOG_LEVEL".into(), "info".into()),
        ("RUN_REPLICATION_SLOT_NAME".into(), env.slot.clone()),
    ]
}

fn start(env: &TestEnv, port: u16, extra: &[(&str, &str)]) -> Worker {
    let vars = trigger_dev_env(env);
    let mut envs: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    // Not trigger.dev's: tests run side by side, each worker needs its own port.
    let listen = format!("127.0.0.1:{port}");
    envs.push(("RUNS_REPLICATOR_METRICS_LISTEN", &listen));
    envs.extend_from_slice(extra);
    let dir = process::temp_dir(&format!("dropin-{}", env.label));
    Worker::start_from_env(&dir, port, &envs)
}

/// Waits until the worker's log says `line`.
async fn wait_for_log(w: &Worker, line: &str) {
    wait_for(
        &format!("the log to say {line:?}"),
        Duration::from_secs(30),
        || {
            let said = w.log_text().contains(line);
            async move { said.then_some(()) }
        },
    )
    .await;
}

async fn wait_for_runs(env: &TestEnv, ids: &[String], timeout: Duration) {
    wait_for("the runs in ClickHouse", timeout, || async {
        let rows = actual_rows(env).await;
        ids.iter().all(|id| rows.contains_key(id)).then_some(())
    })
    .await;
}

fn ids(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}{i:04}")).collect()
}

#[tokio::test]
async fn trigger_dev_environment_alone_then_task_run_v2_joins_while_streaming() {
    let mut env = TestEnv::new("dropin_env").await;
    trigger_dev_install(&mut env).await;
    env.tables = vec![("\"TaskRun\"", 0)];
    let pg = env.pg_client().await;
    eprintln!(
        "inject: nothing but trigger.dev's environment (compose DATABASE_URL with \
         ?schema=public&sslmode=disable, CLICKHOUSE_URL with ?secure=false, \
         RUN_REPLICATION_CLICKHOUSE_URL, RUN_REPLICATION_ENABLED=1, RUN_REPLICATION_LOG_LEVEL=info) \
         against \"TaskRun\" alone; check: ready, runs arrive"
    );
    let port = process::free_port();
    let mut w = start(&env, port, &[]);
    w.wait_ready(Duration::from_secs(60)).await;
    let first = ids("legacy_a", 20);
    pg.batch_execute(&insert_many_sql("\"TaskRun\"", &first, &[]))
        .await
        .unwrap();
    wait_for_runs(&env, &first, Duration::from_secs(30)).await;
    let log = w.log_text();
    assert!(
        log.contains("task_run_v2 does not exist (yet)"),
        "said once that task_run_v2 is absent:\n{log}"
    );
    assert_eq!(
        log.matches("task_run_v2 does not exist (yet)").count(),
        1,
        "{log}"
    );
    assert!(
        !log.contains(CH_PASSWORD) && !log.contains(SUPERUSER_PASSWORD),
        "{log}"
    );
    assert!(
        log.lines()
            .any(|l| l.contains("WARN") && l.contains("RUN_REPLICATION_ENABLED=1: ")),
        "warned that trigger.dev's own service may run too:\n{log}"
    );

    eprintln!(
        "inject: trigger.dev's migration creates task_run_v2 (REPLICA IDENTITY FULL) while the \
         worker streams, with runs written into it at once (before the worker sees it), and \
         more runs into both tables meanwhile; check: every run of both tables arrives, \
         ClickHouse ends equal to Postgres"
    );
    pg.batch_execute(&task_run_v2_ddl()).await.unwrap();
    let early = ids("2bq8aDrQkxTvTwXAhFCJrQE", 30);
    pg.batch_execute(&insert_many_sql("task_run_v2", &early, &[]))
        .await
        .unwrap();
    env.tables = vec![("\"TaskRun\"", 0), ("task_run_v2", 1)];
    let mut late = Vec::new();
    for i in 0..30 {
        let id = format!("2bq8aDrQkxTvTwXAhFCJrLATE{i:02}");
        insert(&pg, "task_run_v2", &id, &[]).await;
        insert(&pg, "\"TaskRun\"", &format!("legacy_b{i:04}"), &[]).await;
        late.push(id);
        tokio::time::sleep(Duration::from_millis(400)).await;
    }
    // An update of an early run after it joined: the streamed change wins over the copy.
    pg.batch_execute(&format!(
        "UPDATE task_run_v2 SET status = 'COMPLETED_SUCCESSFULLY', \"updatedAt\" = now() WHERE id = '{}'",
        early[0]
    ))
    .await
    .unwrap();
    wait_for_runs(
        &env,
        &[early.clone(), late.clone()].concat(),
        Duration::from_secs(60),
    )
    .await;
    assert_converges(&env, Duration::from_secs(30)).await;
    let (status, body) = w.get("/readyz").unwrap();
    assert_eq!(status, 200, "{body}");
    // The line is logged once the copy's checkpoints are written, after its rows (and a log
    // line reaches the file from the writer thread, a moment after it is logged).
    wait_for_log(&w, "task_run_v2 copied").await;
    let log = w.log_text();
    assert!(
        !log.contains(CH_PASSWORD) && !log.contains(SUPERUSER_PASSWORD),
        "{log}"
    );
    w.terminate();
}

/// Copies the run `template` of `table` as `n` runs (ids `<prefix><number>`, 27 characters).
async fn clone_runs(
    pg: &tokio_postgres::Client,
    table: &str,
    template: &str,
    prefix: &str,
    n: usize,
) {
    let width = 27 - prefix.len();
    pg.batch_execute(&format!(
        "INSERT INTO {table} SELECT (json_populate_record(t, json_build_object(\
             'id', '{prefix}' || lpad(g::text, {width}, '0'), \
             'friendlyId', 'run_{prefix}' || g))).* \
         FROM {table} t, generate_series(1, {n}) g WHERE t.id = '{template}'"
    ))
    .await
    .unwrap();
}

/// The publication and slot trigger.dev's own service made: `"TaskRun"` alone.
async fn trigger_devs_publication_and_slot(env: &TestEnv, pg: &tokio_postgres::Client) {
    pg.batch_execute(&format!(
        "CREATE PUBLICATION \"{}\" FOR TABLE \"TaskRun\" WITH (publish = 'insert, update, delete')",
        env.publication
    ))
    .await
    .unwrap();
    pg.batch_execute(&format!(
        "SELECT pg_create_logical_replication_slot('{}', 'pgoutput')",
        env.slot
    ))
    .await
    .unwrap();
}

#[tokio::test]
async fn a_join_killed_half_way_is_finished_at_the_next_start() {
    let env = TestEnv::new("dropin_join_kill").await;
    let pg = env.pg_client().await;
    trigger_devs_publication_and_slot(&env, &pg).await;
    insert(&pg, "task_run_v2", "2bq8aDrQkxTvTwXAhFCJrQTMPL0", &[]).await;
    clone_runs(
        &pg,
        "task_run_v2",
        "2bq8aDrQkxTvTwXAhFCJrQTMPL0",
        "kv",
        40_000,
    )
    .await;
    eprintln!(
        "inject: a slot and publication that exist with \"TaskRun\" alone, task_run_v2 with \
         40,001 runs outside it; the worker is SIGKILLed as soon as it says task_run_v2 joined \
         (added, copy started); check: the next start copies it, ClickHouse ends equal to Postgres"
    );
    let port = process::free_port();
    let config = env.write_config(port, "");
    let mut w = Worker::start(&config, port, &[]);
    wait_for("the join to start", Duration::from_secs(60), || {
        let joined = w.log_text().contains("task_run_v2 joined the publication");
        async move { joined.then_some(()) }
    })
    .await;
    w.kill9();
    let log = w.log_text();
    assert!(
        !log.contains("task_run_v2 copied"),
        "the copy finished before the kill; the table is too small to catch it half-way:\n{log}"
    );
    let member: i64 = pg
        .query_one(
            "SELECT count(*) FROM pg_publication_tables WHERE pubname = $1 AND tablename = 'task_run_v2'",
            &[&env.publication],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(member, 1, "killed after the ALTER");
    insert(&pg, "task_run_v2", "2bq8aDrQkxTvTwXAhFCJrQAFTER", &[]).await;
    insert(&pg, "\"TaskRun\"", "legacy_after_kill", &[]).await;

    let mut w = Worker::start(&config, port, &[]);
    w.wait_ready(Duration::from_secs(120)).await;
    assert_converges(&env, Duration::from_secs(60)).await;
    let log = w.log_text();
    assert!(log.contains("task_run_v2 copied"), "{log}");
    w.terminate();
}

#[tokio::test]
async fn an_operators_backfill_of_the_table_never_stands_in_for_its_join() {
    let env = TestEnv::new("dropin_join_owner").await;
    let pg = env.pg_client().await;
    trigger_devs_publication_and_slot(&env, &pg).await;
    let runs = ids("2bq8aDrQkxTvTwXAhFCJrQOWN", 5);
    pg.batch_execute(&insert_many_sql("task_run_v2", &runs, &[]))
        .await
        .unwrap();
    eprintln!(
        "inject: an operator's `backfill --table task_run_v2 --payloads` finishes (the same \
         tables, window and payloads a join copies), then every run of task_run_v2 changes while \
         it is outside the publication (never streamed); check: the join at the worker's start \
         copies them again, its own job, and ClickHouse ends equal to Postgres"
    );
    let port = process::free_port();
    let config = env.write_config(port, "");
    let mut cmd = crate::support::worker::command(&config);
    cmd.args(["backfill", "--table", "task_run_v2", "--payloads"]);
    let out = cmd.output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    pg.batch_execute(
        "UPDATE task_run_v2 SET status = 'COMPLETED_SUCCESSFULLY', \"updatedAt\" = now()",
    )
    .await
    .unwrap();
    let mut w = Worker::start(&config, port, &[]);
    w.wait_ready(Duration::from_secs(60)).await;
    assert_converges(&env, Duration::from_secs(30)).await;
    wait_for_log(&w, "task_run_v2 copied").await;
    w.terminate();
}

#[tokio::test]
async fn a_join_waiting_for_a_lock_gives_up_and_retries_while_the_stream_goes_on() {
    let mut env = TestEnv::new("dropin_join_lock").await;
    let pg = env.pg_client().await;
    pg.batch_execute("DROP TABLE task_run_v2").await.unwrap();
    env.tables = vec![("\"TaskRun\"", 0)];
    let port = process::free_port();
    let config = env.write_config(
        port,
        "[postgres]\ntables = [\"TaskRun\", \"task_run_v2\"]\n\
         generations = { TaskRun = 0, task_run_v2 = 1 }\nquery_timeout_ms = 1500\n\
         slot_poll_interval_ms = 3000\n",
    );
    let mut w = Worker::start(&config, port, &[]);
    w.wait_ready(Duration::from_secs(60)).await;

    eprintln!(
        "inject: task_run_v2 created (with runs) while the worker streams, and at once a \
         transaction holding SHARE UPDATE EXCLUSIVE on it, which the join's ALTER PUBLICATION \
         waits for; check: the ALTER gives up after postgres.query_timeout_ms and is retried, \
         \"TaskRun\" keeps streaming and /readyz stays 200 meanwhile"
    );
    pg.batch_execute(&task_run_v2_ddl()).await.unwrap();
    let locker = env.pg_client().await;
    locker
        .batch_execute("BEGIN; LOCK TABLE task_run_v2 IN SHARE UPDATE EXCLUSIVE MODE")
        .await
        .unwrap();
    let v2 = ids("2bq8aDrQkxTvTwXAhFCJrQLCK", 5);
    pg.batch_execute(&insert_many_sql("task_run_v2", &v2, &[]))
        .await
        .unwrap();
    wait_for_log(&w, "the join failed; it is retried").await;
    assert!(
        w.log_text()
            .contains("canceling statement due to statement timeout"),
        "the ALTER gave up on its lock:\n{}",
        w.log_text()
    );
    insert(&pg, "\"TaskRun\"", "legacy_during_lock", &[]).await;
    wait_for_runs(
        &env,
        &["legacy_during_lock".to_string()],
        Duration::from_secs(15),
    )
    .await;
    let (status, body) = w.get("/readyz").unwrap();
    assert_eq!(status, 200, "{body}");

    eprintln!("inject: the lock released; check: task_run_v2 joins, ClickHouse equals Postgres");
    locker.batch_execute("COMMIT").await.unwrap();
    env.tables = vec![("\"TaskRun\"", 0), ("task_run_v2", 1)];
    wait_for_log(&w, "task_run_v2 copied").await;
    insert(&pg, "task_run_v2", "2bq8aDrQkxTvTwXAhFCJrQLCKAF", &[]).await;
    assert_converges(&env, Duration::from_secs(30)).await;
    w.terminate();
}

#[tokio::test]
async fn without_create_publication_the_sql_is_named_and_the_table_copied_once_added() {
    let env = TestEnv::new("dropin_join_manual").await;
    let pg = env.pg_client().await;
    trigger_devs_publication_and_slot(&env, &pg).await;
    let before = ids("2bq8aDrQkxTvTwXAhFCJrQMAN", 5);
    pg.batch_execute(&insert_many_sql("task_run_v2", &before, &[]))
        .await
        .unwrap();
    eprintln!(
        "inject: create_publication = false, the operator's publication without task_run_v2 (which \
         has runs); check: \"TaskRun\" streams, the worker names the ALTER PUBLICATION to run"
    );
    let port = process::free_port();
    let config = env.write_config(port, "[postgres]\ncreate_publication = false\n");
    let mut w = Worker::start(&config, port, &[]);
    w.wait_ready(Duration::from_secs(60)).await;
    let sql = format!(
        "ALTER PUBLICATION \"{}\" ADD TABLE \"public\".\"task_run_v2\";",
        env.publication
    );
    wait_for("the SQL to run", Duration::from_secs(30), || {
        let said = w.log_text().contains(&sql);
        async move { said.then_some(()) }
    })
    .await;
    insert(&pg, "\"TaskRun\"", "legacy_manual", &[]).await;
    wait_for_runs(
        &env,
        &["legacy_manual".to_string()],
        Duration::from_secs(30),
    )
    .await;
    assert!(
        !actual_rows(&env).await.contains_key(&before[0]),
        "not replicated before it is in the publication"
    );

    eprintln!("inject: the operator runs that SQL; check: its runs are copied, later ones stream");
    pg.batch_execute(&sql).await.unwrap();
    insert(&pg, "task_run_v2", "2bq8aDrQkxTvTwXAhFCJrQMANLT", &[]).await;
    assert_converges(&env, Duration::from_secs(60)).await;
    wait_for_log(&w, "task_run_v2 copied").await;
    w.terminate();
}

/// A replication session on `env`'s slot named as trigger.dev's own service names its
/// legacy source's (`${serviceName}:${id}`, `runs-replication:legacy`). It holds the slot and
/// acknowledges nothing: whatever it received, the slot still owes the next consumer.
async fn hold_slot_as_trigger_dev(env: &TestEnv) -> pgwire_replication::ReplicationClient {
    let cfg = pgwire_replication::ReplicationConfig::new(
        env.pg.host.clone(),
        "postgres",
        SUPERUSER_PASSWORD,
        env.pg_db.clone(),
        env.slot.clone(),
        runs_replicator::source::stream::publication_names(&env.publication),
    )
    .with_port(env.pg.port)
    .with_tls(pgwire_replication::TlsConfig::disabled())
    .with_application_name("runs-replication:legacy");
    let mut client = pgwire_replication::ReplicationClient::connect(cfg)
        .await
        .expect("START_REPLICATION as runs-replication:legacy");
    client.wait_started().await.expect("started");
    client
}

async fn slot_pid(pg: &tokio_postgres::Client, slot: &str) -> Option<i32> {
    pg.query_one(
        "SELECT active_pid FROM pg_replication_slots WHERE slot_name = $1",
        &[&slot],
    )
    .await
    .unwrap()
    .get(0)
}

#[tokio::test]
async fn cutover_waits_for_trigger_devs_consumer_then_takes_over_with_nothing_lost() {
    let mut env = TestEnv::new("dropin_cutover").await;
    let pg = env.pg_client().await;
    // trigger.dev's schema and its service's publication and slot.
    pg.batch_execute("DROP TABLE task_run_v2").await.unwrap();
    env.tables = vec![("\"TaskRun\"", 0)];
    trigger_devs_publication_and_slot(&env, &pg).await;
    insert(&pg, "\"TaskRun\"", "run_before_cutover", &[]).await;
    let holder = hold_slot_as_trigger_dev(&env).await;
    let holder_pid = slot_pid(&pg, &env.slot).await.expect("held");

    eprintln!(
        "inject: the slot held by a replication session named runs-replication:legacy \
         (trigger.dev's service not yet turned off); check: the preflight warns naming it, the \
         worker waits and says who (log, /readyz), never terminates it"
    );
    let port = process::free_port();
    let config = env.write_config(
        port,
        "[postgres]\ntables = [\"TaskRun\", \"task_run_v2\"]\n\
         generations = { TaskRun = 0, task_run_v2 = 1 }\n",
    );
    let out = crate::support::worker::preflight(&config, &[]);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(
        text.lines().any(|l| l.contains("warn")
            && l.contains("slot_holder")
            && l.contains("\"runs-replication:legacy\"")
            && l.contains(&format!("pid {holder_pid}"))),
        "{text}"
    );
    let mut w = Worker::start(&config, port, &[]);
    let said = format!("is held by application_name \"runs-replication:legacy\" (pid {holder_pid}");
    wait_for(
        "the worker to say who holds the slot",
        Duration::from_secs(30),
        || {
            let found = w.log_text().contains(&said);
            async move { found.then_some(()) }
        },
    )
    .await;
    let (status, body) = w.get("/readyz").unwrap();
    assert_eq!(status, 503, "{body}");
    assert!(
        body.contains("runs-replication:legacy") && body.contains("since "),
        "{body}"
    );
    // Runs written while the other consumer holds the slot, which it never acknowledges.
    for i in 0..20 {
        insert(&pg, "\"TaskRun\"", &format!("run_during_{i:02}"), &[]).await;
    }
    pg.batch_execute(
        "UPDATE \"TaskRun\" SET status = 'EXECUTING', \"updatedAt\" = now() WHERE id = 'run_during_00'; \
         DELETE FROM \"TaskRun\" WHERE id = 'run_during_01'",
    )
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        slot_pid(&pg, &env.slot).await,
        Some(holder_pid),
        "the worker never takes the slot from its holder"
    );
    let log = w.log_text();
    assert_eq!(
        log.matches(&said).count(),
        1,
        "said once (then once a minute):\n{log}"
    );

    eprintln!("inject: trigger.dev's consumer released; check: the worker takes over, equal");
    drop(holder);
    w.wait_ready(Duration::from_secs(30)).await;
    assert!(w.log_text().contains("taking over"), "{}", w.log_text());
    insert(&pg, "\"TaskRun\"", "run_after_cutover", &[]).await;
    assert_converges(&env, Duration::from_secs(30)).await;
    w.terminate();
}

/// The `_version` trigger.dev's admin backfill stamps (upstream-trigger-dev.md §1.7):
/// `compose(gen, lsnToUInt64("${hex(Date.now())}/00000000")) + rowIndex`, where the 56-bit mask
/// keeps the low 24 bits of the milliseconds.
fn admin_backfill_version(generation: u64, row_index: u64) -> u64 {
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    (generation << 56) | (((ms << 32) & ((1 << 56) - 1)) + row_index)
}

/// The source's WAL position now, as the number a `_version`'s low 56 bits compare with.
async fn wal_now(pg: &tokio_postgres::Client) -> u64 {
    let text: String = pg
        .query_one("SELECT (pg_current_wal_lsn() - '0/0')::text", &[])
        .await
        .unwrap()
        .get(0);
    text.parse().unwrap()
}

/// README's query: the rows whose version's LSN part is beyond anything the source has written.
async fn future_rows(env: &TestEnv, wal: u64) -> Vec<String> {
    env.ch_client()
        .query(&format!(
            "SELECT DISTINCT run_id FROM task_runs_v2 \
             WHERE bitAnd(_version, 72057594037927935) > {wal} ORDER BY run_id"
        ))
        .fetch_all::<String>()
        .await
        .unwrap()
}

#[tokio::test]
async fn rows_of_trigger_devs_admin_backfill_are_found_and_replaced() {
    let env = TestEnv::new("dropin_admin_backfill").await;
    let pg = env.pg_client().await;
    let port = process::free_port();
    let config = env.write_config(port, "");
    let mut w = Worker::start(&config, port, &[]);
    w.wait_ready(Duration::from_secs(60)).await;
    insert(&pg, "\"TaskRun\"", "run_backfilled_by_them", &[]).await;
    insert(&pg, "\"TaskRun\"", "run_only_ours", &[]).await;
    wait_for_runs(
        &env,
        &["run_backfilled_by_them".into(), "run_only_ours".into()],
        Duration::from_secs(30),
    )
    .await;

    eprintln!(
        "inject: trigger.dev's admin backfill writes run_backfilled_by_them again with its \
         Date.now()-based _version, then the run changes in Postgres; check: the streamed change \
         loses (stale under FINAL), README's query finds the row, verify reports it and \
         verify --repair leaves it (it cannot outrank it)"
    );
    let version = admin_backfill_version(0, 0);
    env.ch_client()
        .query(&format!(
            "INSERT INTO task_runs_v2 SELECT * REPLACE (toUInt64({version}) AS _version) \
             FROM task_runs_v2 FINAL WHERE run_id = 'run_backfilled_by_them'"
        ))
        .execute()
        .await
        .unwrap();
    pg.batch_execute(
        "UPDATE \"TaskRun\" SET status = 'COMPLETED_SUCCESSFULLY', \"updatedAt\" = now() \
         WHERE id IN ('run_backfilled_by_them', 'run_only_ours')",
    )
    .await
    .unwrap();
    wait_for("our change to arrive", Duration::from_secs(30), || async {
        let rows = actual_rows(&env).await;
        (rows["run_only_ours"].status == "COMPLETED_SUCCESSFULLY").then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        actual_rows(&env).await["run_backfilled_by_them"].status,
        "PENDING",
        "the admin backfill's version outranks the streamed change"
    );
    let wal = wal_now(&pg).await;
    assert_eq!(future_rows(&env, wal).await, ["run_backfilled_by_them"]);
    let run = |args: &[&str]| {
        let mut cmd = crate::support::worker::command(&config);
        cmd.args(args);
        cmd.output().unwrap()
    };
    let out = run(&["verify", "--repair"]);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("run_backfilled_by_them") && text.contains("newer than the repair's"),
        "{text}"
    );

    eprintln!(
        "inject: README's fix — delete the rows whose version is beyond the WAL, then verify \
         --repair; check: equal, and a later change streams and wins"
    );
    env.ch_client()
        .query(&format!(
            "ALTER TABLE task_runs_v2 DELETE WHERE bitAnd(_version, 72057594037927935) > {wal} \
             SETTINGS mutations_sync = 2"
        ))
        .execute()
        .await
        .unwrap();
    assert!(future_rows(&env, wal).await.is_empty());
    let out = run(&["verify", "--repair"]);
    assert!(
        matches!(out.status.code(), Some(0 | 1)),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let out = run(&["verify"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    pg.batch_execute(
        "UPDATE \"TaskRun\" SET status = 'CANCELED', \"updatedAt\" = now() \
         WHERE id = 'run_backfilled_by_them'",
    )
    .await
    .unwrap();
    assert_converges(&env, Duration::from_secs(30)).await;
    w.terminate();
}
