//! Prometheus metrics: every name the worker exports, its help text and histogram buckets.
//!
//! Names follow Prometheus conventions (base units, `_total` counters, `_seconds`, `_bytes`) under
//! the `runs_replicator_` prefix. The Grafana dashboard in `config/grafana/` queries these names;
//! a test scrapes a running worker and checks every name the dashboard uses exists.

use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
use metrics_exporter_prometheus::{BuildError, Matcher, PrometheusBuilder, PrometheusHandle};

pub const CHANGES: &str = "runs_replicator_changes_received_total";
pub const TRANSACTIONS: &str = "runs_replicator_transactions_received_total";
pub const ROWS_INSERTED: &str = "runs_replicator_rows_inserted_total";
pub const BATCHES: &str = "runs_replicator_batches_total";
pub const BATCH_ROWS: &str = "runs_replicator_batch_rows";
pub const FLUSH_DURATION: &str = "runs_replicator_flush_duration_seconds";
pub const INSERT_RETRIES: &str = "runs_replicator_insert_retries_total";
pub const INSERT_ERRORS: &str = "runs_replicator_insert_errors_total";
pub const ROWS_SKIPPED: &str = "runs_replicator_rows_skipped_total";
pub const ROWS_REJECTED: &str = "runs_replicator_rows_rejected_total";
pub const FIELDS_NEUTRALISED: &str = "runs_replicator_fields_neutralised_total";
pub const FIELDS_EMPTIED: &str = "runs_replicator_fields_emptied_total";
pub const REPAIRED_CHANGES: &str = "runs_replicator_repaired_changes_total";
pub const REPAIR_LOOKUPS: &str = "runs_replicator_repair_lookups_total";
pub const REPAIR_LOOKUP_RUNS: &str = "runs_replicator_repair_lookup_runs_total";
pub const REPAIR_TOMBSTONES: &str = "runs_replicator_repair_tombstones_total";
pub const REPAIR_LOOKUP_SECONDS: &str = "runs_replicator_repair_lookup_seconds";
pub const TRUNCATES: &str = "runs_replicator_truncates_received_total";
pub const LOG_LINES_DROPPED: &str = "runs_replicator_log_lines_dropped_total";
pub const COMMIT_LATENCY: &str = "runs_replicator_commit_to_clickhouse_seconds";
pub const RECEIVED_LSN: &str = "runs_replicator_received_lsn";
pub const ACKNOWLEDGED_LSN: &str = "runs_replicator_acknowledged_lsn";
pub const BUFFERED_ROWS: &str = "runs_replicator_buffered_rows";
pub const INFLIGHT_BATCHES: &str = "runs_replicator_inflight_batches";
pub const BACKPRESSURE: &str = "runs_replicator_backpressure";
pub const SLOT_LAG: &str = "runs_replicator_slot_lag_bytes";
pub const SLOT_RETAINED: &str = "runs_replicator_slot_retained_wal_bytes";
pub const SLOT_SAFE_WAL: &str = "runs_replicator_slot_safe_wal_size_bytes";
pub const SLOT_WAL_STATUS: &str = "runs_replicator_slot_wal_status";
pub const SLOT_ACTIVE: &str = "runs_replicator_slot_active";
pub const FAILOVER_READY: &str = "runs_replicator_failover_ready";
pub const FAILOVER_LAG: &str = "runs_replicator_failover_slot_lag_bytes";
pub const STANDBY_HOLD: &str = "runs_replicator_held_by_standby_slots";
pub const TIMELINE: &str = "runs_replicator_timeline";
pub const TIMELINE_SWITCHES: &str = "runs_replicator_timeline_switches_total";
pub const DIVERGENCE_BYTES: &str = "runs_replicator_divergence_bytes";
pub const DIVERGENCE_RUNS: &str = "runs_replicator_divergence_runs_total";
pub const LEADER: &str = "runs_replicator_leader";
pub const INSTANCES: &str = "runs_replicator_instances";
pub const HANDOVERS: &str = "runs_replicator_handovers_total";
pub const READY: &str = "runs_replicator_ready";
pub const HARD_STOP: &str = "runs_replicator_hard_stop";
pub const RECONNECTS: &str = "runs_replicator_stream_restarts_total";
pub const BUILD_INFO: &str = "runs_replicator_build_info";
pub const INTERRUPTION: &str = "runs_replicator_stream_interruption_seconds";
pub const LAST_INTERRUPTION: &str = "runs_replicator_last_stream_interruption_seconds";
pub const CLICKHOUSE_OUTAGE: &str = "runs_replicator_clickhouse_outage_seconds";
pub const CLICKHOUSE_LAST_OUTAGE: &str = "runs_replicator_clickhouse_last_outage_seconds";
pub const CLICKHOUSE_OUTAGES: &str = "runs_replicator_clickhouse_outages_total";
pub const CLICKHOUSE_REFUSING: &str = "runs_replicator_clickhouse_refusing";
pub const BACKFILL_ROWS: &str = "runs_replicator_backfill_rows_total";
pub const BACKFILL_CHUNKS: &str = "runs_replicator_backfill_chunks";
pub const BACKFILL_RUNNING: &str = "runs_replicator_backfill_running";
pub const SNAPSHOT_LONGEST: &str = "runs_replicator_snapshot_longest_seconds";
pub const SNAPSHOTS_TAKEN: &str = "runs_replicator_snapshots_total";
pub const VERIFY_SLICES: &str = "runs_replicator_verify_slices";
pub const VERIFY_ROWS_READ: &str = "runs_replicator_verify_rows_read_total";
pub const DRIFT_ROWS: &str = "runs_replicator_drift_rows";
pub const VERIFY_LAST_SUCCESS: &str = "runs_replicator_verify_last_success_timestamp_seconds";
pub const VERIFY_RUNS: &str = "runs_replicator_verify_runs_compared";
pub const VERIFY_DURATION: &str = "runs_replicator_verify_duration_seconds";
pub const VERIFY_INTERVAL: &str = "runs_replicator_verify_interval_seconds";
pub const VERIFY_REPAIRS: &str = "runs_replicator_verify_repairs_total";
pub const VERIFY_UNSETTLED: &str = "runs_replicator_verify_unsettled_runs";
pub const VERIFY_RUNNING: &str = "runs_replicator_verify_running_seconds";
pub const VERIFY_TIMEOUTS: &str = "runs_replicator_verify_timeouts_total";

