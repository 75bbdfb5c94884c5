//! Security against the real services: TLS to Postgres (sslmode require and verify-full, a
//! foreign CA, a wrong name, plaintext against a hostssl-only server), TLS to ClickHouse with a
//! private CA, no password in any output on happy and error paths, and a least-privilege
//! Postgres role. Each scenario prints what it injected and what it checked.

use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::OnceLock;
use std::time::Duration;

use runs_replicator::testing::metrics;
use runs_replicator::testing::wait::wait_for;

use crate::support::certs::TestCa;
use crate::support::expect::assert_converges;
use crate::support::postgres::{SUPERUSER_PASSWORD, give_to_postgres};
use crate::support::runs::{insert, lit};
use crate::support::{ChServer, PgCluster, TestEnv, Worker, process, worker};

const CONVERGE: Duration = Duration::from_secs(30);
const READY: Duration = Duration::from_secs(30);

// ---------------------------------------------------------------------------------------------
// Helpers

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

fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (b[0] as u32) << 16 | (b[1] as u32) << 8 | b[2] as u32;
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Every form in which `secret` (the password of `user`) could leak: as is, percent-encoded
/// (upper- and lower-case hex), form-encoded, as the `url` crate writes it into a URL, inside an
/// HTTP basic-auth header, and its distinctive core on its own.
fn leak_forms(user: &str, secret: &str, core: &str) -> Vec<String> {
    let lower_hex: String = secret
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02x}")
            }
        })
        .collect();
    let form: String = url::form_urlencoded::byte_serialize(secret.as_bytes()).collect();
    let mut in_url = url::Url::parse("http://h/").unwrap();
    in_url.set_password(Some(secret)).unwrap();
    let mut forms = vec![
        secret.to_string(),
        pct(secret),
        lower_hex,
        form,
        in_url.password().unwrap().to_string(),
        base64(format!("{user}:{secret}").as_bytes()),
        core.to_string(),
    ];
    forms.sort();
    forms.dedup();
    forms
}

/// Everything the worker showed: logs, stdout/stderr of one-shot runs, HTTP bodies.
#[derive(Default)]
struct Outputs(Vec<(String, String)>);

impl Outputs {
    fn add(&mut self, what: impl Into<String>, text: impl Into<String>) {
        self.0.push((what.into(), text.into()));
    }

    fn add_output(&mut self, what: &str, out: &Output) {
        self.add(
            format!("{what} (stdout)"),
            String::from_utf8_lossy(&out.stdout),
        );
        self.add(
            format!("{what} (stderr)"),
            String::from_utf8_lossy(&out.stderr),
        );
    }

    fn add_http(&mut self, what: &str, worker: &Worker) {
        for path in ["/metrics", "/readyz", "/healthz"] {
            let (status, body) = worker
                .get(path)
                .unwrap_or_else(|| panic!("{what}: GET {path} answered"));
            self.add(format!("{what} GET {path} ({status})"), body);
        }
    }

