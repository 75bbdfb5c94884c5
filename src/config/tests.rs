use std::collections::HashMap;
use std::path::Path;

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
            documented.push(format!("{section}.{k}"));
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
        ("postgres.url", "postgres://u@h:1/d"),
        ("postgres.schema", "s"),
        ("postgres.tables", "TaskRun"),
        ("postgres.generations", "TaskRun=3"),
        ("postgres.publication", "p"),
        ("postgres.slot", "s1"),
        ("postgres.create_publication", "false"),
        ("postgres.create_slot", "0"),
        ("postgres.recreate_lost_slot", "true"),
        ("postgres.status_interval_ms", "500"),
        ("postgres.connect_timeout_ms", "700"),
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
        ("clickhouse.ca_file", "/ca.pem"),
        ("batch.max_rows", "5"),
        ("batch.flush_interval_ms", "6"),
        ("batch.max_inflight", "3"),
        ("transform.fingerprint_errors", "false"),
        ("metrics.listen", "127.0.0.1:1"),
        ("metrics.clickhouse_unready_after_ms", "5"),
        ("log.format", "json"),
        ("log.level", "debug"),
        ("preflight.ignore_failures", "true"),
        ("backfill.parallel", "4"),
        ("backfill.chunk_rows", "1000"),
        ("backfill.max_bytes", "1048576"),
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
    assert_eq!(
        (
            c.postgres.status_interval_ms,
            c.postgres.connect_timeout_ms,
            c.postgres.slot_poll_interval_ms
        ),
        (500, 700, 900)
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
            c.backfill.max_bytes
        ),
        (4, 1000, 1 << 20)
    );
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
            c.batch.max_inflight
        ),
        (5, 6, 3)
    );
    assert!(!c.transform.fingerprint_errors);
    assert_eq!(c.metrics.listen.to_string(), "127.0.0.1:1");
    assert_eq!(c.metrics.clickhouse_unready_after_ms, 5);
    assert_eq!(
        (c.log.format, c.log.level.as_str()),
        (LogFormat::Json, "debug")
    );
    assert!(c.preflight.ignore_failures);
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
            ("RUN_REPLICATION_NEW_ORIGIN_GENERATION", "7"),
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
    assert!(c.clickhouse.async_insert);
    assert_eq!(c.clickhouse.payloads_table, "");
    assert!(!c.transform.fingerprint_errors);
    assert_eq!(
        (c.generation("TaskRun"), c.generation("task_run_v2")),
        (0, 7)
    );

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
