//! Where the worker stands against the server at every session's start (SPEC §11): the server's
//! identity and timeline, compared with what the stream recorded (its marker: system identifier,
//! timeline, acknowledged position) and what its source recorded (`backfill::versions`: the
//! newest timeline taken over and the version map).
//!
//! - **Same timeline**: go on. Unless the server's WAL ends before the position this stream
//!   acknowledged on it: a restore, or an old primary that lost WAL — refused.
//! - **Older timeline** than the stream or its source already read: an old primary back after a
//!   failover (or a restore of an older backup). Refused — nothing is read from it, nothing
//!   written to it — with a hard stop (`timeline`) that names why, re-checked every few seconds:
//!   the worker resumes by itself once the name reaches the current primary again.
//! - **Newer timeline**: taken over before anything of it is written. Once per source, under an
//!   advisory lock on the new primary (the source's streams may be shards): the fork position F
//!   (`TIMELINE_HISTORY`: where the recorded timeline left the new history), the highest version
//!   ClickHouse holds of the source, and from them the shift that puts the new timeline above
//!   everything the lost history `(F, …]` could have written (`pipeline::version_map`), recorded
//!   with the lost zone of versions. Then per stream whose marker is on an older timeline: the
//!   zone is forgotten by the sink (no write of this process puts a row there again, and the
//!   writes begun before have ended), the runs with a row there are rewritten from a snapshot of
//!   the new primary, or tombstoned when it does not have them (`backfill::rewrite`), and only then
//!   the marker moves to the new timeline: killed in between, the next session repeats the repair
//!   (it is idempotent). The window is reported: a log line, `runs_replicator_divergence_bytes`
//!   and `_runs_total`, and `/readyz` while the repair lasts.
//!
//! The stream then starts at its slot's confirmed position, never at one of the worker's: a
//! synchronized copy is at or before the fork (the standby's slot sync never moves it past what
//! the standby received). A slot found past the fork (made or moved by someone else) skipped
//! changes of the new timeline the worker never had: a hard stop (`slot_past_fork`).

use super::marker::{self, MarkerError};
use super::session_end::SessionEnd;
use super::slot::{clickhouse_end, postgres_end};
use super::standing::{Standing, judge, switch};
use super::supervisor::Supervisor;
use crate::backfill::rewrite;
use crate::backfill::snapshot::lsn_text;
use crate::backfill::versions::{self, Switch, VersionRecord};
use crate::backfill::{Snapshot, SnapshotSource};
use crate::metrics as m;
use crate::pg::catalog;
use crate::pipeline::sink::Sink;
use crate::sink::lost_history::Zone;
use crate::source::identity::{self, ServerIdentity};

/// How long a stream waits while another stream of its source takes a switch over (reading the
/// highest version and writing the record: bounded queries), before its session is tried again.
const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(300);

/// The advisory lock a source's streams take a switch over under.
fn lock_key(source: &str) -> i64 {
    crate::leader::lock_key("runs-replicator timeline", source)
}

impl Supervisor {
    /// At a session's start, before anything is read from or written to the server: who it is
    /// and where it stands (see the module). A refusal is a hard stop (`timeline`); another
    /// system identifier is the marker's (`marker`).
    pub(super) async fn check_server(&mut self) -> Result<Standing, SessionEnd> {
        self.activity("asking the server who it is (IDENTIFY_SYSTEM, TIMELINE_HISTORY)");
        let identity = identity::identify(&self.config, &self.stream, self.config.query_timeout())
            .await
            .map_err(postgres_end)?;
        self.identity = Some(identity.clone());
        metrics::gauge!(m::TIMELINE, "source" => self.stream.name.clone())
            .set(identity.timeline as f64);
        self.store.ensure().await.map_err(clickhouse_end)?;
        let found = match marker::load(&self.store, &self.stream, &identity).await {
            Ok(found) => found,
            Err(MarkerError::Store(e)) => return Err(clickhouse_end(e)),
            Err(e) => {
                return Err(SessionEnd::HardStop {
                    kind: "marker",
                    reason: e.to_string(),
                });
            }
        };
        let record = self.load_record(&identity).await?;
        let standing = judge(
            record.as_ref(),
            found.as_ref(),
            &identity,
            &self.stream.name,
        );
        if let Standing::Refused(reason) = &standing {
            return Err(SessionEnd::HardStop {
                kind: "timeline",
                reason: reason.clone(),
            });
        }
        Ok(standing)
    }

