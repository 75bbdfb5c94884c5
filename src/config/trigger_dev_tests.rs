//! trigger.dev's own environment, as its deployments write it, read by the worker: the URLs of
//! its compose file, its Helm chart (rendered) and its docs, verbatim (trigger.dev snapshot
//! b082e44389337dc6505d590737a6df70867cc8f4), with the generated passwords its scripts produce
//! (`openssl rand -hex 16`).

use std::collections::HashMap;

use super::*;

fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
    let map: HashMap<String, String> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    move |k: &str| map.get(k).cloned()
}

fn load(env: &[(&str, &str)]) -> Result<Config, ConfigError> {
    Config::load(None, &env_of(env), &[])
}

const PG_PASSWORD: &str = "3f6c1b2e9d8a4f7e0c5b6a9d2e1f4c7b";
const CH_PASSWORD: &str = "a1b2c3d4e5f60718293a4b5c6d7e8f90";

/// hosting/docker/webapp/docker-compose.yml, `DATABASE_URL`'s default with
/// `${POSTGRES_PASSWORD}` expanded.
fn compose_database_url() -> String {
    format!("postgresql://postgres:{PG_PASSWORD}@postgres:5432/main?schema=public&sslmode=disable")
}

/// The same file's `CLICKHOUSE_URL` and `RUN_REPLICATION_CLICKHOUSE_URL` defaults.
fn compose_clickhouse_url() -> String {
    format!("http://default:{CH_PASSWORD}@clickhouse:8123?secure=false")
}
fn compose_replication_clickhouse_url() -> String {
    format!("http://default:{CH_PASSWORD}@clickhouse:8123")
}

#[test]
fn the_compose_files_urls_are_read_as_trigger_dev_writes_them() {
    let c = load(&[
        ("DATABASE_URL", &compose_database_url()),
        (
            "RUN_REPLICATION_CLICKHOUSE_URL",
            &compose_replication_clickhouse_url(),
        ),
        ("CLICKHOUSE_URL", &compose_clickhouse_url()),
        ("RUN_REPLICATION_LOG_LEVEL", "info"),
    ])
    .unwrap();
    let pg = &c.postgres.url;
    assert_eq!(
        (
            pg.host.as_str(),
            pg.port,
            pg.dbname.as_str(),
            pg.user.as_str()
        ),
        ("postgres", 5432, "main", "postgres")
    );
    assert_eq!(pg.password.expose(), PG_PASSWORD);
    assert_eq!(pg.sslmode, SslMode::Disable);
    assert_eq!(c.postgres.schema, "public");
    assert_eq!(c.clickhouse.url.endpoint, "http://clickhouse:8123");
    let (user, password) = c.clickhouse_credentials();
    assert_eq!((user.as_str(), password.expose()), ("default", CH_PASSWORD));
    assert!(c.warnings().is_empty(), "{:?}", c.warnings());

    // The webapp's CLICKHOUSE_URL alone (its `?secure=false` for goose included) is enough.
    let c = load(&[
        ("DATABASE_URL", &compose_database_url()),
        ("CLICKHOUSE_URL", &compose_clickhouse_url()),
    ])
    .unwrap();
    assert_eq!(c.clickhouse.url.endpoint, "http://clickhouse:8123");
    assert!(c.warnings().is_empty(), "{:?}", c.warnings());
    // RUN_REPLICATION_CLICKHOUSE_URL is the replication's own and wins.
    let c = load(&[
        ("CLICKHOUSE_URL", "http://default:x@other:8123?secure=false"),
        (
            "RUN_REPLICATION_CLICKHOUSE_URL",
            &compose_replication_clickhouse_url(),
        ),
    ])
    .unwrap();
    assert_eq!(c.clickhouse.url.endpoint, "http://clickhouse:8123");
}