/// Every `kind` label of the drift gauge (`verify::compare::Kind`).
pub const DRIFT_KINDS: &[&str] = &["missing", "extra", "stale", "missing_payload"];
/// Every `action` label of the repair counter.
pub const REPAIR_ACTIONS: &[&str] = &["rewritten", "tombstoned"];
/// Every `reason` label of the unsettled gauge (`verify::settle::Reason`).
pub const UNSETTLED_REASONS: &[&str] = &["stream_behind", "changing"];

/// Every `state` label of the backfill chunk gauge.
pub const BACKFILL_CHUNK_STATES: &[&str] = &["pending", "running", "done"];

/// Every `wal_status` value Postgres reports; the gauge is 1 for the current one.
pub const WAL_STATUSES: &[&str] = &["reserved", "extended", "unreserved", "lost"];

const ROW_BUCKETS: &[f64] = &[
    1.0, 10.0, 50.0, 100.0, 500.0, 1000.0, 2500.0, 5000.0, 10000.0, 25000.0, 50000.0, 100000.0,
];
const FLUSH_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];
// Steps of 25 ms up to 200 ms: a caught-up worker writes a change within
// `batch.min_insert_interval_ms` (100) plus one insert, so a healthy p99 sits there (BENCHMARKS.md:
// p99 223 ms at 200 changes/s; the worker's own share at 2,000/s ≤ 125 ms); coarser above, up to
// the 1 s flush interval and the alerts' 60 s.
const LATENCY_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.125, 0.15, 0.175, 0.2, 0.25, 0.3, 0.4, 0.5, 0.75, 1.0,
    1.25, 1.5, 2.0, 3.0, 5.0, 10.0, 30.0, 60.0, 300.0,
];

/// Installs the global recorder and returns the handle that renders `/metrics`.
pub fn install() -> Result<PrometheusHandle, BuildError> {
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Full(BATCH_ROWS.into()), ROW_BUCKETS)?
        .set_buckets_for_metric(Matcher::Full(FLUSH_DURATION.into()), FLUSH_BUCKETS)?
        .set_buckets_for_metric(Matcher::Full(COMMIT_LATENCY.into()), LATENCY_BUCKETS)?
        .set_buckets_for_metric(Matcher::Full(REPAIR_LOOKUP_SECONDS.into()), FLUSH_BUCKETS)?
        .install_recorder()?;
    describe();
    metrics::gauge!(
        BUILD_INFO,
        "version" => crate::version::VERSION,
        "commit" => crate::version::COMMIT,
        "trigger_dev" => crate::version::TRIGGER_DEV,
        "clickhouse_migration" => crate::version::CLICKHOUSE_MIGRATION
    )
    .set(1.0);
    Ok(handle)
}