    /// Once leader, before the slot is ensured: the source's record brought to the server's
    /// timeline (a switch taken over under the source's lock), then this stream's repair of what
    /// its marker's timeline lost, and the version map the stream stamps with.
    pub(super) async fn take_over(
        &mut self,
        control: &super::control::PgControl,
        standing: Standing,
    ) -> Result<(), SessionEnd> {
        let identity = self
            .identity
            .clone()
            .expect("checked at the session's start");
        let record = match standing {
            Standing::Refused(_) => unreachable!("a refusal ends the session"),
            Standing::Current => self.record_current(&identity).await?,
            Standing::Newer { .. } => self.record_switch(control, &identity).await?,
        };
        self.repair_lost(control, &identity, &record).await?;
        self.versions = record.map();
        Ok(())
    }

    /// The source's record, when it is about this cluster. One recorded on another cluster (a
    /// new cluster behind the name, which the marker's hard stop made an operator accept by
    /// removing the old marker) says nothing about this one's timelines: it is written over.
    async fn load_record(
        &self,
        identity: &ServerIdentity,
    ) -> Result<Option<VersionRecord>, SessionEnd> {
        Ok(versions::load(&self.store, &self.stream.source.name)
            .await
            .map_err(clickhouse_end)?
            .filter(|r| r.system_identifier == identity.system_identifier))
    }

    /// The source's record as it is, or a first one for the server's timeline.
    async fn record_current(
        &mut self,
        identity: &ServerIdentity,
    ) -> Result<VersionRecord, SessionEnd> {
        let source = &self.stream.source.name;
        if let Some(r) = self.load_record(identity).await? {
            return Ok(r);
        }
        let record = VersionRecord {
            format: versions::FORMAT,
            source: source.clone(),
            system_identifier: identity.system_identifier.clone(),
            timeline: identity.timeline,
            ancestors: identity.ancestors.clone(),
            switches: Vec::new(),
            updated_at: marker::unix_now(),
        };
        versions::save(&self.store, &record)
            .await
            .map_err(clickhouse_end)?;
        Ok(record)
    }

    /// Takes the switch to the server's timeline over for the whole source, under its lock
    /// (another stream of the source may have done it meanwhile: then its record is used).
    async fn record_switch(
        &mut self,
        control: &super::control::PgControl,
        identity: &ServerIdentity,
    ) -> Result<VersionRecord, SessionEnd> {
        let key = lock_key(&self.stream.source.name);
        let session = control.session();
        let timeout = control.timeout();
        let since = std::time::Instant::now();
        loop {
            let got = tokio::time::timeout(
                timeout,
                session.query_one("SELECT pg_try_advisory_lock($1)", &[&key]),
            )
            .await
            .map_err(|_| postgres_end("taking the timeline lock: no answer in time"))?
            .map_err(|e| postgres_end(crate::pg::describe(&e)))?;
            if got.get::<_, bool>(0) {
                break;
            }
            if since.elapsed() > LOCK_WAIT {
                return Err(postgres_end(format!(
                    "waited {} s for another stream of source {} to take the failover over \
                     (it holds the advisory lock {key} on the new primary); trying again",
                    LOCK_WAIT.as_secs(),
                    self.stream.source.name
                )));
            }
            self.activity("waiting while another stream of the source takes the failover over");
            tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        }
        let recorded = self.record_switch_locked(identity).await;
        let _ = tokio::time::timeout(
            timeout,
            session.execute("SELECT pg_advisory_unlock($1)", &[&key]),
        )
        .await;
        recorded
    }

