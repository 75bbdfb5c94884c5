//! The SQL that writes the benchmark's runs: plausible trigger.dev rows generated server-side, so
//! loading is limited by Postgres, not by the client.
//!
//! The functions are PL/pgSQL so that each session plans their statements once: a `LANGUAGE sql`
//! function that is not inlined is parsed and planned on every call, which made the Postgres
//! backends writing a steady load of 2,000 changes/s use most of this 2-core machine.
//!
//! Run `i` of a table is always the same row, so an update finds it again by recomputing its id.
//! `bench_update_<t>` returns the rows it changed (0 when the run is not there yet).
//! Inserts: a new PENDING run with a ~220-byte payload, 0 to 3 tags, annotations, idempotency
//! options on every other run, parent/root ids on two runs in three. Updates: the run completes,
//! 90% successfully with an output (~200 bytes, ~8 KB for i % 20 = 1), 10% with an error.

/// Functions `bench_insert_<t>(i int, ts timestamp)` and `bench_update_<t>(i int, ts timestamp)`
/// for `t` in v1 ("TaskRun") and v2 (task_run_v2), plus the procedures that load a range with one
/// transaction per change.
pub fn functions() -> String {
    let mut sql = String::new();
    for (t, table, prefix) in [("v1", "\"TaskRun\"", "cm"), ("v2", "task_run_v2", "v2")] {
        let id = format!("'{prefix}' || substr(md5('{t}' || i), 1, 23)");
        sql.push_str(&format!(
            r#"
CREATE OR REPLACE FUNCTION bench_insert_{t}(i int, ts timestamp) RETURNS void LANGUAGE plpgsql AS $f$
BEGIN
INSERT INTO {table} ("id", "friendlyId", "engine", "status", "taskIdentifier", "payload", "payloadType",
  "traceId", "spanId", "runtimeEnvironmentId", "environmentType", "projectId", "organizationId", "queue",
  "masterQueue", "region", "createdAt", "updatedAt", "runTags", "taskVersion", "sdkVersion", "cliVersion",
  "machinePreset", "idempotencyKey", "idempotencyKeyOptions", "annotations", "queuedAt", "queueTimestamp",
  "concurrencyKey", "isTest", "depth", "planType", "maxDurationInSeconds", "ttl", "rootTaskRunId",
  "parentTaskRunId", "batchId")
SELECT {id}, 'run_' || substr(md5('f{t}' || i), 1, 21), 'V2', 'PENDING', 'email-sequence-' || (i % 20),
  format('{{"userId":"user_%s","email":"user%s@example.com","plan":"pro","items":[%s,%s,%s],"metadata":{{"source":"checkout","campaign":"winter-%s","locale":"en-US"}},"requestId":"%s"}}',
         i, i, i % 7, i % 11, i % 13, i % 5, md5(i::text)),
  'application/json', md5('t{t}' || i), substr(md5('s{t}' || i), 1, 16),
  'cl' || substr(md5('env' || (i % 10)), 1, 23),
  (ARRAY['PRODUCTION', 'STAGING', 'DEVELOPMENT'])[1 + i % 3]::"RuntimeEnvironmentType",
  'cp' || substr(md5('proj' || (i % 10)), 1, 23), 'co' || substr(md5('org' || (i % 5)), 1, 23),
  'task/email-sequence-' || (i % 20), CASE WHEN i % 4 = 0 THEN 'us-east-1:scheduled' ELSE 'us-east-1' END,
  'us-east-1', ts, ts,
  (ARRAY['user_' || (i % 1000), 'plan:pro', 'campaign:winter-' || (i % 5)])[1:i % 4],
  '20261126.' || (i % 9), '4.0.4', '4.0.4', 'small-1x',
  CASE WHEN i % 2 = 0 THEN md5('idem' || i) END,
  CASE WHEN i % 2 = 0 THEN jsonb_build_object('key', 'order-' || i, 'scope', (ARRAY['run', 'attempt', 'global'])[1 + i % 3]) END,
  jsonb_build_object('triggerSource', 'api', 'triggerAction', 'trigger',
                     'rootTriggerSource', CASE WHEN i % 10 = 0 THEN 'schedule' ELSE 'api' END, 'taskKind', 'STANDARD'),
  ts, ts, CASE WHEN i % 3 = 0 THEN 'tenant-' || (i % 50) END, i % 50 = 0, i % 3, 'paid', 3600,
  CASE WHEN i % 5 = 0 THEN '10m' END,
  CASE WHEN i % 3 > 0 THEN 'cm' || substr(md5('root' || i), 1, 23) END,
  CASE WHEN i % 3 > 0 THEN 'cm' || substr(md5('parent' || i), 1, 23) END,
  CASE WHEN i % 7 = 0 THEN 'batch_' || (i / 100) END;
END
$f$;

DROP FUNCTION IF EXISTS bench_update_{t}(int, timestamp);
CREATE FUNCTION bench_update_{t}(i int, ts timestamp) RETURNS bigint LANGUAGE plpgsql AS $f$
DECLARE
  n bigint;
BEGIN
UPDATE {table} SET
  "status" = CASE WHEN i % 10 = 0 THEN 'COMPLETED_WITH_ERRORS' ELSE 'COMPLETED_SUCCESSFULLY' END::"TaskRunStatus",
  "updatedAt" = ts, "startedAt" = ts - interval '2 seconds', "executedAt" = ts - interval '2 seconds',
  "completedAt" = ts, "attemptNumber" = 1, "usageDurationMs" = 1000 + i % 5000,
  "costInCents" = (i % 5000) * 0.0034, "baseCostInCents" = 0.0025,
  "output" = CASE
    WHEN i % 10 = 0 THEN NULL
    WHEN i % 20 = 1 THEN (SELECT '{{"report":[' || string_agg(format('{{"k":%s,"v":"%s"}}', g, md5(i || ':' || g)), ',') || ']}}'
                          FROM generate_series(1, 155) g)
    ELSE format('{{"delivered":true,"messageId":"%s","provider":"ses","attempts":%s,"durationMs":%s,"recipient":"user%s@example.com","tags":["welcome","pro"]}}',
                md5('m' || i), i % 3, i % 1000, i)
  END,
  "error" = CASE WHEN i % 10 = 0 THEN jsonb_build_object(
    'type', 'BUILT_IN_ERROR', 'name', 'TypeError',
    'message', 'Cannot read properties of undefined (reading ''id'') while sending order ' || i,
    'stackTrace', E'TypeError: Cannot read properties of undefined (reading ''id'')\n    at sendEmail (src/trigger/email.ts:42:17)\n    at async run (src/trigger/email.ts:12:5)')
  END
WHERE "id" = {id};
GET DIAGNOSTICS n = ROW_COUNT;
RETURN n;
END
$f$;
"#
        ));
    }
    sql.push_str(
        r#"
CREATE OR REPLACE PROCEDURE bench_load(op text, t text, first int, last int, t0 timestamp)
LANGUAGE plpgsql AS $p$
BEGIN
  FOR i IN first..last LOOP
    IF op = 'insert' AND t = 'v1' THEN PERFORM bench_insert_v1(i, t0 + i * interval '1 ms');
    ELSIF op = 'insert' THEN PERFORM bench_insert_v2(i, t0 + i * interval '1 ms');
    ELSIF t = 'v1' THEN PERFORM bench_update_v1(i, t0 + i * interval '1 ms' + interval '1 hour');
    ELSE PERFORM bench_update_v2(i, t0 + i * interval '1 ms' + interval '1 hour');
    END IF;
    COMMIT;
  END LOOP;
END $p$;
"#,
    );
    sql
}
