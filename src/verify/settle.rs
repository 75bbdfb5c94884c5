//! Telling drift from the live stream: the runs whose hashes differed are re-checked, each round
//! from a fresh snapshot of every source and, once every slot confirmed that snapshot, from
//! ClickHouse. A difference is reported only when it is settled (ARCHITECTURE.md, "A verify
//! reports only settled drift"):
//!
//! - the round caught up (every slot passed the snapshot's upper bound, so ClickHouse holds every
//!   change the snapshot shows), the run still differs, and ClickHouse's newest row of it
//!   (tombstones included) carries a version from before the snapshot (`L`): no change after the
//!   snapshot explains it; or
//! - the round caught up, the run still differs, and ClickHouse shows exactly what it showed in
//!   the round before (same rows, same versions): what it shows was there before this round's
//!   snapshot, so it is not a change that snapshot misses.
//!
//! Anything else is pending and re-checked. A run still pending after the last round is
//! *unsettled*: neither in sync nor drift, never repaired, and reported apart with why
//! ([`Unsettled`]): the stream was not keeping up (a slot idle or behind: ClickHouse may lack a
//! change the snapshot shows, so a difference cannot be told from an undelivered change), or the
//! run changed between every two rounds.

use std::collections::{BTreeMap, HashMap, HashSet};

use serde::Serialize;

use super::compare::{self, Finding, Kind, Rendered};
use super::expected::Snap;
use super::few_runs;
use super::slots::{self, SlotWait};
use super::{Context, VerifyError};
use crate::rows::RunRow;

/// `_version`'s LSN bits.
pub(crate) const LSN_MASK: u64 = (1 << 56) - 1;

/// The generation a row's `_version` carries.
fn generation(r: &RunRow) -> u8 {
    (r._version >> 56) as u8
}

/// What one round saw of a run.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Observation {
    /// The transform of its winning Postgres copy, if it has one in the window.
    pub expected: Option<RunRow>,
    /// Its rows under `FINAL`, within scope.
    pub actual: Vec<RunRow>,
    /// The highest `_version` ClickHouse has of it, tombstones included.
    pub newest: Option<u64>,
    /// Whether its payload row exists, when payloads are checked.
    pub payload: Option<bool>,
}

/// What a round knows about the stream.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Round {
    /// Per generation, the `L` of its source's snapshot this round.
    pub floors: HashMap<u8, u64>,
    /// Every slot confirmed the snapshot before ClickHouse was read.
    pub caught_up: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    InSync,
    Drift,
    Pending,
}

/// The verdict on a run after a round (see the module's comment); `before` is what the previous
/// round saw, if it re-checked the run too.
pub fn decide(
    finding: Option<&Finding>,
    now: &Observation,
    before: Option<&Observation>,
    round: &Round,
) -> Verdict {
    if finding.is_none() {
        return Verdict::InSync;
    }
    if !round.caught_up {
        return Verdict::Pending;
    }
    // A version's LSN at or below L is a commit (or a copy) the snapshot already shows: a change
    // the snapshot misses commits after L, its end (or, spilled, its start + 1) is above L.
    let predates_snapshot = match now.newest {
        None => true,
        Some(v) => round
            .floors
            .get(&((v >> 56) as u8))
            .is_some_and(|l| v & LSN_MASK <= *l),
    };
    if predates_snapshot {
        return Verdict::Drift;
    }
    match before {
        Some(b) if b.actual == now.actual && b.newest == now.newest => Verdict::Drift,
        _ => Verdict::Pending,
    }
}

/// A run found drifted, with what the last round saw of it.
#[derive(Debug, Clone)]
pub struct Drifted {
    pub finding: Finding,
    pub seen: Observation,
}

/// Why a run could not be settled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// The last round's stream had not confirmed the snapshot (a slot not streaming: the daemon
    /// stopped, reconnecting or hard-stopped; or one behind past `verify.wait_timeout_ms`):
    /// ClickHouse may lack a change the snapshot shows.
    StreamBehind,
    /// The stream kept up, but ClickHouse showed a change newer than each round's snapshot,
    /// a different one every round: the run kept changing.
    Changing,
}

impl Reason {
    pub const ALL: [Reason; 2] = [Reason::StreamBehind, Reason::Changing];

    /// The metric label and the JSON value.
    pub fn label(self) -> &'static str {
        match self {
            Reason::StreamBehind => "stream_behind",
            Reason::Changing => "changing",
        }
    }

    /// What it means, for a person.
    pub fn describe(self) -> &'static str {
        match self {
            Reason::StreamBehind => {
                "the stream had not delivered the snapshot's changes: ClickHouse may still be \
                 missing them"
            }
            Reason::Changing => "it changed between every two re-checks",
        }
    }
}

/// A run that differed in the last round without the difference being settled: neither in sync
/// nor drift, and never repaired.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Unsettled {
    pub run_id: String,
    pub reason: Reason,
    /// How it differed in the last round (not a finding: it may be a change in flight).
    pub differed: Vec<Kind>,
}

/// The outcome of the re-checks.
#[derive(Debug, Default)]
pub struct Settled {
    pub drifted: Vec<Drifted>,
    /// Differences a re-check found gone: changes the stream delivered meanwhile.
    pub resolved: usize,
    /// Runs still pending after the last round, by id.
    pub unsettled: Vec<Unsettled>,
    pub rounds: u32,
    pub waits: Vec<SlotWait>,
    pub snapshots: Vec<Snap>,
    pub postgres_rows_read: u64,
}

