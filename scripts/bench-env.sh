# Shared by the benchmark scripts (bench-backfill.sh, bench-verify.sh, bench-shards.sh): sourced, not
# run. Builds the worker in release mode, starts a throwaway PostgreSQL 15 cluster and the embedded
# ClickHouse (tools/chserver, data on tmpfs) in a temp dir removed at exit, applies the shipped
# schemas, and offers `write_runs N` (N completed runs, half in "TaskRun", half in task_run_v2: a
# ~220-byte payload, tags, annotations, a ~200-byte output, an error on one run in ten; created one
# second apart from 2026-11-01, VACUUMed), `write_year N` (N runs as a year of a self-hosted
# trigger.dev writes them: below), `secs`, `rate` and the psql command (`psql`).
# Expects: repo (the checkout) set and the working directory there. Optional: pg_extra_opts (more
# `-c name=value` server settings) and worker_pid (a worker the script started, stopped at exit).
pg_bin=${RUNS_REPLICATOR_PG_BIN:-/usr/lib/postgresql/15/bin}
log() { printf '== %s\n' "$*" >&2; }

tmp=$(mktemp -d "${TMPDIR:-/tmp}/runs-replicator-bench.XXXXXX")
chmod 755 "$tmp"
as_pg=()
if [ "$(id -u)" = 0 ]; then as_pg=(runuser -u postgres --); fi
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  if [ -n "${worker_pid:-}" ]; then kill "$worker_pid" 2>/dev/null || true; wait "$worker_pid" 2>/dev/null || true; fi
  if [ -n "${CHSERVER_PID:-}" ]; then kill "$CHSERVER_PID" 2>/dev/null || true; fi
  if [ -f "$tmp/pg/data/postmaster.pid" ]; then
    (cd / && "${as_pg[@]}" "$pg_bin/pg_ctl" -D "$tmp/pg/data" -m fast -w -t 60 stop >/dev/null 2>&1) || true
  fi
  [ -n "${ch_dir:-}" ] && rm -rf "$ch_dir"
  rm -rf "$tmp"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

