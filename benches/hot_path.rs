//! Micro-benchmark of the worker's hot path, in-process and without I/O: pgoutput decode →
//! relation mapping → transform → transaction and batch collapse → seal → RowBinary encode, on
//! messages shaped like the e2e benchmark's (benches/e2e/sql.rs): one transaction per change,
//! inserts of new runs, then updates that complete them (REPLICA IDENTITY FULL old tuples). The
//! messages are encoded beforehand by the crate's test encoder (`testing::pgoutput`).
//!
//! `cargo bench --bench hot_path` prints ns and allocations per change; under `cargo test` it runs
//! a few hundred changes as a smoke test. For instruction counts:
//! `valgrind --tool=callgrind target/release/deps/hot_path-* --bench --changes 20000`.

// Generated rows read like the SQL in benches/e2e/sql.rs (`i % 4 = 0`), kept so on purpose.
#![allow(clippy::manual_is_multiple_of)]

use std::alloc::{GlobalAlloc, Layout};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use bytes::Bytes;
use runs_replicator::config::Config;
use runs_replicator::pipeline::apply::{Applied, SourceState};
use runs_replicator::pipeline::batch::Batch;
use runs_replicator::pipeline::meters::StreamMeters;
use runs_replicator::rows::Col;
use runs_replicator::sink::rowbinary::{BLOCK, EncodeRow, encode_some};
use runs_replicator::source::pgoutput::{self, Insert, Message, OldTuple, OldTupleKind, Update};
use runs_replicator::testing::pgoutput::{encode, text_relation, text_tuple};

struct Counting;

static ALLOCS: AtomicU64 = AtomicU64::new(0);