    async fn record_switch_locked(
        &mut self,
        identity: &ServerIdentity,
    ) -> Result<VersionRecord, SessionEnd> {
        let source = self.stream.source.clone();
        let record = self.load_record(identity).await?;
        let marker = marker::load(&self.store, &self.stream, identity)
            .await
            .map_err(|e| clickhouse_end(e.to_string()))?;
        let (from, ancestors) = match judge(record.as_ref(), marker.as_ref(), identity, "") {
            Standing::Newer { from, ancestors } => (from, ancestors),
            // Taken over by another stream meanwhile.
            _ => return self.record_current(identity).await,
        };
        self.activity("taking the failover over: reading the highest version ClickHouse holds");
        let generations: Vec<u8> = source.generations.values().copied().collect();
        let held = self
            .sink
            .highest_position(&generations)
            .await
            .map_err(clickhouse_end)?;
        let s = switch(
            record.as_ref(),
            from,
            &ancestors,
            identity,
            held,
            marker::unix_now(),
        );
        let mut next = record.unwrap_or_else(|| VersionRecord {
            format: versions::FORMAT,
            source: source.name.clone(),
            system_identifier: identity.system_identifier.clone(),
            timeline: from,
            ancestors: Vec::new(),
            switches: Vec::new(),
            updated_at: 0,
        });
        next.timeline = identity.timeline;
        next.ancestors = identity.ancestors.clone();
        next.switches.push(s.clone());
        next.updated_at = marker::unix_now();
        versions::save(&self.store, &next)
            .await
            .map_err(clickhouse_end)?;
        metrics::counter!(m::TIMELINE_SWITCHES, "source" => self.stream.name.clone()).increment(1);
        metrics::gauge!(m::DIVERGENCE_BYTES, "source" => self.stream.name.clone())
            .set(s.held_bytes() as f64);
        if s.held_bytes() > 0 {
            tracing::error!(
                stream = %self.stream.name,
                from_timeline = s.from_timeline,
                to_timeline = s.to_timeline,
                fork = %s.fork,
                lost_bytes = s.held_bytes(),
                "divergence: the source failed over to timeline {} forked at {} from timeline {}, \
                 and ClickHouse holds {} bytes of timeline {}'s WAL past the fork ({}..{}) that \
                 the new primary never had (an asynchronous standby that was behind): repairing \
                 the runs written from it; the new timeline's versions are shifted by {} so that \
                 its changes win",
                s.to_timeline,
                s.fork,
                s.from_timeline,
                s.held_bytes(),
                s.from_timeline,
                s.fork,
                lsn_text(s.held_lsn()),
                s.shift
            );
        } else {
            tracing::warn!(
                stream = %self.stream.name,
                from_timeline = s.from_timeline,
                to_timeline = s.to_timeline,
                fork = %s.fork,
                "the source failed over to timeline {} forked at {}: ClickHouse holds nothing of \
                 timeline {} past the fork; following the new timeline",
                s.to_timeline, s.fork, s.from_timeline
            );
        }
        Ok(next)
    }

    /// This stream's share of a switch: the zones of the switches it has not swept are forgotten
    /// by the sink and the runs with rows there put right; then its marker moves to the
    /// server's timeline. A switch is this stream's to sweep when its marker is on an older
    /// timeline, or when the switch was taken over (by any instance) after this process started:
    /// a session of the old timeline in this process may have had a write in flight then, which
    /// a sweep done elsewhere before it landed did not see.
    async fn repair_lost(
        &mut self,
        control: &super::control::PgControl,
        identity: &ServerIdentity,
        record: &VersionRecord,
    ) -> Result<(), SessionEnd> {
        let found = marker::load(&self.store, &self.stream, identity)
            .await
            .map_err(|e| clickhouse_end(e.to_string()))?;
        let behind = found
            .as_ref()
            .is_some_and(|m| m.timeline < identity.timeline);
        let marker_timeline = found.as_ref().map_or(identity.timeline, |m| m.timeline);
        let switches: Vec<&Switch> = record
            .switches
            .iter()
            .filter(|s| {
                s.to_timeline > marker_timeline
                    || (s.at + 60 >= self.started_at && !self.swept.contains(&s.to_timeline))
            })
            .collect();
        let Some(first) = switches.first() else {
            return Ok(());
        };
        if behind {
            self.refuse_slot_past_fork(control, first.fork_lsn).await?;
        }
        let generations: Vec<u8> = self.stream.source.generations.values().copied().collect();
        let zones: Vec<Zone> = switches
            .iter()
            .map(|s| Zone {
                generations: generations.clone(),
                from: s.lost_from,
                to: s.lost_to,
            })
            .collect();
        self.activity(
            "taking the failover over: waiting for the writes of the old timeline to end",
        );
        self.sink.lost.forget(&zones).await;
        let mut runs: Vec<String> = Vec::new();
        for zone in &zones {
            runs.extend(self.sink.zone_runs(zone).await.map_err(clickhouse_end)?);
        }
        runs.sort_unstable();
        runs.dedup();
        if !runs.is_empty() {
            self.repair_runs(&runs, first).await?;
        }
        self.swept.extend(switches.iter().map(|s| s.to_timeline));
        if behind {
            self.update_marker(|_| {}).await?;
        }
        Ok(())
    }

