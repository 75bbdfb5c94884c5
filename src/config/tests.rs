use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use super::*;

fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
    let map: HashMap<String, String> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    move |k: &str| map.get(k).cloned()
}

fn no_env(_: &str) -> Option<String> {
    None
}

fn load_toml(
    text: &str,
    env: &[(&str, &str)],
    flags: &[FlagOverride],
) -> Result<Config, ConfigError> {
    let dir = std::env::temp_dir().join(format!(
        "rr-config-test-{}-{:?}",
        std::process::id(),
        std::thread::current().id()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("c.toml");
    std::fs::write(&path, text).unwrap();
    let r = Config::load(Some(&path), &env_of(env), flags);
    std::fs::remove_dir_all(&dir).ok();
    r
}

fn err(text: &str, env: &[(&str, &str)]) -> String {
    load_toml(text, env, &[]).unwrap_err().to_string()
}

#[test]
fn defaults_are_valid_and_match_the_spec() {
    let c = Config::load(Some(Path::new("config/runs-replicator.toml")), &no_env, &[]).unwrap();
    assert_eq!(c.postgres.tables, ["TaskRun", "task_run_v2"]);
    assert_eq!(c.postgres.slot, "task_runs_to_clickhouse_v1");
    assert_eq!(
        c.postgres.publication,
        "task_runs_to_clickhouse_v1_publication"
    );
    assert_eq!(
        (c.generation("TaskRun"), c.generation("task_run_v2")),
        (0, 1)
    );
    assert_eq!(c.clickhouse.runs_table, "task_runs_v2");
    assert_eq!(c.clickhouse.payloads_table, "raw_task_runs_payload_v1");
    assert_eq!(
        (
            c.batch.max_rows,
            c.batch.flush_interval_ms,
            c.batch.max_inflight
        ),
        (10_000, 1000, 2)
    );
    assert_eq!(c.metrics.listen.to_string(), "0.0.0.0:9187");
    // The shipped file documents the defaults: loading it changes nothing.
    let d = Config::default();
    assert_eq!(format!("{:?}", c.postgres), format!("{:?}", d.postgres));
    assert_eq!(format!("{:?}", c.clickhouse), format!("{:?}", d.clickhouse));
    assert_eq!(format!("{:?}", c.batch), format!("{:?}", d.batch));
}

#[test]
fn the_shipped_file_documents_every_key() {
    let text = std::fs::read_to_string("config/runs-replicator.toml").unwrap();
    let mut section = String::new();
    let mut documented = Vec::new();
    for line in text.lines() {
        let line = line.trim().trim_start_matches('#').trim();
        if line.starts_with('[') && line.ends_with(']') {
            section = line.trim_matches(['[', ']']).to_string();
        } else if let Some((k, _)) = line.split_once(" = ")
            && !k.contains(' ')
        {
            documented.push(if section.is_empty() {
                k.to_string()
            } else {
                format!("{section}.{k}")
            });
        }
    }
    for key in env::KEYS {
        assert!(
            documented.iter().any(|d| d == key),
            "{key} is not in config/runs-replicator.toml"
        );
    }
}

#[test]
fn every_key_can_be_set_from_its_own_env_name() {
    let values = [
        ("enabled", "false"),
        ("postgres.url", "postgres://u@h:1/d"),
        ("postgres.schema", "s"),
        ("postgres.tables", "TaskRun"),
        ("postgres.generations", "TaskRun=3"),
        ("postgres.name", "legacy"),
        ("postgres.shards", "2"),
        ("postgres.publication", "p"),
        ("postgres.slot", "s1"),
        ("postgres.create_publication", "false"),
        ("postgres.create_slot", "0"),
        ("postgres.recreate_lost_slot", "true"),
        ("postgres.failover_slot", "off"),
        ("postgres.status_interval_ms", "500"),
        ("postgres.connect_timeout_ms", "700"),
        ("postgres.query_timeout_ms", "800"),
        ("postgres.slot_poll_interval_ms", "900"),
        ("clickhouse.url", "https://c:8443"),
        ("clickhouse.database", "db"),
        ("clickhouse.user", "u"),
        ("clickhouse.password", "pw"),
        ("clickhouse.runs_table", "r"),
        ("clickhouse.payloads_table", ""),
        ("clickhouse.async_insert", "1"),
        ("clickhouse.compression", "none"),
        ("clickhouse.insert_max_retries", "7"),
        ("clickhouse.retry_min_delay_ms", "10"),
        ("clickhouse.retry_max_delay_ms", "20"),
        ("clickhouse.request_timeout_ms", "1000"),
        ("clickhouse.give_up_after_ms", "45000"),
        ("clickhouse.ca_file", "/ca.pem"),
        ("batch.max_rows", "5"),
        ("batch.flush_interval_ms", "6"),
        ("batch.min_insert_interval_ms", "4"),
        ("batch.max_inflight", "3"),
        ("batch.max_bytes", "2097152"),
        ("transform.fingerprint_errors", "false"),
        ("metrics.listen", "127.0.0.1:1"),
        ("metrics.clickhouse_unready_after_ms", "5"),
        ("log.format", "json"),
        ("log.level", "debug"),
        ("preflight.ignore_failures", "true"),
        ("leadership.share", "false"),
        ("leadership.min_hold_ms", "2500"),
        ("backfill.parallel", "4"),
        ("backfill.chunk_rows", "1000"),
        ("backfill.max_bytes", "1048576"),
        ("backfill.on_slot_create", "true"),
        ("backfill.gap_margin_s", "60"),
        ("backfill.snapshot_wait_timeout_s", "30"),
        ("backfill.memory_bytes", "1048576"),
        ("backfill.snapshot_max_s", "9"),
        ("verify.interval", "15m"),
        ("verify.window", "2h"),
        ("verify.repair", "true"),
        ("verify.payloads", "false"),
        ("verify.chunk_rows", "500"),
        ("verify.pause_ms", "7"),
        ("verify.wait_timeout_ms", "900"),
        ("verify.rounds", "3"),
        ("verify.timeout", "20m"),
    ];
    assert_eq!(values.len(), env::KEYS.len());
    let names: Vec<(String, &str)> = values.iter().map(|(k, v)| (env::own_name(k), *v)).collect();
    let pairs: Vec<(&str, &str)> = names.iter().map(|(k, v)| (k.as_str(), *v)).collect();
    let c = Config::load(None, &env_of(&pairs), &[]).unwrap();
    assert_eq!(c.postgres.url.host, "h");
    assert_eq!(c.postgres.schema, "s");
    assert_eq!(c.postgres.tables, ["TaskRun"]);
    assert_eq!(c.generation("TaskRun"), 3);
    assert_eq!(
        (c.postgres.publication.as_str(), c.postgres.slot.as_str()),
        ("p", "s1")
    );
    assert!(
        !c.postgres.create_publication && !c.postgres.create_slot && c.postgres.recreate_lost_slot
    );
    assert_eq!(c.postgres.failover_slot, crate::config::FailoverSlot::Off);
    assert_eq!(
        (
            c.postgres.status_interval_ms,
            c.postgres.connect_timeout_ms,
            c.postgres.query_timeout_ms,
            c.postgres.slot_poll_interval_ms
        ),
        (500, 700, 800, 900)
    );
    assert!(c.clickhouse.url.https);
    assert_eq!(
        (c.clickhouse.database.as_str(), c.clickhouse.user.as_str()),
        ("db", "u")
    );
    assert_eq!(c.clickhouse.password.expose(), "pw");
    assert_eq!(
        (
            c.clickhouse.runs_table.as_str(),
            c.clickhouse.payloads_table.as_str()
        ),
        ("r", "")
    );
    assert!(c.clickhouse.async_insert);
    assert_eq!(c.clickhouse.compression, Compression::None);
    assert_eq!(
        (
            c.backfill.parallel,
            c.backfill.chunk_rows,
            c.backfill.max_bytes,
            c.backfill.snapshot_wait_timeout_s
        ),
        (4, 1000, 1 << 20, 30)
    );
    assert_eq!(
        (c.backfill.memory_bytes, c.backfill.snapshot_max_s),
        (1 << 20, 9)
    );
    let v = &c.verify;
    assert_eq!(
        (v.interval, v.window),
        (Duration::from_secs(900), Duration::from_secs(7200))
    );
    assert!(v.repair && !v.payloads);
    assert_eq!(
        (v.chunk_rows, v.pause_ms, v.wait_timeout_ms, v.rounds),
        (500, 7, 900, 3)
    );
    assert_eq!(v.timeout, Duration::from_secs(1200));
    assert_eq!(c.clickhouse.give_up_after_ms, 45_000);
    assert_eq!(
        (
            c.clickhouse.insert_max_retries,
            c.clickhouse.retry_min_delay_ms,
            c.clickhouse.retry_max_delay_ms
        ),
        (7, 10, 20)
    );
    assert_eq!(c.clickhouse.request_timeout_ms, 1000);
    assert_eq!(c.clickhouse.ca_file.as_deref(), Some(Path::new("/ca.pem")));
    assert_eq!(
        (
            c.batch.max_rows,
            c.batch.flush_interval_ms,
            c.batch.min_insert_interval_ms,
            c.batch.max_inflight,
            c.batch.max_bytes
        ),
        (5, 6, 4, 3, 2 << 20)
    );
    assert!(!c.transform.fingerprint_errors);
    assert_eq!(c.metrics.listen.to_string(), "127.0.0.1:1");
    assert_eq!(c.metrics.clickhouse_unready_after_ms, 5);
    assert_eq!(
        (c.log.format, c.log.level.as_str()),
        (LogFormat::Json, "debug")
    );
    assert!(c.preflight.ignore_failures);
    assert!(!c.leadership.share);
    assert_eq!(c.leadership.min_hold_ms, 2500);
}

#[test]
fn env_overrides_file_and_flags_override_env() {
    let text = "[batch]\nmax_rows = 100\n[postgres]\nslot = \"from_file\"\n";
    let c = load_toml(text, &[], &[]).unwrap();
    assert_eq!(
        (c.batch.max_rows, c.postgres.slot.as_str()),
        (100, "from_file")
    );

    let env = [
        ("RUNS_REPLICATOR_BATCH_MAX_ROWS", "200"),
        ("RUN_REPLICATION_SLOT_NAME", "from_env"),
    ];
    let c = load_toml(text, &env, &[]).unwrap();
    assert_eq!(
        (c.batch.max_rows, c.postgres.slot.as_str()),
        (200, "from_env")
    );

    let flags = [FlagOverride {
        flag: "--slot",
        key: "postgres.slot",
        value: "from_flag".into(),
    }];
    let c = load_toml(text, &env, &flags).unwrap();
    assert_eq!(
        (c.batch.max_rows, c.postgres.slot.as_str()),
        (200, "from_flag")
    );
}

#[test]
fn trigger_dev_names_are_honoured_in_their_order() {
    let c = Config::load(
        None,
        &env_of(&[
            ("DATABASE_URL", "postgres://a@main:5432/app"),
            (
                "RUN_REPLICATION_LEGACY_DATABASE_URL",
                "postgres://a@legacy:5432/app",
            ),
            (
                "RUN_REPLICATION_CLICKHOUSE_URL",
                "http://default:chpw@ch:8123",
            ),
            ("RUN_REPLICATION_PUBLICATION_NAME", "pub_x"),
            ("RUN_REPLICATION_FLUSH_BATCH_SIZE", "100"),
            ("RUN_REPLICATION_FLUSH_INTERVAL_MS", "250"),
            ("RUN_REPLICATION_MAX_FLUSH_CONCURRENCY", "4"),
            ("RUN_REPLICATION_INSERT_MAX_RETRIES", "9"),
            ("RUN_REPLICATION_INSERT_STRATEGY", "insert_async"),
            ("RUN_REPLICATION_DISABLE_PAYLOAD_INSERT", "1"),
            ("RUN_REPLICATION_DISABLE_ERROR_FINGERPRINTING", "1"),
            ("RUN_REPLICATION_INSERT_BASE_DELAY_MS", "150"),
            ("RUN_REPLICATION_INSERT_MAX_DELAY_MS", "3000"),
            ("RUN_REPLICATION_LEGACY_ORIGIN_GENERATION", "7"),
            ("RUN_REPLICATION_LOG_LEVEL", "warn"),
        ]),
        &[],
    )
    .unwrap();
    assert_eq!(c.postgres.url.host, "legacy");
    assert_eq!(c.clickhouse.url.endpoint, "http://ch:8123");
    let (user, pw) = c.clickhouse_credentials();
    assert_eq!((user.as_str(), pw.expose()), ("default", "chpw"));
    assert_eq!(c.postgres.publication, "pub_x");
    assert_eq!(
        (
            c.batch.max_rows,
            c.batch.flush_interval_ms,
            c.batch.max_inflight
        ),
        (100, 250, 4)
    );
    assert_eq!(c.clickhouse.insert_max_retries, 9);
    assert_eq!(
        (
            c.clickhouse.retry_min_delay_ms,
            c.clickhouse.retry_max_delay_ms
        ),
        (150, 3000)
    );
    assert!(c.clickhouse.async_insert);
    assert_eq!(c.clickhouse.payloads_table, "");
    assert!(!c.transform.fingerprint_errors);
    assert_eq!(
        (c.generation("TaskRun"), c.generation("task_run_v2")),
        (7, 8)
    );
    assert_eq!(c.log.level, "warn");
    assert!(c.warnings().is_empty(), "{:?}", c.warnings());

    let own = Config::load(
        None,
        &env_of(&[
            ("DATABASE_URL", "postgres://a@main:5432/app"),
            ("RUNS_REPLICATOR_POSTGRES_URL", "postgres://a@own:5432/app"),
        ]),
        &[],
    )
    .unwrap();
    assert_eq!(own.postgres.url.host, "own");
}

#[test]
fn unknown_keys_are_rejected_with_their_name() {
    let e = err("[batch]\nmax_rowz = 1\n", &[]);
    assert!(e.contains("max_rowz") && e.contains("c.toml"), "{e}");
    let e = err("[nope]\nx = 1\n", &[]);
    assert!(e.contains("nope"), "{e}");
    assert!(!e.contains('\n'), "one line: {e}");
}

#[test]
fn malformed_toml_names_line_and_column() {
    let e = err("[batch]\nmax_rows = = 1\n", &[]);
    assert!(e.contains("line 2"), "{e}");
    assert!(!e.contains('\n'), "one line: {e}");
}

#[test]
fn wrong_types_in_the_file_name_the_key() {
    let e = err("[batch]\nmax_rows = \"many\"\n", &[]);
    assert!(e.contains("batch.max_rows"), "{e}");
    let e = err("[postgres]\nurl = \"mysql://x\"\n", &[]);
    assert!(e.contains("postgres.url") && e.contains("scheme"), "{e}");
    let e = err("[log]\nformat = \"xml\"\n", &[]);
    assert!(e.contains("log.format"), "{e}");
    let e = err("[clickhouse]\ncompression = \"gzip\"\n", &[]);
    assert!(e.contains("clickhouse.compression"), "{e}");
}

#[test]
fn every_rejected_value_says_key_value_origin_and_what_is_allowed() {
    let cases: &[(&str, &str, &str)] = &[
        ("RUNS_REPLICATOR_BATCH_MAX_ROWS", "0", "from 1 to 1000000"),
        ("RUNS_REPLICATOR_BATCH_MAX_ROWS", "lots", "whole number"),
        ("RUNS_REPLICATOR_BATCH_FLUSH_INTERVAL_MS", "0", "from 1"),
        ("RUNS_REPLICATOR_BATCH_MAX_INFLIGHT", "0", "from 1 to 64"),
        ("RUNS_REPLICATOR_BATCH_MAX_INFLIGHT", "65", "from 1 to 64"),
        (
            "RUNS_REPLICATOR_BATCH_MIN_INSERT_INTERVAL_MS",
            "3600001",
            "from 0 to 3600000",
        ),
        ("RUNS_REPLICATOR_BATCH_MAX_BYTES", "1000", "from 1048576"),
        (
            "RUNS_REPLICATOR_POSTGRES_SLOT",
            "Bad-Slot",
            "a-z, 0-9 and _",
        ),
        ("RUNS_REPLICATOR_POSTGRES_PUBLICATION", "", "1 to 63"),
        ("RUNS_REPLICATOR_POSTGRES_SCHEMA", "a\"b", "without quotes"),
        ("RUNS_REPLICATOR_POSTGRES_TABLES", "", "at least one"),
        (
            "RUNS_REPLICATOR_POSTGRES_TABLES",
            "TaskRun,TaskRun",
            "only once",
        ),
        (
            "RUNS_REPLICATOR_POSTGRES_GENERATIONS",
            "TaskRun=300",
            "0 to 255",
        ),
        (
            "RUNS_REPLICATOR_POSTGRES_GENERATIONS",
            "Other=1",
            "only name tables",
        ),
        (
            "RUNS_REPLICATOR_POSTGRES_CREATE_SLOT",
            "maybe",
            "true or false",
        ),
        (
            "RUNS_REPLICATOR_POSTGRES_STATUS_INTERVAL_MS",
            "10",
            "from 100",
        ),
        (
            "RUNS_REPLICATOR_POSTGRES_CONNECT_TIMEOUT_MS",
            "1",
            "from 100",
        ),
        (
            "RUNS_REPLICATOR_POSTGRES_SLOT_POLL_INTERVAL_MS",
            "1",
            "from 100",
        ),
        (
            "RUNS_REPLICATOR_POSTGRES_URL",
            "postgres://h/d?sslmode=allow",
            "sslmode",
        ),
        ("RUNS_REPLICATOR_CLICKHOUSE_URL", "ftp://x", "scheme"),
        (
            "RUNS_REPLICATOR_CLICKHOUSE_DATABASE",
            "a-b",
            "letters, digits",
        ),
        (
            "RUNS_REPLICATOR_CLICKHOUSE_RUNS_TABLE",
            "",
            "letters, digits",
        ),
        (
            "RUNS_REPLICATOR_CLICKHOUSE_PAYLOADS_TABLE",
            "x y",
            "to disable",
        ),
        (
            "RUNS_REPLICATOR_CLICKHOUSE_INSERT_MAX_RETRIES",
            "101",
            "0 to 100",
        ),
        (
            "RUNS_REPLICATOR_CLICKHOUSE_RETRY_MIN_DELAY_MS",
            "0",
            "from 1",
        ),
        (
            "RUNS_REPLICATOR_CLICKHOUSE_RETRY_MAX_DELAY_MS",
            "50",
            "from 100",
        ),
        (
            "RUNS_REPLICATOR_CLICKHOUSE_REQUEST_TIMEOUT_MS",
            "5",
            "from 100",
        ),
        ("RUNS_REPLICATOR_CLICKHOUSE_CA_FILE", "/ca.pem", "https://"),
        (
            "RUNS_REPLICATOR_CLICKHOUSE_ASYNC_INSERT",
            "sometimes",
            "true or false",
        ),
        (
            "RUNS_REPLICATOR_CLICKHOUSE_COMPRESSION",
            "zstd",
            "lz4 or none",
        ),
        (
            "RUNS_REPLICATOR_TRANSFORM_FINGERPRINT_ERRORS",
            "2",
            "true or false",
        ),
        ("RUNS_REPLICATOR_METRICS_LISTEN", "9187", "0.0.0.0:9187"),
        (
            "RUNS_REPLICATOR_METRICS_CLICKHOUSE_UNREADY_AFTER_MS",
            "-1",
            "whole number",
        ),
        ("RUNS_REPLICATOR_LOG_FORMAT", "xml", "text or json"),
        ("RUNS_REPLICATOR_LOG_LEVEL", "loud[", "tracing filter"),
        (
            "RUNS_REPLICATOR_PREFLIGHT_IGNORE_FAILURES",
            "please",
            "true or false",
        ),
        (
            "RUN_REPLICATION_INSERT_STRATEGY",
            "fast",
            "insert or insert_async",
        ),
        (
            "RUN_REPLICATION_DISABLE_PAYLOAD_INSERT",
            "yes",
            "1 (disable",
        ),
        (
            "RUN_REPLICATION_DISABLE_ERROR_FINGERPRINTING",
            "on",
            "1 or 0",
        ),
        ("RUN_REPLICATION_LEGACY_ORIGIN_GENERATION", "x", "0 to 255"),
        (
            "RUN_REPLICATION_LEGACY_ORIGIN_GENERATION",
            "255",
            "0 to 254",
        ),
        (
            "RUN_REPLICATION_LOG_LEVEL",
            "verbose",
            "log, error, warn, info or debug",
        ),
        (
            "RUNS_REPLICATOR_POSTGRES_GENERATIONS",
            "TaskRun=0",
            "task_run_v2 has none",
        ),
        (
            "RUNS_REPLICATOR_POSTGRES_GENERATIONS",
            "TaskRun=1,task_run_v2=1",
            "TaskRun and task_run_v2 both have 1",
        ),
        ("RUNS_REPLICATOR_POSTGRES_PUBLICATION", "a\0b", "but NUL"),
    ];
    for (name, value, allowed) in cases {
        let e = Config::load(None, &env_of(&[(name, value)]), &[])
            .unwrap_err()
            .to_string();
        assert!(e.contains(allowed), "{name}={value}: {e}");
        assert!(
            e.contains(name) || e.contains("ORIGIN_GENERATION"),
            "origin named: {e}"
        );
        assert!(!e.contains('\n'), "one line: {e}");
    }
    let e = Config::load(
        None,
        &env_of(&[("RUNS_REPLICATOR_CLICKHOUSE_RETRY_MAX_DELAY_MS", "50")]),
        &[],
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("clickhouse.retry_max_delay_ms") && e.contains("50"),
        "{e}"
    );
}

#[test]
fn a_missing_config_file_is_an_error_naming_it() {
    let e = Config::load(Some(Path::new("/nonexistent/rr.toml")), &no_env, &[])
        .unwrap_err()
        .to_string();
    assert!(e.contains("/nonexistent/rr.toml"), "{e}");
}

#[test]
fn passwords_never_appear_in_errors_or_debug() {
    let e = Config::load(
        None,
        &env_of(&[(
            "DATABASE_URL",
            "postgres://u:topsecret@h:5432/d?sslmode=bogus",
        )]),
        &[],
    )
    .unwrap_err()
    .to_string();
    assert!(!e.contains("topsecret"), "{e}");
    assert!(e.contains("u:***@h"), "{e}");

    let c = Config::load(
        None,
        &env_of(&[
            ("DATABASE_URL", "postgres://u:topsecret@h:5432/d"),
            ("RUNS_REPLICATOR_CLICKHOUSE_PASSWORD", "chsecret"),
            (
                "RUN_REPLICATION_CLICKHOUSE_URL",
                "http://x:urlsecret@h:8123",
            ),
        ]),
        &[],
    )
    .unwrap();
    let dump = format!("{c:?}");
    for s in ["topsecret", "chsecret", "urlsecret"] {
        assert!(!dump.contains(s), "{s} leaked in {dump}");
    }
    assert_eq!(c.clickhouse_credentials().1.expose(), "chsecret");
    let secrets: Vec<&str> = c.secrets().iter().map(|s| s.expose()).collect();
    assert!(secrets.contains(&"topsecret") && secrets.contains(&"urlsecret"));
}

/// The one line a refused value gives: key, value, origin, what is allowed.
fn refused(env: &[(&str, &str)]) -> String {
    let e = Config::load(None, &env_of(env), &[])
        .unwrap_err()
        .to_string();
    assert!(!e.contains('\n'), "one line: {e}");
    e
}

#[test]
fn a_generations_map_must_cover_every_table_with_distinct_generations() {
    // An override that names only TaskRun would leave task_run_v2 at 0, equal to the legacy table.
    let e = refused(&[("RUNS_REPLICATOR_POSTGRES_GENERATIONS", "TaskRun=0")]);
    assert_eq!(
        e,
        "invalid postgres.generations = \"TaskRun=0\" (from env RUNS_REPLICATOR_POSTGRES_GENERATIONS): \
         expected a generation (0 to 255) for every table in postgres.tables, each a different one; \
         task_run_v2 has none"
    );
    let e = refused(&[(
        "RUNS_REPLICATOR_POSTGRES_GENERATIONS",
        "TaskRun=2,task_run_v2=2",
    )]);
    assert!(
        e.contains("invalid postgres.generations = \"TaskRun=2,task_run_v2=2\"")
            && e.contains("(from env RUNS_REPLICATOR_POSTGRES_GENERATIONS)")
            && e.contains("a different generation for each table")
            && e.contains("TaskRun and task_run_v2 both have 2"),
        "{e}"
    );
    // In the file: named with the file as origin.
    let e = err(
        "[postgres]\ngenerations = { TaskRun = 1, task_run_v2 = 1 }\n",
        &[],
    );
    assert!(
        e.contains("postgres.generations") && e.contains("c.toml") && e.contains("both have 1"),
        "{e}"
    );
    let e = err("[postgres]\ngenerations = { task_run_v2 = 1 }\n", &[]);
    assert!(e.contains("TaskRun has none"), "{e}");
    // A table that is not replicated.
    let e = refused(&[(
        "RUNS_REPLICATOR_POSTGRES_GENERATIONS",
        "TaskRun=0,task_run_v2=1,Other=2",
    )]);
    assert!(e.contains("Other is not one"), "{e}");
    // Distinct and complete: accepted, in any order of size.
    let c = Config::load(
        None,
        &env_of(&[(
            "RUNS_REPLICATOR_POSTGRES_GENERATIONS",
            "TaskRun=9,task_run_v2=3",
        )]),
        &[],
    )
    .unwrap();
    assert_eq!(
        (c.generation("TaskRun"), c.generation("task_run_v2")),
        (9, 3)
    );
    // One table, one generation.
    let c = Config::load(
        None,
        &env_of(&[
            ("RUNS_REPLICATOR_POSTGRES_TABLES", "TaskRun"),
            ("RUNS_REPLICATOR_POSTGRES_GENERATIONS", "TaskRun=4"),
        ]),
        &[],
    )
    .unwrap();
    assert_eq!(c.generation("TaskRun"), 4);
}

#[test]
fn the_legacy_origin_generation_shifts_every_table_and_keeps_them_apart() {
    let gens = |c: &Config| (c.generation("TaskRun"), c.generation("task_run_v2"));
    let load = |text: &str, g: &str| {
        load_toml(
            text,
            &[("RUN_REPLICATION_LEGACY_ORIGIN_GENERATION", g)],
            &[],
        )
    };
    // Defaults TaskRun=0, task_run_v2=1: v2 still beats legacy.
    assert_eq!(gens(&load("", "0").unwrap()), (0, 1));
    assert_eq!(gens(&load("", "5").unwrap()), (5, 6));
    assert_eq!(gens(&load("", "254").unwrap()), (254, 255));
    // The file's distances are kept, whichever table is lowest.
    let text = "[postgres]\ngenerations = { TaskRun = 2, task_run_v2 = 7 }\n";
    assert_eq!(gens(&load(text, "0").unwrap()), (0, 5));
    let text = "[postgres]\ngenerations = { TaskRun = 7, task_run_v2 = 2 }\n";
    assert_eq!(gens(&load(text, "10").unwrap()), (15, 10));
    let e = load(text, "251").unwrap_err().to_string();
    assert_eq!(
        e,
        "invalid postgres.generations = \"251\" (from env RUN_REPLICATION_LEGACY_ORIGIN_GENERATION): \
         expected 0 to 250: it is the lowest generation of postgres.generations (TaskRun=7,task_run_v2=2), \
         each table keeps its distance above it, and 255 is the highest"
    );
    // The key's own name replaces the whole map, and wins.
    let c = Config::load(
        None,
        &env_of(&[
            ("RUN_REPLICATION_LEGACY_ORIGIN_GENERATION", "5"),
            (
                "RUNS_REPLICATOR_POSTGRES_GENERATIONS",
                "TaskRun=1,task_run_v2=2",
            ),
        ]),
        &[],
    )
    .unwrap();
    assert_eq!(gens(&c), (1, 2));
}

#[test]
fn trigger_dev_run_ops_variables_add_a_second_source() {
    let c = Config::load(
        None,
        &env_of(&[
            ("RUN_REPLICATION_NEW_ORIGIN_GENERATION", "7"),
            ("RUN_REPLICATION_NEW_SLOT_NAME", "ops_slot"),
            ("RUN_REPLICATION_NEW_PUBLICATION_NAME", "ops_pub"),
            (
                "RUN_REPLICATION_RUN_OPS_DATABASE_URL",
                "postgres://u:pw@ops:6543/db",
            ),
        ]),
        &[],
    )
    .unwrap();
    let sources = c.sources();
    assert_eq!(sources.len(), 2);
    let (legacy, new) = (&sources[0], &sources[1]);
    assert_eq!(legacy.name, "legacy");
    assert_eq!(legacy.tables, ["TaskRun"], "upstream's legacy database");
    assert_eq!(legacy.generation("TaskRun"), 0);
    assert_eq!(new.name, "new");
    assert_eq!((new.url.host.as_str(), new.url.port), ("ops", 6543));
    assert_eq!(new.tables, ["TaskRun"]);
    assert_eq!(new.generation("TaskRun"), 7);
    assert_eq!(
        (new.slot.as_str(), new.publication.as_str()),
        ("ops_slot", "ops_pub")
    );
    assert!(c.warnings().is_empty(), "{:?}", c.warnings());
    assert!(
        c.secrets().iter().any(|p| p.expose() == "pw"),
        "the second source's password is scrubbed too"
    );

    // Upstream's defaults: slot task_runs_to_clickhouse_v2, generation 1; and its off switch.
    let url = (
        "RUN_REPLICATION_RUN_OPS_DATABASE_URL",
        "postgres://u@ops/db",
    );
    let c = Config::load(None, &env_of(&[url]), &[]).unwrap();
    let new = &c.sources()[1];
    assert_eq!(new.slot, "task_runs_to_clickhouse_v2");
    assert_eq!(new.publication, "task_runs_to_clickhouse_v2_publication");
    assert_eq!(new.generation("TaskRun"), 1);
    let c = Config::load(
        None,
        &env_of(&[url, ("RUN_REPLICATION_NEW_ENABLED", "disabled")]),
        &[],
    )
    .unwrap();
    assert_eq!(c.sources().len(), 1);
    assert_eq!(c.sources()[0].name, "default");
}

#[test]
fn sources_may_share_neither_a_slot_nor_a_generation() {
    let base = r#"
[postgres]
url = "postgres://u@pg/trigger"
tables = ["TaskRun"]
generations = { TaskRun = 0 }
slot = "legacy_slot"
"#;
    let load = |extra: &str| {
        Config::from_toml(&format!("{base}{extra}"), Path::new("t.toml"))
            .and_then(|mut c| c.validate().map(|()| std::mem::take(&mut c)))
    };
    let ok = load(
        r#"
[[postgres.sources]]
name = "run_ops"
url = "postgres://u@ops/run_ops"
"#,
    )
    .unwrap();
    assert_eq!(ok.streams().len(), 2);
    let err = load(
        r#"
[[postgres.sources]]
name = "run_ops"
url = "postgres://u@pg/other_db"
slot = "legacy_slot"
"#,
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("postgres.sources.run_ops.slot")
            && err.contains("two sources may not stream from one slot of one server")
            && err.contains("(source run_ops)"),
        "{err}"
    );
    let err = load(
        r#"
[[postgres.sources]]
name = "run_ops"
url = "postgres://u@ops/run_ops"
generations = { TaskRun = 0 }
"#,
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("postgres.sources.run_ops.generations")
            && err.contains("default.TaskRun has 0 too"),
        "{err}"
    );
    let err = load(
        r#"
[[postgres.sources]]
name = "default"
url = "postgres://u@ops/run_ops"
"#,
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("each source needs its own name"), "{err}");
    let err = load("[[postgres.sources]]\nname = \"x\"\n")
        .unwrap_err()
        .to_string();
    assert!(err.contains("needs a url"), "{err}");
}

#[test]
fn shards_split_a_source_into_streams_with_their_own_slots_and_filters() {
    let mut c = Config::default();
    c.postgres.shards = 3;
    c.validate().unwrap();
    let streams = c.streams();
    let names: Vec<_> = streams
        .iter()
        .map(|s| (s.name.as_str(), s.slot.as_str(), s.publication.as_str()))
        .collect();
    assert_eq!(
        names,
        [
            (
                "default.0",
                "task_runs_to_clickhouse_v1_0",
                "task_runs_to_clickhouse_v1_publication_0"
            ),
            (
                "default.1",
                "task_runs_to_clickhouse_v1_1",
                "task_runs_to_clickhouse_v1_publication_1"
            ),
            (
                "default.2",
                "task_runs_to_clickhouse_v1_2",
                "task_runs_to_clickhouse_v1_publication_2"
            ),
        ]
    );
    assert_eq!(
        streams[2].shard.unwrap().row_filter(),
        "(hashtext(id) & 2147483647) % 3 = 2"
    );
    c.postgres.shards = 0;
    assert!(
        c.validate()
            .unwrap_err()
            .to_string()
            .contains("expected 1 to 64")
    );
    c.postgres.shards = 2;
    c.postgres.slot = "s".repeat(62);
    assert!(
        c.validate()
            .unwrap_err()
            .to_string()
            .contains("with the shard suffix"),
        "a shard's slot name must still fit"
    );
}

#[test]
fn trigger_dev_log_levels_map_onto_tracing_levels() {
    for (theirs, ours) in [
        ("log", "error"),
        ("error", "error"),
        ("warn", "warn"),
        ("info", "info"),
        ("debug", "debug"),
        ("DEBUG", "debug"),
    ] {
        let c = Config::load(None, &env_of(&[("RUN_REPLICATION_LOG_LEVEL", theirs)]), &[]).unwrap();
        assert_eq!(c.log.level, ours, "{theirs}");
    }
    // A tracing filter goes through the worker's own name.
    let c = Config::load(
        None,
        &env_of(&[
            ("RUN_REPLICATION_LOG_LEVEL", "log"),
            ("RUNS_REPLICATOR_LOG_LEVEL", "info,runs_replicator=debug"),
        ]),
        &[],
    )
    .unwrap();
    assert_eq!(c.log.level, "info,runs_replicator=debug");
}

#[test]
fn run_replication_enabled_never_disables_the_worker_and_1_is_a_warning() {
    let load = |pairs: &[(&str, &str)]| Config::load(None, &env_of(pairs), &[]).unwrap();
    // trigger.dev's switch for its webapp's service: whatever it says, this worker runs.
    for v in ["0", "false", "", "disabled", "sometimes"] {
        let c = load(&[("RUN_REPLICATION_ENABLED", v)]);
        assert!(c.enabled, "{v:?}");
        assert!(c.warnings().is_empty(), "{v:?}: {:?}", c.warnings());
    }
    // "1" (trigger.dev's "on"): both may run; said once.
    let c = load(&[("RUN_REPLICATION_ENABLED", "1")]);
    assert!(c.enabled);
    assert_eq!(c.warnings().len(), 1, "{:?}", c.warnings());
    assert!(
        c.warnings()[0].starts_with("RUN_REPLICATION_ENABLED=1: ")
            && c.warnings()[0].contains("RUNS_REPLICATOR_ENABLED"),
        "{:?}",
        c.warnings()
    );
    // The worker's own switch.
    assert!(Config::default().enabled);
    let c = load(&[("RUNS_REPLICATOR_ENABLED", "0")]);
    assert!(!c.enabled);
    let e = Config::load(None, &env_of(&[("RUNS_REPLICATOR_ENABLED", "maybe")]), &[])
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("invalid enabled = \"maybe\" (from env RUNS_REPLICATOR_ENABLED)"),
        "{e}"
    );
}

#[test]
fn unused_trigger_dev_names_are_named_in_one_warning() {
    let c = Config::load(None, &no_env, &[]).unwrap();
    assert!(c.warnings().is_empty());
    let c = Config::load(
        None,
        &env_of(&[
            ("RUN_REPLICATION_REDIS_HOST", "redis"),
            ("RUN_REPLICATION_REDIS_PASSWORD", "redispw"),
            ("RUN_REPLICATION_ACK_INTERVAL_SECONDS", "10"),
            ("RUN_REPLICATION_MAX_OPEN_CONNECTIONS", "10"),
            ("RUN_REPLICATION_WAIT_FOR_ASYNC_INSERT", "0"),
            ("RUN_REPLICATION_SLOT_NAME", "honoured_slot"),
        ]),
        &[],
    )
    .unwrap();
    assert_eq!(c.warnings().len(), 1, "{:?}", c.warnings());
    let w = &c.warnings()[0];
    assert!(
        w.starts_with(
            "ignored: RUN_REPLICATION_REDIS_HOST, RUN_REPLICATION_REDIS_PASSWORD, \
             RUN_REPLICATION_ACK_INTERVAL_SECONDS, RUN_REPLICATION_MAX_OPEN_CONNECTIONS, \
             RUN_REPLICATION_WAIT_FOR_ASYNC_INSERT, because "
        ),
        "{w}"
    );
    assert!(
        w.contains("advisory lock") && w.contains("acknowledged"),
        "{w}"
    );
    assert!(!w.contains("redispw") && !w.contains('\n'), "{w}");
    assert!(
        !w.contains("SLOT_NAME"),
        "honoured names are not listed: {w}"
    );
    // "1" is what the worker does anyway.
    let c = Config::load(
        None,
        &env_of(&[("RUN_REPLICATION_WAIT_FOR_ASYNC_INSERT", "1")]),
        &[],
    )
    .unwrap();
    assert!(c.warnings().is_empty(), "{:?}", c.warnings());
}

/// Every `RUN_REPLICATION_*` variable in trigger.dev's `apps/webapp/app/env.server.ts`
/// (snapshot b082e44389337dc6505d590737a6df70867cc8f4).
const UPSTREAM_NAMES: &[&str] = &[
    "RUN_REPLICATION_REDIS_HOST",
    "RUN_REPLICATION_REDIS_READER_HOST",
    "RUN_REPLICATION_REDIS_READER_PORT",
    "RUN_REPLICATION_REDIS_PORT",
    "RUN_REPLICATION_REDIS_USERNAME",
    "RUN_REPLICATION_REDIS_PASSWORD",
    "RUN_REPLICATION_REDIS_TLS_DISABLED",
    "RUN_REPLICATION_CLICKHOUSE_URL",
    "RUN_REPLICATION_ENABLED",
    "RUN_REPLICATION_SLOT_NAME",
    "RUN_REPLICATION_PUBLICATION_NAME",
    "RUN_REPLICATION_MAX_FLUSH_CONCURRENCY",
    "RUN_REPLICATION_FLUSH_INTERVAL_MS",
    "RUN_REPLICATION_FLUSH_BATCH_SIZE",
    "RUN_REPLICATION_MAX_POISON_STRIPS_PER_BATCH",
    "RUN_REPLICATION_LEADER_LOCK_TIMEOUT_MS",
    "RUN_REPLICATION_LEADER_LOCK_EXTEND_INTERVAL_MS",
    "RUN_REPLICATION_ACK_INTERVAL_SECONDS",
    "RUN_REPLICATION_LOG_LEVEL",
    "RUN_REPLICATION_CLICKHOUSE_LOG_LEVEL",
    "RUN_REPLICATION_LEADER_LOCK_ADDITIONAL_TIME_MS",
    "RUN_REPLICATION_LEADER_LOCK_RETRY_INTERVAL_MS",
    "RUN_REPLICATION_WAIT_FOR_ASYNC_INSERT",
    "RUN_REPLICATION_KEEP_ALIVE_ENABLED",
    "RUN_REPLICATION_KEEP_ALIVE_IDLE_SOCKET_TTL_MS",
    "RUN_REPLICATION_MAX_OPEN_CONNECTIONS",
    "RUN_REPLICATION_INSERT_MAX_RETRIES",
    "RUN_REPLICATION_INSERT_BASE_DELAY_MS",
    "RUN_REPLICATION_INSERT_MAX_DELAY_MS",
    "RUN_REPLICATION_INSERT_STRATEGY",
    "RUN_REPLICATION_DISABLE_PAYLOAD_INSERT",
    "RUN_REPLICATION_DISABLE_ERROR_FINGERPRINTING",
    "RUN_REPLICATION_LEGACY_DATABASE_URL",
    "RUN_REPLICATION_RUN_OPS_DATABASE_URL",
    "RUN_REPLICATION_NEW_SLOT_NAME",
    "RUN_REPLICATION_NEW_PUBLICATION_NAME",
    "RUN_REPLICATION_NEW_ENABLED",
    "RUN_REPLICATION_LEGACY_ORIGIN_GENERATION",
    "RUN_REPLICATION_NEW_ORIGIN_GENERATION",
];

#[test]
fn every_trigger_dev_name_is_honoured_ignored_or_not_supported_yet_exactly_once() {
    let mut classified = env::classified();
    classified.sort();
    let mut upstream = UPSTREAM_NAMES.to_vec();
    upstream.sort();
    assert_eq!(classified, upstream);
    // And the README names every honoured one.
    let readme = std::fs::read_to_string("README.md").unwrap();
    for name in UPSTREAM_NAMES {
        assert!(readme.contains(name), "{name} is not in README.md");
    }
}

#[test]
fn a_publication_may_have_any_name_postgres_keeps_whole() {
    for name in ["RunsPub", "runs,pub", "Runs \"Pub\" it's", &"p".repeat(63)] {
        let c = Config::load(
            None,
            &env_of(&[("RUN_REPLICATION_PUBLICATION_NAME", name)]),
            &[],
        )
        .unwrap();
        assert_eq!(c.postgres.publication, name);
    }
    for (name, what) in [("", "empty"), ("é".repeat(32).as_str(), "64 bytes")] {
        let e = refused(&[("RUN_REPLICATION_PUBLICATION_NAME", name)]);
        assert!(
            e.contains("invalid postgres.publication")
                && e.contains("(from env RUN_REPLICATION_PUBLICATION_NAME)")
                && e.contains("1 to 63 bytes"),
            "{what}: {e}"
        );
    }
}

#[test]
fn verify_durations_read_as_text_or_seconds_and_are_checked() {
    let c = load_toml("[verify]\ninterval = \"15m\"\nwindow = 7200\n", &[], &[]).unwrap();
    assert_eq!(c.verify.interval, Duration::from_secs(900));
    assert_eq!(c.verify.window, Duration::from_secs(7200));
    let off = load_toml("[verify]\ninterval = \"off\"\n", &[], &[]).unwrap();
    assert!(off.verify.interval.is_zero());
    assert!(
        Config::default().verify.interval.is_zero(),
        "off by default"
    );
    for (text, want) in [
        ("500ms", 500),
        ("90s", 90_000),
        ("90", 90_000),
        ("6h", 21_600_000),
        ("1d", 86_400_000),
        ("0", 0),
    ] {
        assert_eq!(
            parse::duration(text),
            Ok(Duration::from_millis(want)),
            "{text}"
        );
    }
    for bad in ["", "6 hours", "-1s", "1.5h", "h"] {
        assert!(parse::duration(bad).is_err(), "{bad}");
    }
    assert_eq!(duration_text(Duration::from_secs(21_600)), "6h");
    assert_eq!(duration_text(Duration::from_millis(1500)), "1500ms");
    let e = err("[verify]\ninterval = \"2s\"\n", &[]);
    assert!(e.contains("verify.interval") && e.contains("10s"), "{e}");
    let e = err("[verify]\nwindow = \"soon\"\n", &[]);
    assert!(e.contains("verify.window") && e.contains("duration"), "{e}");
    let e = err("", &[("RUNS_REPLICATOR_VERIFY_ROUNDS", "0")]);
    assert!(e.contains("verify.rounds"), "{e}");
}

#[test]
fn a_source_entry_without_a_name_is_named_by_position_and_url() {
    let text = r#"[[postgres.sources]]
name = "ops"
url = "postgres://u@ops:5432/run_ops"
generations = { TaskRun = 2 }
slot = "ops_slot"

[[postgres.sources]]
url = "postgres://repl:s3cret-pw@ops2.example:6543/run_ops"
generations = { TaskRun = 3 }
"#;
    let e = err(text, &[]);
    assert!(
        e.starts_with("invalid postgres.sources[1].name = (none) (from "),
        "{e}"
    );
    assert!(
        e.ends_with(
            "every [[postgres.sources]] entry needs a name (1 to 40 characters from a-z, A-Z, \
             0-9, _ and -: its metrics' source label and --source): [[postgres.sources]] entry 2 \
             of 2, url postgres://repl:***@ops2.example:6543/run_ops"
        ),
        "{e}"
    );
    assert!(!e.contains("s3cret-pw") && !e.contains("(source )"), "{e}");
}

#[test]
fn rust_log_is_one_more_name_for_log_level() {
    let level = |pairs: &[(&str, &str)], flags: &[FlagOverride]| {
        Config::load(None, &env_of(pairs), flags).map(|c| c.log.level)
    };
    // Empty counts as unset (it would silence everything).
    assert_eq!(level(&[("RUST_LOG", "")], &[]).unwrap(), "info");
    assert_eq!(
        level(
            &[
                ("RUST_LOG", "warning"),
                ("RUNS_REPLICATOR_LOG_LEVEL", "debug")
            ],
            &[]
        )
        .unwrap(),
        "warn",
        "RUST_LOG replaces the configured filter"
    );
    let flag = FlagOverride {
        flag: "--log-level",
        key: "log.level",
        value: "debug".into(),
    };
    assert_eq!(level(&[("RUST_LOG", "warn")], &[flag]).unwrap(), "debug");
    let e = level(&[("RUST_LOG", "hyper")], &[])
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("invalid log.level = \"hyper\" (from env RUST_LOG): ")
            && e.contains("silence"),
        "{e}"
    );
}

#[test]
fn verify_and_one_shot_writes_are_bounded_by_default_and_not_below_a_floor() {
    let c = Config::default();
    assert_eq!(c.verify.timeout, Duration::from_secs(3600));
    assert_eq!(c.clickhouse.give_up_after_ms, 300_000);
    let c = load_toml(
        "[verify]\ntimeout = \"90s\"\n[clickhouse]\ngive_up_after_ms = 5000\n",
        &[],
        &[],
    )
    .unwrap();
    assert_eq!(c.verify.timeout, Duration::from_secs(90));
    assert_eq!(c.clickhouse.give_up_after_ms, 5000);
    for (toml, key) in [
        ("[verify]\ntimeout = \"0\"\n", "verify.timeout"),
        ("[verify]\ntimeout = \"5s\"\n", "verify.timeout"),
        (
            "[clickhouse]\ngive_up_after_ms = 0\n",
            "clickhouse.give_up_after_ms",
        ),
    ] {
        let e = err(toml, &[]);
        assert!(e.contains(key), "{toml}: {e}");
    }
}
