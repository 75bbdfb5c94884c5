//! Tables that join a stream's publication after its slot exists, without a gap.
//!
//! trigger.dev's schema has `"TaskRun"` alone until a migration creates `task_run_v2`; with the
//! default table list the worker streams what exists and takes a new table in when it appears —
//! at a session's start, or while it streams (the supervisor asks every
//! `postgres.slot_poll_interval_ms`). A table that joins a publication whose slot already
//! streams has rows the slot never saw: those that existed before it joined. So a join is:
//!
//! 1. the intent, recorded durably (`pending`), before anything else;
//! 2. `ALTER PUBLICATION … ADD TABLE` (with `create_publication`; otherwise the operator's, which
//!    this only observes — and until then it says which SQL to run);
//! 3. a copy of the table from a snapshot taken after that ALTER committed: every transaction
//!    committed before the snapshot's `L` is in it, and every change committed after the ALTER
//!    is streamed by the slot (pgoutput picks the new member up in the running walsender, for
//!    the transactions that commit after the ALTER: checked on PostgreSQL 15), with a version
//!    above `L` when it commits after `L` — so nothing falls between the copy and the stream;
//! 4. the table recorded as covered, with the copy's snapshot (`L`), the pending intent cleared.
//!
//! A kill anywhere leaves the intent (or an uncovered member), and the next session start
//! copies again from a fresh snapshot. The record is this module's own (`kind = "tables"` in
//! the state table), per stream, beside the slot's marker and independent of it, keyed as the
//! marker is — by the server's system identifier, the database and the slot — plus the
//! publication, so a URL spelled another way finds it and another cluster does not.
//!
//! The ALTER runs on a connection of its own under `statement_timeout`
//! (`postgres.query_timeout_ms`, a wait for its lock included), never on the leader's session,
//! whose queries (the leader's ping, the slot's readings) must keep their pace while a join
//! waits for a lock. The copy is a backfill job of its own: owned by
//! the join (`backfill::Owed`, so no operator's `backfill` of the same table, no dry run and no
//! earlier join stands in for it), planned anew each time, and counting only chunks copied at or
//! after a WAL position read once the table was a member (its floor).

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::marker::{self, unix_now};
use crate::backfill::{self, Display, Owed, Request, WaitReport};
use crate::config::{Config, Stream};
use crate::pg::catalog::{self, TableReading};
use crate::preflight::{Status, verdicts};
use crate::sink::insert::ClickHouseSink;
use crate::sink::state::StateStore;
use crate::source::identity::ServerIdentity;
use crate::source::setup;

const KIND: &str = "tables";

/// How often a table that cannot join yet is named again in the log.
const REMIND: Duration = Duration::from_secs(15 * 60);

/// Which of a stream's tables its slot streams completely.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Coverage {
    /// In the publication since before the first record, or joined with their rows copied.
    pub covered: Vec<String>,
    /// Joining: recorded before the ALTER (or on seeing the operator's), cleared once the copy
    /// stored every row.
    pub pending: Vec<String>,
    /// Each join's copy, newest last.
    pub copies: Vec<Copied>,
    /// Unix seconds of the last write.
    pub updated_at: u64,
}

/// One finished join copy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Copied {
    pub table: String,
    /// The snapshot it copied: its `L` (the rows' version), as Postgres writes an LSN.
    pub lsn: String,
    pub rows: u64,
    /// Unix seconds.
    pub at: u64,
}

/// One configured table as the catalog shows it now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableNow {
    pub name: String,
    pub exists: bool,
    pub member: bool,
    /// Why it cannot be replicated yet (the preflight's failing table checks with their fixes).
    pub unready: Option<String>,
}

/// What to do about one table this round.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Add it (when it is not a member) and copy it.
    Join(String),
    /// It exists and the worker may not add it (`create_publication = false`).
    AskOperator(String),
    /// It exists and fails a table check: joined once fixed.
    NotReady(String, String),
    /// It does not exist (yet).
    Absent(String),
}