fn describe() {
    describe_counter!(
        CHANGES,
        "Row changes received from Postgres, by source table and operation."
    );
    describe_counter!(
        TRANSACTIONS,
        "Transactions received from Postgres (commits)."
    );
    describe_counter!(ROWS_INSERTED, "Rows ClickHouse accepted, by target table.");
    describe_counter!(BATCHES, "Batches flushed, by result (ok, failed).");
    describe_histogram!(BATCH_ROWS, "Rows per flushed batch (runs and payloads).");
    describe_histogram!(
        FLUSH_DURATION,
        Unit::Seconds,
        "Time to insert one batch, retries included."
    );
    describe_counter!(
        INSERT_RETRIES,
        "Insert attempts retried after a failure, by target table."
    );
    describe_counter!(
        INSERT_ERRORS,
        "Failed insert attempts, by target table and kind (transient, data)."
    );
    describe_counter!(
        ROWS_SKIPPED,
        "Source rows that produce no ClickHouse row, by reason."
    );
    describe_counter!(
        ROWS_REJECTED,
        "Rows ClickHouse refused even after neutralising them, by target table."
    );
    describe_counter!(
        FIELDS_NEUTRALISED,
        "JSON fields replaced by {} so ClickHouse accepts the row, by column."
    );
    describe_counter!(
        FIELDS_EMPTIED,
        "JSON fields the transform stored empty although the source had a value, by column and reason (too_deep, not_json, bad_json_strings, lone_surrogate, unreadable_superjson); each is logged with its run id."
    );
    describe_counter!(
        REPAIRED_CHANGES,
        "Changes replayed through a repair because their table was incomplete (REPLICA IDENTITY DEFAULT, a missing column) when they were made, by source."
    );
    describe_counter!(
        REPAIR_LOOKUPS,
        "Batched reads of ClickHouse by repairs (one per transaction or spilled part that needs them), by source."
    );
    describe_counter!(
        REPAIR_LOOKUP_RUNS,
        "Runs read by repair lookups, by source."
    );
    describe_counter!(
        REPAIR_TOMBSTONES,
        "Rows repairs tombstoned because ClickHouse showed them under a key the change left stale, by source."
    );
    describe_histogram!(
        REPAIR_LOOKUP_SECONDS,
        "Time of one repair lookup, the flush before it included, by source."
    );
    describe_counter!(
        LOG_LINES_DROPPED,
        "Log lines not written, by reason: write_failed (stderr refuses them: its reader is gone), \
         backlog_full (stderr does not take them: nobody reads it). Logging never blocks the worker."
    );
    describe_counter!(
        TRUNCATES,
        "TRUNCATE messages for replicated tables (not applied to ClickHouse), by table."
    );
    describe_histogram!(
        COMMIT_LATENCY,
        Unit::Seconds,
        "From the Postgres commit to ClickHouse accepting its rows."
    );
    describe_gauge!(RECEIVED_LSN, "End LSN of the last transaction received.");
    describe_gauge!(
        ACKNOWLEDGED_LSN,
        "LSN acknowledged to Postgres (everything before it is in ClickHouse)."
    );
    describe_gauge!(BUFFERED_ROWS, "Rows waiting in the batch being filled.");
    describe_gauge!(INFLIGHT_BATCHES, "Batches being inserted.");
    describe_gauge!(
        BACKPRESSURE,
        "1 while the stream is not read because the batch is full and every insert slot is busy."
    );
    describe_gauge!(
        SLOT_LAG,
        Unit::Bytes,
        "pg_current_wal_lsn() - confirmed_flush_lsn of the slot."
    );
    describe_gauge!(
        SLOT_RETAINED,
        Unit::Bytes,
        "pg_current_wal_lsn() - restart_lsn: WAL the slot keeps on disk."
    );
    describe_gauge!(
        SLOT_SAFE_WAL,
        Unit::Bytes,
        "safe_wal_size of the slot: WAL that can still be written before it is invalidated (-1: unlimited)."
    );
    describe_gauge!(
        SLOT_WAL_STATUS,
        "1 for the slot's current wal_status (reserved, extended, unreserved, lost)."
    );
    describe_gauge!(SLOT_ACTIVE, "1 when a walsender streams from the slot.");
    describe_gauge!(
        FAILOVER_READY,
        "1 when a standby holds a synchronized, usable copy of the stream's failover slot (PG 17+: synced, not temporary, not invalidated), so a promotion keeps the slot; 0 otherwise, or when no standby can be asked."
    );
    describe_gauge!(
        FAILOVER_LAG,
        Unit::Bytes,
        "How far the best standby copy of the failover slot is behind the primary's slot (confirmed_flush_lsn)."
    );
    describe_gauge!(
        STANDBY_HOLD,
        "1 while a slot named in the primary's synchronized_standby_slots (a standby down or invalidated) holds back this failover slot's changes: nothing arrives until it confirms."
    );
    describe_gauge!(
        TIMELINE,
        "The timeline of the server the stream's last session checked (IDENTIFY_SYSTEM)."
    );
    describe_counter!(
        TIMELINE_SWITCHES,
        "Failovers to a newer timeline this stream took over for its source (the fork found, the version shift recorded)."
    );
    describe_gauge!(
        DIVERGENCE_BYTES,
        Unit::Bytes,
        "WAL of the old timeline past the fork that ClickHouse held at the last failover this stream took over: history the new primary never had (0: none)."
    );
    describe_counter!(
        DIVERGENCE_RUNS,
        "Runs rewritten from the new primary (or tombstoned) because ClickHouse held rows of them from a timeline history lost at a failover."
    );
    describe_gauge!(
        LEADER,
        "1 while this instance holds the leader lock and streams."
    );
    describe_gauge!(
        INSTANCES,
        "Instances sharing the source's streams (leadership.share), as this instance sees them; 0 until it has seen them."
    );
    describe_counter!(
        HANDOVERS,
        "Times this instance handed the stream over to the instance it belongs to (after storing and acknowledging what it received)."
    );
    describe_gauge!(READY, "1 while /readyz answers 200.");
    describe_gauge!(
        HARD_STOP,
        "1 while streaming is stopped for a reason an operator must fix, by reason."
    );
    describe_counter!(
        RECONNECTS,
        "Stream sessions that ended with an error and were restarted, by cause."
    );
    describe_gauge!(
        BUILD_INFO,
        "Always 1; the labels carry the version, the commit it was built from and what it is \
         compatible with (the trigger.dev release, the newest ClickHouse migration)."
    );
    describe_gauge!(
        INTERRUPTION,
        Unit::Seconds,
        "How long the stream has not been streaming (0 while it streams), by source."
    );
    describe_gauge!(
        LAST_INTERRUPTION,
        Unit::Seconds,
        "How long the stream's last interruption lasted, until it streamed again, by source."
    );
    describe_gauge!(
        CLICKHOUSE_OUTAGE,
        Unit::Seconds,
        "How long ClickHouse inserts have been failing (0 while they succeed)."
    );
    describe_gauge!(
        CLICKHOUSE_LAST_OUTAGE,
        Unit::Seconds,
        "How long the last ClickHouse outage lasted, from the first failed insert to the first stored one."
    );
    describe_counter!(
        CLICKHOUSE_OUTAGES,
        "ClickHouse outages that ended (a stored insert after failed ones)."
    );
    describe_gauge!(
        CLICKHOUSE_REFUSING,
        "1 while ClickHouse refuses the rows of a table table-wide (not poison rows); nothing is acknowledged meanwhile."
    );
    describe_counter!(
        BACKFILL_ROWS,
        "Rows a backfill read from Postgres (COPY), by source table."
    );
    describe_gauge!(
        BACKFILL_CHUNKS,
        "Chunks of the running backfill, by state (pending, running, done; done includes chunks finished by an earlier run of the job)."
    );
    describe_gauge!(BACKFILL_RUNNING, "1 while a backfill copies.");
    describe_gauge!(
        SNAPSHOT_LONGEST,
        Unit::Seconds,
        "The longest a copy snapshot was held by the running (or last) backfill or verify of this process, by command (backfill: a stream's copies too); bounded by backfill.snapshot_max_s."
    );
    describe_counter!(
        SNAPSHOTS_TAKEN,
        "Copy snapshots taken, by command (backfill, verify): each connection takes a fresh one before its current one gets backfill.snapshot_max_s old."
    );
    describe_gauge!(
        VERIFY_SLICES,
        "Slices (createdAt ranges) of the running verify, by state (pending, running, done)."
    );
    describe_counter!(
        VERIFY_ROWS_READ,
        "Rows verifies read, by side: postgres (COPY rows), clickhouse (rows ClickHouse reports read)."
    );
    describe_gauge!(
        DRIFT_ROWS,
        "Runs the last background verify found drifted (settled, not changes in flight), by kind (missing, extra, stale, missing_payload); before its repair, if verify.repair. Unsettled runs are not counted here."
    );
    describe_gauge!(
        VERIFY_UNSETTLED,
        "Runs the last background verify could not settle (neither in sync nor drift, never repaired), by reason: stream_behind (a slot had not confirmed the snapshot), changing (changed through every re-check)."
    );
    describe_gauge!(
        VERIFY_RUNNING,
        Unit::Seconds,
        "How long the background verify in progress has been running (0: none running); /readyz says what it is doing."
    );
    describe_counter!(
        VERIFY_TIMEOUTS,
        "Background verifies abandoned after verify.timeout (the log says what each was waiting for)."
    );
    describe_gauge!(
        VERIFY_LAST_SUCCESS,
        Unit::Seconds,
        "Unix time the last background verify completed (0: none yet)."
    );
    describe_gauge!(
        VERIFY_RUNS,
        "Runs the last background verify compared (its window, both sides)."
    );
    describe_gauge!(
        VERIFY_DURATION,
        Unit::Seconds,
        "How long the last background verify took."
    );
    describe_gauge!(
        VERIFY_INTERVAL,
        Unit::Seconds,
        "verify.interval: how often the daemon verifies in the background (0: off)."
    );
    describe_counter!(
        VERIFY_REPAIRS,
        "Runs the background verify repaired (verify.repair), by action (rewritten from Postgres, tombstoned)."
    );
}

