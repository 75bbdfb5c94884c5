//! The supervisor's side of `joins`: the tables that join a stream's publication, checked at
//! each session's start (before it streams: a join found there is copied first, like the
//! bootstrap) and every `postgres.slot_poll_interval_ms` while it streams (a join found then is
//! copied beside the stream, which goes on).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use super::control::PgControl;
use super::joins::{self, Coverage, JoinWork, Step};
use super::session_end::SessionEnd;
use super::supervisor::Supervisor;

/// A join running beside the stream: the table, then the coverage it wrote (or why it failed).
pub type Joining = Pin<Box<dyn Future<Output = (String, Result<Coverage, String>)> + Send>>;

impl Supervisor {
    fn join_work(&self) -> JoinWork {
        JoinWork {
            config: self.config.clone(),
            stream: self.stream.clone(),
            store: self.store.clone(),
            sink: self.sink.clone(),
        }
    }

    /// Reads the tables and the coverage record (the first one: what the publication covers
    /// now), and returns what this round asks for.
    async fn plan_joins(
        &mut self,
        client: &tokio_postgres::Client,
        fresh: bool,
    ) -> Result<(Coverage, Vec<Step>), SessionEnd> {
        let stream = self.stream.clone();
        let clickhouse = |error: String| SessionEnd::Retry {
            cause: "clickhouse",
            error,
        };
        let tables =
            joins::read_tables(client, &stream)
                .await
                .map_err(|error| SessionEnd::Retry {
                    cause: "postgres",
                    error,
                })?;
        let known = if fresh {
            None
        } else {
            self.joins.coverage.clone()
        };
        let mut coverage = match known {
            Some(c) => c,
            None => match joins::read(&self.store, &stream)
                .await
                .map_err(clickhouse)?
            {
                Some(c) => c,
                None => {
                    let c = Coverage::baseline(&tables);
                    joins::write(&self.store, &stream, &c)
                        .await
                        .map_err(clickhouse)?;
                    c
                }
            },
        };
        let (steps, changed) = coverage.plan(&tables, stream.source.create_publication);
        if changed {
            joins::write(&self.store, &stream, &coverage)
                .await
                .map_err(clickhouse)?;
        }
        self.joins.coverage = Some(coverage.clone());
        self.joins.tell(&stream, &steps);
        Ok((coverage, steps))
    }

    /// At a session's start, once the slot exists: every table that joins is added and copied
    /// before the stream starts.
    pub(super) async fn joins_at_start(
        &mut self,
        client: &tokio_postgres::Client,
    ) -> Result<(), SessionEnd> {
        let (mut coverage, steps) = self.plan_joins(client, true).await?;
        let work = self.join_work();
        for step in steps {
            if let Step::Join(table) = step {
                coverage = work.join(client, coverage, &table).await.map_err(|error| {
                    SessionEnd::Retry {
                        cause: "postgres",
                        error: format!("joining {table}: {error}"),
                    }
                })?;
                self.joins.coverage = Some(coverage.clone());
            }
        }
        Ok(())
    }

    /// While streaming: the first table that joins this round, as a join to run beside the
    /// stream. A failed reading only delays the check.
    pub(super) async fn watch_tables(&mut self, control: &Arc<PgControl>) -> Option<Joining> {
        let (coverage, steps) = match self.plan_joins(control.session(), false).await {
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
        let work = self.join_work();
        let control = control.clone();
        Some(Box::pin(async move {
            let result = work.join(control.session(), coverage, &table).await;
            (table, result)
        }))
    }

    /// A join that ran beside the stream ended.
    pub(super) fn joined(&mut self, table: String, result: Result<Coverage, String>) {
        match result {
            Ok(c) => self.joins.coverage = Some(c),
            Err(e) => {
                let e = crate::config::scrub(&e, &self.config.secrets());
                tracing::warn!(stream = %self.stream.name, table = %table, error = %e, "the join's copy failed; it is retried (its intent is recorded)");
                // Read again: the record says what is still pending.
                self.joins.coverage = None;
            }
        }
    }
}