impl Coverage {
    /// The first record of a stream: what its publication covers now is what its slot streams.
    pub fn baseline(tables: &[TableNow]) -> Coverage {
        Coverage {
            covered: tables
                .iter()
                .filter(|t| t.exists && t.member)
                .map(|t| t.name.clone())
                .collect(),
            ..Coverage::default()
        }
    }

    /// Decides this round from the catalog. A covered table that left the publication (or was
    /// dropped) is no longer covered, so it joins with a copy when it comes back. Returns
    /// whether the record changed.
    pub fn plan(&mut self, tables: &[TableNow], create_publication: bool) -> (Vec<Step>, bool) {
        let before = self.clone();
        self.covered
            .retain(|c| tables.iter().any(|t| t.name == *c && t.exists && t.member));
        self.pending
            .retain(|p| tables.iter().any(|t| t.name == *p && t.exists));
        let mut steps = Vec::new();
        for t in tables {
            if !t.exists {
                steps.push(Step::Absent(t.name.clone()));
                continue;
            }
            if self.covered.contains(&t.name) {
                continue;
            }
            steps.push(match (&t.unready, t.member, create_publication) {
                (_, true, _) => Step::Join(t.name.clone()),
                (Some(why), false, true) => Step::NotReady(t.name.clone(), why.clone()),
                (None, false, true) => Step::Join(t.name.clone()),
                (_, false, false) => Step::AskOperator(t.name.clone()),
            });
        }
        let changed = *self != before;
        (steps, changed)
    }
}

/// The record's key: the slot's marker key (`<system identifier>/<database>/<slot>`) and the
/// publication.
pub fn key(identity: &ServerIdentity, stream: &Stream) -> String {
    format!(
        "{}/{}",
        marker::key_of(
            &identity.system_identifier,
            &stream.source.url.dbname,
            &stream.slot
        ),
        stream.publication
    )
}

/// Why the coverage record cannot be used.
#[derive(Debug)]
pub enum RecordError {
    /// The state table did not answer: try again.
    Store(String),
    /// The record is there and not readable: an operator must act (fail closed — a fresh
    /// baseline would count a table still joining as covered).
    Unreadable(String),
}

/// The coverage record under `key`; `None` when there is none.
pub async fn read(store: &StateStore, key: &str) -> Result<Option<Coverage>, RecordError> {
    let value = store
        .get(KIND, key)
        .await
        .map_err(|e| RecordError::Store(e.to_string()))?;
    value
        .map(|v| {
            serde_json::from_str(&v).map_err(|e| {
                RecordError::Unreadable(format!(
                    "the tables' coverage record ({KIND} record {key:?} in runs_replicator_state) \
                     cannot be read ({e}): the worker cannot tell which tables joined without \
                     their rows copied, and will not guess. Fix or remove the record (removing \
                     it counts the tables now in the publication as covered: copy one that \
                     joined lately with `runs-replicator backfill --table T --payloads`)"
                ))
            })
        })
        .transpose()
}

pub async fn write(store: &StateStore, key: &str, c: &Coverage) -> Result<(), String> {
    let mut c = c.clone();
    c.updated_at = unix_now();
    let value = serde_json::to_string(&c).expect("a coverage record serializes");
    store
        .put(KIND, key, &value)
        .await
        .map_err(|e| e.to_string())
}

/// Reads every configured table of the stream: exists, a member of its publication, ready.
pub async fn read_tables(
    client: &tokio_postgres::Client,
    stream: &Stream,
) -> Result<Vec<TableNow>, String> {
    let src = &stream.source;
    let found = catalog::read_tables(client, &src.schema, &src.tables)
        .await
        .map_err(|e| e.to_string())?;
    let publication = catalog::read_publication(client, &stream.publication)
        .await
        .map_err(|e| e.to_string())?;
    Ok(src
        .tables
        .iter()
        .map(|name| {
            let reading = found.iter().find(|r| r.name == *name);
            TableNow {
                name: name.clone(),
                exists: reading.is_some(),
                member: publication
                    .as_ref()
                    .is_some_and(|p| p.member(&src.schema, name).is_some()),
                unready: reading.and_then(|r| unready(stream, r)),
            }
        })
        .collect())
}

