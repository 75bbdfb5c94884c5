-- trigger_dev.errors_v1 and trigger_dev.errors_mv_v1: trigger.dev's error groups, one aggregate
-- row per (organization, project, environment, task, error fingerprint), the table its dashboard's
-- Errors page lists. Written for this repository from upstream's migrations 022 and 035
-- (trigger.dev commit b082e443, upstream-trigger-dev.md §3.1 "Downstream materialized views"):
-- the same columns, types, engine, sorting key, TTL and view semantics, so the worker is tested
-- against the schema it meets in a trigger.dev deployment.
--
-- The view runs on every INSERT into task_runs_v2, inside that INSERT: a row the view cannot
-- process fails the whole insert of the runs table (the worker then holds the batch and retries
-- it until the view takes it, see ARCHITECTURE.md, "Never drop a batch"). It sees the inserted
-- rows only, never the table: every inserted copy of a failed run counts, a later update or
-- tombstone of the run does not take it back, and a row inserted again (a replay after a crash)
-- counts again in occurrence_count and status_distribution. first_seen, last_seen, the samples
-- and affected_task_versions are not changed by a second copy.
--
-- Which rows: a fingerprint (the transform computes one only for the five failure statuses, when
-- fingerprinting is on), one of those statuses, and not a tombstone.
--
-- Display columns (035, the newest rule): error_type is the error's name, else its internal code,
-- else 'Error'; error_message is its message (first 500 characters), else its name, else its raw
-- value (first 500 characters), else 'Unknown error'; the stack sample is error.data.stackTrace
-- (first 2000 characters), the field trigger.dev stores. A JSON path the error lacks (or holds an
-- object at) reads as '', which nullIf turns into NULL, so coalesce moves on to the next candidate.
--
-- allow_dimensions_outside_sorting_key = 1: error_type, error_message and sample_stack_trace are
-- plain String columns outside the sorting key and are not aggregate states. ClickHouse 26.7 and
-- later refuse such an AggregatingMergeTree at CREATE unless this setting is on, because a merge
-- keeps an arbitrary one of the collapsed rows' values (ClickHouse issue 751). Upstream wrote it
-- for servers without that check (its tests run ClickHouse 26.2) and relies on exactly that
-- behaviour: they are samples of one group, read with any(). The setting keeps the schema as
-- upstream has it instead of changing those columns' types. ClickHouse before 26.7 does not know
-- the setting and refuses it as unknown: on such a server leave the SETTINGS entry out.
CREATE TABLE IF NOT EXISTS trigger_dev.errors_v1
(
    organization_id         String,
    project_id              String,
    environment_id          String,
    task_identifier         String,
    error_fingerprint       String,

    error_type              String,
    error_message           String,
    sample_stack_trace      String,

    last_seen_date          SimpleAggregateFunction(max, DateTime),
    first_seen              SimpleAggregateFunction(min, DateTime64(3)),
    last_seen               SimpleAggregateFunction(max, DateTime64(3)),
    occurrence_count        AggregateFunction(sum, UInt64),
    affected_task_versions  AggregateFunction(uniq, String),
    sample_run_id           AggregateFunction(any, String),
    sample_friendly_id      AggregateFunction(any, String),
    status_distribution     AggregateFunction(sumMap, Array(String), Array(UInt64))
)
ENGINE = AggregatingMergeTree
ORDER BY (organization_id, project_id, environment_id, task_identifier, error_fingerprint)
TTL last_seen_date + INTERVAL 90 DAY
SETTINGS index_granularity = 8192, allow_dimensions_outside_sorting_key = 1;

-- Readers merge the states themselves, as upstream's queries do: min(first_seen),
-- max(last_seen), sumMerge(occurrence_count), anyMerge(sample_run_id), grouped by the key.
CREATE MATERIALIZED VIEW IF NOT EXISTS trigger_dev.errors_mv_v1 TO trigger_dev.errors_v1 AS
SELECT
    organization_id,
    project_id,
    environment_id,
    task_identifier,
    error_fingerprint,
    any(coalesce(
        nullIf(toString(error.data.name), ''),
        nullIf(toString(error.data.code), ''),
        'Error')) AS error_type,
    any(coalesce(
        nullIf(substring(toString(error.data.message), 1, 500), ''),
        nullIf(toString(error.data.name), ''),
        nullIf(substring(toString(error.data.raw), 1, 500), ''),
        'Unknown error')) AS error_message,
    any(coalesce(substring(toString(error.data.stackTrace), 1, 2000), '')) AS sample_stack_trace,
    toDateTime(max(created_at)) AS last_seen_date,
    min(created_at) AS first_seen,
    max(created_at) AS last_seen,
    sumState(toUInt64(1)) AS occurrence_count,
    uniqState(task_version) AS affected_task_versions,
    anyState(run_id) AS sample_run_id,
    anyState(friendly_id) AS sample_friendly_id,
    sumMapState([status], [toUInt64(1)]) AS status_distribution
FROM trigger_dev.task_runs_v2
WHERE error_fingerprint != ''
  AND status IN ('SYSTEM_FAILURE', 'CRASHED', 'INTERRUPTED', 'COMPLETED_WITH_ERRORS', 'TIMED_OUT')
  AND _is_deleted = 0
GROUP BY organization_id, project_id, environment_id, task_identifier, error_fingerprint;
