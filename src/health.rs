//! What `/readyz` and `/healthz` report: the worker's state as the daemon and pipeline see it.
//!
//! Each stream (a source, or a shard of one) has its own state: its role, a hard stop, the last
//! error of its session. ClickHouse's state is shared. Ready means: every stream's leader is
//! streaming or its standby is connected and waiting for the lock; no stream is hard-stopped;
//! ClickHouse does not refuse rows table-wide; and ClickHouse inserts have not been failing for
//! longer than `metrics.clickhouse_unready_after_ms`. The body says, per stream, why.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::metrics as m;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Role {
    /// Connecting, or waiting to reconnect after an error.
    Starting,
    /// Connected, waiting for the leader lock.
    Standby,
    /// Holding the lock and streaming.
    Leader,
}

#[derive(Debug)]
struct StreamState {
    role: Role,
    hard_stop: Option<(&'static str, String)>,
    last_error: Option<String>,
    /// Since when the stream has not been streaming (for the interruption metric and body).
    down_since: Option<Instant>,
    /// Changes repaired so far while the stream replays changes made when a table could not
    /// be replicated completely.
    repairing: Option<u64>,
}

#[derive(Debug)]
struct State {
    /// By name, in the order the configuration lists them.
    streams: Vec<(String, StreamState)>,
    clickhouse_failing_since: Option<Instant>,
    /// ClickHouse refuses the rows of this table (and why): a table-wide refusal the sink keeps
    /// retrying. Not ready at once: nothing is acknowledged meanwhile.
    clickhouse_refusing: Option<(String, String)>,
    clickhouse_error: Option<String>,
    /// The daemon is switched off (`enabled = false`): it streams nothing, on purpose.
    disabled: Option<String>,
}

#[derive(Debug)]
pub struct Health {
    state: Mutex<State>,
    clickhouse_grace: Duration,
}

/// A readiness verdict with the reason when not ready.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Readiness {
    pub ready: bool,
    pub detail: String,
}

