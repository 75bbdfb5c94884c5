-- trigger_dev.raw_task_runs_payload_v1: one row per INSERT event (upstream-trigger-dev.md §3.3).
-- Upstream uses a plain MergeTree. A ReplacingMergeTree keyed by run_id keeps the same columns and
-- order but collapses the copies a replay writes after a crash (the worker acknowledges a position
-- only after ClickHouse has the rows, so transactions after it may be inserted twice); read with
-- FINAL for exact counts. The worker writes to either engine.
CREATE TABLE IF NOT EXISTS trigger_dev.raw_task_runs_payload_v1
(
    run_id      String,
    created_at  DateTime64(3),
    payload     JSON(max_dynamic_paths = 1024),
    -- A verify reads the payload rows of one slice of created_at at a time; the table is sorted by
    -- run id, whose cuid keeps creation order, so this index skips the rest of each month. Not in
    -- upstream's migrations: on a table trigger.dev created, add it once (README, "ClickHouse"):
    --   ALTER TABLE trigger_dev.raw_task_runs_payload_v1 ADD INDEX IF NOT EXISTS idx_created_at created_at TYPE minmax GRANULARITY 1;
    --   ALTER TABLE trigger_dev.raw_task_runs_payload_v1 MATERIALIZE INDEX idx_created_at;
    INDEX idx_created_at created_at TYPE minmax GRANULARITY 1
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(created_at)
ORDER BY (run_id)
SETTINGS enable_json_type = 1;