/// Registers every series whose labels are known up front, at zero, so dashboards and alerts
/// see 0 rather than "no data" before the first event (and a scrape shows the whole catalogue).
pub fn register_defaults(config: &crate::config::Config) {
    let ch = &config.clickhouse;
    for stream in config.streams() {
        let source = stream.name.clone();
        for table in &stream.source.tables {
            for op in ["insert", "update", "delete"] {
                metrics::counter!(CHANGES, "source" => source.clone(), "table" => table.clone(), "operation" => op)
                    .absolute(0);
            }
            metrics::counter!(TRUNCATES, "source" => source.clone(), "table" => table.clone())
                .absolute(0);
            metrics::counter!(BACKFILL_ROWS, "table" => table.clone()).absolute(0);
        }
        for cause in ["postgres", "clickhouse", "slot_active", "lock_lost"] {
            metrics::counter!(RECONNECTS, "source" => source.clone(), "cause" => cause).absolute(0);
        }
        for reason in HARD_STOP_REASONS {
            metrics::gauge!(HARD_STOP, "source" => source.clone(), "reason" => *reason).set(0.0);
        }
        metrics::counter!(TRANSACTIONS, "source" => source.clone()).absolute(0);
        metrics::counter!(HANDOVERS, "source" => source.clone()).absolute(0);
        for gauge in [
            RECEIVED_LSN,
            ACKNOWLEDGED_LSN,
            LEADER,
            INTERRUPTION,
            LAST_INTERRUPTION,
            FAILOVER_READY,
            STANDBY_HOLD,
            TIMELINE,
            DIVERGENCE_BYTES,
        ] {
            metrics::gauge!(gauge, "source" => source.clone()).set(0.0);
        }
        for counter in [TIMELINE_SWITCHES, DIVERGENCE_RUNS] {
            metrics::counter!(counter, "source" => source.clone()).absolute(0);
        }
    }
    let mut targets = vec![(ch.runs_table.clone(), &["output", "error"][..])];
    if !ch.payloads_table.is_empty() {
        targets.push((ch.payloads_table.clone(), &["payload"][..]));
    }
    for (table, columns) in targets {
        metrics::counter!(ROWS_INSERTED, "table" => table.clone()).absolute(0);
        metrics::counter!(INSERT_RETRIES, "table" => table.clone()).absolute(0);
        metrics::counter!(ROWS_REJECTED, "table" => table.clone()).absolute(0);
        metrics::gauge!(CLICKHOUSE_REFUSING, "table" => table.clone()).set(0.0);
        for kind in ["transient", "data"] {
            metrics::counter!(INSERT_ERRORS, "table" => table.clone(), "kind" => kind).absolute(0);
        }
        for column in columns {
            metrics::counter!(FIELDS_NEUTRALISED, "table" => table.clone(), "column" => *column)
                .absolute(0);
        }
    }
    for result in ["ok", "failed", "refused"] {
        metrics::counter!(BATCHES, "result" => result).absolute(0);
    }
    for reason in ["missing_organization_id", "missing_environment_type"] {
        metrics::counter!(ROWS_SKIPPED, "reason" => reason).absolute(0);
    }
    metrics::counter!(CLICKHOUSE_OUTAGES).absolute(0);
    for reason in ["write_failed", "backlog_full"] {
        metrics::counter!(LOG_LINES_DROPPED, "reason" => reason).absolute(0);
    }
    for state in BACKFILL_CHUNK_STATES {
        metrics::gauge!(BACKFILL_CHUNKS, "state" => *state).set(0.0);
        metrics::gauge!(VERIFY_SLICES, "state" => *state).set(0.0);
    }
    for command in ["backfill", "verify"] {
        metrics::gauge!(SNAPSHOT_LONGEST, "command" => command).set(0.0);
        metrics::counter!(SNAPSHOTS_TAKEN, "command" => command).absolute(0);
    }
    for side in ["postgres", "clickhouse"] {
        metrics::counter!(VERIFY_ROWS_READ, "side" => side).absolute(0);
    }
    for kind in DRIFT_KINDS {
        metrics::gauge!(DRIFT_ROWS, "kind" => *kind).set(0.0);
    }
    for action in REPAIR_ACTIONS {
        metrics::counter!(VERIFY_REPAIRS, "action" => *action).absolute(0);
    }
    for reason in UNSETTLED_REASONS {
        metrics::gauge!(VERIFY_UNSETTLED, "reason" => *reason).set(0.0);
    }
    metrics::counter!(VERIFY_TIMEOUTS).absolute(0);
    metrics::gauge!(VERIFY_INTERVAL).set(config.verify.interval.as_secs_f64());
    for gauge in [
        CLICKHOUSE_OUTAGE,
        CLICKHOUSE_LAST_OUTAGE,
        BUFFERED_ROWS,
        INFLIGHT_BATCHES,
        BACKPRESSURE,
        READY,
        BACKFILL_RUNNING,
        VERIFY_LAST_SUCCESS,
        VERIFY_RUNS,
        VERIFY_DURATION,
        VERIFY_RUNNING,
    ] {
        metrics::gauge!(gauge).set(0.0);
    }
}

