//! How long to keep trying an insert: [`Attempts::until_answered`] runs it until ClickHouse
//! either stores the rows or refuses their data.
//!
//! A failure that is not about the data (the network, a timeout, an overloaded or restarting
//! server) is retried with exponential backoff and jitter, `clickhouse.insert_max_retries`
//! times. Past that, ClickHouse is *down*: the sink stops hammering it with inserts and probes it
//! with `SELECT 1` every [`PROBE_INTERVAL`] instead, and the moment it answers, the insert is
//! tried again — so streaming resumes within about a second of ClickHouse coming back, however
//! long it was away. (Failing the batch instead would restart the session, replay the slot and
//! grow the reconnect backoff: measured, that resumed ~23 s after a 30 s outage.) If ClickHouse
//! answers probes but keeps failing inserts, attempts continue with the backoff capped at
//! `clickhouse.retry_max_delay_ms`. `/readyz` and the outage metrics say how long it has been.
//!
//! The daemon waits as long as the outage lasts. A one-shot command's sink bounds each write
//! (`ClickHouseSink::giving_up_after`, `clickhouse.give_up_after_ms`); the log lines here then
//! say when it gives up.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use backon::{BackoffBuilder, ExponentialBuilder};

use crate::config::Config;
use crate::health::Health;
use crate::metrics as m;

/// How an insert went, before the policy decides what to do about it.
#[derive(Debug)]
pub(super) struct InsertError {
    /// ClickHouse refused the data (as opposed to: the attempt failed).
    pub data: bool,
    pub text: String,
}

/// Between two probes of a ClickHouse that stopped answering.
pub const PROBE_INTERVAL: Duration = Duration::from_secs(1);

/// ClickHouse exception codes that mean "this data cannot be inserted", as opposed to "this
/// attempt failed": parse errors, out-of-range values, type mismatches, a constraint or a
/// downstream materialized view refusing a row.
const DATA_ERRORS: &[u32] = &[
    6,   // CANNOT_PARSE_TEXT
    26,  // CANNOT_PARSE_QUOTED_STRING
    27,  // CANNOT_PARSE_INPUT_ASSERTION_FAILED
    38,  // CANNOT_PARSE_DATE
    41,  // CANNOT_PARSE_DATETIME
    53,  // TYPE_MISMATCH
    69,  // ARGUMENT_OUT_OF_BOUND
    70,  // CANNOT_CONVERT_TYPE
    72,  // CANNOT_PARSE_NUMBER
    117, // INCORRECT_DATA
    131, // TOO_LARGE_STRING_SIZE
    321, // VALUE_IS_OUT_OF_RANGE_OF_DATA_TYPE
    395, // FUNCTION_THROW_IF_VALUE_IS_NON_ZERO (a materialized view refusing a row)
    469, // VIOLATED_CONSTRAINT
];

pub fn is_data_error(code: u32) -> bool {
    DATA_ERRORS.contains(&code)
}

/// Why an insert ended without storing its rows.
#[derive(Debug)]
pub enum Failure {
    /// ClickHouse refused the data.
    Refused(String),
}

pub struct Attempts {
    client: clickhouse::Client,
    health: Arc<Health>,
    max_retries: u32,
    min_delay: Duration,
    max_delay: Duration,
    /// A one-shot command's bound on a write, for the log: the sink enforces it.
    pub(super) give_up_after: Option<Duration>,
}

impl Attempts {
    pub fn new(config: &Config, client: clickhouse::Client, health: Arc<Health>) -> Attempts {
        let ch = &config.clickhouse;
        Attempts {
            client,
            health,
            max_retries: ch.insert_max_retries,
            min_delay: Duration::from_millis(ch.retry_min_delay_ms),
            max_delay: Duration::from_millis(ch.retry_max_delay_ms),
            give_up_after: None,
        }
    }

    /// Runs `attempt` until it succeeds or ClickHouse refuses the data; never gives up on a
    /// failure that is not about the data.
    pub async fn until_answered<F, Fut>(
        &self,
        table: &str,
        rows: usize,
        mut attempt: F,
    ) -> Result<(), Failure>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<(), InsertError>>,
    {
        let mut delays = self.backoff();
        let mut failed = 0u32;
        loop {
            let error = match attempt().await {
                Ok(()) => {
                    self.health.clickhouse_ok();
                    return Ok(());
                }
                Err(e) if e.data => return Err(Failure::Refused(e.text)),
                Err(e) => e,
            };
            failed += 1;
            metrics::counter!(m::INSERT_ERRORS, "table" => table.to_string(), "kind" => "transient")
                .increment(1);
            metrics::counter!(m::INSERT_RETRIES, "table" => table.to_string()).increment(1);
            self.health.clickhouse_failed(&error.text);
            if failed <= self.max_retries {
                let delay = delays.next().unwrap_or(self.max_delay);
                tracing::warn!(table, rows, error = %error.text, retry_in_ms = delay.as_millis() as u64, "insert failed; retrying");
                tokio::time::sleep(delay).await;
                continue;
            }
            if self.probe().await {
                // ClickHouse answers, but not this insert: keep trying, at the capped pace.
                let delay = delays.next().unwrap_or(self.max_delay);
                tracing::warn!(table, rows, error = %error.text, retry_in_ms = delay.as_millis() as u64, "insert keeps failing while ClickHouse answers; retrying");
                tokio::time::sleep(delay).await;
            } else {
                self.wait_until_up(&error.text).await;
            }
        }
    }

    fn backoff(&self) -> impl Iterator<Item = Duration> {
        ExponentialBuilder::default()
            .with_min_delay(self.min_delay)
            .with_max_delay(self.max_delay)
            .with_jitter()
            .without_max_times()
            .build()
    }

    /// ClickHouse answers a trivial query within a second.
    async fn probe(&self) -> bool {
        let query = self.client.query("SELECT 1").fetch_one::<u8>();
        matches!(tokio::time::timeout(PROBE_INTERVAL, query).await, Ok(Ok(1)))
    }

    /// Probes every [`PROBE_INTERVAL`] until ClickHouse answers. One log line when the outage
    /// starts and one a minute while it lasts.
    async fn wait_until_up(&self, error: &str) {
        let since = Instant::now();
        let mut next_log = since;
        // Not answering at all is an outage for sure: /readyz says so at once.
        self.health.clickhouse_unreachable(error);
        loop {
            if Instant::now() >= next_log {
                match self.give_up_after {
                    None => tracing::warn!(
                        error,
                        down_for_s = since.elapsed().as_secs(),
                        "ClickHouse does not answer; probing it every second, holding the batch"
                    ),
                    Some(limit) => tracing::warn!(
                        error,
                        down_for_s = since.elapsed().as_secs(),
                        "ClickHouse does not answer; probing it every second; the command gives \
                         up (exit 2) once a write has waited {} (clickhouse.give_up_after_ms)",
                        crate::config::duration_text(limit)
                    ),
                }
                next_log += Duration::from_secs(60);
            }
            let probed = Instant::now();
            if self.probe().await {
                self.health.clickhouse_answers();
                tracing::info!(
                    down_for_ms = since.elapsed().as_millis() as u64,
                    "ClickHouse answers again; retrying the insert"
                );
                return;
            }
            tokio::time::sleep(PROBE_INTERVAL.saturating_sub(probed.elapsed())).await;
        }
    }
}
