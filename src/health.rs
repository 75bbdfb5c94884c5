//! What `/readyz` and `/healthz` report: the worker's state as the daemon and pipeline see it.
//!
//! Ready means: the leader is streaming, or a standby is connected and waiting for the lock;
//! and there is no hard stop; and ClickHouse inserts have not been failing for longer than
//! `metrics.clickhouse_unready_after_ms`.

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
struct State {
    role: Role,
    hard_stop: Option<(&'static str, String)>,
    clickhouse_failing_since: Option<Instant>,
    /// ClickHouse refuses the rows of this table (and why): a table-wide refusal the sink keeps
    /// retrying. Not ready at once: nothing is acknowledged meanwhile.
    clickhouse_refusing: Option<(String, String)>,
    last_error: Option<String>,
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
    pub fn new(clickhouse_grace: Duration) -> Self {
        Health {
            state: Mutex::new(State {
                role: Role::Starting,
                hard_stop: None,
                clickhouse_failing_since: None,
                clickhouse_refusing: None,
                last_error: None,
            }),
            clickhouse_grace,
        }
    }

    fn update(&self, f: impl FnOnce(&mut State)) {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let was_hard = s.hard_stop.as_ref().map(|(k, _)| *k);
        f(&mut s);
        m::gauge_set_leader(s.role == Role::Leader);
        if let Some(kind) = was_hard
            && s.hard_stop.as_ref().map(|(k, _)| *k) != Some(kind)
        {
            metrics::gauge!(m::HARD_STOP, "reason" => kind).set(0.0);
        }
        if let Some((kind, _)) = &s.hard_stop {
            metrics::gauge!(m::HARD_STOP, "reason" => *kind).set(1.0);
        }
    }

    pub fn set_role(&self, role: Role) {
        self.update(|s| s.role = role);
    }

    /// Streaming stopped for a reason an operator must fix. `kind` is a short label for metrics.
    pub fn hard_stop(&self, kind: &'static str, reason: String) {
        self.update(|s| {
            s.role = Role::Starting;
            s.hard_stop = Some((kind, reason));
        });
    }

    pub fn clear_hard_stop(&self) {
        self.update(|s| s.hard_stop = None);
    }

    pub fn hard_stopped(&self) -> bool {
        self.state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .hard_stop
            .is_some()
    }

    pub fn clickhouse_failed(&self, error: &str) {
        self.update(|s| {
            s.clickhouse_failing_since.get_or_insert_with(Instant::now);
            s.last_error = Some(error.to_string());
        });
    }

    /// An insert succeeded: an outage, if there was one, is over (its length is exported).
    pub fn clickhouse_ok(&self) {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
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
        self.update(|s| s.clickhouse_refusing = Some((table.to_string(), reason.to_string())));
    }

    /// A batch was stored after a table-wide refusal.
    pub fn clickhouse_accepting(&self) {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((table, _)) = s.clickhouse_refusing.take() {
            metrics::gauge!(m::CLICKHOUSE_REFUSING, "table" => table).set(0.0);
        }
    }

    pub fn set_last_error(&self, error: &str) {
        self.update(|s| s.last_error = Some(error.to_string()));
    }

    pub fn readiness(&self) -> Readiness {
        let s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let verdict = if let Some((_, reason)) = &s.hard_stop {
            Readiness {
                ready: false,
                detail: format!("hard stop: {reason}"),
            }
        } else if let Some((table, reason)) = &s.clickhouse_refusing {
            Readiness {
                ready: false,
                detail: format!(
                    "ClickHouse refuses the rows of {table} table-wide ({reason}); holding them, \
                     nothing after them is acknowledged until it takes them"
                ),
            }
        } else if let Some(since) = s
            .clickhouse_failing_since
            .filter(|t| t.elapsed() >= self.clickhouse_grace)
        {
            Readiness {
                ready: false,
                detail: format!(
                    "ClickHouse inserts failing for {} s: {}",
                    since.elapsed().as_secs(),
                    s.last_error.as_deref().unwrap_or("")
                ),
            }
        } else {
            match s.role {
                Role::Leader => Readiness {
                    ready: true,
                    detail: "leader, streaming".into(),
                },
                Role::Standby => Readiness {
                    ready: true,
                    detail: "standby, waiting for the leader lock".into(),
                },
                Role::Starting => Readiness {
                    ready: false,
                    detail: match &s.last_error {
                        Some(e) => format!("not streaming: {e}"),
                        None => "starting".into(),
                    },
                },
            }
        };
        metrics::gauge!(m::READY).set(if verdict.ready { 1.0 } else { 0.0 });
        metrics::gauge!(m::CLICKHOUSE_OUTAGE).set(
            s.clickhouse_failing_since
                .map_or(0.0, |t| t.elapsed().as_secs_f64()),
        );
        verdict
    }
}

#[cfg(test)]
mod tests;