/// Every `reason` label of the hard-stop gauge.
pub const HARD_STOP_REASONS: &[&str] = &[
    "replica_identity",
    "missing_column",
    "unresolved_toast",
    "bad_change",
    "decode",
    "slot_invalidated",
    "slot_missing",
    "lsn_overflow",
    "preflight",
    "config",
    "marker",
    "timeline",
    "slot_past_fork",
];

/// An LSN as a gauge value: exact below 2^53 bytes of WAL (8 PiB).
pub fn lsn_value(lsn: u64) -> f64 {
    lsn as f64
}

/// Publishes a reading of a stream's slot as gauges.
pub fn record_slot(source: &str, reading: &crate::pg::catalog::SlotReading) {
    let source = source.to_string();
    metrics::gauge!(SLOT_ACTIVE, "source" => source.clone()).set(if reading.active {
        1.0
    } else {
        0.0
    });
    if let Some(lag) = reading.lag_bytes {
        metrics::gauge!(SLOT_LAG, "source" => source.clone()).set(lag.max(0) as f64);
    }
    if let Some(retained) = reading.retained_bytes {
        metrics::gauge!(SLOT_RETAINED, "source" => source.clone()).set(retained.max(0) as f64);
    }
    // NULL safe_wal_size means max_slot_wal_keep_size = -1: nothing bounds it.
    metrics::gauge!(SLOT_SAFE_WAL, "source" => source.clone())
        .set(reading.safe_wal_size.map_or(-1.0, |v| v as f64));
    for status in WAL_STATUSES {
        let on = reading.wal_status.as_deref() == Some(status);
        metrics::gauge!(SLOT_WAL_STATUS, "source" => source.clone(), "status" => *status)
            .set(if on { 1.0 } else { 0.0 });
    }
}