    /// The slot on the new primary past the fork: someone consumed changes of the new timeline
    /// the worker never had.
    async fn refuse_slot_past_fork(
        &self,
        control: &super::control::PgControl,
        fork: u64,
    ) -> Result<(), SessionEnd> {
        let slot = super::control::bounded(
            "the replication slot",
            control.timeout(),
            catalog::read_slot(control.session(), &self.stream.slot),
        )
        .await
        .map_err(postgres_end)?;
        let confirmed = slot
            .and_then(|s| s.confirmed_flush_lsn)
            .and_then(|c| marker::parse_lsn(&c));
        match confirmed {
            Some(c) if c > fork => Err(SessionEnd::HardStop {
                kind: "slot_past_fork",
                reason: format!(
                    "slot {} on the new primary confirmed {}, past the fork at {} where the \
                     timeline this stream read ended: the new timeline's changes in between were \
                     consumed by someone else, and starting there would skip them. Drop the slot \
                     (SELECT pg_drop_replication_slot('{}')): the worker then treats it as lost \
                     (postgres.recreate_lost_slot, or a hard stop naming the gap to copy)",
                    self.stream.slot,
                    lsn_text(c),
                    lsn_text(fork),
                    self.stream.slot
                ),
            }),
            _ => Ok(()),
        }
    }

    /// Rewrites `runs` from a fresh snapshot of the new primary, tombstoning what it lacks.
    async fn repair_runs(&mut self, runs: &[String], switch: &Switch) -> Result<(), SessionEnd> {
        let started = std::time::Instant::now();
        let source = self.stream.source.clone();
        self.activity(&format!(
            "repairing {} runs ClickHouse holds from timeline {}'s history past the fork at {} \
             (lost at the failover) from the new primary",
            runs.len(),
            switch.from_timeline,
            switch.fork
        ));
        let copy_end = |e: crate::backfill::BackfillError| match e {
            crate::backfill::BackfillError::Sink(e) => clickhouse_end(e),
            e => postgres_end(e),
        };
        let snapshot = Snapshot::open(&self.config, &source, SnapshotSource::Fresh, 1)
            .await
            .map_err(copy_end)?;
        let shown = self.sink.visible_rows(runs).await.map_err(clickhouse_end)?;
        let done =
            rewrite::rewrite_runs(&self.config, &source, &snapshot, runs, &shown, &self.sink)
                .await
                .map_err(copy_end)?;
        metrics::counter!(m::DIVERGENCE_RUNS, "source" => self.stream.name.clone())
            .increment(runs.len() as u64);
        tracing::warn!(
            stream = %self.stream.name,
            runs = runs.len(),
            rows_rewritten = done.rows,
            tombstones = done.tombstones,
            snapshot = %lsn_text(snapshot.lsn),
            seconds = started.elapsed().as_secs_f64(),
            "repaired the runs written from the lost timeline history: ClickHouse holds what the \
             new primary has"
        );
        Ok(())
    }
}