    /// Greps every line of every output for every form of every secret.
    fn assert_no_secret(&self, secrets: &[(&str, Vec<String>)]) {
        let mut lines = 0;
        let mut leaks = Vec::new();
        for (what, text) in &self.0 {
            for (n, line) in text.lines().enumerate() {
                lines += 1;
                for (name, forms) in secrets {
                    for form in forms {
                        if line.contains(form.as_str()) {
                            leaks
                                .push(format!("{what} line {}: {name} as {form:?}: {line}", n + 1));
                        }
                    }
                }
            }
        }
        assert!(leaks.is_empty(), "secrets in output:\n{}", leaks.join("\n"));
        let forms: usize = secrets.iter().map(|(_, f)| f.len()).sum();
        println!(
            "checked: {lines} lines from {} outputs contain none of {} secrets ({forms} forms)",
            self.0.len(),
            secrets.len()
        );
    }
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Runs the binary once with `config`, `args` and extra environment variables.
fn cli(config: &Path, args: &[&str], envs: &[(&str, &str)]) -> Output {
    let mut cmd = worker::command(config);
    cmd.args(args).envs(envs.iter().copied());
    cmd.output().expect("run runs-replicator")
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

// ---------------------------------------------------------------------------------------------
// 1. TLS to Postgres

/// Only TLS over TCP: hostssl with SCRAM, every plaintext TCP connection rejected.
const HOSTSSL_ONLY: &str = "\
# TYPE     DATABASE     USER  ADDRESS       METHOD
local      all          all                 trust
hostssl    all          all   127.0.0.0/8   scram-sha-256
hostssl    replication  all   127.0.0.0/8   scram-sha-256
hostnossl  all          all   0.0.0.0/0     reject
hostnossl  replication  all   0.0.0.0/0     reject
";

struct TlsPostgres {
    cluster: &'static PgCluster,
    /// The CA that signed the server's certificate.
    ca: PathBuf,
    /// A CA that did not.
    other_ca: PathBuf,
}

/// One Postgres with `ssl = on` and a hostssl-only pg_hba.conf for the TLS tests. It listens on
/// 127.0.0.1 (in its certificate) and 127.0.0.2 (not in it).
fn tls_pg() -> &'static TlsPostgres {
    static PG: OnceLock<TlsPostgres> = OnceLock::new();
    PG.get_or_init(|| {
        let dir = process::temp_dir("pki-pg");
        let ca = TestCa::new(&dir, "rr test CA");
        let other_ca = TestCa::new(&dir, "rr other CA");
        let server = ca.server_cert(&dir, "postgres");
        give_to_postgres(&server.key);
        let cert = server.cert.display().to_string();
        let key = server.key.display().to_string();
        let cluster = PgCluster::start_with_hba(
            &[
                ("ssl", "on"),
                ("ssl_cert_file", &cert),
                ("ssl_key_file", &key),
                ("listen_addresses", "127.0.0.1,127.0.0.2"),
            ],
            Some(HOSTSSL_ONLY),
        );
        TlsPostgres {
            cluster: Box::leak(Box::new(cluster)),
            ca: ca.cert,
            other_ca: other_ca.cert,
        }
    })
}

async fn tls_env(label: &str) -> (TestEnv, &'static TlsPostgres) {
    let tls = tls_pg();
    let mut env = TestEnv::new(label).await;
    env.pg = tls.cluster;
    env.pg_db = tls.cluster.create_database(label).await;
    (env, tls)
}

/// The superuser URL of `env`'s database on `host`, with `query` appended.
fn pg_url(env: &TestEnv, host: &str, query: &str) -> String {
    let url = env.pg.url(&env.pg_db).replace("127.0.0.1", host);
    format!("{url}?{query}")
}

fn pg_url_toml(url: &str) -> String {
    format!("[postgres]\nurl = {}\n", toml::Value::String(url.into()))
}

/// Checks in pg_stat_ssl that every session of the worker, its control session(s) and its
/// walsender, is encrypted; returns a description of them.
async fn assert_worker_sessions_use_tls(env: &TestEnv) -> String {
    let admin = env.pg.connect("postgres").await;
    let rows = wait_for(
        "the worker's control session and walsender in pg_stat_activity",
        Duration::from_secs(10),
        || async {
            let rows = admin
                .query(
                    "SELECT a.backend_type, s.ssl, coalesce(s.version, ''), coalesce(s.cipher, '') \
                     FROM pg_stat_activity a JOIN pg_stat_ssl s ON s.pid = a.pid \
                     WHERE a.application_name = 'runs-replicator' AND a.datname = $1 \
                     ORDER BY a.backend_type",
                    &[&env.pg_db],
                )
                .await
                .unwrap();
            let kinds: Vec<String> = rows.iter().map(|r| r.get(0)).collect();
            (kinds.iter().any(|k| k == "walsender") && kinds.iter().any(|k| k == "client backend"))
                .then_some(rows)
        },
    )
    .await;
    let mut seen = Vec::new();
    for r in &rows {
        let (kind, ssl, version, cipher): (String, bool, String, String) =
            (r.get(0), r.get(1), r.get(2), r.get(3));
        assert!(ssl, "{kind} session of the worker is not encrypted");
        seen.push(format!("{kind}: ssl {version} {cipher}"));
    }
    seen.join("; ")
}

#[tokio::test]
async fn postgres_sslmode_require_streams_over_tls_and_plaintext_is_refused() {
    let (env, _) = tls_env("sec_pg_require").await;

    // Plaintext against the hostssl-only server: the preflight and the daemon both say why.
    let plain = env.write_config(
        process::free_port(),
        &pg_url_toml(&pg_url(&env, "127.0.0.1", "sslmode=disable")),
    );
    let line = cannot_check_line(&worker::preflight(&plain, &[]));
    println!("injected: sslmode=disable against a hostssl-only server; preflight: {line}");
    assert!(
        line.contains("pg_hba.conf") && line.contains("no encryption"),
        "{line}"
    );
    assert!(!line.contains(SUPERUSER_PASSWORD));
    let port = process::free_port();
    let daemon = Worker::start(
        &env.write_config(
            port,
            &pg_url_toml(&pg_url(&env, "127.0.0.1", "sslmode=disable")),
        ),
        port,
        &[],
    );
    let logged = wait_log(
        &daemon,
        "the plaintext refusal in the log",
        &["reconnecting", "no encryption"],
    )
    .await;
    let (status, body) = daemon.get("/readyz").unwrap();
    assert_eq!(status, 503, "{body}");
    println!("checked: the daemon retries and logs: {}", logged.trim());
    println!("checked: /readyz {status}: {}", body.trim());
    drop(daemon);

    // sslmode=require: encrypted, certificate not checked.
    let port = process::free_port();
    let config = env.write_config(
        port,
        &pg_url_toml(&pg_url(&env, "127.0.0.1", "sslmode=require")),
    );
    let mut worker = start_ready(&config, port, &[]).await;
    write_changes(&env, "req").await;
    assert_converges(&env, CONVERGE).await;
    println!(
        "checked: sslmode=require streams; ClickHouse equals Postgres (inserts, updates, deletes, both tables)"
    );
    let sessions = assert_worker_sessions_use_tls(&env).await;
    println!("checked: pg_stat_ssl: {sessions}");
    assert_eq!(worker.terminate().code(), Some(0));
}

#[tokio::test]
async fn postgres_sslmode_verify_full_checks_the_ca_and_the_name() {
    let (env, tls) = tls_env("sec_pg_verify").await;
    let ca = tls.ca.display().to_string();
    let other = tls.other_ca.display().to_string();
    let preflight = |host: &str, query: String| {
        let config = env.write_config(
            process::free_port(),
            &pg_url_toml(&pg_url(&env, host, &query)),
        );
        worker::preflight(&config, &[])
    };

    // A CA that did not sign the server's certificate.
    let out = preflight(
        "127.0.0.1",
        format!("sslmode=verify-full&sslrootcert={other}"),
    );
    let line = cannot_check_line(&out);
    println!("injected: verify-full with a different CA; preflight exit 2: {line}");
    assert!(
        line.contains("TLS") || line.contains("certificate"),
        "names the TLS problem: {line}"
    );
    assert!(line.contains("UnknownIssuer"), "{line}");
    assert!(!line.contains(SUPERUSER_PASSWORD), "{line}");

    // libpq: "require" with a root certificate verifies the chain as verify-ca does, so a
    // configured CA is never silently ignored.
    let out = preflight("127.0.0.1", format!("sslmode=require&sslrootcert={other}"));
    let line = cannot_check_line(&out);
    println!(
        "injected: sslmode=require with sslrootcert of a different CA; preflight exit 2: {line}"
    );
    assert!(line.contains("UnknownIssuer"), "{line}");
    let out = preflight("127.0.0.2", format!("sslmode=require&sslrootcert={ca}"));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    println!(
        "checked: sslmode=require with the right sslrootcert passes, by a name not in the certificate too"
    );

    // The right CA but a name the certificate does not carry (127.0.0.2 reaches the same server).
    let out = preflight("127.0.0.2", format!("sslmode=verify-full&sslrootcert={ca}"));
    let line = cannot_check_line(&out);
    println!(
        "injected: verify-full to 127.0.0.2, not in the certificate; preflight exit 2: {line}"
    );
    assert!(line.contains("not valid for name"), "{line}");
    let out = preflight("127.0.0.2", format!("sslmode=verify-ca&sslrootcert={ca}"));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    println!("checked: verify-ca to 127.0.0.2 passes (chain checked, name not)");

    // The DNS name in the certificate.
    let out = preflight("localhost", format!("sslmode=verify-full&sslrootcert={ca}"));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    println!("checked: verify-full to localhost (DNS SAN) passes the preflight");

    // verify-full by IP (an IP SAN): the worker streams.
    for host in ["127.0.0.1", "localhost"] {
        let port = process::free_port();
        let config = env.write_config(
            port,
            &pg_url_toml(&pg_url(
                &env,
                host,
                &format!("sslmode=verify-full&sslrootcert={ca}"),
            )),
        );
        let mut worker = start_ready(&config, port, &[]).await;
        write_changes(&env, &format!("vf_{}", host.replace('.', "_"))).await;
        assert_converges(&env, CONVERGE).await;
        println!("checked: sslmode=verify-full to {host} streams; ClickHouse equals Postgres");
        let sessions = assert_worker_sessions_use_tls(&env).await;
        println!("checked: pg_stat_ssl: {sessions}");
        assert_eq!(worker.terminate().code(), Some(0));
    }

    // The daemon with the foreign CA does not stream and says why.
    let port = process::free_port();
    let config = env.write_config(
        port,
        &pg_url_toml(&pg_url(
            &env,
            "127.0.0.1",
            &format!("sslmode=verify-full&sslrootcert={other}"),
        )),
    );
    let daemon = Worker::start(&config, port, &[]);
    let logged = wait_log(
        &daemon,
        "the certificate error in the log",
        &["reconnecting", "UnknownIssuer"],
    )
    .await;
    println!(
        "checked: the daemon with a foreign CA retries and logs: {}",
        logged.trim()
    );
    assert!(!daemon.log_text().contains(SUPERUSER_PASSWORD));
}

// ---------------------------------------------------------------------------------------------
// 2. TLS to ClickHouse

#[tokio::test]
async fn clickhouse_over_https_with_a_private_ca() {
    let dir = process::temp_dir("pki-ch");
    let ca = TestCa::new(&dir, "rr clickhouse CA");
    let other = TestCa::new(&dir, "rr other clickhouse CA");
    let server = ca.server_cert(&dir, "clickhouse");
    let ch: &'static ChServer = Box::leak(Box::new(
        ChServer::start(&[
            "--tls-cert",
            &server.cert.display().to_string(),
            "--tls-key",
            &server.key.display().to_string(),
        ])
        .with_ca_file(&ca.cert),
    ));
    let mut env = TestEnv::new("sec_ch_tls").await;
    env.ch = ch;
    env.ch_db = ch.create_database("sec_ch_tls").await;
    assert!(ch.url.starts_with("https://127.0.0.1:"), "{}", ch.url);

    // No ca_file: the webpki roots do not know the test CA.
    let out = worker::preflight(&env.write_config(process::free_port(), ""), &[]);
    let line = cannot_check_line(&out);
    println!("injected: https ClickHouse without clickhouse.ca_file; preflight exit 2: {line}");
    assert!(
        line.contains("certificate") || line.contains("UnknownIssuer"),
        "{line}"
    );
    let out = worker::preflight(
        &env.write_config(
            process::free_port(),
            &format!(
                "[clickhouse]\nca_file = {:?}\n",
                other.cert.display().to_string()
            ),
        ),
        &[],
    );
    let line = cannot_check_line(&out);
    println!("injected: clickhouse.ca_file with a foreign CA; preflight exit 2: {line}");
    assert!(line.contains("UnknownIssuer"), "{line}");

    let overrides = format!(
        "[clickhouse]\nca_file = {:?}\n",
        ca.cert.display().to_string()
    );
    let port = process::free_port();
    let config = env.write_config(port, &overrides);
    let out = worker::preflight(&config, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    println!("checked: with clickhouse.ca_file the preflight passes over https");
    let by_name = env.write_config(
        process::free_port(),
        &format!(
            "{overrides}url = {:?}\n",
            ch.url.replace("127.0.0.1", "localhost")
        ),
    );
    let out = worker::preflight(&by_name, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    println!("checked: https://localhost (the DNS name in the certificate) passes too");
    let mut worker = start_ready(&config, port, &[]).await;
    write_changes(&env, "chtls").await;
    assert_converges(&env, CONVERGE).await;
    let (_, metrics) = worker.get("/metrics").unwrap();
    let inserted = metrics::sum(&metrics, "runs_replicator_rows_inserted_total");
    assert!(inserted >= 6.0, "{metrics}");
    println!(
        "checked: streamed over https; ClickHouse (read over https with the test CA) equals Postgres; rows_inserted_total = {inserted}"
    );
    assert_eq!(worker.terminate().code(), Some(0));
}

// ---------------------------------------------------------------------------------------------
// 3. No secrets in output

const PG_PASSWORD: &str = "Pg p@ss:w/rd%#?&=+-Qx7Vb2";
const PG_WRONG_PASSWORD: &str = "Pg wr0ng:p@ss/%#?-Jm4Tz8";
const CH_PASSWORD: &str = "Ch p@ss:w/rd%#?&=+-Kd9Rw5";
const CH_WRONG_PASSWORD: &str = "Ch wr0ng:p@ss/%#?-Ny3Hs6";
const CH_USER: &str = "rr_ch";

/// Environment variables for one run of the binary.
type Envs<'a> = Vec<(&'a str, &'a str)>;

#[tokio::test]
async fn no_password_in_any_output() {
    let ch: &'static ChServer = Box::leak(Box::new(ChServer::start(&[
        "--user",
        CH_USER,
        "--password",
        CH_PASSWORD,
    ])));
    let mut env = TestEnv::new("sec_secrets").await;
    env.ch = ch;
    env.ch_db = ch.create_database("sec_secrets").await;
    let role = format!("rr_sec_{}", std::process::id());
    let admin = env.pg_client().await;
    admin
        .batch_execute(&format!(
            "CREATE ROLE {role} LOGIN REPLICATION PASSWORD {pw}; \
             GRANT SELECT ON \"TaskRun\", task_run_v2 TO {role}; \
             CREATE PUBLICATION {publication} FOR TABLE \"TaskRun\", task_run_v2 \
               WITH (publish = 'insert, update, delete, truncate')",
            pw = lit(PG_PASSWORD),
            publication = env.publication,
        ))
        .await
        .unwrap();
    let pg_url = env.pg.url_as(&role, &pct(PG_PASSWORD), &env.pg_db);
    let pg_wrong_url = env.pg.url_as(&role, &pct(PG_WRONG_PASSWORD), &env.pg_db);
    let ch_host = ch.url.trim_start_matches("http://").to_string();
    let ch_url_with = |pw: &str| format!("http://{CH_USER}:{}@{ch_host}", pct(pw));
    let base = format!(
        "[postgres]\nurl = {}\ncreate_publication = false\n[clickhouse]\nuser = \"{CH_USER}\"\n",
        toml::Value::String(pg_url.clone())
    );
    let ch_env = [("RUNS_REPLICATOR_CLICKHOUSE_PASSWORD", CH_PASSWORD)];
    let mut outputs = Outputs::default();

    // --help and --version.
    let config = env.write_config(process::free_port(), &base);
    for flag in ["--help", "--version"] {
        let out = cli(&config, &[flag], &ch_env);
        assert_eq!(out.status.code(), Some(0), "{}", text(&out));
        outputs.add_output(flag, &out);
    }

    // The preflight, text and json, passing.
    for format in ["text", "json"] {
        let out = cli(
            &config,
            &["--check-replica-identity", "--format", format],
            &ch_env,
        );
        assert_eq!(out.status.code(), Some(0), "{}", text(&out));
        outputs.add_output(&format!("preflight --format {format}"), &out);
    }
    println!("checked: the preflight passes with the passwords in the URL and in the environment");

    // Run A: Postgres password in the config file's URL, ClickHouse password in
    // RUNS_REPLICATOR_CLICKHOUSE_PASSWORD; then ClickHouse dies mid-stream and comes back.
    let port = process::free_port();
    let mut a = start_ready(&env.write_config(port, &base), port, &ch_env).await;
    write_changes(&env, "sec_a").await;
    assert_converges(&env, CONVERGE).await;
    outputs.add_http("run A", &a);
    ch.kill();
    println!("injected: ClickHouse killed while run A streams");
    let pg = env.pg_client().await;
    insert(&pg, "task_run_v2", "sec_a_during_outage", &[]).await;
    let logged = wait_log(&a, "an insert failure in the log", &["insert failed"]).await;
    println!("checked: run A logs the failed insert: {}", logged.trim());
    outputs.add_http("run A during the outage", &a);
    ch.restart();
    assert_converges(&env, CONVERGE).await;
    println!(
        "checked: run A streamed (password from the URL and from the environment) and recovered after the outage"
    );
    outputs.add_http("run A after the outage", &a);
    assert_eq!(a.terminate().code(), Some(0));
    outputs.add("run A log", a.log_text());

    // Run B: Postgres URL in DATABASE_URL, ClickHouse credentials inside
    // RUN_REPLICATION_CLICKHOUSE_URL, JSON logs, every crate at trace (RUST_LOG).
    let port = process::free_port();
    let ch_url = ch_url_with(CH_PASSWORD);
    let env_b = [
        ("DATABASE_URL", pg_url.as_str()),
        ("RUN_REPLICATION_CLICKHOUSE_URL", ch_url.as_str()),
        ("RUST_LOG", "trace"),
    ];
    let config_b = env.write_config(
        port,
        "[postgres]\ncreate_publication = false\n[log]\nformat = \"json\"\n",
    );
    let mut b = start_ready(&config_b, port, &env_b).await;
    write_changes(&env, "sec_b").await;
    assert_converges(&env, CONVERGE).await;
    println!(
        "checked: run B streamed with the passwords in DATABASE_URL and RUN_REPLICATION_CLICKHOUSE_URL, logging at trace"
    );
    outputs.add_http("run B", &b);
    assert_eq!(b.terminate().code(), Some(0));
    outputs.add("run B log", b.log_text());
    for format in ["text", "json"] {
        let out = cli(
            &config_b,
            &["--check-replica-identity", "--format", format],
            &env_b,
        );
        assert_eq!(out.status.code(), Some(0), "{}", text(&out));
        outputs.add_output(&format!("run B preflight --format {format}"), &out);
    }

    // Error paths, all at once: ClickHouse down at start, a wrong ClickHouse password, a wrong
    // Postgres password. Each daemon logs its error and keeps retrying.
    let down = format!("http://127.0.0.1:{}", process::free_port());
    let ch_wrong_url = ch_url_with(CH_WRONG_PASSWORD);
    let cases: Vec<(&str, String, Envs, &[&str])> = vec![
        (
            "ClickHouse down",
            format!("{base}url = {down:?}\n"),
            vec![("RUNS_REPLICATOR_CLICKHOUSE_PASSWORD", CH_PASSWORD)],
            &["reconnecting", "ClickHouse"],
        ),
        (
            "wrong ClickHouse password (in the URL)",
            base.clone(),
            vec![("RUN_REPLICATION_CLICKHOUSE_URL", ch_wrong_url.as_str())],
            &["reconnecting", "Authentication failed"],
        ),
        (
            "wrong ClickHouse password (in the environment)",
            base.clone(),
            vec![("RUNS_REPLICATOR_CLICKHOUSE_PASSWORD", CH_WRONG_PASSWORD)],
            &["reconnecting", "Authentication failed"],
        ),
        (
            "wrong Postgres password",
            format!(
                "[postgres]\nurl = {}\ncreate_publication = false\n\
                 [clickhouse]\nuser = \"{CH_USER}\"\n[log]\nformat = \"json\"\n",
                toml::Value::String(pg_wrong_url.clone())
            ),
            vec![("RUNS_REPLICATOR_CLICKHOUSE_PASSWORD", CH_PASSWORD)],
            &["reconnecting", "password authentication failed"],
        ),
    ];
    let mut daemons = Vec::new();
    for (what, overrides, envs, _) in &cases {
        let port = process::free_port();
        let config = env.write_config(port, overrides);
        for format in ["text", "json"] {
            let out = cli(
                &config,
                &["--check-replica-identity", "--format", format],
                envs,
            );
            assert_eq!(out.status.code(), Some(2), "{what}: {}", text(&out));
            let shown = text(&out);
            println!(
                "injected: {what}; preflight --format {format} exit 2: {}",
                shown.trim()
            );
            outputs.add_output(&format!("{what}: preflight --format {format}"), &out);
        }
        daemons.push(Worker::start(&config, port, envs));
    }
    for ((what, _, _, needles), daemon) in cases.iter().zip(&daemons) {
        let logged = wait_log(daemon, what, needles).await;
        println!("checked: {what}: the daemon logs {}", logged.trim());
        let (status, body) = daemon.get("/readyz").unwrap();
        assert_eq!(status, 503, "{what}: {body}");
        outputs.add_http(what, daemon);
    }
    for (mut daemon, (what, ..)) in daemons.into_iter().zip(&cases) {
        assert_eq!(daemon.terminate().code(), Some(0));
        outputs.add(format!("{what}: log"), daemon.log_text());
    }

    // Bad values next to a password: the config error names the key, not the secret.
    let bad_pg = format!("{pg_url}?sslmode=bogus");
    let bad_ch = format!("{}/?x=1", ch_url_with(CH_PASSWORD));
    let broken_toml = env.write_config(process::free_port(), "");
    std::fs::write(
        &broken_toml,
        format!(
            "[postgres]\nurl = \"{pg_url}?sslmode=bogus\"\n[clickhouse]\npassword = \"{CH_PASSWORD}\"\nbogus = 1\n"
        ),
    )
    .unwrap();
    // Passwords pasted into URLs without percent-encoding.
    let raw_pg = format!(
        "postgres://{role}:{PG_PASSWORD}@127.0.0.1:{}/{}",
        env.pg.port, env.pg_db
    );
    let raw_ch = format!("http://{CH_USER}:{CH_PASSWORD}@{ch_host}");
    let unterminated = process::temp_dir("sec-toml").join("unterminated.toml");
    std::fs::write(
        &unterminated,
        format!("[clickhouse]\npassword = \"{CH_PASSWORD}\n"),
    )
    .unwrap();
    let bad_runs: Vec<(&str, &Path, Vec<&str>, Envs)> = vec![
        (
            "bad sslmode in RUNS_REPLICATOR_POSTGRES_URL",
            config.as_path(),
            vec!["--check-replica-identity"],
            vec![("RUNS_REPLICATOR_POSTGRES_URL", bad_pg.as_str())],
        ),
        (
            "bad sslmode in --postgres-url",
            config.as_path(),
            vec![
                "--check-replica-identity",
                "--postgres-url",
                bad_pg.as_str(),
            ],
            vec![],
        ),
        (
            "query in RUN_REPLICATION_CLICKHOUSE_URL",
            config.as_path(),
            vec![],
            vec![("RUN_REPLICATION_CLICKHOUSE_URL", bad_ch.as_str())],
        ),
        (
            "bad config file with passwords",
            broken_toml.as_path(),
            vec![],
            vec![],
        ),
        (
            "unterminated string holding a password",
            unterminated.as_path(),
            vec![],
            vec![],
        ),
        (
            "unencoded password in DATABASE_URL",
            config.as_path(),
            vec!["--check-replica-identity"],
            vec![("DATABASE_URL", raw_pg.as_str())],
        ),
        (
            "unencoded password in RUN_REPLICATION_CLICKHOUSE_URL",
            config.as_path(),
            vec!["--check-replica-identity", "--format", "json"],
            vec![("RUN_REPLICATION_CLICKHOUSE_URL", raw_ch.as_str())],
        ),
    ];
    for (what, config, args, envs) in bad_runs {
        let out = cli(config, &args, &envs);
        assert_eq!(out.status.code(), Some(2), "{what}: {}", text(&out));
        println!("injected: {what}; exit 2: {}", text(&out).trim());
        outputs.add_output(what, &out);
    }

    let secrets = [
        (
            "Postgres password",
            leak_forms(&role, PG_PASSWORD, "Qx7Vb2"),
        ),
        (
            "wrong Postgres password",
            leak_forms(&role, PG_WRONG_PASSWORD, "Jm4Tz8"),
        ),
        (
            "ClickHouse password",
            leak_forms(CH_USER, CH_PASSWORD, "Kd9Rw5"),
        ),
        (
            "wrong ClickHouse password",
            leak_forms(CH_USER, CH_WRONG_PASSWORD, "Ny3Hs6"),
        ),
        (
            "superuser password",
            leak_forms("postgres", SUPERUSER_PASSWORD, SUPERUSER_PASSWORD),
        ),
    ];
    outputs.assert_no_secret(&secrets);
}

