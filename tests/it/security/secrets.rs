//! No secrets in output: passwords with URL-special characters in the config file, the
//! environment and trigger.dev's URLs; ClickHouse down, wrong passwords, bad configs. Every line
//! of every log, stdout/stderr and HTTP body is searched for every form of every password.

use std::path::Path;
use std::process::Output;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;

use super::{CONVERGE, pct, start_ready, text, wait_log, write_changes};
use crate::support::expect::assert_converges;
use crate::support::postgres::SUPERUSER_PASSWORD;
use crate::support::runs::{insert, lit};
use crate::support::{ChServer, TestEnv, Worker, process, worker};

const PG_PASSWORD: &str = "Pg p@ss:w/rd%#?&=+-Qx7Vb2";
const PG_WRONG_PASSWORD: &str = "Pg wr0ng:p@ss/%#?-Jm4Tz8";
const CH_PASSWORD: &str = "Ch p@ss:w/rd%#?&=+-Kd9Rw5";
const CH_WRONG_PASSWORD: &str = "Ch wr0ng:p@ss/%#?-Ny3Hs6";
const CH_USER: &str = "rr_ch";

/// Environment variables for one run of the binary.
type Envs<'a> = Vec<(&'a str, &'a str)>;

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
        BASE64.encode(format!("{user}:{secret}")),
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

/// Runs the binary once with `config`, `args` and extra environment variables.
fn cli(config: &Path, args: &[&str], envs: &[(&str, &str)]) -> Output {
    let mut cmd = worker::command(config);
    cmd.args(args).envs(envs.iter().copied());
    cmd.output().expect("run runs-replicator")
}

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
