-- trigger_dev.task_runs_v2 in its final shape (trigger.dev migrations 004 … 041, upstream-trigger-dev.md §3.1).
-- Column order is the insert order the worker uses. One row per run: ReplacingMergeTree keeps the row
-- with the highest _version and hides it under FINAL when _is_deleted = 1.
CREATE TABLE IF NOT EXISTS trigger_dev.task_runs_v2
(
    environment_id            String,
    organization_id           String,
    project_id                String,
    run_id                    String,
    updated_at                DateTime64(3),
    created_at                DateTime64(3),
    queue_timestamp           Nullable(DateTime64(3)),
    status                    LowCardinality(String),
    environment_type          LowCardinality(String),
    friendly_id               String,
    attempt                   UInt8 DEFAULT 1,
    engine                    LowCardinality(String),
    task_identifier           String,
    queue                     String,
    schedule_id               String,
    batch_id                  String,
    completed_at              Nullable(DateTime64(3)),
    started_at                Nullable(DateTime64(3)),
    executed_at               Nullable(DateTime64(3)),
    delay_until               Nullable(DateTime64(3)),
    queued_at                 Nullable(DateTime64(3)),
    expired_at                Nullable(DateTime64(3)),
    usage_duration_ms         UInt32 DEFAULT 0,
    cost_in_cents             Float64 DEFAULT 0,
    base_cost_in_cents        Float64 DEFAULT 0,
    output                    JSON(max_dynamic_paths = 1024),
    error                     JSON(max_dynamic_paths = 64),
    error_fingerprint         String DEFAULT '',
    tags                      Array(String) CODEC(ZSTD(1)),
    task_version              String CODEC(LZ4),
    sdk_version               String CODEC(LZ4),
    cli_version               String CODEC(LZ4),
    machine_preset            LowCardinality(String) CODEC(LZ4),
    root_run_id               String,
    parent_run_id             String,
    depth                     UInt8 DEFAULT 0,
    span_id                   String,
    trace_id                  String,
    idempotency_key           String,
    idempotency_key_user      String DEFAULT '',
    idempotency_key_scope     String DEFAULT '',
    expiration_ttl            String,
    is_test                   UInt8 DEFAULT 0,
    _version                  UInt64,
    _is_deleted               UInt8 DEFAULT 0,
    concurrency_key           String DEFAULT '',
    bulk_action_group_ids     Array(String) DEFAULT [],
    worker_queue              String DEFAULT '',
    region                    String DEFAULT '',
    plan_type                 LowCardinality(String) DEFAULT '',
    max_duration_in_seconds   Nullable(UInt32),
    trigger_source            LowCardinality(String) DEFAULT '',
    root_trigger_source       LowCardinality(String) DEFAULT '',
    task_kind                 LowCardinality(String) DEFAULT '',
    is_warm_start             Nullable(UInt8) DEFAULT NULL,
    external_deployment_id    String DEFAULT '',

    -- Computed by ClickHouse, never sent: output and error without the {"data": …} wrapper.
    output_text String MATERIALIZED if(toJSONString(output) = '{}', '',
        if(length(JSONExtractRaw(toJSONString(output), 'data')) > 0,
           JSONExtractRaw(toJSONString(output), 'data'), toJSONString(output))),
    error_text String MATERIALIZED if(toJSONString(error) = '{}', '',
        if(length(JSONExtractRaw(toJSONString(error), 'data')) > 0,
           JSONExtractRaw(toJSONString(error), 'data'), toJSONString(error))),

    INDEX idx_tags tags TYPE tokenbf_v1(32768, 3, 0) GRANULARITY 4,
    INDEX idx_output_text output_text TYPE ngrambf_v1(3, 131072, 3, 0) GRANULARITY 4,
    INDEX idx_error_text error_text TYPE ngrambf_v1(3, 131072, 3, 0) GRANULARITY 4,
    INDEX idx_error_fingerprint error_fingerprint TYPE bloom_filter GRANULARITY 4,
    -- The worker's repair lookups read runs by id (after REPLICA IDENTITY DEFAULT: which keys
    -- does ClickHouse show of these runs?); the sorting key starts with the organization, so
    -- without this index each lookup reads the whole table. Not in upstream's migrations: on a
    -- table trigger.dev created, add it once (README, "ClickHouse"):
    --   ALTER TABLE trigger_dev.task_runs_v2 ADD INDEX IF NOT EXISTS idx_run_id run_id TYPE bloom_filter(0.001) GRANULARITY 1;
    --   ALTER TABLE trigger_dev.task_runs_v2 MATERIALIZE INDEX idx_run_id;
    INDEX idx_run_id run_id TYPE bloom_filter(0.001) GRANULARITY 1
)
ENGINE = ReplacingMergeTree(_version, _is_deleted)
PARTITION BY toYYYYMM(created_at)
ORDER BY (organization_id, project_id, environment_id, created_at, run_id)
SETTINGS enable_json_type = 1;
