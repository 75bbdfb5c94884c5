//! TLS to ClickHouse: https with a private CA, with and without `clickhouse.ca_file`.

use runs_replicator::testing::metrics;

use super::{CONVERGE, cannot_check_line, start_ready, text, write_changes};
use crate::support::expect::assert_converges;
use crate::support::tls::TestCa;
use crate::support::{ChServer, TestEnv, process, worker};

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
