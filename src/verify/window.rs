//! The `created_at` window a verify compares: `--since` / `--until` as given (or "the last 6
//! hours" for the daemon), read by Postgres once, and kept in two forms that select the same runs
//! on both sides: the canonical UTC text the COPY conditions use (`backfill::Window`) and epoch
//! milliseconds for ClickHouse.
//!
//! `createdAt` is a `timestamp(3)`: a bound with finer digits is rounded up to the next
//! millisecond for ClickHouse, which selects the same millisecond values (`x >= 10:00:00.1234` is
//! `x >= 10:00:00.124` for them, and so is `x < …`).

use std::time::Duration;

use tokio_postgres::Client;

use super::VerifyError;
use crate::backfill::Window;

/// One bound as asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Bound {
    /// Any text Postgres reads as a timestamptz (`2026-11-20`, `2026-11-20T10:00:00Z`; UTC when no
    /// zone is given).
    At(String),
    /// This long before now (Postgres' clock).
    Ago(Duration),
}

/// The window, resolved.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VerifyWindow {
    pub pg: Window,
    pub since_ms: Option<i64>,
    pub until_ms: Option<i64>,
}

impl VerifyWindow {
    /// `createdAt >= 2026-11-20 00:00:00 UTC, < …` as a person reads it.
    pub fn describe(&self) -> String {
        let trim = |t: &str| short_time(t);
        match (&self.pg.since, &self.pg.until) {
            (None, None) => "every run (no --since, no --until)".into(),
            (Some(s), None) => format!("created_at >= {} UTC", trim(s)),
            (None, Some(u)) => format!("created_at < {} UTC", trim(u)),
            (Some(s), Some(u)) => format!("{} <= created_at < {} UTC", trim(s), trim(u)),
        }
    }
}

/// `2026-11-20 10:30:00.000000` as `2026-11-20 10:30:00`, midnight as the date alone.
pub fn short_time(t: &str) -> String {
    let t = match t.split_once('.') {
        Some((whole, frac)) if frac.bytes().all(|b| b == b'0') => whole,
        _ => t,
    };
    t.strip_suffix(" 00:00:00").unwrap_or(t).to_string()
}

/// Reads `since` and `until` with Postgres (its timestamp grammar, its clock) into one window.
pub async fn resolve(
    client: &Client,
    since: Option<&Bound>,
    until: Option<&Bound>,
) -> Result<VerifyWindow, VerifyError> {
    let (since_text, since_ms) = bound(client, "--since", since).await?.unzip();
    let (until_text, until_ms) = bound(client, "--until", until).await?.unzip();
    if let (Some(s), Some(u)) = (&since_text, &until_text)
        && s >= u
    {
        return Err(VerifyError::Request(format!(
            "--since {s} is not before --until {u}"
        )));
    }
    Ok(VerifyWindow {
        pg: Window {
            since: since_text,
            until: until_text,
            updated_since: None,
            shard: None,
        },
        since_ms,
        until_ms,
    })
}

const AS_UTC: &str = "SELECT to_char(t, 'YYYY-MM-DD HH24:MI:SS.US'), \
     ceil(extract(epoch FROM t) * 1000)::int8 FROM (SELECT ";

async fn bound(
    client: &Client,
    flag: &str,
    value: Option<&Bound>,
) -> Result<Option<(String, i64)>, VerifyError> {
    let Some(value) = value else {
        return Ok(None);
    };
    let row = match value {
        Bound::At(text) => {
            let sql = format!("{AS_UTC}$1::text::timestamptz AT TIME ZONE 'UTC' AS t) s");
            client.query_one(&sql, &[text]).await
        }
        Bound::Ago(d) => {
            let sql = format!(
                "{AS_UTC}(now() - make_interval(secs => $1::float8)) AT TIME ZONE 'UTC' AS t) s"
            );
            client.query_one(&sql, &[&d.as_secs_f64()]).await
        }
    }
    .map_err(|e| {
        let shown = match value {
            Bound::At(t) => format!("{t:?}"),
            Bound::Ago(d) => format!("{} ago", crate::config::duration_text(*d)),
        };
        VerifyError::Request(format!(
            "invalid {flag} {shown}: {}",
            crate::pg::describe(&e)
        ))
    })?;
    Ok(Some((row.get(0), row.get(1))))
}
