//! TLS to Postgres: a hostssl-only cluster with a certificate from a test CA; `sslmode=disable`
//! is refused, `require` and `verify-full` stream with every session of the worker on TLS, a
//! foreign CA or a name not in the certificate fail the preflight with one line.

use std::time::Duration;

use runs_replicator::testing::wait::wait_for;

use super::{CONVERGE, cannot_check_line, start_ready, text, wait_log, write_changes};
use crate::support::expect::assert_converges;
use crate::support::postgres::SUPERUSER_PASSWORD;
use crate::support::tls::tls_env;
use crate::support::{TestEnv, Worker, process, worker};

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