/// The preflight's failing checks of one table that exists, with their fixes.
fn unready(stream: &Stream, reading: &TableReading) -> Option<String> {
    let mut one = stream.source.with_tables(vec![reading.name.clone()]);
    one.tables_required = true;
    let user = &stream.source.url.user;
    let failed: Vec<String> = verdicts::tables(&one, std::slice::from_ref(reading), user)
        .into_iter()
        .filter(|c| c.status == Status::Fail)
        .map(|c| match c.fix {
            Some(fix) => format!("{}: {} (fix: {fix})", c.check, c.observed),
            None => format!("{}: {}", c.check, c.observed),
        })
        .collect();
    (!failed.is_empty()).then(|| failed.join("; "))
}

/// What a stream remembers across its sessions: which tables it named in the log, and when.
#[derive(Debug, Default)]
pub struct Joins {
    /// The coverage as this session last read or wrote it.
    pub coverage: Option<Coverage>,
    said: std::collections::BTreeMap<String, Instant>,
    absent_said: BTreeSet<String>,
}

impl Joins {
    /// Logs the steps that need no action from the worker: each absent table once per
    /// process, each table waiting for the operator or a fix once per `REMIND`.
    pub fn tell(&mut self, stream: &Stream, steps: &[Step]) {
        let name = &stream.name;
        let publication = crate::pg::quote_ident(&stream.publication);
        for step in steps {
            match step {
                Step::Absent(t) => {
                    if self.absent_said.insert(t.clone()) {
                        tracing::info!(
                            stream = %name,
                            table = %t,
                            "{t} does not exist (yet) in schema {}: replicating the tables that \
                             exist; {t} joins the publication when it appears, its rows copied",
                            stream.source.schema
                        );
                    }
                }
                Step::AskOperator(t) => {
                    if self.due(t) {
                        let sql = format!(
                            "ALTER PUBLICATION {publication} ADD TABLE {};",
                            verdicts::qualified(&stream.source.schema, t)
                        );
                        tracing::warn!(
                            stream = %name,
                            table = %t,
                            %sql,
                            "{t} exists and is not in the publication, which the worker may not \
                             change (postgres.create_publication = false): its runs are not \
                             replicated until it is added; run {sql} and the worker copies its \
                             rows then"
                        );
                    }
                }
                Step::NotReady(t, why) => {
                    if self.due(t) {
                        tracing::warn!(stream = %name, table = %t, "{t} exists and cannot join yet: {why}");
                    }
                }
                Step::Join(_) => {}
            }
        }
    }

    fn due(&mut self, table: &str) -> bool {
        let now = Instant::now();
        match self.said.get(table) {
            Some(t) if now.duration_since(*t) < REMIND => false,
            _ => {
                self.said.insert(table.to_string(), now);
                true
            }
        }
    }
}

/// Everything a join needs, owned, so it can run beside the stream.
#[derive(Clone)]
pub struct JoinWork {
    pub config: Arc<Config>,
    pub stream: Stream,
    /// The coverage record's key ([`key`]).
    pub key: String,
    pub store: Arc<StateStore>,
    pub sink: Arc<ClickHouseSink>,
    /// Told what the copy's snapshot waits on (a join before the stream starts: `/readyz`).
    pub waiting: Option<WaitReport>,
}