/// Re-checks `candidates` until each is in sync, drifted or out of rounds.
pub async fn settle(ctx: &Context, candidates: Vec<String>) -> Result<Settled, VerifyError> {
    let mut settled = Settled::default();
    let mut pending = candidates;
    let mut before: HashMap<String, Observation> = HashMap::new();
    let rounds = ctx.rounds.max(1);
    while !pending.is_empty() && settled.rounds < rounds {
        settled.rounds += 1;
        ctx.doing(|| {
            format!(
                "re-check round {} of at most {rounds}: {} run(s) from fresh snapshots (each \
                 first waits for the transactions in flight to end)",
                settled.rounds,
                pending.len()
            )
        });
        let (seen, round, waits, snapshots, rows_read) = observe(ctx, &pending).await?;
        settled.postgres_rows_read += rows_read;
        let last = settled.rounds == rounds || slots::standing_still(&waits);
        let rendered = render(ctx, &seen).await;
        let mut still = Vec::new();
        for id in pending {
            let now = &seen[&id];
            let finding = compare::compare(
                &id,
                now.expected.as_ref(),
                &now.actual,
                now.payload,
                &rendered,
            );
            match decide(finding.as_ref(), now, before.get(&id), &round) {
                Verdict::InSync => settled.resolved += 1,
                Verdict::Drift => settled.drifted.push(Drifted {
                    finding: finding.expect("a drift has a finding"),
                    seen: now.clone(),
                }),
                Verdict::Pending if last => settled.unsettled.push(Unsettled {
                    run_id: id,
                    reason: match round.caught_up {
                        true => Reason::Changing,
                        false => Reason::StreamBehind,
                    },
                    differed: finding.map(|f| f.kinds).unwrap_or_default(),
                }),
                Verdict::Pending => still.push(id),
            }
        }
        before = seen;
        pending = still;
        settled.waits = waits;
        settled.snapshots = snapshots;
        if last {
            break;
        }
    }
    // The last round decides every run it re-checks: nothing is left pending.
    debug_assert!(pending.is_empty());
    settled
        .drifted
        .sort_by(|a, b| a.finding.run_id.cmp(&b.finding.run_id));
    settled.unsettled.sort_by(|a, b| a.run_id.cmp(&b.run_id));
    Ok(settled)
}

type Seen = (
    HashMap<String, Observation>,
    Round,
    Vec<SlotWait>,
    Vec<Snap>,
    u64,
);

/// One round: Postgres from fresh snapshots, the wait for the slots, then ClickHouse.
async fn observe(ctx: &Context, ids: &[String]) -> Result<Seen, VerifyError> {
    let read = few_runs::read_runs(
        &ctx.config,
        &ctx.sources,
        ids,
        Some(&ctx.window),
        &ctx.clock,
    )
    .await?;
    let (mut expected, snapshots) = (read.winners, read.snapshots);
    let mut waits = Vec::new();
    let mut round = Round::default();
    for (source, snap) in ctx.sources.iter().zip(&snapshots) {
        waits.extend(slots::wait(ctx, source, snap.upper).await?);
        for g in source.generations.values() {
            round.floors.insert(*g, snap.version_lsn());
        }
    }
    round.caught_up = slots::caught_up(&waits);
    // Every generation: a run of these sources may show another source's copy.
    let all = crate::sink::verify_reads::Scope {
        generations: None,
        ..ctx.scope.clone()
    };
    let mut actual: HashMap<String, Vec<RunRow>> = HashMap::new();
    for row in ctx.reads.visible_rows(&all, ids).await? {
        actual.entry(row.run_id.clone()).or_default().push(row);
    }
    let newest: HashMap<String, u64> = ctx
        .reads
        .newest_versions(&all, ids)
        .await?
        .into_iter()
        .collect();
    let payloads: Option<HashSet<String>> = match ctx.payloads {
        true => Some(ctx.reads.payload_runs(&all, ids).await?),
        false => None,
    };
    let mut seen = HashMap::new();
    for id in ids {
        let expected = expected.remove(id);
        let mut rows = actual.remove(id).unwrap_or_default();
        rows.sort_by(|a, b| a.sort_key().cmp(&b.sort_key()));
        if let Some(gens) = &ctx.scope.generations {
            let ours = |r: &RunRow| gens.contains(&generation(r));
            // Another source's copy that outranks this source's is that source's business.
            let outranked = expected.as_ref().is_some_and(|e| {
                rows.iter()
                    .any(|r| !ours(r) && generation(r) > generation(e))
            });
            if outranked {
                seen.insert(id.clone(), Observation::default());
                continue;
            }
            rows.retain(ours);
        }
        let payload = match (&payloads, &expected) {
            (Some(p), Some(_)) => Some(p.contains(id)),
            _ => None,
        };
        seen.insert(
            id.clone(),
            Observation {
                expected,
                actual: rows,
                newest: newest.get(id).copied(),
                payload,
            },
        );
    }
    Ok((seen, round, waits, snapshots, read.rows_read))
}

/// ClickHouse's own rendering of the expected JSON values the emulation renders differently from
/// what ClickHouse shows (values it may not cover). A value ClickHouse refuses keeps the
/// emulation's rendering, and the run shows as stale.
async fn render(ctx: &Context, seen: &HashMap<String, Observation>) -> Rendered {
    let mut asks: BTreeMap<&'static str, Vec<String>> = BTreeMap::new();
    for o in seen.values() {
        if let Some(e) = &o.expected {
            for (column, text) in compare::json_to_render(e, &o.actual) {
                asks.entry(column).or_default().push(text.to_string());
            }
        }
    }
    let mut rendered = Rendered::new();
    for (column, texts) in asks {
        match ctx.reads.render_json(column, &texts).await {
            Ok(out) => rendered.extend(texts.into_iter().zip(out)),
            Err(e) => {
                tracing::debug!(column, error = %e, "ClickHouse did not render expected JSON")
            }
        }
    }
    rendered
}
