#!/usr/bin/env bash
# What REPLICA IDENTITY FULL on "TaskRun" costs in WAL: the same updates and deletes of the same
# runs, written once with the table's identity DEFAULT and once with FULL, on a throwaway
# PostgreSQL 15 cluster (production-like WAL settings: full_page_writes on, wal_level logical);
# WAL bytes from pg_current_wal_lsn() before and after each phase, after a CHECKPOINT, so both
# identities pay the same full-page images and only the old row differs. The first update of a
# run after a checkpoint carries its page's full-page image; a later one (the run engine updates a
# run several times) carries none: both are shown.
#
#   scripts/bench-replica-identity.sh [--runs N] [--big-runs N] [--big-kib K]
#
# Runs as trigger.dev writes them (the shape scripts/bench-env.sh uses: a ~220-byte payload, a
# ~200-byte output, tags, annotations), and a second set with a K KiB output (TOASTed, which FULL
# logs whole in every update's old row). Each phase: every run updated once as the run engine
# does (status and updatedAt), one statement per run; then every run deleted. Prints a table;
# BENCHMARKS.md, "REPLICA IDENTITY FULL: the WAL it costs", has the figures. About a minute.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
runs=20000 big_runs=2000 big_kib=64
while [ $# -gt 0 ]; do
  case $1 in
    --runs) runs=$2; shift 2 ;;
    --big-runs) big_runs=$2; shift 2 ;;
    --big-kib) big_kib=$2; shift 2 ;;
    *) echo "usage: $0 [--runs N] [--big-runs N] [--big-kib K]" >&2; exit 2 ;;
  esac
done
pg_bin=${RUNS_REPLICATOR_PG_BIN:-/usr/lib/postgresql/15/bin}
tmp=$(mktemp -d "${TMPDIR:-/tmp}/runs-replicator-wal.XXXXXX")
chmod 755 "$tmp"
as_pg=()
if [ "$(id -u)" = 0 ]; then as_pg=(runuser -u postgres --); fi
cleanup() {
  local rc=$?
  if [ -f "$tmp/data/postmaster.pid" ]; then
    (cd / && "${as_pg[@]}" "$pg_bin/pg_ctl" -D "$tmp/data" -m fast -w -t 60 stop >/dev/null 2>&1) || true
  fi
  rm -rf "$tmp"
  exit "$rc"
}
trap cleanup EXIT
mkdir -p "$tmp/sock"
[ "$(id -u)" = 0 ] && chown -R postgres: "$tmp"
(cd "$tmp" && "${as_pg[@]}" "$pg_bin/initdb" -D "$tmp/data" -U postgres --auth=trust -E UTF8 --locale=C \
  >"$tmp/initdb.log" 2>&1) || { cat "$tmp/initdb.log" >&2; exit 1; }
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
(cd "$tmp" && "${as_pg[@]}" "$pg_bin/pg_ctl" -D "$tmp/data" -l "$tmp/postgres.log" -w -t 60 \
  -o "-c listen_addresses=127.0.0.1 -p $port -c unix_socket_directories=$tmp/sock -c wal_level=logical \
      -c max_wal_size=20GB -c checkpoint_timeout=1h -c shared_buffers=512MB" start >/dev/null) ||
  { tail -n 20 "$tmp/postgres.log" >&2; exit 1; }