/// The worker's allocator (src/main.rs), counted.
static INNER: mimalloc::MiMalloc = mimalloc::MiMalloc;

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        unsafe { INNER.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        unsafe { INNER.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, n: usize) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        unsafe { INNER.realloc(p, l, n) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

const OID: u32 = 16_400;

/// Columns of task_run_v2 the transform does not read, to give tuples their real width.
const OTHER_COLUMNS: [&str; 33] = [
    "number",
    "idempotencyKeyExpiresAt",
    "debounce",
    "context",
    "traceContext",
    "lockedQueueId",
    "secondaryMasterQueue",
    "lockedAt",
    "lockedById",
    "lockedToVersionId",
    "priorityMs",
    "maxAttempts",
    "lockedRetryConfig",
    "oneTimeUseToken",
    "taskEventStore",
    "scheduleInstanceId",
    "logsDeletedAt",
    "replayedFromTaskRunFriendlyId",
    "parentTaskRunAttemptId",
    "resumeParentOnCompletion",
    "parentSpanId",
    "runChainState",
    "seedMetadata",
    "seedMetadataType",
    "metadata",
    "metadataType",
    "metadataVersion",
    "realtimeStreamsVersion",
    "realtimeStreams",
    "streamBasinName",
    "extra1",
    "extra2",
    "extra3",
];

fn columns() -> Vec<&'static str> {
    let mut c: Vec<&str> = Col::ALL.iter().map(|c| c.pg_name()).collect();
    c.extend(OTHER_COLUMNS);
    c
}

fn relation() -> Bytes {
    encode(&Message::Relation(text_relation(
        OID,
        "public",
        "task_run_v2",
        &columns(),
    )))
}

fn md5ish(seed: &str, n: usize) -> String {
    // Not md5, but hex of the same length and spread.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut out = String::with_capacity(n);
    while out.len() < n {
        for byte in seed.bytes().chain(out.len().to_le_bytes()) {
            h = (h ^ byte as u64).wrapping_mul(0x100_0000_01b3);
        }
        out.push_str(&format!("{h:016x}"));
    }
    out.truncate(n);
    out
}

/// The text values of run `i`, before (`completed = false`) or after its update.
fn values(i: u64, completed: bool) -> Vec<Option<String>> {
    let ts = |ms: u64| {
        let s = 1_700_000_000 + ms / 1000;
        format!(
            "2026-11-{:02} {:02}:{:02}:{:02}.{:03}",
            1 + (s / 86_400) % 28,
            (s / 3600) % 24,
            (s / 60) % 60,
            s % 60,
            ms % 1000
        )
    };
    let created = ts(i);
    let updated = if completed {
        ts(i + 3_600_000)
    } else {
        created.clone()
    };
    let mut v: Vec<Option<String>> = Vec::new();
    for &col in Col::ALL {
        let s: Option<String> = match col {
            Col::Id => Some(format!("v2{}", md5ish(&format!("v2{i}"), 23))),
            Col::FriendlyId => Some(format!("run_{}", md5ish(&format!("f{i}"), 21))),
            Col::Engine => Some("V2".into()),
            Col::Status => Some(
                match (completed, i % 10) {
                    (false, _) => "PENDING",
                    (true, 0) => "COMPLETED_WITH_ERRORS",
                    _ => "COMPLETED_SUCCESSFULLY",
                }
                .into(),
            ),
            Col::TaskIdentifier => Some(format!("email-sequence-{}", i % 20)),
            Col::Payload => Some(format!(
                r#"{{"userId":"user_{i}","email":"user{i}@example.com","plan":"pro","items":[{},{},{}],"metadata":{{"source":"checkout","campaign":"winter-{}","locale":"en-US"}},"requestId":"{}"}}"#,
                i % 7,
                i % 11,
                i % 13,
                i % 5,
                md5ish(&i.to_string(), 32)
            )),
            Col::PayloadType | Col::OutputType => Some("application/json".into()),
            Col::TraceId => Some(md5ish(&format!("t{i}"), 32)),
            Col::SpanId => Some(md5ish(&format!("s{i}"), 16)),
            Col::RuntimeEnvironmentId => {
                Some(format!("cl{}", md5ish(&format!("env{}", i % 10), 23)))
            }
            Col::EnvironmentType => {
                Some(["PRODUCTION", "STAGING", "DEVELOPMENT"][(i % 3) as usize].into())
            }
            Col::ProjectId => Some(format!("cp{}", md5ish(&format!("proj{}", i % 10), 23))),
            Col::OrganizationId => Some(format!("co{}", md5ish(&format!("org{}", i % 5), 23))),
            Col::Queue => Some(format!("task/email-sequence-{}", i % 20)),
            Col::MasterQueue => Some(
                if i % 4 == 0 {
                    "us-east-1:scheduled"
                } else {
                    "us-east-1"
                }
                .into(),
            ),
            Col::Region => Some("us-east-1".into()),
            Col::CreatedAt | Col::QueuedAt | Col::QueueTimestamp => Some(created.clone()),
            Col::UpdatedAt | Col::CompletedAt if completed => Some(updated.clone()),
            Col::UpdatedAt => Some(updated.clone()),
            Col::StartedAt | Col::ExecutedAt if completed => Some(updated.clone()),
            Col::RunTags => Some({
                let tags = [
                    format!("user_{}", i % 1000),
                    "plan:pro".into(),
                    format!("campaign:winter-{}", i % 5),
                ];
                format!("{{{}}}", tags[..(i % 4) as usize].join(","))
            }),
            Col::TaskVersion => Some(format!("20261126.{}", i % 9)),
            Col::SdkVersion | Col::CliVersion => Some("4.0.4".into()),
            Col::MachinePreset => Some("small-1x".into()),
            Col::IdempotencyKey if i % 2 == 0 => Some(md5ish(&format!("idem{i}"), 32)),
            Col::IdempotencyKeyOptions if i % 2 == 0 => Some(format!(
                r#"{{"key": "order-{i}", "scope": "{}"}}"#,
                ["run", "attempt", "global"][(i % 3) as usize]
            )),
            Col::Annotations => Some(format!(
                r#"{{"taskKind": "STANDARD", "triggerAction": "trigger", "triggerSource": "api", "rootTriggerSource": "{}"}}"#,
                if i % 10 == 0 { "schedule" } else { "api" }
            )),
            Col::ConcurrencyKey if i % 3 == 0 => Some(format!("tenant-{}", i % 50)),
            Col::IsTest => Some(if i % 50 == 0 { "t" } else { "f" }.into()),
            Col::Depth => Some((i % 3).to_string()),
            Col::PlanType => Some("paid".into()),
            Col::MaxDurationInSeconds => Some("3600".into()),
            Col::Ttl if i % 5 == 0 => Some("10m".into()),
            Col::RootTaskRunId if i % 3 > 0 => {
                Some(format!("cm{}", md5ish(&format!("root{i}"), 23)))
            }
            Col::ParentTaskRunId if i % 3 > 0 => {
                Some(format!("cm{}", md5ish(&format!("parent{i}"), 23)))
            }
            Col::BatchId if i % 7 == 0 => Some(format!("batch_{}", i / 100)),
            Col::BulkActionGroupIds => Some("{}".into()),
            Col::UsageDurationMs => Some(if completed {
                (1000 + i % 5000).to_string()
            } else {
                "0".into()
            }),
            Col::CostInCents => Some(if completed {
                format!("{}", (i % 5000) as f64 * 0.0034)
            } else {
                "0".into()
            }),
            Col::BaseCostInCents => Some(if completed {
                "0.0025".into()
            } else {
                "0".into()
            }),
            Col::AttemptNumber if completed => Some("1".into()),
            Col::Output if completed && i % 10 != 0 => Some(if i % 20 == 1 {
                let items: Vec<String> = (1..=155)
                    .map(|g| format!(r#"{{"k":{g},"v":"{}"}}"#, md5ish(&format!("{i}:{g}"), 32)))
                    .collect();
                format!(r#"{{"report":[{}]}}"#, items.join(","))
            } else {
                format!(
                    r#"{{"delivered":true,"messageId":"{}","provider":"ses","attempts":{},"durationMs":{},"recipient":"user{i}@example.com","tags":["welcome","pro"]}}"#,
                    md5ish(&format!("m{i}"), 32),
                    i % 3,
                    i % 1000
                )
            }),
            Col::Error if completed && i % 10 == 0 => Some(format!(
                r#"{{"name": "TypeError", "type": "BUILT_IN_ERROR", "message": "Cannot read properties of undefined (reading 'id') while sending order {i}", "stackTrace": "TypeError: Cannot read properties of undefined (reading 'id')\n    at sendEmail (src/trigger/email.ts:42:17)\n    at async run (src/trigger/email.ts:12:5)"}}"#
            )),
            _ => None,
        };
        v.push(s);
    }
    for (n, _) in OTHER_COLUMNS.iter().enumerate() {
        v.push(match n % 4 {
            0 => None,
            1 => Some("0".into()),
            2 => Some("taskEvent".into()),
            _ => Some("application/json".into()),
        });
    }
    v
}

fn insert(i: u64) -> Bytes {
    encode(&Message::Insert(Insert {
        relation_id: OID,
        new: text_tuple(&values(i, false)),
    }))
}

/// The update that completes run `i`, with its whole old row (REPLICA IDENTITY FULL).
fn update(i: u64) -> Bytes {
    let (old, new) = (values(i, false), values(i, true));
    encode(&Message::Update(Update {
        relation_id: OID,
        old: Some(OldTuple {
            kind: OldTupleKind::Full,
            tuple: text_tuple(&old),
        }),
        new: text_tuple(&new),
    }))
}

#[inline(never)]
/// The worker's synchronous work for `messages`, one transaction each, through the same
/// Encodes `rows` a block at a time into `buf`, as the sink sends a body; returns the bytes.
fn pieces<T: EncodeRow>(rows: &[T], buf: &mut Vec<u8>) -> usize {
    let (mut rest, mut bytes) = (rows, 0);
    while !rest.is_empty() {
        rest = &rest[encode_some(rest, buf, BLOCK)..];
        bytes += buf.len();
    }
    bytes
}

/// `SourceState::apply` the streaming loop uses; returns encoded bytes.
fn run(messages: &[Bytes], max_rows: usize) -> usize {
    let config = Config::default();
    let mut state = SourceState::new(&config.sources()[0], &config);
    let mut meters = StreamMeters::new("default");
    let mut batch = Batch::default();
    let mut encoded = 0;
    let mut buf = Vec::new();
    let mut encode = |sealed: &runs_replicator::pipeline::batch::Sealed| {
        pieces(&sealed.runs, &mut buf) + pieces(&sealed.payloads, &mut buf)
    };
    let relation = relation();
    let message = pgoutput::decode(&relation).expect("decodes");
    assert!(matches!(
        state.apply(&message, &mut meters).expect("applies"),
        Applied::Done
    ));
    let now = Instant::now();
    for (n, data) in messages.iter().enumerate() {
        state.begin(n as u32, 0);
        let message = pgoutput::decode(data).expect("decodes");
        match state.apply(&message, &mut meters).expect("applies") {
            Applied::Done => {}
            other => panic!("the bench's changes need no repair: {other:?}"),
        }
        let committed = state
            .commit(1000 + n as u64 * 100, 0)
            .expect("a transaction is open");
        batch.add(0, committed, now);
        if batch.len() >= max_rows {
            encoded += encode(&batch.seal());
        }
    }
    encoded + encode(&batch.seal())
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let bench = args.iter().any(|a| a == "--bench");
    let changes: u64 = args
        .iter()
        .position(|a| a == "--changes")
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(if bench { 100_000 } else { 400 });
    let rounds = if bench { 5 } else { 1 };

    let runs = changes / 2;
    let mut messages: Vec<Bytes> = (0..runs).map(insert).collect();
    messages.extend((0..runs).map(update));
    let bytes: usize = messages.iter().map(|m| m.len()).sum();

    let mut best = f64::MAX;
    let mut allocs = 0;
    let mut encoded = 0;
    for _ in 0..rounds {
        let a0 = ALLOCS.load(Ordering::Relaxed);
        let t = Instant::now();
        encoded = run(&messages, 10_000);
        best = best.min(t.elapsed().as_secs_f64());
        allocs = ALLOCS.load(Ordering::Relaxed) - a0;
    }
    println!(
        "hot_path: {changes} changes ({} MiB of pgoutput, {} MiB RowBinary): {:.0} ns/change, \
         {:.0} changes/s on one core, {:.1} allocations/change",
        bytes >> 20,
        encoded >> 20,
        best * 1e9 / changes as f64,
        changes as f64 / best,
        allocs as f64 / changes as f64
    );
}
