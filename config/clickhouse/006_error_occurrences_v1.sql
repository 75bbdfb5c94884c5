-- trigger_dev.error_occurrences_v1 and trigger_dev.error_occurrences_mv_v1: how many failed runs
-- each error group had per minute and task version, for trigger.dev's occurrence charts and time
-- filters. Written for this repository from upstream's migrations 023 and 035 (trigger.dev commit
-- b082e443, upstream-trigger-dev.md §3.1): the same columns, search indexes, engine, partitioning,
-- sorting key, TTL and view semantics.
--
-- Like errors_mv_v1 (005), the view runs inside every INSERT into task_runs_v2 and counts the
-- inserted rows of failed, fingerprinted, not deleted runs: a failure of the view fails the
-- insert, and a row inserted twice counts twice. Its display columns follow the same rules as
-- errors_v1's (035: name, else code, else 'Error'; message, else name, else raw, else
-- 'Unknown error'; error.data.stackTrace). Rows with the same key are summed on merge (count);
-- readers sum(count) grouped by what they need.
--
-- No allow_dimensions_outside_sorting_key here: the check behind that setting (see 005) applies
-- to AggregatingMergeTree tables with aggregate-state columns, and this SummingMergeTree has none;
-- ClickHouse 26.9 (the tests' engine) creates it as upstream wrote it. Its error_type,
-- error_message and stack_trace keep an arbitrary row's value on merge, as upstream's do.
CREATE TABLE IF NOT EXISTS trigger_dev.error_occurrences_v1
(
    organization_id    String,
    project_id         String,
    environment_id     String,
    task_identifier    String,
    error_fingerprint  String,
    task_version       String,
    minute             DateTime,
    error_type         String,
    error_message      String,
    stack_trace        String,
    count              UInt64,

    INDEX idx_error_type_search lower(error_type) TYPE ngrambf_v1(3, 32768, 2, 0) GRANULARITY 1,
    INDEX idx_error_message_search lower(error_message) TYPE ngrambf_v1(3, 32768, 2, 0) GRANULARITY 1
)
ENGINE = SummingMergeTree(count)
PARTITION BY toDate(minute)
ORDER BY (organization_id, project_id, environment_id, task_identifier, error_fingerprint, task_version, minute)
TTL minute + INTERVAL 90 DAY
SETTINGS index_granularity = 8192;

CREATE MATERIALIZED VIEW IF NOT EXISTS trigger_dev.error_occurrences_mv_v1 TO trigger_dev.error_occurrences_v1 AS
SELECT
    organization_id,
    project_id,
    environment_id,
    task_identifier,
    error_fingerprint,
    task_version,
    toStartOfMinute(created_at) AS minute,
    any(coalesce(
        nullIf(toString(error.data.name), ''),
        nullIf(toString(error.data.code), ''),
        'Error')) AS error_type,
    any(coalesce(
        nullIf(substring(toString(error.data.message), 1, 500), ''),
        nullIf(toString(error.data.name), ''),
        nullIf(substring(toString(error.data.raw), 1, 500), ''),
        'Unknown error')) AS error_message,
    any(coalesce(substring(toString(error.data.stackTrace), 1, 2000), '')) AS stack_trace,
    count() AS count
FROM trigger_dev.task_runs_v2
WHERE error_fingerprint != ''
  AND status IN ('SYSTEM_FAILURE', 'CRASHED', 'INTERRUPTED', 'COMPLETED_WITH_ERRORS', 'TIMED_OUT')
  AND _is_deleted = 0
GROUP BY organization_id, project_id, environment_id, task_identifier, error_fingerprint, task_version, minute;
