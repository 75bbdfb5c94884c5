-- trigger_dev.raw_task_runs_payload_v1: one row per INSERT event (upstream-trigger-dev.md §3.3).
-- Upstream uses a plain MergeTree. A ReplacingMergeTree keyed by run_id keeps the same columns and
-- order but collapses the copies a replay writes after a crash (the worker acknowledges a position
-- only after ClickHouse has the rows, so transactions after it may be inserted twice); read with
-- FINAL for exact counts. The worker writes to either engine.
CREATE TABLE IF NOT EXISTS trigger_dev.raw_task_runs_payload_v1
(
    run_id      String,
    created_at  DateTime64(3),
    payload     JSON(max_dynamic_paths = 1024)
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(created_at)
ORDER BY (run_id)
SETTINGS enable_json_type = 1;