#[test]
fn helms_rendered_urls_are_read() {
    // hosting/k8s/helm: `trigger-v4.postgres.connectionString` with the chart's defaults
    // (release "trigger", connection.schema "public", connection.sslMode "disable"), after the
    // kubelet substituted $(POSTGRES_PASSWORD); `trigger-v4.clickhouse.url` (with `?secure=`)
    // and `trigger-v4.clickhouse.replication.url` (without), secure: false.
    let database = format!(
        "postgresql://postgres:{PG_PASSWORD}@trigger-postgres:5432/main?schema=public&sslmode=disable"
    );
    let clickhouse = format!("http://default:{CH_PASSWORD}@trigger-clickhouse:8123?secure=false");
    let replication = format!("http://default:{CH_PASSWORD}@trigger-clickhouse:8123");
    for ch in [&clickhouse, &replication] {
        let c = load(&[
            ("DATABASE_URL", &database),
            ("RUN_REPLICATION_CLICKHOUSE_URL", ch),
            ("RUN_REPLICATION_ENABLED", "0"),
            ("RUN_REPLICATION_LOG_LEVEL", "info"),
        ])
        .unwrap();
        assert_eq!(c.postgres.url.host, "trigger-postgres");
        assert_eq!(c.postgres.schema, "public");
        assert_eq!(c.clickhouse.url.endpoint, "http://trigger-clickhouse:8123");
        assert!(c.warnings().is_empty(), "{:?}", c.warnings());
    }
    // clickhouse.secure: true renders https:// with ?secure=true: agreed, nothing to say.
    let c = load(&[(
        "RUN_REPLICATION_CLICKHOUSE_URL",
        &format!("https://default:{CH_PASSWORD}@trigger-clickhouse:8443?secure=true"),
    )])
    .unwrap();
    assert!(c.clickhouse.url.https);
    assert!(c.warnings().is_empty(), "{:?}", c.warnings());
}

#[test]
fn the_docs_production_example_is_read() {
    // docs/self-hosting/kubernetes.mdx, "PostgreSQL SSL with custom CA certificates".
    let c = load(&[(
        "DATABASE_URL",
        "postgresql://user:password@mydb.example.com:5432/triggerdb?schema=public&sslmode=require",
    )])
    .unwrap();
    let pg = &c.postgres.url;
    assert_eq!(
        (pg.host.as_str(), pg.dbname.as_str(), pg.sslmode),
        ("mydb.example.com", "triggerdb", SslMode::Require)
    );
    assert_eq!(c.postgres.schema, "public");
    // And its "Direct configuration" example, schema only.
    let c = load(&[(
        "DATABASE_URL",
        "postgresql://user:password@host:5432/database?schema=public",
    )])
    .unwrap();
    assert_eq!(c.postgres.schema, "public");
}

