//! Failover readiness: whether a standby holds a synchronized, usable copy of the stream's slot
//! (PostgreSQL 17+ failover slots), so that a promotion keeps the slot, and how far behind that
//! copy is.
//!
//! The primary does not show its standbys' copies, so the worker asks the standbys: the other
//! hosts of the source's URL (a list such as `db1,db2,db3`, or a name for the primary next to a
//! name that reaches the standbys, e.g. a Kubernetes `-rw` and `-ro` Service). A copy is usable
//! when it is `synced`, not `temporary` (the slot sync persists a copy only once it caught up)
//! and not invalidated. The preflight shows the verdict as checks; the daemon publishes it as
//! `runs_replicator_failover_ready{source}` and the copy's lag (`daemon::failover`).

use std::time::Duration;

use super::report::Check;
use crate::config::{Config, FAILOVER_SLOTS_SINCE, FailoverSlot, Stream};
use crate::pg::catalog::{self, GatingSlot, SlotReading, StandbyReading};
use crate::pg::{self, quote_literal};

/// What one standby host answered.
#[derive(Debug, Clone)]
pub struct StandbyProbe {
    /// `host:port`.
    pub host: String,
    pub reading: Result<StandbyReading, String>,
}

/// The verdict on a stream's failover readiness.
#[derive(Debug, Clone, PartialEq)]
pub struct Readiness {
    /// Some standby holds a usable copy.
    pub ready: bool,
    /// The best usable copy's distance behind the primary's slot (`confirmed_flush_lsn`).
    pub lag_bytes: Option<u64>,
    /// One line per standby (or why there is none to ask).
    pub findings: Vec<String>,
}

/// Reads every host of the stream's URL as a standby, each bounded by the connect timeout (none
/// with a one-host URL: that host is the primary). The primary among them reads as not in
/// recovery and is passed over by [`readiness`].
pub async fn probe_standbys(config: &Config, stream: &Stream) -> Vec<StandbyProbe> {
    let url = &stream.source.url;
    let timeout = config.connect_timeout_of(url);
    let mut out = Vec::new();
    if url.hosts.len() < 2 {
        return out;
    }
    for (host, port) in &url.hosts {
        let name = format!("{host}:{port}");
        let one = url.at(host, *port);
        let read = async {
            let client = pg::connect_server(&one, timeout, None)
                .await
                .map_err(|e| e.to_string())?;
            catalog::read_standby(&client, &stream.slot)
                .await
                .map_err(|e| e.to_string())
        };
        let reading = tokio::time::timeout(timeout + Duration::from_secs(5), read)
            .await
            .unwrap_or_else(|_| Err(format!("no answer within {} ms", timeout.as_millis())));
        out.push(StandbyProbe {
            host: name,
            reading,
        });
    }
    out
}

/// Judges the standbys' copies of `primary_slot`.
pub fn readiness(primary_slot: Option<&SlotReading>, standbys: &[StandbyProbe]) -> Readiness {
    let mut findings = Vec::new();
    let mut best: Option<u64> = None;
    let mut ready = false;
    // The primary (and any other server not in recovery) is not a standby to ask.
    let standbys: Vec<&StandbyProbe> = standbys
        .iter()
        .filter(|p| p.reading.as_ref().map_or(true, |r| r.in_recovery))
        .collect();
    if standbys.is_empty() {
        findings.push(
            "no standby to ask: no other host of postgres.url is a standby (add the standbys, or \
             a name that reaches them, as further hosts)"
                .into(),
        );
    }
    let primary_lsn = primary_slot.and_then(SlotReading::confirmed_lsn);
    for probe in standbys {
        let host = &probe.host;
        let finding = match &probe.reading {
            Err(e) => format!("{host}: cannot be read: {e}"),
            Ok(s) if s.sync_replication_slots.is_none() => {
                format!("{host}: a standby without slot synchronization (before PostgreSQL 17)")
            }
            Ok(s) if s.sync_replication_slots.as_deref() != Some("on") => {
                format!("{host}: sync_replication_slots is off")
            }
            Ok(s) => match &s.slot {
                None if s.hot_standby_feedback != "on" => {
                    format!("{host}: no copy of the slot: hot_standby_feedback is off")
                }
                None if s.primary_slot_name.is_empty() => {
                    format!("{host}: no copy of the slot: primary_slot_name is not set")
                }
                None => format!(
                    "{host}: no copy of the slot yet (is it a failover slot? does primary_conninfo name a dbname?)"
                ),
                Some(copy) if copy.synced != Some(true) => {
                    format!("{host}: its slot of that name is not a synchronized copy")
                }
                Some(copy) if copy.is_lost() => format!("{host}: its copy is {}", copy.health()),
                Some(copy) if copy.temporary => format!(
                    "{host}: its copy is not persisted yet (temporary until the standby caught up with the slot)"
                ),
                Some(copy) => {
                    ready = true;
                    let lag = primary_lsn
                        .zip(copy.confirmed_lsn())
                        .map(|(p, c)| p.saturating_sub(c));
                    if let Some(lag) = lag {
                        best = Some(best.map_or(lag, |b| b.min(lag)));
                    }
                    format!(
                        "{host}: holds a synchronized copy at {} ({} bytes behind)",
                        copy.confirmed_flush_lsn.as_deref().unwrap_or("-"),
                        lag.map_or("?".into(), |l| l.to_string())
                    )
                }
            },
        };
        findings.push(finding);
    }
    Readiness {
        ready,
        lag_bytes: best,
        findings,
    }
}

