//! What `/readyz` and `/healthz` report: the worker's state as the daemon and pipeline see it.
//!
//! Each stream (a source, or a shard of one) has its own state: its role, a hard stop, the last
//! error of its session. ClickHouse's state is shared. Ready means: every stream's leader is
//! streaming or its standby is connected and waiting for the lock; no stream is hard-stopped;
//! ClickHouse does not refuse rows table-wide; ClickHouse answers (a failed probe is a known
//! outage, not ready at once); and ClickHouse inserts have not been failing for longer than
//! `metrics.clickhouse_unready_after_ms`. The body says, per stream, why — and, for a stream that
//! is not streaming yet, what it is waiting on (a session step, a copy it owes and the
//! transactions its snapshot waits for): [`Health::set_activity`]; and what a background verify in
//! progress is doing (which never makes the worker unready).

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
    /// What the stream is doing, or waiting on, before it streams.
    activity: Option<String>,
    /// Why the primary holds the stream's changes back although it streams (a standby named in
    /// `synchronized_standby_slots` is down): not ready, nothing arrives.
    held: Option<String>,
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
    /// ClickHouse does not answer at all (its probe failed): a known outage, not ready at
    /// once rather than after `metrics.clickhouse_unready_after_ms`.
    clickhouse_down: bool,
    /// The background verify in progress: since when, and what it is doing (waiting for) now.
    verify: Option<(Instant, String)>,
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
                                activity: None,
                                held: None,
                            },
                        )
                    })
                    .collect(),
                clickhouse_failing_since: None,
                clickhouse_refusing: None,
                clickhouse_error: None,
                disabled: None,
                clickhouse_down: false,
                verify: None,
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
                s.held = None;
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
    /// Why the primary holds back `stream`'s changes, or `None` once it no longer does.
    pub fn set_held(&self, stream: &str, held: Option<String>) {
        self.update(stream, |s| s.held = held);
    }

    pub fn hard_stop(&self, stream: &str, kind: &'static str, reason: String) {
        self.update(stream, |s| {
            s.role = Role::Starting;
            s.hard_stop = Some((kind, reason));
        });
    }

    pub fn clear_hard_stop(&self, stream: &str) {
        self.update(stream, |s| s.hard_stop = None);
    }

    /// What the stream does, or waits on, before it streams (a session step, a copy it owes,
    /// what a snapshot waits for); `None` once it is done. Shown while the stream is not
    /// streaming; it does not change readiness.
    pub fn set_activity(&self, stream: &str, activity: Option<String>) {
        self.update(stream, |s| s.activity = activity);
    }

    pub fn set_last_error(&self, stream: &str, error: &str) {
        self.update(stream, |s| s.last_error = Some(error.to_string()));
    }

    pub fn clickhouse_failed(&self, error: &str) {
        let mut s = self.lock();
        s.clickhouse_failing_since.get_or_insert_with(Instant::now);
        s.clickhouse_error = Some(error.to_string());
    }

    /// ClickHouse does not answer a trivial query: an outage for sure, shown at once.
    pub fn clickhouse_unreachable(&self, error: &str) {
        let mut s = self.lock();
        s.clickhouse_failing_since.get_or_insert_with(Instant::now);
        s.clickhouse_error = Some(error.to_string());
        s.clickhouse_down = true;
    }

    /// ClickHouse answers again (its inserts may still fail: they are judged as before).
    pub fn clickhouse_answers(&self) {
        self.lock().clickhouse_down = false;
    }

    /// An insert succeeded: an outage, if there was one, is over (its length is exported).
    pub fn clickhouse_ok(&self) {
        let mut s = self.lock();
        s.clickhouse_down = false;
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

    /// What is wrong with ClickHouse, if anything: the table-wide refusal, else the last failed
    /// insert's error while inserts fail (for a one-shot command's parting line).
    pub fn clickhouse_problem(&self) -> Option<String> {
        let s = self.lock();
        if let Some((table, reason)) = &s.clickhouse_refusing {
            return Some(format!("ClickHouse refuses the rows of {table}: {reason}"));
        }
        s.clickhouse_failing_since.and(s.clickhouse_error.clone())
    }

    /// The background verify is doing `what` now (it started with the first call).
    pub fn verify_doing(&self, what: String) {
        let mut s = self.lock();
        let since = s.verify.as_ref().map_or_else(Instant::now, |(t, _)| *t);
        s.verify = Some((since, what));
    }

    /// The background verify in progress, if any: how long it has run and what it is doing.
    pub fn verify_in_progress(&self) -> Option<(Duration, String)> {
        let s = self.lock();
        s.verify
            .as_ref()
            .map(|(t, what)| (t.elapsed(), what.clone()))
    }

    /// The background verify ended (done, failed or abandoned).
    pub fn verify_ended(&self) {
        self.lock().verify = None;
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
                .filter(|t| s.clickhouse_down || t.elapsed() >= self.clickhouse_grace)
                .map(|since| {
                    format!(
                        "ClickHouse {} for {} s: {}",
                        if s.clickhouse_down {
                            "does not answer"
                        } else {
                            "inserts failing"
                        },
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
        if let Some((since, what)) = &s.verify {
            lines.push(format!(
                "background verify running for {} s: {what}",
                since.elapsed().as_secs()
            ));
        }
        metrics::gauge!(m::VERIFY_RUNNING).set(
            s.verify
                .as_ref()
                .map_or(0.0, |(t, _)| t.elapsed().as_secs_f64()),
        );
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
        Role::Leader if s.held.is_some() => (
            false,
            format!(
                "leader, connected, but nothing arrives: {}",
                s.held.as_deref().unwrap_or_default()
            ),
        ),
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
        Role::Starting => {
            let down = s
                .down_since
                .map(|t| format!(" for {} s", t.elapsed().as_secs()))
                .unwrap_or_default();
            (
                false,
                match (&s.activity, &s.last_error) {
                    (Some(a), Some(e)) => {
                        format!("not streaming{down}: {a} (last error: {e})")
                    }
                    (Some(a), None) => format!("not streaming{down}: {a}"),
                    (None, Some(e)) => format!("not streaming{down}: {e}"),
                    (None, None) => "starting".into(),
                },
            )
        }
    }
}

#[cfg(test)]
mod tests;
