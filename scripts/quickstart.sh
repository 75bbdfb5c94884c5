#!/usr/bin/env bash
# runs-replicator end to end on this machine, without Docker.
#
#   scripts/quickstart.sh          run the demo, then stop everything and clean up
#   scripts/quickstart.sh --keep   leave Postgres, ClickHouse and the worker running
#
# What it does: installs what is missing (scripts/setup-dev.sh: PostgreSQL 15 binaries, promtool,
# the Python venv with the embedded ClickHouse engine), builds the worker, starts a throwaway Postgres 15
# cluster and the embedded ClickHouse (tools/chserver) in a temp dir, applies the shipped schemas
# (config/postgres, config/clickhouse), writes half of a few hundred runs into both "TaskRun" and
# task_run_v2, starts the worker (which creates its slot and first copies those runs: its
# bootstrap), writes the other half, updates and deletes some, waits until ClickHouse matches
# Postgres and prints both side by side.
#
# Env: QUICKSTART_RUNS   runs to write (default 400, split between the two tables)
#      QUICKSTART_WAIT   seconds to wait for ClickHouse to match Postgres (default 90)
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"

keep=0
for arg in "$@"; do
  case "$arg" in
    --keep) keep=1 ;;
    -h | --help)
      sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
      exit 0
      ;;
    *) echo "quickstart: unknown argument $arg (try --help)" >&2; exit 2 ;;
  esac
done
runs=${QUICKSTART_RUNS:-400}
wait_s=${QUICKSTART_WAIT:-90}
[[ "$runs" =~ ^[0-9]+$ && "$runs" -ge 10 ]] || { echo "quickstart: QUICKSTART_RUNS must be a number >= 10" >&2; exit 2; }
[[ "$wait_s" =~ ^[0-9]+$ ]] || { echo "quickstart: QUICKSTART_WAIT must be a number of seconds" >&2; exit 2; }
pg_bin=${RUNS_REPLICATOR_PG_BIN:-/usr/lib/postgresql/15/bin}

if [ -t 1 ]; then bold=$'\033[1m' red=$'\033[31m' off=$'\033[0m'; else bold='' red='' off=''; fi
say() { printf '%s==>%s %s\n' "$bold" "$off" "$*"; }
note() { printf '    %s\n' "$*"; }
die() { printf '%squickstart: %s%s\n' "$red" "$*" "$off" >&2; exit 1; }
# The worker's own words on why it stopped: a panic or its errors, else the end of its log.
worker_said() {
  local log=$tmp/worker.log
  if grep -q "panicked at" "$log"; then
    grep -A1 "panicked at" "$log" | head -n 4 >&2
  elif grep -Eq " (ERROR|WARN) " "$log"; then
    grep -E " (ERROR|WARN) " "$log" | tail -n 3 >&2
  else
    tail -n 15 "$log" >&2
  fi
}

# --- 1. prerequisites and build -------------------------------------------------------------------
tmp=$(mktemp -d "${TMPDIR:-/tmp}/runs-replicator-quickstart.XXXXXX")
chmod 755 "$tmp"
as_pg=()  # Postgres refuses to run as root: run its programs as the postgres user then
if [ "$(id -u)" = 0 ]; then as_pg=(runuser -u postgres --); fi
stop_script=$tmp/stop.sh
cat >"$stop_script" <<EOF
#!/usr/bin/env bash
# Stops what scripts/quickstart.sh started (worker, embedded ClickHouse, Postgres), removes $tmp.
stop_pid() {  # \$1 = pid file: SIGTERM, then SIGKILL after 10 s
  local pid
  pid=\$(cat "\$1" 2>/dev/null) || return 0
  kill -TERM "\$pid" 2>/dev/null || return 0
  for _ in \$(seq 1 100); do kill -0 "\$pid" 2>/dev/null || return 0; sleep 0.1; done
  kill -KILL "\$pid" 2>/dev/null || true
}
stop_pid '$tmp/worker.pid'
stop_pid '$tmp/ch/pid'
if [ -f '$tmp/pg/data/postmaster.pid' ]; then
  (cd / && ${as_pg[*]} '$pg_bin/pg_ctl' -D '$tmp/pg/data' -m fast -w stop) >/dev/null 2>&1
fi
rm -rf '$tmp'
EOF
chmod +x "$stop_script"
failed=1
interrupted=0

cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  if [ "$keep" = 1 ] && [ "$failed" = 0 ]; then
    return
  fi
  if [ "$interrupted" = 1 ]; then
    echo "quickstart: interrupted; stopping everything" >&2
  elif [ "$failed" = 1 ]; then
    local logs
    logs=$(mktemp -d "${TMPDIR:-/tmp}/runs-replicator-quickstart-logs.XXXXXX")
    cp "$tmp"/*.log "$tmp"/pg/*.log "$tmp"/ch/*.log "$logs"/ 2>/dev/null || true
    echo "quickstart: failed; logs kept in $logs" >&2
  fi
  bash "$stop_script" >/dev/null 2>&1 || true
  rm -rf "$tmp"
  exit "$rc"
}
trap cleanup EXIT
trap 'interrupted=1; exit 130' INT
trap 'interrupted=1; exit 143' TERM

say "Setting up (PostgreSQL 15 binaries, Python venv for the embedded ClickHouse)"
scripts/setup-dev.sh >"$tmp/setup.log" 2>&1 || { tail -n 20 "$tmp/setup.log" >&2; die "scripts/setup-dev.sh failed"; }
py=$(scripts/setup-python.sh 2>>"$tmp/setup.log")

say "Building the worker (cargo build --release --locked; the first build takes a few minutes)"
cargo build --release --locked >"$tmp/build.log" 2>&1 || { tail -n 30 "$tmp/build.log" >&2; die "the build failed"; }
worker_bin=$repo/target/release/runs-replicator

free_port() {
  "$py" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# HTTP without curl: http GET URL | http POST URL (body on stdin). Prints the body; exit 1 on a
# status other than 200 (the body then goes to stderr).
cat >"$tmp/qs_http.py" <<'PY'
import sys, urllib.error, urllib.request
method, url = sys.argv[1], sys.argv[2]
data = sys.stdin.buffer.read() if method == "POST" else None
try:
    with urllib.request.urlopen(urllib.request.Request(url, data=data, method=method), timeout=30) as r:
        sys.stdout.buffer.write(r.read())
except urllib.error.HTTPError as e:
    sys.stderr.write(e.read().decode(errors="replace"))
    sys.exit(1)
except OSError as e:
    sys.stderr.write(f"{e}\n")
    sys.exit(1)
PY
http() { "$py" "$tmp/qs_http.py" "$@"; }

# --- 2. Postgres ----------------------------------------------------------------------------------
say "Starting a throwaway PostgreSQL 15 (wal_level=logical)"
if [ "$(id -u)" = 0 ]; then
  id postgres >/dev/null 2>&1 || die "no 'postgres' user to run Postgres as (scripts/setup-dev.sh creates it)"
fi
mkdir -p "$tmp/pg/sock"
[ "$(id -u)" = 0 ] && chown -R postgres: "$tmp/pg"
pg_port=$(free_port)
(cd "$tmp" && "${as_pg[@]}" "$pg_bin/initdb" -D "$tmp/pg/data" -U postgres --auth=trust -E UTF8 \
  --locale=C >"$tmp/pg/initdb.log" 2>&1) || { cat "$tmp/pg/initdb.log" >&2; die "initdb failed"; }
(cd "$tmp" && "${as_pg[@]}" "$pg_bin/pg_ctl" -D "$tmp/pg/data" -l "$tmp/pg/postgres.log" -w -t 60 \
  -o "-c listen_addresses=127.0.0.1 -p $pg_port -c unix_socket_directories=$tmp/pg/sock \
      -c wal_level=logical -c max_replication_slots=10 -c max_wal_senders=10 -c fsync=off" \
  start >/dev/null) || { tail -n 20 "$tmp/pg/postgres.log" >&2; die "Postgres did not start"; }
pg_url="postgres://postgres@127.0.0.1:$pg_port/trigger"
psql_bin=$pg_bin/psql
[ -x "$psql_bin" ] || psql_bin=psql
pg() { PGOPTIONS='-c client_min_messages=warning' "$psql_bin" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$pg_port" -U postgres "$@"; }
pg -d postgres -c "CREATE DATABASE trigger" >/dev/null
for f in config/postgres/*.sql; do
  pg -d trigger -f "$f" >/dev/null || die "applying $f failed"
done
note "postgres: $pg_url (schema from config/postgres)"

# --- 3. ClickHouse --------------------------------------------------------------------------------
say "Starting the embedded ClickHouse (tools/chserver)"
ch_env=$(CHSERVER_DATA="$tmp/ch" tools/chserver/start.sh 2>"$tmp/ch-start.log") ||
  { cat "$tmp/ch-start.log" >&2; die "tools/chserver/start.sh failed"; }
CLICKHOUSE_URL=''
eval "$ch_env"
[ -n "$CLICKHOUSE_URL" ] || die "tools/chserver/start.sh printed no CLICKHOUSE_URL"
ch() { http POST "$CLICKHOUSE_URL/" ; }
for f in config/clickhouse/*.sql; do
  # One statement per request: drop comment lines, split on ';'.
  "$py" - "$f" >"$tmp/statements" <<'PY'
import sys
text = "\n".join(l for l in open(sys.argv[1]) if not l.lstrip().startswith("--"))
for stmt in text.split(";"):
    if stmt.strip():
        sys.stdout.write(stmt.strip().replace("\n", " ") + "\0")
PY
  while IFS= read -r -d '' stmt; do
    printf '%s' "$stmt" | ch >/dev/null || die "applying $f failed"
  done <"$tmp/statements"
done
note "clickhouse: $CLICKHOUSE_URL (schema from config/clickhouse)"

# --- 4. history: runs that exist before the worker -----------------------------------------------
v1=$((runs * 3 / 5))
v2=$((runs - v1))
# INSERTs of runs $1..$2 of each table (of $v1 and $v2), one statement per 10 runs.
insert_runs() {
  local from=$1 to=$2
  echo "CREATE TEMP TABLE IF NOT EXISTS statuses AS SELECT ARRAY['PENDING','EXECUTING','DELAYED','WAITING_TO_RESUME','COMPLETED_SUCCESSFULLY','COMPLETED_WITH_ERRORS','CANCELED','CRASHED']::\"TaskRunStatus\"[] AS s;"
  echo "CREATE TEMP TABLE IF NOT EXISTS envs AS SELECT ARRAY['PRODUCTION','STAGING','DEVELOPMENT']::\"RuntimeEnvironmentType\"[] AS e;"
  for spec in "\"TaskRun\" cm 25 $v1" "task_run_v2 2v 27 $v2"; do
    read -r tbl prefix idlen n <<<"$spec"
    local last=$((to * n / runs))
    for ((start = from * n / runs + 1; start <= last; start += 10)); do
      end=$((start + 9 < last ? start + 9 : last))
      cat <<SQL
INSERT INTO $tbl ("id", "friendlyId", "engine", "status", "taskIdentifier", "payload", "traceId",
  "spanId", "runtimeEnvironmentId", "environmentType", "projectId", "organizationId", "queue",
  "createdAt", "updatedAt", "runTags", "attemptNumber", "startedAt", "machinePreset")
SELECT id, 'run_' || id, 'V2', (SELECT s[1 + i % 8] FROM statuses), 'task-' || (i % 5),
  json_build_object('orderId', i, 'items', i % 7)::text, md5('t' || id), substr(md5('s' || id), 1, 16),
  'env_' || (i % 3), (SELECT e[1 + i % 3] FROM envs), 'proj_demo', 'org_demo', 'task/task-' || (i % 5),
  now() - make_interval(secs => i), now(), ARRAY['demo', 'batch-' || (i / 10)], 1,
  CASE WHEN i % 8 >= 1 THEN now() END, 'small-1x'
FROM (SELECT i, '$prefix' || substr(md5('$prefix' || i), 1, $idlen - length('$prefix')) AS id
      FROM generate_series($start, $end) i) r;
SQL
    done
  done
}
say "Writing $((runs / 2)) runs before the worker starts (its bootstrap copies them)"
insert_runs 0 $((runs / 2)) | pg -d trigger >/dev/null

# --- 5. the worker --------------------------------------------------------------------------------
say "Starting the worker"
metrics_port=$(free_port)
cat >"$tmp/runs-replicator.toml" <<EOF
# Written by scripts/quickstart.sh; every other key has its default (config/runs-replicator.toml).
[postgres]
url = "$pg_url"
[clickhouse]
url = "$CLICKHOUSE_URL"
[batch]
flush_interval_ms = 200
[metrics]
listen = "127.0.0.1:$metrics_port"
[backfill]
# The worker creates its slot at its first start: it copies the runs that exist before it first.
on_slot_create = true
EOF
# The environment overrides the file: keep the caller's DATABASE_URL, RUN_REPLICATION_* and
# RUNS_REPLICATOR_* (say, of a trigger.dev checkout) away from this demo.
unset_env=()
while IFS= read -r name; do unset_env+=(-u "$name"); done < <(compgen -e | grep -E '^(RUNS_REPLICATOR_|RUN_REPLICATION_|DATABASE_URL$)' || true)
env "${unset_env[@]}" NO_COLOR=1 "$worker_bin" --config "$tmp/runs-replicator.toml" >"$tmp/worker.log" 2>&1 &
worker_pid=$!
echo "$worker_pid" >"$tmp/worker.pid"
metrics_url=http://127.0.0.1:$metrics_port
for i in $(seq 1 600); do
  http GET "$metrics_url/readyz" >/dev/null 2>&1 && break
  kill -0 "$worker_pid" 2>/dev/null || { worker_said; die "the worker exited"; }
  [ "$i" = 600 ] && { worker_said; die "the worker was not ready within 60 s ($(http GET "$metrics_url/readyz" 2>&1))"; }
  sleep 0.1
done
note "worker: pid $worker_pid, ready ($metrics_url/readyz), log $tmp/worker.log"

# --- 6. live changes -------------------------------------------------------------------------------
say "Writing $((runs - runs / 2)) more runs while the worker streams (of $runs: $v1 in \"TaskRun\", $v2 in task_run_v2), then updating and deleting some"
# One transaction per 10 runs (psql autocommits each statement).
{
  insert_runs $((runs / 2)) "$runs"
  for spec in "\"TaskRun\" v1 25" "task_run_v2 v2 27"; do
    read -r tbl tblkey idlen <<<"$spec"
    cat <<SQL
-- Runs finish: some succeed with an output, some fail with an error, some are canceled.
UPDATE $tbl SET "status" = 'COMPLETED_SUCCESSFULLY', "completedAt" = now(), "updatedAt" = now(),
  "output" = json_build_object('ok', true, 'id', "id")::text, "usageDurationMs" = 1234
  WHERE "status" = 'EXECUTING' AND ("createdAt" < now() - interval '60 seconds');
UPDATE $tbl SET "status" = 'COMPLETED_WITH_ERRORS', "completedAt" = now(), "updatedAt" = now(),
  "error" = '{"type": "BUILT_IN_ERROR", "name": "Error", "message": "Something went wrong", "stackTrace": "Error: Something went wrong\\n    at run (task.ts:12:11)"}'
  WHERE "status" = 'PENDING' AND "taskIdentifier" = 'task-3';
UPDATE $tbl SET "status" = 'EXECUTING', "updatedAt" = now() WHERE "status" = 'DELAYED';
UPDATE $tbl SET "status" = 'CANCELED', "updatedAt" = now(), "completedAt" = now()
  WHERE "status" = 'WAITING_TO_RESUME' AND "taskIdentifier" IN ('task-0', 'task-1');
-- One transaction: a crashed run is deleted, another retried; a run is inserted, updated and
-- deleted again (it never shows in ClickHouse), another inserted and updated (its final state shows).
BEGIN;
DELETE FROM $tbl WHERE "status" = 'CRASHED' AND "taskIdentifier" = 'task-2';
UPDATE $tbl SET "status" = 'PENDING', "updatedAt" = now() WHERE "status" = 'CRASHED' AND "taskIdentifier" = 'task-4';
INSERT INTO $tbl ("id", "friendlyId", "taskIdentifier", "payload", "traceId", "spanId", "runtimeEnvironmentId",
  "environmentType", "projectId", "organizationId", "queue", "updatedAt")
SELECT id, 'run_' || id, 'task-9', '{}', md5(id), substr(md5(id), 1, 16), 'env_0', 'PRODUCTION', 'proj_demo',
  'org_demo', 'task/task-9', now()
FROM (VALUES (rpad('zz_gone_$tblkey', $idlen, '0')), (rpad('zz_kept_$tblkey', $idlen, '0'))) v(id);
UPDATE $tbl SET "status" = 'EXECUTING', "startedAt" = now(), "updatedAt" = now() WHERE "id" LIKE 'zz\_%';
DELETE FROM $tbl WHERE "id" LIKE 'zz\_gone\_%';
COMMIT;
SQL
  done
} | pg -d trigger >/dev/null
pg_counts() {
  # A run present in both tables is counted once, as its task_run_v2 copy (the one that wins in
  # ClickHouse); this sample never creates such overlaps.
  pg -d trigger -At -F $'\t' -c "
    SELECT status, count(*) FROM (
      SELECT status FROM task_run_v2
      UNION ALL
      SELECT status FROM \"TaskRun\" r WHERE NOT EXISTS (SELECT 1 FROM task_run_v2 v WHERE v.id = r.id)
    ) t GROUP BY status ORDER BY status::text"
}
ch_counts() {
  printf '%s' "SELECT status, count() FROM trigger_dev.task_runs_v2 FINAL GROUP BY status ORDER BY status FORMAT TabSeparated" | ch
}
note "now $(pg -d trigger -At -c 'SELECT count(*) FROM "TaskRun"') runs in \"TaskRun\", $(pg -d trigger -At -c 'SELECT count(*) FROM task_run_v2') in task_run_v2"

# --- 7. wait until ClickHouse matches -------------------------------------------------------------
say "Waiting for ClickHouse to match Postgres"
expected=$(pg_counts)
# Every change is in: the slot's confirmed position (the worker acknowledges only what ClickHouse
# has stored) has reached the end of the writes.
end_lsn=$(pg -d trigger -At -c "SELECT pg_current_wal_lsn()")
acked() {
  [ "$(pg -d trigger -At -c "SELECT coalesce(bool_and(confirmed_flush_lsn >= '$end_lsn'), false)
    FROM pg_replication_slots WHERE slot_name = 'task_runs_to_clickhouse_v1'")" = t ]
}
got=
started=$SECONDS
while :; do
  got=$(ch_counts 2>/dev/null || true)
  [ "$got" = "$expected" ] && acked && break
  kill -0 "$worker_pid" 2>/dev/null || { worker_said; die "the worker exited"; }
  if [ $((SECONDS - started)) -ge "$wait_s" ]; then
    echo "postgres:"; echo "$expected"; echo "clickhouse:"; echo "${got:-(nothing)}"
    acked || echo "the slot has not confirmed $end_lsn"
    worker_said
    die "ClickHouse did not match Postgres within $wait_s s"
  fi
  sleep 0.5
done
note "in sync after $((SECONDS - started)) s; the slot confirmed everything up to $end_lsn"
echo
"$py" - "$expected" "$got" <<'PY'
import sys
def parse(t):
    return {s: int(n) for s, n in (l.split("\t") for l in t.splitlines() if l)}
pg, ch = parse(sys.argv[1]), parse(sys.argv[2])
w = max(len("status"), *(len(s) for s in pg | ch))
print(f"    {'status':<{w}} | {'postgres':>8} | {'clickhouse':>10}")
print(f"    {'-' * w}-+-{'-' * 8}-+-{'-' * 10}")
for s in sorted(pg | ch):
    print(f"    {s:<{w}} | {pg.get(s, 0):>8} | {ch.get(s, 0):>10}")
print(f"    {'-' * w}-+-{'-' * 8}-+-{'-' * 10}")
print(f"    {'total':<{w}} | {sum(pg.values()):>8} | {sum(ch.values()):>10}")
PY
echo

# --- 8. metrics -----------------------------------------------------------------------------------
say "Metrics: $metrics_url/metrics"
http GET "$metrics_url/metrics" | "$py" -c '
import re, sys
want = ("runs_replicator_changes_received_total", "runs_replicator_rows_inserted_total",
        "runs_replicator_batches_total", "runs_replicator_acknowledged_lsn",
        "runs_replicator_slot_lag_bytes", "runs_replicator_leader", "runs_replicator_ready")
lines = [l.rstrip() for l in sys.stdin if re.split(r"[{ ]", l, maxsplit=1)[0] in want]
for l in sorted(lines, key=lambda l: (want.index(re.split(r"[{ ]", l, maxsplit=1)[0]), l)):
    print("    " + l)
'
failed=0

if [ "$keep" = 1 ]; then
  echo
  say "Still running (--keep):"
  note "postgres    psql '$pg_url'"
  note "clickhouse  $CLICKHOUSE_URL  (e.g. echo 'SELECT count() FROM trigger_dev.task_runs_v2 FINAL' | curl -s --data-binary @- $CLICKHOUSE_URL)"
  note "worker      $metrics_url/metrics   log: $tmp/worker.log   config: $tmp/runs-replicator.toml"
  note "stop it all and remove $tmp:  $stop_script"
else
  say "Stopping everything and removing $tmp"
fi