#[test]
fn schema_names_the_tables_schema_unless_postgres_schema_is_set() {
    let url = "postgresql://u:p@h:5432/main?schema=triggerdotdev&sslmode=disable";
    let c = load(&[("DATABASE_URL", url)]).unwrap();
    assert_eq!(c.postgres.schema, "triggerdotdev");
    assert_eq!(c.sources()[0].schema, "triggerdotdev");
    assert!(c.warnings().is_empty(), "{:?}", c.warnings());

    // An explicit setting wins, and the disagreement is said.
    let c = load(&[
        ("DATABASE_URL", url),
        ("RUNS_REPLICATOR_POSTGRES_SCHEMA", "public"),
    ])
    .unwrap();
    assert_eq!(c.postgres.schema, "public");
    assert_eq!(c.warnings().len(), 1, "{:?}", c.warnings());
    assert!(
        c.warnings()[0].contains("postgres.schema = \"public\"")
            && c.warnings()[0].contains("schema=triggerdotdev"),
        "{:?}",
        c.warnings()
    );
    // The shipped file writes every default out: its schema = "public" is no choice, the
    // URL's schema applies. Another schema in the file is one, and wins.
    let dir = std::env::temp_dir().join(format!("rr-cfg-schema-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("c.toml");
    std::fs::write(&path, "[postgres]\nschema = \"public\"\n").unwrap();
    let c = Config::load(Some(&path), &env_of(&[("DATABASE_URL", url)]), &[]).unwrap();
    assert_eq!(c.postgres.schema, "triggerdotdev");
    std::fs::write(&path, "[postgres]\nschema = \"runs\"\n").unwrap();
    let c = Config::load(Some(&path), &env_of(&[("DATABASE_URL", url)]), &[]).unwrap();
    assert_eq!(c.postgres.schema, "runs");
    assert!(
        c.warnings()[0].contains("schema=triggerdotdev"),
        "{:?}",
        c.warnings()
    );
    // A schema the worker cannot name is refused, naming where it came from.
    let e = load(&[("DATABASE_URL", "postgresql://u:p@h/main?schema=a%22b")])
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("invalid postgres.schema = \"a\\\"b\" (from env DATABASE_URL (schema=))"),
        "{e}"
    );
    std::fs::remove_dir_all(&dir).ok();

    // A [[postgres.sources]] entry's url the same way; the run-ops URL too.
    let c = load(&[(
        "RUN_REPLICATION_RUN_OPS_DATABASE_URL",
        "postgresql://u:p@ops:5432/runops?schema=runops",
    )])
    .unwrap();
    assert_eq!(c.sources()[1].schema, "runops");
}

#[test]
fn prismas_pool_parameters_are_named_once_and_ignored() {
    // What trigger.dev's `buildPrismaConnectionUrl` appends, and the other Prisma pool knobs.
    let url = format!(
        "postgresql://postgres:{PG_PASSWORD}@db:5432/main?schema=public&connection_limit=10&\
         pool_timeout=0&connect_timeout=20&application_name=trigger.dev&statement_cache_size=100&\
         socket_timeout=5&pgbouncer=false&sslaccept=accept_invalid_certs"
    );
    let c = load(&[("DATABASE_URL", &url)]).unwrap();
    assert_eq!(
        c.postgres.url.connect_timeout,
        Some(std::time::Duration::from_secs(20)),
        "connect_timeout is libpq's too, and honoured"
    );
    assert_eq!(c.warnings().len(), 1, "{:?}", c.warnings());
    let w = &c.warnings()[0];
    assert!(
        w.ends_with(
            "postgres.url (from env DATABASE_URL): connection_limit, pool_timeout, \
             statement_cache_size, socket_timeout, pgbouncer, sslaccept"
        ),
        "{w}"
    );
    assert!(!w.contains(PG_PASSWORD) && !w.contains('\n'), "{w}");
}

#[test]
fn a_transaction_pooler_is_refused_with_the_url_to_use() {
    let url = format!(
        "postgresql://postgres:{PG_PASSWORD}@pooler:6543/main?pgbouncer=true&schema=public"
    );
    let e = load(&[("DATABASE_URL", &url)]).unwrap_err().to_string();
    assert!(
        e.starts_with("invalid postgres.url = \"postgresql://postgres:***@pooler:6543/main?"),
        "{e}"
    );
    assert!(
        e.contains("(from env DATABASE_URL)")
            && e.contains("transaction pooler")
            && e.contains("DIRECT_URL")
            && e.contains("RUN_REPLICATION_LEGACY_DATABASE_URL"),
        "{e}"
    );
    assert!(!e.contains(PG_PASSWORD) && !e.contains('\n'), "{e}");
    // The usual setup: the app's pooled DATABASE_URL beside the direct URL for replication,
    // which comes first; the pooled one is not even read.
    let c = load(&[
        ("DATABASE_URL", &url),
        (
            "RUN_REPLICATION_LEGACY_DATABASE_URL",
            &compose_database_url(),
        ),
    ])
    .unwrap();
    assert_eq!(c.postgres.url.host, "postgres");
    // Prisma's strict certificate check is not silently weakened.
    let e = load(&[(
        "DATABASE_URL",
        "postgresql://u:p@h/main?sslmode=require&sslaccept=strict",
    )])
    .unwrap_err()
    .to_string();
    assert!(e.contains("sslmode=verify-full"), "{e}");
}

#[test]
fn clickhouse_url_parameters() {
    // secure= that disagrees with the scheme: ignored as trigger.dev ignores it, and said.
    let c = load(&[(
        "RUN_REPLICATION_CLICKHOUSE_URL",
        "http://default:pw@ch:8123?secure=true",
    )])
    .unwrap();
    assert!(!c.clickhouse.url.https);
    assert_eq!(c.warnings().len(), 1, "{:?}", c.warnings());
    assert!(
        c.warnings()[0]
            .ends_with("clickhouse.url (from env RUN_REPLICATION_CLICKHOUSE_URL): secure=true"),
        "{:?}",
        c.warnings()
    );
    // database= names the database unless clickhouse.database is set.
    let c = load(&[(
        "RUN_REPLICATION_CLICKHOUSE_URL",
        "http://ch:8123?database=analytics&request_timeout=30000",
    )])
    .unwrap();
    assert_eq!(c.clickhouse.database, "analytics");
    assert!(
        c.warnings()[0].ends_with("request_timeout"),
        "{:?}",
        c.warnings()
    );
    let c = load(&[
        (
            "RUN_REPLICATION_CLICKHOUSE_URL",
            "http://ch:8123?database=analytics",
        ),
        ("RUNS_REPLICATOR_CLICKHOUSE_DATABASE", "trigger_dev"),
    ])
    .unwrap();
    assert_eq!(c.clickhouse.database, "trigger_dev");
    assert_eq!(c.warnings().len(), 1, "{:?}", c.warnings());
    // Anything else is refused with the parameter's name.
    let e = load(&[("RUN_REPLICATION_CLICKHOUSE_URL", "http://ch:8123?mystery=1")])
        .unwrap_err()
        .to_string();
    assert!(e.contains("parameter \"mystery\""), "{e}");
}
