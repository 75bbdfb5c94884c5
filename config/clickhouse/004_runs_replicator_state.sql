-- trigger_dev.runs_replicator_state: the worker's own durable state, (kind, key) → value.
-- A backfill's plan and the chunks it finished live here (kind 'backfill_job', 'backfill_chunk'), so a
-- killed backfill resumes where it stopped; other features add kinds of their own. The worker creates
-- it when missing (same DDL). A later write of a key replaces the earlier one: read with FINAL.
CREATE TABLE IF NOT EXISTS trigger_dev.runs_replicator_state
(
    kind        LowCardinality(String),
    key         String,
    value       String,
    updated_at  DateTime64(3),
    _version    UInt64
)
ENGINE = ReplacingMergeTree(_version)
ORDER BY (kind, key);
