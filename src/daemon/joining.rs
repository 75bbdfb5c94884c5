//! The supervisor's side of `joins`: the tables that join a stream's publication, checked at
//! each session's start (before it streams: a join found there is copied first, like the
//! bootstrap) and every `postgres.slot_poll_interval_ms` while it streams (a join found then is
//! copied beside the stream, which goes on). The catalog is read on the leader's session, each
//! reading bounded by `postgres.query_timeout_ms`; the join's ALTER and copy use connections of
//! their own (`joins::JoinWork`).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use super::control::PgControl;
use super::joins::{self, Coverage, JoinWork, RecordError, Step};
use super::session_end::SessionEnd;
use super::slot::{clickhouse_end, postgres_end};
use super::supervisor::Supervisor;
use crate::backfill::WaitReport;

/// A join running beside the stream: the table, then the coverage it wrote (or why it failed).
pub type Joining = Pin<Box<dyn Future<Output = (String, Result<Coverage, String>)> + Send>>;

impl Supervisor {
    /// The coverage record's key: the server as `IDENTIFY_SYSTEM` named it at this session's
    /// start (`ensure_slot` asked), as the slot's marker is keyed.
    fn joins_key(&self) -> Result<String, SessionEnd> {
        match &self.identity {
            Some(identity) => Ok(joins::key(identity, &self.stream)),
            None => Err(postgres_end("the server's identity is not known yet")),
        }
    }

    fn join_work(&self, key: String, waiting: Option<WaitReport>) -> JoinWork {
        JoinWork {
            config: self.config.clone(),
            stream: self.stream.clone(),
            key,
            store: self.store.clone(),
            sink: self.sink.clone(),
            waiting,
        }
    }

    /// Reads the tables and the coverage record (the first one: what the publication covers
    /// now), and returns what this round asks for.
    async fn plan_joins(
        &mut self,
        control: &PgControl,
        key: &str,
        fresh: bool,
    ) -> Result<(Coverage, Vec<Step>), SessionEnd> {
        let stream = self.stream.clone();
        let timeout = control.timeout();
        let tables =
            match tokio::time::timeout(timeout, joins::read_tables(control.session(), &stream))
                .await
            {
                Ok(read) => read.map_err(postgres_end)?,
                Err(_) => {
                    return Err(postgres_end(format!(
                        "reading the tables: no answer within {} ms (postgres.query_timeout_ms)",
                        timeout.as_millis()
                    )));
                }
            };
        let known = if fresh {
            None
        } else {
            self.joins.coverage.clone()
        };
        let mut coverage = match known {
            Some(c) => c,
            None => match joins::read(&self.store, key).await {
                Ok(Some(c)) => c,
                Ok(None) => {
                    let c = Coverage::baseline(&tables);
                    joins::write(&self.store, key, &c)
                        .await
                        .map_err(clickhouse_end)?;
                    c
                }
                Err(RecordError::Store(e)) => return Err(clickhouse_end(e)),
                Err(RecordError::Unreadable(reason)) => {
                    return Err(SessionEnd::HardStop {
                        kind: "marker",
                        reason,
                    });
                }
            },
        };
        let (steps, changed) = coverage.plan(&tables, stream.source.create_publication);
        if changed {
            joins::write(&self.store, key, &coverage)
                .await
                .map_err(clickhouse_end)?;
        }
        self.joins.coverage = Some(coverage.clone());
        self.joins.tell(&stream, &steps);
        Ok((coverage, steps))
    }

    /// At a session's start, once the slot exists and is free: every table that joins is added
    /// and copied before the stream starts (`/readyz` says so). A join that fails (its ALTER
    /// gave up waiting for its lock, its copy stopped) keeps its intent and is retried beside the
    /// stream: the tables already covered stream meanwhile.
    pub(super) async fn joins_at_start(&mut self, control: &PgControl) -> Result<(), SessionEnd> {
        self.activity("checking the tables for one that joined the publication");
        let key = self.joins_key()?;
        let (mut coverage, steps) = self.plan_joins(control, &key, true).await?;
        for step in steps {
            let Step::Join(table) = step else { continue };
            let doing = format!("copying {table}, which joined the publication, before streaming");
            self.activity(&doing);
            let health = self.health.clone();
            let name = self.stream.name.clone();
            let waiting: WaitReport = Arc::new(move |waiting: Option<String>| {
                let text = match waiting {
                    Some(w) => format!("{doing}: {w}"),
                    None => doing.clone(),
                };
                health.set_activity(&name, Some(text));
            });
            let work = self.join_work(key.clone(), Some(waiting));
            match work.join(coverage.clone(), &table).await {
                Ok(c) => {
                    coverage = c;
                    self.joins.coverage = Some(coverage.clone());
                }
                Err(e) => {
                    self.joined(table, Err(e));
                    break;
                }
            }
        }
        Ok(())
    }

    /// While streaming: the first table that joins this round, as a join to run beside the
    /// stream. A failed reading only delays the check.
    pub(super) async fn watch_tables(&mut self, control: &Arc<PgControl>) -> Option<Joining> {
        let plan = match self.joins_key() {
            Ok(key) => self
                .plan_joins(control, &key, false)
                .await
                .map(|plan| (key, plan)),
            Err(e) => Err(e),
        };
        let (key, (coverage, steps)) = match plan {
            Ok(plan) => plan,
            Err(e) => {
                tracing::debug!(stream = %self.stream.name, end = ?e, "cannot check the tables yet");
                return None;
            }
        };
        let table = steps.into_iter().find_map(|s| match s {
            Step::Join(t) => Some(t),
            _ => None,
        })?;
        let work = self.join_work(key, None);
        Some(Box::pin(async move {
            let result = work.join(coverage, &table).await;
            (table, result)
        }))
    }

    /// A join that ran beside the stream ended.
    pub(super) fn joined(&mut self, table: String, result: Result<Coverage, String>) {
        match result {
            Ok(c) => self.joins.coverage = Some(c),
            Err(e) => {
                let e = crate::config::scrub(&e, &self.config.secrets());
                tracing::warn!(stream = %self.stream.name, table = %table, error = %e, "the join failed; it is retried beside the stream (its intent is recorded)");
                // Read again: the record says what is still pending.
                self.joins.coverage = None;
            }
        }
    }
}