log "setup and build (release)"
scripts/setup-dev.sh >"$tmp/setup.log" 2>&1 || { cat "$tmp/setup.log" >&2; exit 1; }
py=$(scripts/setup-python.sh 2>>"$tmp/setup.log")
cargo build --release --locked --bin runs-replicator
bin=$repo/target/release/runs-replicator
free_port() { "$py" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

log "start PostgreSQL 15"
mkdir -p "$tmp/pg/sock"
[ "$(id -u)" = 0 ] && chown -R postgres: "$tmp/pg"
pg_port=$(free_port)
(cd "$tmp" && "${as_pg[@]}" "$pg_bin/initdb" -D "$tmp/pg/data" -U postgres --auth=trust -E UTF8 --locale=C \
  >"$tmp/pg/initdb.log" 2>&1) || { cat "$tmp/pg/initdb.log" >&2; exit 1; }
(cd "$tmp" && "${as_pg[@]}" "$pg_bin/pg_ctl" -D "$tmp/pg/data" -l "$tmp/pg/postgres.log" -w -t 60 \
  -o "-c listen_addresses=127.0.0.1 -p $pg_port -c unix_socket_directories=$tmp/pg/sock \
      -c wal_level=logical -c fsync=off -c synchronous_commit=off -c full_page_writes=off \
      -c max_wal_size=20GB -c shared_buffers=1GB ${pg_extra_opts:-}" start >/dev/null) || { tail -n 20 "$tmp/pg/postgres.log" >&2; exit 1; }
pg_url="postgres://postgres@127.0.0.1:$pg_port/trigger"
psql=("$pg_bin/psql" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$pg_port" -U postgres)
PGOPTIONS='-c client_min_messages=warning' "${psql[@]}" -d postgres -c "CREATE DATABASE trigger" >/dev/null
for f in config/postgres/*.sql; do
  PGOPTIONS='-c client_min_messages=warning' "${psql[@]}" -d trigger -f "$f" >/dev/null
done

log "start the embedded ClickHouse (tools/chserver)"
ch_dir=$(mktemp -d /dev/shm/runs-replicator-bench-ch.XXXXXX)
eval "$(CHSERVER_DATA="$ch_dir" TMPDIR="$ch_dir" tools/chserver/start.sh)"
for f in config/clickhouse/*.sql; do
  "$py" - "$f" "$CLICKHOUSE_URL" <<'PY'
import sys, urllib.request
text = "\n".join(l for l in open(sys.argv[1]) if not l.lstrip().startswith("--"))
for stmt in (s.strip() for s in text.split(";")):
    if stmt:
        urllib.request.urlopen(urllib.request.Request(sys.argv[2] + "/", data=stmt.encode()), timeout=60).read()
PY
done

write_runs() { # N
  local runs=$1
  log "write $runs runs"
  local half=$((runs / 2))
  local spec table prefix
  for spec in '"TaskRun":cm' 'task_run_v2:v2'; do
    table=${spec%:*} prefix=${spec#*:}
    "${psql[@]}" -d trigger <<SQL
INSERT INTO $table ("id", "friendlyId", "engine", "status", "taskIdentifier", "payload", "payloadType",
  "traceId", "spanId", "runtimeEnvironmentId", "environmentType", "projectId", "organizationId", "queue",
  "masterQueue", "createdAt", "updatedAt", "runTags", "taskVersion", "sdkVersion", "cliVersion",
  "machinePreset", "idempotencyKey", "idempotencyKeyOptions", "annotations", "queuedAt", "startedAt",
  "completedAt", "attemptNumber", "usageDurationMs", "costInCents", "depth", "output", "error")
SELECT '$prefix' || substr(md5('$prefix' || i), 1, 23), 'run_' || substr(md5('f$prefix' || i), 1, 21), 'V2',
  CASE WHEN i % 10 = 0 THEN 'COMPLETED_WITH_ERRORS' ELSE 'COMPLETED_SUCCESSFULLY' END::"TaskRunStatus",
  'email-sequence-' || (i % 20),
  format('{"userId":"user_%s","email":"user%s@example.com","plan":"pro","items":[%s,%s,%s],"metadata":{"source":"checkout","campaign":"winter-%s","locale":"en-US"},"requestId":"%s"}',
         i, i, i % 7, i % 11, i % 13, i % 5, md5(i::text)),
  'application/json', md5('t' || i), substr(md5('s' || i), 1, 16), 'cl' || substr(md5('env' || (i % 10)), 1, 23),
  (ARRAY['PRODUCTION', 'STAGING', 'DEVELOPMENT'])[1 + i % 3]::"RuntimeEnvironmentType",
  'cp' || substr(md5('proj' || (i % 10)), 1, 23), 'co' || substr(md5('org' || (i % 5)), 1, 23),
  'task/email-sequence-' || (i % 20), 'us-east-1',
  timestamp '2026-11-01' + i * interval '1 second', timestamp '2026-11-01' + i * interval '1 second' + interval '5 seconds',
  (ARRAY['user_' || (i % 1000), 'plan:pro', 'campaign:winter-' || (i % 5)])[1:i % 4],
  '20261126.' || (i % 9), '4.0.4', '4.0.4', 'small-1x',
  CASE WHEN i % 2 = 0 THEN md5('idem' || i) END,
  CASE WHEN i % 2 = 0 THEN jsonb_build_object('key', 'order-' || i, 'scope', 'run') END,
  jsonb_build_object('triggerSource', 'api', 'triggerAction', 'trigger', 'rootTriggerSource', 'api', 'taskKind', 'STANDARD'),
  timestamp '2026-11-01' + i * interval '1 second', timestamp '2026-11-01' + i * interval '1 second',
  timestamp '2026-11-01' + i * interval '1 second' + interval '5 seconds', 1, 1000 + i % 5000, (i % 5000) * 0.0034, i % 3,
  CASE WHEN i % 10 = 0 THEN NULL ELSE
    format('{"delivered":true,"messageId":"%s","provider":"ses","attempts":%s,"durationMs":%s,"recipient":"user%s@example.com","tags":["welcome","pro"]}',
           md5('m' || i), i % 3, i % 1000, i) END,
  CASE WHEN i % 10 = 0 THEN jsonb_build_object('type', 'BUILT_IN_ERROR', 'name', 'TypeError',
    'message', 'Cannot read properties of undefined (reading ''id'') while sending order ' || i,
    'stackTrace', E'TypeError: Cannot read properties of undefined\n    at sendEmail (src/trigger/email.ts:42:17)') END
FROM generate_series(1, $half) i;
VACUUM ANALYZE $table;
SQL
    pids+=($!)
  done
  for pid in "${pids[@]}"; do wait "$pid"; done
}

write_year() { # N
  # N completed runs spread evenly over a year of createdAt (2025-12-01 to 2026-12-01), alternating
  # between "TaskRun" and task_run_v2, with cuid ids as trigger.dev's @bugsnag/cuid makes them ('c',
  # the creation time in base 36, a counter, a fingerprint, random: 25 characters, in creation order);
  # one organization, three projects, a production and a staging environment each; a ~220-byte
  # payload, tags, annotations, idempotency keys on half the runs; an output of ~200 bytes, ~8 KB on
  # one run in twenty, none on the one in ten that failed with an error. Written in SQL, a table at
  # a time, then VACUUMed (the BRIN index on createdAt summarized, the visibility map set).
  local runs=$1
  log "write $runs runs over a year"
  "${psql[@]}" -d trigger <<'SQL'
-- n in base 36 on `width` digits (n < 36^width here), as one expression Postgres inlines: a
-- plpgsql loop per row made writing the runs several times slower.
CREATE OR REPLACE FUNCTION bench_b36(n bigint, width int) RETURNS text LANGUAGE sql IMMUTABLE AS $$
  SELECT right(
    substr('0123456789abcdefghijklmnopqrstuvwxyz', (n / 78364164096 % 36)::int + 1, 1) ||
    substr('0123456789abcdefghijklmnopqrstuvwxyz', (n / 2176782336 % 36)::int + 1, 1) ||
    substr('0123456789abcdefghijklmnopqrstuvwxyz', (n / 60466176 % 36)::int + 1, 1) ||
    substr('0123456789abcdefghijklmnopqrstuvwxyz', (n / 1679616 % 36)::int + 1, 1) ||
    substr('0123456789abcdefghijklmnopqrstuvwxyz', (n / 46656 % 36)::int + 1, 1) ||
    substr('0123456789abcdefghijklmnopqrstuvwxyz', (n / 1296 % 36)::int + 1, 1) ||
    substr('0123456789abcdefghijklmnopqrstuvwxyz', (n / 36 % 36)::int + 1, 1) ||
    substr('0123456789abcdefghijklmnopqrstuvwxyz', (n % 36)::int + 1, 1), width)
$$;
SQL
  local half=$((runs / 2)) spec table parity pids=()
  # Both tables at once, one backend each (two cores).
  for spec in '"TaskRun":0' 'task_run_v2:1'; do
    table=${spec%:*} parity=${spec#*:}
    "${psql[@]}" -d trigger <<SQL &
INSERT INTO $table ("id", "friendlyId", "engine", "status", "taskIdentifier", "payload", "payloadType",
  "traceId", "spanId", "runtimeEnvironmentId", "environmentType", "projectId", "organizationId", "queue",
  "masterQueue", "createdAt", "updatedAt", "runTags", "taskVersion", "sdkVersion", "cliVersion",
  "machinePreset", "idempotencyKey", "idempotencyKeyOptions", "annotations", "queuedAt", "startedAt",
  "completedAt", "attemptNumber", "usageDurationMs", "costInCents", "depth", "output", "error")
SELECT 'c' || bench_b36(ms, 8) || bench_b36(k % 1679616, 4) || 'k3x9' || substr(md5(k::text), 1, 8),
  'run_' || substr(md5('f' || k), 1, 21), 'V2',
  CASE WHEN k % 10 = 0 THEN 'COMPLETED_WITH_ERRORS' ELSE 'COMPLETED_SUCCESSFULLY' END::"TaskRunStatus",
  'email-sequence-' || (k % 20),
  format('{"userId":"user_%s","email":"user%s@example.com","plan":"pro","items":[%s,%s,%s],"metadata":{"source":"checkout","campaign":"winter-%s","locale":"en-US"},"requestId":"%s"}',
         k, k, k % 7, k % 11, k % 13, k % 5, md5(k::text)),
  'application/json', md5('t' || k), substr(md5('s' || k), 1, 16), 'cl' || substr(md5('env' || (k % 6)), 1, 23),
  (ARRAY['PRODUCTION', 'STAGING'])[1 + k % 2]::"RuntimeEnvironmentType",
  'cp' || substr(md5('proj' || (k % 6) / 2), 1, 23), 'co' || substr(md5('org'), 1, 23),
  'task/email-sequence-' || (k % 20), 'main',
  created, created + interval '5 seconds',
  (ARRAY['user_' || (k % 1000), 'plan:pro', 'campaign:winter-' || (k % 5)])[1:k % 4],
  '20261126.' || (k % 9), '4.0.4', '4.0.4', 'small-1x',
  CASE WHEN k % 2 = 0 THEN md5('idem' || k) END,
  CASE WHEN k % 2 = 0 THEN jsonb_build_object('key', 'order-' || k, 'scope', 'run') END,
  jsonb_build_object('triggerSource', 'api', 'triggerAction', 'trigger', 'rootTriggerSource', 'api', 'taskKind', 'STANDARD'),
  created, created + interval '1 second', created + interval '5 seconds', 1, 1000 + k % 5000, (k % 5000) * 0.0034, k % 3,
  CASE WHEN k % 10 = 0 THEN NULL
    WHEN k % 20 = 1 THEN (SELECT json_build_object('messages', json_agg(json_build_object('id', md5(k::text || j), 'to',
      'user' || j || '@example.com', 'status', 'delivered', 'opens', j % 4, 'clicks', j % 3, 'tags', json_build_array('welcome', 'pro'))))::text
      FROM generate_series(1, 50) j)
    ELSE format('{"delivered":true,"messageId":"%s","provider":"ses","attempts":%s,"durationMs":%s,"recipient":"user%s@example.com","tags":["welcome","pro"]}',
           md5('m' || k), k % 3, k % 1000, k) END,
  CASE WHEN k % 10 = 0 THEN jsonb_build_object('type', 'BUILT_IN_ERROR', 'name', 'TypeError',
    'message', 'Cannot read properties of undefined (reading ''id'') while sending order ' || k,
    'stackTrace', E'TypeError: Cannot read properties of undefined\n    at sendEmail (src/trigger/email.ts:42:17)') END
FROM (SELECT k, timestamp '2025-12-01' + k * (interval '365 days' / $runs) AS created,
             (extract(epoch FROM timestamp '2025-12-01' + k * (interval '365 days' / $runs)) * 1000)::bigint AS ms
      FROM (SELECT 2 * i + $parity AS k FROM generate_series(0, $half - 1) i) g) s;
VACUUM ANALYZE $table;
SQL
    pids+=($!)
  done
  for pid in "${pids[@]}"; do wait "$pid"; done
}

config=$tmp/bench.toml
cat >"$config" <<TOML
[postgres]
url = "$pg_url"
[clickhouse]
url = "$CLICKHOUSE_URL"
[log]
level = "warn"
TOML

secs() { "$py" -c 'import time; print(time.monotonic())'; }
rate() { "$py" -c "import sys; r, s = $1, $2; print(f'{r/s:,.0f}')"; }