impl JoinWork {
    /// Joins `table`: intent recorded, added to the publication unless it is a member, copied
    /// from a snapshot taken after that, recorded as covered with the copy's `L`. Returns the
    /// coverage as written.
    pub async fn join(&self, mut coverage: Coverage, table: &str) -> Result<Coverage, String> {
        let stream = &self.stream;
        if !coverage.pending.iter().any(|p| p == table) {
            coverage.pending.push(table.to_string());
        }
        write(&self.store, &self.key, &coverage).await?;
        let floor = self.add(table).await?;
        tracing::info!(
            stream = %stream.name,
            table,
            "{table} joined the publication: copying the rows it has from a snapshot taken now; \
             its later changes stream"
        );
        let request = Request {
            source: Some(stream.source.name.clone()),
            tables: vec![table.to_string()],
            since: None,
            until: None,
            updated_since: None,
            shard: stream.shard.map(|s| s.row_filter()),
            // Never streamed, so their INSERTs never wrote payload rows either.
            payloads: true,
            parallel: self.config.backfill.parallel,
            // A fresh plan and snapshot every time: a job of the same table finished earlier
            // (before the table was dropped and created again) says nothing about this one.
            restart: true,
            display: Display::Lines,
            owed: Some(Owed {
                owner: format!("{}/join/{table}", self.key),
                floor,
                waiting: self.waiting.clone(),
            }),
        };
        let config = &self.config;
        // A connection and a few catalog readings, bounded as the rest of a session's setup.
        let bound = config.connect_timeout_of(&stream.source.url) + 4 * config.query_timeout();
        let spec = tokio::time::timeout(bound, backfill::prepare(config, &request, &stream.source))
            .await
            .map_err(|_| {
                format!(
                    "preparing the copy: no answer within {} ms",
                    bound.as_millis()
                )
            })?
            .map_err(|e| e.to_string())?;
        let summary = backfill::run_source(
            self.config.clone(),
            &request,
            &stream.source,
            spec,
            self.sink.clone(),
            self.store.clone(),
        )
        .await
        .map_err(|e| e.to_string())?;
        let lsn = summary.lsn.clone().unwrap_or_default();
        tracing::info!(
            stream = %stream.name,
            table,
            job = %summary.job_id,
            rows = summary.total.rows_read,
            %lsn,
            "{table} copied: its rows before the join are in ClickHouse at version L = {lsn}"
        );
        coverage.pending.retain(|p| p != table);
        if !coverage.covered.iter().any(|c| c == table) {
            coverage.covered.push(table.to_string());
        }
        coverage.copies.push(Copied {
            table: table.to_string(),
            lsn,
            rows: summary.total.rows_read,
            at: unix_now(),
        });
        write(&self.store, &self.key, &coverage).await?;
        Ok(coverage)
    }

    /// Adds `table` to the publication unless it is a member (without `create_publication` the
    /// operator added it: that is why it joins), on a connection of its own whose statements
    /// give up after `postgres.query_timeout_ms`, a lock wait included. Returns the WAL position
    /// once it is a member: the copy's floor, every transaction committed before it is in a
    /// snapshot whose `L` is at or above it, every one after it is streamed.
    async fn add(&self, table: &str) -> Result<u64, String> {
        let stream = &self.stream;
        let url = &stream.source.url;
        let ms = self.config.postgres.query_timeout_ms;
        let options = format!("-c statement_timeout={ms}");
        let client = crate::pg::connect_with_options(
            url,
            self.config.connect_timeout_of(url),
            Some(&options),
        )
        .await
        .map_err(|e| e.to_string())?;
        if stream.source.create_publication
            && let Some(sql) = setup::add_table(&client, stream, table)
                .await
                .map_err(|e| e.to_string())?
        {
            tracing::info!(stream = %stream.name, table, %sql, "publication: table added");
        }
        let row = client
            .query_one("SELECT pg_current_wal_insert_lsn()::text", &[])
            .await
            .map_err(|e| format!("reading the WAL position: {}", crate::pg::describe(&e)))?;
        let text: String = row.get(0);
        marker::parse_lsn(&text).ok_or_else(|| format!("unreadable WAL position {text:?}"))
    }
}

#[cfg(test)]
mod tests;