// ---------------------------------------------------------------------------------------------
// 4. Least privilege

#[tokio::test]
async fn least_privilege_role_streams_with_a_precreated_publication_and_slot() {
    let env = TestEnv::new("sec_least").await;
    let role = format!("rr_min_{}", std::process::id());
    let password = "min-P@ss:w/rd%-Lp5";
    let admin = env.pg_client().await;
    // One statement per call: a multi-statement query is one transaction, and a slot cannot
    // be created in a transaction that has written.
    for sql in [
        format!(
            "CREATE PUBLICATION {} FOR TABLE public.\"TaskRun\", public.task_run_v2 \
             WITH (publish = 'insert, update, delete, truncate')",
            env.publication
        ),
        format!(
            "SELECT pg_create_logical_replication_slot({}, 'pgoutput')",
            lit(&env.slot)
        ),
        format!("REVOKE ALL ON DATABASE {} FROM PUBLIC", env.pg_db),
        format!(
            "CREATE ROLE {role} LOGIN REPLICATION PASSWORD {}",
            lit(password)
        ),
        format!("GRANT CONNECT ON DATABASE {} TO {role}", env.pg_db),
        format!("GRANT SELECT ON public.\"TaskRun\", public.task_run_v2 TO {role}"),
    ] {
        admin
            .batch_execute(&sql)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }
    let privileges = admin
        .query_one(
            "SELECT r.rolsuper, r.rolcreaterole, r.rolcreatedb, r.rolbypassrls, \
                    (SELECT count(*) FROM pg_auth_members m WHERE m.member = r.oid), \
                    has_table_privilege(r.rolname, 'public.\"TaskRun\"', 'INSERT, UPDATE, DELETE, TRUNCATE'), \
                    has_table_privilege(r.rolname, 'public.task_run_v2', 'INSERT, UPDATE, DELETE, TRUNCATE'), \
                    has_database_privilege(r.rolname, current_database(), 'CREATE, TEMP') \
             FROM pg_roles r WHERE r.rolname = $1",
            &[&role],
        )
        .await
        .unwrap();
    let (sup, createrole, createdb, bypass, member_of, w1, w2, dbpriv): (
        bool,
        bool,
        bool,
        bool,
        i64,
        bool,
        bool,
        bool,
    ) = (
        privileges.get(0),
        privileges.get(1),
        privileges.get(2),
        privileges.get(3),
        privileges.get(4),
        privileges.get(5),
        privileges.get(6),
        privileges.get(7),
    );
    assert!(!sup && !createrole && !createdb && !bypass && member_of == 0 && !w1 && !w2 && !dbpriv);
    println!(
        "injected: role {role}: LOGIN REPLICATION, CONNECT on {}, SELECT on the two tables, nothing else \
         (publication and slot created by the superuser, PUBLIC's database privileges revoked)",
        env.pg_db
    );

    let port = process::free_port();
    let overrides = format!(
        "[postgres]\nurl = {}\ncreate_publication = false\n",
        toml::Value::String(env.pg.url_as(&role, &pct(password), &env.pg_db))
    );
    let config = env.write_config(port, &overrides);
    let out = worker::preflight(&config, &[]);
    let report = text(&out);
    assert_eq!(out.status.code(), Some(0), "{report}");
    assert!(
        report.contains(&format!("role {role}")) && report.contains("0 failed"),
        "{report}"
    );
    for check in [
        "replication_role",
        "table_select",
        "publication_table",
        "slot",
    ] {
        assert!(
            report
                .lines()
                .any(|l| l.trim_start().starts_with("ok") && l.contains(check)),
            "{check} not ok:\n{report}"
        );
    }
    println!("checked: the preflight passes as {role}");

    let mut worker = start_ready(&config, port, &[]).await;
    write_changes(&env, "min").await;
    let pg = env.pg_client().await;
    pg.batch_execute(
        "BEGIN; \
         DELETE FROM \"TaskRun\" WHERE id = 'min_v1_2'; \
         UPDATE task_run_v2 SET status = 'CANCELED' WHERE id = 'min_v2_2'; \
         COMMIT",
    )
    .await
    .unwrap();
    assert_converges(&env, CONVERGE).await;
    println!("checked: as {role}, inserts, updates and deletes in both tables reach ClickHouse");
    let who = admin
        .query_one(
            "SELECT count(*) FROM pg_stat_replication WHERE usename = $1",
            &[&role],
        )
        .await
        .unwrap()
        .get::<_, i64>(0);
    assert_eq!(who, 1, "the walsender runs as {role}");
    let (_, metrics) = worker.get("/metrics").unwrap();
    for name in [
        "runs_replicator_slot_active",
        "runs_replicator_slot_lag_bytes",
    ] {
        assert!(
            metrics.lines().any(|l| l.starts_with(name)),
            "slot monitoring as {role}: {name} missing:\n{metrics}"
        );
    }
    let log = worker.log_text();
    assert!(
        !log.contains("permission denied") && !log.contains("ERROR"),
        "{log}"
    );
    assert_eq!(worker.terminate().code(), Some(0));
    println!(
        "checked: the walsender ran as {role}; slot metrics read as {role}; no error in the log"
    );
}