psql=("$pg_bin/psql" -X -q -A -t -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$port" -U postgres)
"${psql[@]}" -d postgres -c "CREATE DATABASE trigger" >/dev/null
for f in config/postgres/*.sql; do
  PGOPTIONS='-c client_min_messages=warning' "${psql[@]}" -d trigger -f "$f" >/dev/null
done

# Fills "TaskRun" with N runs; output_bytes > 0 gives each an output of about that size.
fill() { # N output_bytes
  "${psql[@]}" -d trigger >/dev/null <<SQL
TRUNCATE "TaskRun";
INSERT INTO "TaskRun" ("id", "friendlyId", "engine", "status", "taskIdentifier", "payload", "payloadType",
  "traceId", "spanId", "runtimeEnvironmentId", "environmentType", "projectId", "organizationId", "queue",
  "masterQueue", "createdAt", "updatedAt", "runTags", "taskVersion", "sdkVersion", "cliVersion",
  "machinePreset", "idempotencyKey", "annotations", "queuedAt", "startedAt", "attemptNumber", "depth", "output")
SELECT 'cm' || substr(md5('r' || i), 1, 23), 'run_' || substr(md5('f' || i), 1, 21), 'V2', 'EXECUTING',
  'email-sequence-' || (i % 20),
  format('{"userId":"user_%s","email":"user%s@example.com","plan":"pro","items":[%s,%s,%s],"metadata":{"source":"checkout","campaign":"winter-%s","locale":"en-US"},"requestId":"%s"}',
         i, i, i % 7, i % 11, i % 13, i % 5, md5(i::text)),
  'application/json', md5('t' || i), substr(md5('s' || i), 1, 16), 'cl' || substr(md5('env' || (i % 10)), 1, 23),
  'PRODUCTION', 'cp' || substr(md5('proj' || (i % 10)), 1, 23), 'co' || substr(md5('org' || (i % 5)), 1, 23),
  'task/email-sequence-' || (i % 20), 'us-east-1',
  timestamp '2026-11-01' + i * interval '1 second', timestamp '2026-11-01' + i * interval '1 second',
  ARRAY['user_' || (i % 1000), 'plan:pro'], '20261126.' || (i % 9), '4.0.4', '4.0.4', 'small-1x', md5('idem' || i),
  jsonb_build_object('triggerSource', 'api', 'triggerAction', 'trigger', 'rootTriggerSource', 'api', 'taskKind', 'STANDARD'),
  timestamp '2026-11-01' + i * interval '1 second', timestamp '2026-11-01' + i * interval '1 second', 1, 0,
  CASE WHEN $2 > 0
    THEN format('{"report":"%s"}', (SELECT string_agg(md5(i::text || g), '') FROM generate_series(1, $2 / 32) g))
    ELSE format('{"delivered":true,"messageId":"%s","provider":"ses","attempts":%s,"durationMs":%s,"recipient":"user%s@example.com","tags":["welcome","pro"]}',
                md5('m' || i), i % 3, i % 1000, i) END
FROM generate_series(1, $1) i;
VACUUM ANALYZE "TaskRun";
SQL
}

# WAL bytes of one statement; after a checkpoint when the second argument is "checkpoint".
wal_of() { # sql [checkpoint]
  local cp=
  [ "${2:-}" = checkpoint ] && cp="CHECKPOINT;"
  "${psql[@]}" -d trigger <<SQL
$cp
SELECT pg_current_wal_insert_lsn() AS before \gset
$1
SELECT pg_wal_lsn_diff(pg_current_wal_insert_lsn(), :'before');
SQL
}

update_each="DO \$\$ DECLARE r record; BEGIN
  FOR r IN SELECT id FROM \"TaskRun\" ORDER BY id LOOP
    UPDATE \"TaskRun\" SET status = 'COMPLETED_SUCCESSFULLY', \"updatedAt\" = \"updatedAt\" + interval '5 seconds',
      \"completedAt\" = \"updatedAt\" + interval '5 seconds' WHERE id = r.id;
  END LOOP; END \$\$;"
delete_each="DO \$\$ DECLARE r record; BEGIN
  FOR r IN SELECT id FROM \"TaskRun\" ORDER BY id LOOP DELETE FROM \"TaskRun\" WHERE id = r.id; END LOOP; END \$\$;"

printf '%-32s %-8s %9s %17s %12s %12s\n' "runs" "identity" "row B" "1st update B/run" "update B/run" "delete B/run"
for spec in "$runs:0:realistic runs" "$big_runs:$((big_kib * 1024)):with a ${big_kib} KiB output"; do
  n=${spec%%:*} rest=${spec#*:} out=${rest%%:*} label=${rest#*:}
  for identity in DEFAULT FULL; do
    fill "$n" "$out"
    "${psql[@]}" -d trigger -c "ALTER TABLE \"TaskRun\" REPLICA IDENTITY $identity" >/dev/null
    row=$("${psql[@]}" -d trigger -c 'SELECT round(avg(pg_column_size(t.*))) FROM "TaskRun" t')
    first=$(wal_of "$update_each" checkpoint)
    u=$(wal_of "$update_each")
    d=$(wal_of "$delete_each" checkpoint)
    printf '%-32s %-8s %9d %17d %12d %12d\n' "$n $label" "$identity" "$row" $((first / n)) $((u / n)) $((d / n))
  done
done
"${psql[@]}" -d postgres -c "SELECT 'PostgreSQL ' || current_setting('server_version') || ', full_page_writes ' || current_setting('full_page_writes')"