/// The `failover_slot` and `failover_ready` checks of a stream on a server of `version_num`.
/// A missing or unusable copy warns (the stream works; a promotion would lose the slot); a
/// server without failover slots fails only when `postgres.failover_slot = "on"` asks for them.
pub fn checks(
    stream: &Stream,
    version_num: i32,
    slot: Option<&SlotReading>,
    gating: &[GatingSlot],
    standbys: &[StandbyProbe],
) -> Vec<Check> {
    let target = format!("slot {}", stream.slot);
    let setting = stream.source.failover_slot;
    if version_num < FAILOVER_SLOTS_SINCE {
        return vec![Check::new(
            "failover_slot",
            &target,
            setting != FailoverSlot::On,
            format!(
                "PostgreSQL {} has no failover slots (17+): a promotion loses the slot, and postgres.recreate_lost_slot decides what follows",
                super::verdicts::version_text(version_num)
            ),
            || "upgrade to PostgreSQL 17, or set postgres.failover_slot = \"auto\"".into(),
        )];
    }
    if setting == FailoverSlot::Off {
        return vec![Check::new(
            "failover_slot",
            &target,
            true,
            "off (postgres.failover_slot): a promotion loses the slot",
            String::new,
        )];
    }
    let mut out = vec![Check::new(
        "failover_slot",
        &target,
        true,
        match slot.map(|s| s.failover) {
            None => "created with FAILOVER at start".to_string(),
            Some(Some(true)) => "FAILOVER".into(),
            Some(_) => "without FAILOVER: altered at start, when not in use".into(),
        },
        String::new,
    )];
    let verdict = readiness(slot, standbys);
    let observed = verdict.findings.join("; ");
    out.push(if verdict.ready {
        Check::new("failover_ready", &target, true, observed, String::new)
    } else {
        Check::warn(
            "failover_ready",
            &target,
            observed,
            format!(
                "on each standby: sync_replication_slots = on, hot_standby_feedback = on, primary_slot_name set, \
                 a dbname in primary_conninfo; list it as a further host of postgres.url (README: HA Postgres). \
                 Until then a promotion loses {}",
                quote_literal(&stream.slot)
            ),
        )
    });
    if gating.is_empty() {
        out.push(Check::warn(
            "synchronized_standby_slots",
            "server",
            "empty: the worker may receive changes a standby has not, which a promotion of that standby discards",
            "ALTER SYSTEM SET synchronized_standby_slots = '<the standbys'' physical slots>'; SELECT pg_reload_conf();",
        ));
    } else {
        let down: Vec<String> = gating
            .iter()
            .filter_map(|g| gating_problem(g).map(|p| format!("{}: {p}", g.name)))
            .collect();
        out.push(if down.is_empty() {
            Check::new(
                "synchronized_standby_slots",
                "server",
                true,
                gating
                    .iter()
                    .map(|g| g.name.clone())
                    .collect::<Vec<_>>()
                    .join(", "),
                String::new,
            )
        } else {
            Check::warn(
                "synchronized_standby_slots",
                "server",
                format!("holds the stream back: {}", down.join("; ")),
                "bring the standby back, or remove its slot from synchronized_standby_slots",
            )
        });
    }
    out
}

/// Why a slot named in `synchronized_standby_slots` holds back a failover slot's changes, if it
/// does: Postgres sends them only once every named slot confirmed the WAL.
pub fn gating_problem(g: &GatingSlot) -> Option<String> {
    match &g.slot {
        None => Some("no such slot".into()),
        Some(s) if s.is_lost() => Some(format!("its slot is {}", s.health())),
        Some(s) if !s.active => Some("its standby is not connected".into()),
        Some(_) => None,
    }
}
