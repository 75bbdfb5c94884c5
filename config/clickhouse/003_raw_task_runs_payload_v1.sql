-- trigger_dev.raw_task_runs_payload_v1: append-only, one row per INSERT event (upstream-trigger-dev.md §3.3).
CREATE TABLE IF NOT EXISTS trigger_dev.raw_task_runs_payload_v1
(
    run_id      String,
    created_at  DateTime64(3),
    payload     JSON(max_dynamic_paths = 1024)
)
ENGINE = MergeTree
PARTITION BY toYYYYMM(created_at)
ORDER BY (run_id)
SETTINGS enable_json_type = 1;