impl Health {
    /// The health of `streams` (their names), each starting.
    pub fn new(clickhouse_grace: Duration, streams: &[String]) -> Self {
        let now = Instant::now();
        Health {
            state: Mutex::new(State {
                streams: streams
                    .iter()
                    .map(|name| {
                        (
                            name.clone(),
                            StreamState {
                                role: Role::Starting,
                                hard_stop: None,
                                last_error: None,
                                down_since: Some(now),
                                repairing: None,
                            },
                        )
                    })
                    .collect(),
                clickhouse_failing_since: None,
                clickhouse_refusing: None,
                clickhouse_error: None,
                disabled: None,
            }),
            clickhouse_grace,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Changes `stream`'s state and republishes its gauges.
    fn update(&self, stream: &str, f: impl FnOnce(&mut StreamState)) {
        let mut s = self.lock();
        let Some((_, st)) = s.streams.iter_mut().find(|(n, _)| n == stream) else {
            return;
        };
        let was_hard = st.hard_stop.as_ref().map(|(k, _)| *k);
        f(st);
        let leader = st.role == Role::Leader;
        match (leader, st.down_since) {
            (true, Some(since)) => {
                metrics::gauge!(m::LAST_INTERRUPTION, "source" => stream.to_string())
                    .set(since.elapsed().as_secs_f64());
                st.down_since = None;
            }
            (false, None) => st.down_since = Some(Instant::now()),
            _ => {}
        }
        metrics::gauge!(m::LEADER, "source" => stream.to_string()).set(if leader {
            1.0
        } else {
            0.0
        });
        if let Some(kind) = was_hard
            && st.hard_stop.as_ref().map(|(k, _)| *k) != Some(kind)
        {
            metrics::gauge!(m::HARD_STOP, "source" => stream.to_string(), "reason" => kind)
                .set(0.0);
        }
        if let Some((kind, _)) = &st.hard_stop {
            metrics::gauge!(m::HARD_STOP, "source" => stream.to_string(), "reason" => *kind)
                .set(1.0);
        }
    }

    pub fn set_role(&self, stream: &str, role: Role) {
        self.update(stream, |s| {
            if role != Role::Leader {
                s.repairing = None;
            }
            s.role = role;
        });
    }

    /// How many changes the stream has repaired so far, or `None` once it streams complete
    /// rows again. Ready either way: the stream makes progress, and the body says so.
    pub fn set_repair(&self, stream: &str, repaired: Option<u64>) {
        self.update(stream, |s| s.repairing = repaired);
    }

    /// Streaming stopped for a reason an operator must fix. `kind` is a short label for metrics.
    pub fn hard_stop(&self, stream: &str, kind: &'static str, reason: String) {
        self.update(stream, |s| {
            s.role = Role::Starting;
            s.hard_stop = Some((kind, reason));
        });
    }

    pub fn clear_hard_stop(&self, stream: &str) {
        self.update(stream, |s| s.hard_stop = None);
    }

    pub fn set_last_error(&self, stream: &str, error: &str) {
        self.update(stream, |s| s.last_error = Some(error.to_string()));
    }

    pub fn clickhouse_failed(&self, error: &str) {
        let mut s = self.lock();
        s.clickhouse_failing_since.get_or_insert_with(Instant::now);
        s.clickhouse_error = Some(error.to_string());
    }

    /// An insert succeeded: an outage, if there was one, is over (its length is exported).
    pub fn clickhouse_ok(&self) {
        let mut s = self.lock();
        if let Some(since) = s.clickhouse_failing_since.take() {
            let lasted = since.elapsed().as_secs_f64();
            metrics::gauge!(m::CLICKHOUSE_LAST_OUTAGE).set(lasted);
            metrics::gauge!(m::CLICKHOUSE_OUTAGE).set(0.0);
            metrics::counter!(m::CLICKHOUSE_OUTAGES).increment(1);
        }
    }

    /// ClickHouse refuses the rows of `table` table-wide (see `sink::isolate`).
    pub fn clickhouse_refusing(&self, table: &str, reason: &str) {
        metrics::gauge!(m::CLICKHOUSE_REFUSING, "table" => table.to_string()).set(1.0);
        self.lock().clickhouse_refusing = Some((table.to_string(), reason.to_string()));
    }

    /// A batch was stored after a table-wide refusal.
    pub fn clickhouse_accepting(&self) {
        let mut s = self.lock();
        if let Some((table, _)) = s.clickhouse_refusing.take() {
            metrics::gauge!(m::CLICKHOUSE_REFUSING, "table" => table).set(0.0);
        }
    }

    /// The daemon is switched off: ready (it is doing what it was told), saying why it does not
    /// stream.
    pub fn disable(&self, why: &str) {
        self.lock().disabled = Some(why.to_string());
    }

    pub fn readiness(&self) -> Readiness {
        let s = self.lock();
        if let Some(why) = &s.disabled {
            metrics::gauge!(m::READY).set(1.0);
            return Readiness {
                ready: true,
                detail: format!("disabled: {why}"),
            };
        }
        let clickhouse = if let Some((table, reason)) = &s.clickhouse_refusing {
            Some(format!(
                "ClickHouse refuses the rows of {table} table-wide ({reason}); holding them, \
                 nothing after them is acknowledged until it takes them"
            ))
        } else {
            s.clickhouse_failing_since
                .filter(|t| t.elapsed() >= self.clickhouse_grace)
                .map(|since| {
                    format!(
                        "ClickHouse inserts failing for {} s: {}",
                        since.elapsed().as_secs(),
                        s.clickhouse_error.as_deref().unwrap_or("")
                    )
                })
        };
        let streams: Vec<(&str, bool, String)> = s
            .streams
            .iter()
            .map(|(name, st)| {
                let (ready, detail) = stream_verdict(st);
                (name.as_str(), ready, detail)
            })
            .collect();
        let ready = clickhouse.is_none() && streams.iter().all(|(_, ready, _)| *ready);
        // One stream: its state alone, as a single line. Several: one line each, named.
        let mut lines = Vec::new();
        if let Some(problem) = clickhouse {
            lines.push(problem);
        }
        if streams.len() == 1 {
            if lines.is_empty() || !streams[0].1 {
                lines.push(streams[0].2.clone());
            }
        } else {
            for (name, _, detail) in &streams {
                lines.push(format!("{name}: {detail}"));
            }
        }
        metrics::gauge!(m::READY).set(if ready { 1.0 } else { 0.0 });
        metrics::gauge!(m::CLICKHOUSE_OUTAGE).set(
            s.clickhouse_failing_since
                .map_or(0.0, |t| t.elapsed().as_secs_f64()),
        );
        for (name, st) in &s.streams {
            metrics::gauge!(m::INTERRUPTION, "source" => name.clone())
                .set(st.down_since.map_or(0.0, |t| t.elapsed().as_secs_f64()));
        }
        Readiness {
            ready,
            detail: lines.join("\n"),
        }
    }

    /// Each stream's name and whether it is hard-stopped (for the daemon's summary).
    pub fn streams(&self) -> BTreeMap<String, bool> {
        self.lock()
            .streams
            .iter()
            .map(|(n, s)| (n.clone(), s.hard_stop.is_some()))
            .collect()
    }
}

fn stream_verdict(s: &StreamState) -> (bool, String) {
    if let Some((_, reason)) = &s.hard_stop {
        return (false, format!("hard stop: {reason}"));
    }
    match s.role {
        Role::Leader => match s.repairing {
            None => (true, "leader, streaming".into()),
            Some(n) => (
                true,
                format!(
                    "leader, streaming; repairing the changes made while a table could not be \
                     replicated completely: {n} so far"
                ),
            ),
        },
        Role::Standby => (true, "standby, waiting for the leader lock".into()),
        Role::Starting => (
            false,
            match (&s.last_error, s.down_since) {
                (Some(e), Some(since)) => {
                    format!("not streaming for {} s: {e}", since.elapsed().as_secs())
                }
                (Some(e), None) => format!("not streaming: {e}"),
                (None, _) => "starting".into(),
            },
        ),
    }
}

#[cfg(test)]
mod tests;
