//! The ClickHouse client: one place that turns configuration into a `clickhouse::Client`.
//!
//! The HTTP client is built here rather than by the crate so that an `https://` endpoint can be
//! verified against a private CA (`clickhouse.ca_file`) with the same rustls setup as Postgres.

use std::sync::Arc;
use std::time::Duration;

use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use crate::config::{Compression, Config};

/// Settings every insert carries. JSON columns travel as strings and must keep their JSON types:
/// without the two `infer` settings ClickHouse rewrites a date-like string inside a JSON column.
pub const INSERT_SETTINGS: &[(&str, &str)] = &[
    ("input_format_binary_read_json_as_string", "1"),
    ("input_format_try_infer_dates", "0"),
    ("input_format_try_infer_datetimes", "0"),
    // Upstream normalises duplicate keys through JSON.parse; the server does the same here
    // instead of failing the whole insert.
    ("type_json_skip_duplicated_paths", "1"),
    // No cap on the partitions one insert touches. The default (100) is a guard against a wrong
    // partition key, but upstream's error_occurrences_v1, which every insert into the runs table
    // feeds, partitions by day: a batch whose failed runs were created on more than 100 days (a
    // backfill, a bulk timeout of old runs) is refused there while the runs table (by month)
    // takes it. The refusal is not about the data, so the batch would be retried forever, and
    // every attempt stores the runs and adds them to errors_v1 again before the day view fails.
    // A batch holds at most `batch.max_rows` rows, which bounds its partitions anyway.
    ("max_partitions_per_insert_block", "0"),
];

/// Builds the client for the configured endpoint, user and database.
pub fn build(config: &Config) -> Result<clickhouse::Client, String> {
    let ch = &config.clickhouse;
    let mut http = HttpConnector::new();
    http.set_keepalive(Some(Duration::from_secs(60)));
    http.set_connect_timeout(Some(config.connect_timeout()));
    http.enforce_http(false);
    let roots = crate::pg::tls::roots(ch.ca_file.as_deref())?;
    let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| e.to_string())?
    .with_root_certificates(roots)
    .with_no_client_auth();
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http1()
        .wrap_connector(http);
    // ClickHouse closes idle keep-alive connections after 3 s; reuse only younger ones.
    let http_client = HyperClient::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(2))
        .build(connector);
    let (user, password) = config.clickhouse_credentials();
    let mut client = clickhouse::Client::with_http_client(http_client)
        .with_url(&ch.url.endpoint)
        .with_user(user)
        .with_database(&ch.database)
        // Rows are typed on our side and the preflight checks the table's columns, so plain
        // RowBinary (no per-insert DESCRIBE, no name/type header) is both safe and cheaper.
        .with_validation(false)
        .with_compression(match ch.compression {
            Compression::Lz4 => clickhouse::Compression::Lz4,
            Compression::None => clickhouse::Compression::None,
        });
    if !password.is_empty() {
        client = client.with_password(password.expose());
    }
    Ok(client)
}

/// One line describing a ClickHouse error, with the server's exception text when there is one.
pub fn describe(e: &clickhouse::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        let s_text = s.to_string();
        if !text.contains(&s_text) {
            text = format!("{text}: {s_text}");
        }
        source = s.source();
    }
    let one_line = text.split_whitespace().collect::<Vec<_>>().join(" ");
    // Server exceptions end with a long stack trace; the first sentence is what a person needs.
    match one_line.find(". Stack trace") {
        Some(i) => one_line[..i].to_string(),
        None => one_line,
    }
}

/// The ClickHouse exception code in an error, e.g. 60 for UNKNOWN_TABLE.
pub fn exception_code(e: &clickhouse::error::Error) -> Option<u32> {
    let clickhouse::error::Error::BadResponse(text) = e else {
        return None;
    };
    let rest = text.split("Code: ").nth(1)?;
    rest.split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()
}
