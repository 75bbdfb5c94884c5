#!/usr/bin/env bash
# The sharding benchmark: the worker (release build) drains one backlog with `postgres.shards` = 1, 2
# and 4, side by side in one run, with each process's CPU: the worker, the walsenders, ClickHouse.
#
#   scripts/bench-shards.sh                    200,000 changes (100,000 inserts, then 100,000 updates)
#   scripts/bench-shards.sh --changes 400000   a longer backlog
#   scripts/bench-shards.sh --no-null-sink     skip the --null-sink drains
#
# What it does: builds the worker in release mode, starts a throwaway PostgreSQL 15 cluster and the
# embedded ClickHouse (tools/chserver, data on tmpfs) in a temp dir and applies the shipped schemas.
# Then, before any run exists, it starts the worker once per configuration (its own publication
# bench_p<K> and slot bench_s<K>, with `shards = K`: publications bench_p<K>_<k>, slots
# bench_s<K>_<k>), waits until /readyz answers 200 and stops it, so the worker itself creates every
# publication and slot. Four more slots, for pg_recvlogical, split a walsender's CPU into decoding and
# output: on bench_p1 (every change, no filter), on bench_every (the shard filter with `% 1 = 0`:
# every change, the filter's own cost), on bench_p4_0 (shard 0 of 4: a quarter of the changes) and
# on bench_none (`% 1 = 1`: the filter evaluated on every change, none sent).
# Then it writes the backlog, one transaction per change as trigger.dev writes them (N/2 runs
# inserted PENDING, then each one completed: status, output or error; half in "TaskRun", half in
# task_run_v2, the two tables loaded by two sessions at once), notes the end of WAL, and drains:
#   1. into ClickHouse with 1, 2 and 4 shards (ClickHouse's tables truncated before each; each
#      drain checked afterwards: every run there under FINAL, none PENDING, every payload once);
#   2. pg_recvlogical → /dev/null on its four slots, one after the other;
#   3. with --null-sink, 1, 2 and 4 shards (decode, transform, batch, encode; discard);
#   4. into ClickHouse with 1 shard again, on a fresh slot: the drift of the machine over the run.
# A drain's time runs from spawning the worker (startup included) until every slot of its
# configuration has confirmed_flush_lsn ≥ the end of the backlog (pg_replication_slots, polled every
# 100 ms; the worker reports its position every 100 ms here); pg_recvlogical's, until its walsender
# has sent up to the end (pg_stat_replication.sent_lsn). CPU seconds (user + system) come from
# /proc/<pid>/stat, read once the end is reached and before the worker is stopped: the worker's, the
# walsenders' (every active_pid of the configuration's slots) and the ClickHouse process's over the
# drain; peak RSS is the worker's VmHWM. Prints Markdown tables.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
pg_bin=${RUNS_REPLICATOR_PG_BIN:-/usr/lib/postgresql/15/bin}
changes=200000
null_sink=1
while [ $# -gt 0 ]; do
  case "$1" in
    --changes) changes=$2; shift 2 ;;
    --no-null-sink) null_sink=0; shift ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
per_table=$((changes / 4)) # runs per table; each is inserted, then updated
changes=$((per_table * 4))
[ "$per_table" -gt 0 ] || { echo "--changes must be at least 4" >&2; exit 2; }
log() { printf '== %s\n' "$*" >&2; }

tmp=$(mktemp -d "${TMPDIR:-/tmp}/runs-replicator-bench-shards.XXXXXX")
chmod 755 "$tmp"
as_pg=()
if [ "$(id -u)" = 0 ]; then as_pg=(runuser -u postgres --); fi
worker_pid=
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  if [ -n "$worker_pid" ]; then kill "$worker_pid" 2>/dev/null || true; wait "$worker_pid" 2>/dev/null || true; fi
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
      -c max_wal_size=20GB -c shared_buffers=1GB -c max_replication_slots=32 -c max_wal_senders=32 \
      -c max_slot_wal_keep_size=20GB" \
  start >/dev/null) || { tail -n 20 "$tmp/pg/postgres.log" >&2; exit 1; }
pg_url="postgres://postgres@127.0.0.1:$pg_port/trigger"
psql=("$pg_bin/psql" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$pg_port" -U postgres)
PGOPTIONS='-c client_min_messages=warning' "${psql[@]}" -d postgres -c "CREATE DATABASE trigger" >/dev/null
for f in config/postgres/*.sql; do
  PGOPTIONS='-c client_min_messages=warning' "${psql[@]}" -d trigger -f "$f" >/dev/null
done
sql() { "${psql[@]}" -d trigger -At -c "$1"; }

log "start the embedded ClickHouse (tools/chserver)"
ch_dir=$(mktemp -d /dev/shm/runs-replicator-bench-shards-ch.XXXXXX)
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
chq() { # one ClickHouse statement; prints its TSV answer
  "$py" - "$CLICKHOUSE_URL" "$1" <<'PY'
import sys, urllib.request
req = urllib.request.Request(sys.argv[1] + "/", data=sys.argv[2].encode())
print(urllib.request.urlopen(req, timeout=300).read().decode().strip())
PY
}

# One configuration: a worker config file per (label, publication, slot, shards).
write_config() { # label publication slot shards
  cat >"$tmp/$1.toml" <<TOML
[postgres]
url = "$pg_url"
publication = "$2"
slot = "$3"
shards = $4
status_interval_ms = 100
[clickhouse]
url = "$CLICKHOUSE_URL"
[metrics]
listen = "127.0.0.1:$(free_port)"
[log]
level = "warn"
TOML
}
slots_of() { # slot shards → the configuration's slot names, comma-separated
  if [ "$2" = 1 ]; then echo "$1"; else
    local k out=; for ((k = 0; k < $2; k++)); do out+="${out:+,}$1_$k"; done; echo "$out"
  fi
}

# label publication slot shards
configs=(
  "ch1 bench_p1 bench_s1 1"
  "ch2 bench_p2 bench_s2 2"
  "ch4 bench_p4 bench_s4 4"
)
if [ "$null_sink" = 1 ]; then
  configs+=("null1 bench_p1 bench_n1 1" "null2 bench_p2 bench_n2 2" "null4 bench_p4 bench_n4 4")
fi
configs+=("ch1again bench_p1 bench_r1 1")

log "create every configuration's publications and slots (the worker, started and stopped once each)"
for c in "${configs[@]}"; do
  read -r label publication slot shards <<<"$c"
  write_config "$label" "$publication" "$slot" "$shards"
  "$bin" --config "$tmp/$label.toml" >"$tmp/$label.setup.log" 2>&1 &
  worker_pid=$!
  listen=$(sed -n 's/^listen = "\(.*\)"$/\1/p' "$tmp/$label.toml")
  if ! "$py" - "http://$listen/readyz" "$worker_pid" <<'PY'; then
import os, sys, time, urllib.error, urllib.request
deadline = time.monotonic() + 120
while time.monotonic() < deadline:
    try:
        os.kill(int(sys.argv[2]), 0)
    except ProcessLookupError:
        sys.exit(1)
    try:
        if urllib.request.urlopen(sys.argv[1], timeout=2).status == 200:
            sys.exit(0)
    except (urllib.error.URLError, OSError):
        pass
    time.sleep(0.1)
sys.exit(1)
PY
    echo "the worker for $label did not become ready; its log:" >&2
    cat "$tmp/$label.setup.log" >&2
    exit 1
  fi
  kill -TERM "$worker_pid"
  wait "$worker_pid" || { echo "the worker for $label exited with $?; its log:" >&2; cat "$tmp/$label.setup.log" >&2; exit 1; }
  worker_pid=
  want=$(slots_of "$slot" "$shards")
  have=$(sql "SELECT count(*) FROM pg_replication_slots WHERE slot_name = ANY(string_to_array('$want', ','))")
  [ "$have" = "$shards" ] || { echo "$label: expected $shards slots ($want), found $have" >&2; exit 1; }
done
# The pg_recvlogical slots: every change (no filter, and the shard filter matching all), a quarter
# of them (shard 0 of 4's publication), none (the shard filter matching none).
for spec in 'bench_every:0' 'bench_none:1'; do # the shard filter, matching every change or none
  filter="WHERE ((hashtext(id) & 2147483647) % 1 = ${spec#*:})"
  sql "CREATE PUBLICATION ${spec%:*} FOR TABLE public.\"TaskRun\" $filter, public.task_run_v2 $filter
       WITH (publish = 'insert, update, delete, truncate')" >/dev/null
done
recvlogical=(
  "rl_all bench_p1 bench_rl_all"
  "rl_every bench_every bench_rl_every"
  "rl_quarter bench_p4_0 bench_rl_quarter"
  "rl_none bench_none bench_rl_none"
)
for c in "${recvlogical[@]}"; do
  read -r _ _ slot <<<"$c"
  sql "SELECT 1 FROM pg_create_logical_replication_slot('$slot', 'pgoutput')" >/dev/null
done

log "write the backlog: $changes changes ($((per_table * 2)) inserts, then $((per_table * 2)) updates; one transaction each)"
for spec in '"TaskRun":cm' 'task_run_v2:v2'; do
  table=${spec%:*} prefix=${spec#*:}
  # bench-backfill.sh's rows, inserted PENDING one transaction at a time, then completed.
  "${psql[@]}" -d trigger <<SQL
CREATE PROCEDURE bench_load_$prefix(first int, last int) LANGUAGE plpgsql AS \$body\$
BEGIN
  FOR n IN first..last LOOP
    INSERT INTO $table ("id", "friendlyId", "engine", "status", "taskIdentifier", "payload", "payloadType",
      "traceId", "spanId", "runtimeEnvironmentId", "environmentType", "projectId", "organizationId", "queue",
      "masterQueue", "createdAt", "updatedAt", "runTags", "taskVersion", "sdkVersion", "cliVersion",
      "machinePreset", "idempotencyKey", "idempotencyKeyOptions", "annotations", "queuedAt", "depth")
    SELECT '$prefix' || substr(md5('$prefix' || i), 1, 23), 'run_' || substr(md5('f$prefix' || i), 1, 21), 'V2',
      'PENDING', 'email-sequence-' || (i % 20),
      format('{"userId":"user_%s","email":"user%s@example.com","plan":"pro","items":[%s,%s,%s],"metadata":{"source":"checkout","campaign":"winter-%s","locale":"en-US"},"requestId":"%s"}',
             i, i, i % 7, i % 11, i % 13, i % 5, md5(i::text)),
      'application/json', md5('t' || i), substr(md5('s' || i), 1, 16), 'cl' || substr(md5('env' || (i % 10)), 1, 23),
      (ARRAY['PRODUCTION', 'STAGING', 'DEVELOPMENT'])[1 + i % 3]::"RuntimeEnvironmentType",
      'cp' || substr(md5('proj' || (i % 10)), 1, 23), 'co' || substr(md5('org' || (i % 5)), 1, 23),
      'task/email-sequence-' || (i % 20), 'us-east-1',
      timestamp '2026-11-01' + i * interval '1 second', timestamp '2026-11-01' + i * interval '1 second',
      (ARRAY['user_' || (i % 1000), 'plan:pro', 'campaign:winter-' || (i % 5)])[1:i % 4],
      '20261126.' || (i % 9), '4.0.4', '4.0.4', 'small-1x',
      CASE WHEN i % 2 = 0 THEN md5('idem' || i) END,
      CASE WHEN i % 2 = 0 THEN jsonb_build_object('key', 'order-' || i, 'scope', 'run') END,
      jsonb_build_object('triggerSource', 'api', 'triggerAction', 'trigger', 'rootTriggerSource', 'api', 'taskKind', 'STANDARD'),
      timestamp '2026-11-01' + i * interval '1 second', i % 3
    FROM generate_series(n, n) i;
    COMMIT;
  END LOOP;
  FOR n IN first..last LOOP
    UPDATE $table SET
      "status" = CASE WHEN i % 10 = 0 THEN 'COMPLETED_WITH_ERRORS' ELSE 'COMPLETED_SUCCESSFULLY' END::"TaskRunStatus",
      "updatedAt" = timestamp '2026-11-01' + i * interval '1 second' + interval '5 seconds',
      "startedAt" = timestamp '2026-11-01' + i * interval '1 second',
      "completedAt" = timestamp '2026-11-01' + i * interval '1 second' + interval '5 seconds',
      "attemptNumber" = 1, "usageDurationMs" = 1000 + i % 5000, "costInCents" = (i % 5000) * 0.0034,
      "output" = CASE WHEN i % 10 = 0 THEN NULL ELSE
        format('{"delivered":true,"messageId":"%s","provider":"ses","attempts":%s,"durationMs":%s,"recipient":"user%s@example.com","tags":["welcome","pro"]}',
               md5('m' || i), i % 3, i % 1000, i) END,
      "error" = CASE WHEN i % 10 = 0 THEN jsonb_build_object('type', 'BUILT_IN_ERROR', 'name', 'TypeError',
        'message', 'Cannot read properties of undefined (reading ''id'') while sending order ' || i,
        'stackTrace', E'TypeError: Cannot read properties of undefined\n    at sendEmail (src/trigger/email.ts:42:17)') END
    FROM generate_series(n, n) i
    WHERE "id" = '$prefix' || substr(md5('$prefix' || i), 1, 23);
    COMMIT;
  END LOOP;
END \$body\$;
SQL
done
start_lsn=$(sql "SELECT pg_current_wal_insert_lsn()")
load_t0=$(date +%s.%N)
loaders=()
for prefix in cm v2; do
  "${psql[@]}" -d trigger -c "CALL bench_load_$prefix(1, $per_table)" &
  loaders+=($!)
done
for p in "${loaders[@]}"; do wait "$p"; done
load_t1=$(date +%s.%N)
end_lsn=$(sql "SELECT pg_current_wal_insert_lsn()")
wal_mib=$(sql "SELECT round(pg_wal_lsn_diff('$end_lsn', '$start_lsn') / 1048576)")
counted=$(sql "SELECT (SELECT count(*) FROM \"TaskRun\" WHERE status <> 'PENDING') + (SELECT count(*) FROM task_run_v2 WHERE status <> 'PENDING')")
[ "$counted" = $((per_table * 2)) ] || { echo "backlog: $counted completed runs, expected $((per_table * 2))" >&2; exit 1; }
load_s=$("$py" -c "print(round($load_t1 - $load_t0, 1))")
log "backlog written in $load_s s: $wal_mib MiB of WAL, ends at $end_lsn"

# One drain: spawn the command, poll the slots every 100 ms until the end, read the CPU counters,
# stop it. Appends one JSON line to results.jsonl.
cat >"$tmp/drain.py" <<'PY'
import json, os, signal, subprocess, sys, time

a = json.loads(sys.argv[1])
CLK = os.sysconf("SC_CLK_TCK")

def stat(pid):  # (user + system, system) CPU seconds, or None once the process is gone
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return ((int(fields[11]) + int(fields[12])) / CLK, int(fields[12]) / CLK)

def hwm_mib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0.0

psql = subprocess.Popen(a["psql"] + ["-At"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
slots = a["slots"]
end = a["end"]
poll_sql = (
    "SELECT string_agg(format('%s,%s,%s,%s', s.slot_name, coalesce(s.active_pid, 0), "
    f"s.confirmed_flush_lsn >= '{end}', coalesce(r.sent_lsn >= '{end}', false)), ' ') "
    "FROM pg_replication_slots s LEFT JOIN pg_stat_replication r ON r.pid = s.active_pid "
    "WHERE s.slot_name IN (" + ", ".join(f"'{s}'" for s in slots) + ");\n"
)

def poll():
    psql.stdin.write(poll_sql)
    psql.stdin.flush()
    row = psql.stdout.readline().split()
    return [(name, int(pid), conf == "t", sent == "t") for name, pid, conf, sent in (r.split(",") for r in row)]

ch0 = stat(a["ch_pid"])[0]
log = open(a["log"], "w")
t0 = time.monotonic()
proc = subprocess.Popen(a["cmd"], stdout=subprocess.DEVNULL, stderr=log)
walsenders = {}  # pid -> last CPU seconds read
done_at = None
try:
    while done_at is None:
        time.sleep(0.1)
        states = poll()
        for _, pid, _, _ in states:
            if pid and (c := stat(pid)) is not None:
                walsenders[pid] = c[0]
        key = 2 if a["until"] == "confirmed" else 3
        if len(states) == len(slots) and all(s[key] for s in states):
            done_at = time.monotonic()
        elif proc.poll() is not None:
            sys.exit(f"{a['label']}: {a['cmd'][0]} exited ({proc.returncode}) before the end; log: {a['log']}")
        elif time.monotonic() - t0 > a["timeout"]:
            sys.exit(f"{a['label']}: not done after {a['timeout']} s: {states}")
except BaseException:
    if proc.poll() is None:
        proc.kill()
        proc.wait()
    raise
for pid in walsenders:
    if (c := stat(pid)) is not None:
        walsenders[pid] = c[0]
ch1 = stat(a["ch_pid"])[0]
own = stat(proc.pid)
rss = hwm_mib(proc.pid)
proc.send_signal(signal.SIGTERM)
_, status, ru = os.wait4(proc.pid, 0)
if a["until"] != "confirmed":  # pg_recvlogical: its own rusage, taken after it exited
    own = (ru.ru_utime + ru.ru_stime, ru.ru_stime)
    rss = ru.ru_maxrss / 1024
psql.stdin.close()
psql.wait()
print(json.dumps({
    "label": a["label"], "kind": a["kind"], "shards": a["shards"], "changes": a["changes"],
    "seconds": done_at - t0, "cpu": own[0], "kernel": own[1], "rss_mib": rss,
    "walsender_cpu": sum(walsenders.values()), "walsenders": sorted(walsenders.values(), reverse=True),
    "ch_cpu": ch1 - ch0, "extra": a.get("extra", ""),
}))
PY
: >"$tmp/results.jsonl"
psql_json=$("$py" -c 'import json, sys; print(json.dumps(sys.argv[1:]))' "${psql[@]}" -d trigger)
drain() { # label kind shards until(confirmed|sent) slots(comma-separated) cmd…
  local spec
  spec=$("$py" - "$psql_json" "$end_lsn" "$changes" "$CHSERVER_PID" "$tmp" "$@" <<'PY'
import json, sys
psql, end, changes, ch_pid, tmp, label, kind, shards, until, slots, *cmd = sys.argv[1:]
print(json.dumps({"label": label, "kind": kind, "shards": int(shards), "until": until,
                  "slots": slots.split(","), "end": end, "changes": int(changes), "ch_pid": int(ch_pid),
                  "log": f"{tmp}/{label}.log", "cmd": cmd, "timeout": 600, "psql": json.loads(psql)}))
PY
)
  "$py" "$tmp/drain.py" "$spec" >>"$tmp/results.jsonl"
  local label=$1 # the worker logs at warn: anything beyond --null-sink's own notice is worth a look
  if grep -v -e 'null-sink' "$tmp/$label.log" 2>/dev/null | grep -q .; then
    log "  $label logged $(grep -c . "$tmp/$label.log") line(s); the first: $(grep -v -e 'null-sink' "$tmp/$label.log" | head -n 1)"
  fi
}
check_clickhouse() { # label: every run there under FINAL, none PENDING, every payload once
  local got want
  got=$(chq "SELECT count(), countIf(status = 'PENDING'), (SELECT count() FROM trigger_dev.raw_task_runs_payload_v1 FINAL) FROM trigger_dev.task_runs_v2 FINAL FORMAT CSV")
  want="$((per_table * 2)),0,$((per_table * 2))"
  [ "$got" = "$want" ] || { echo "$1: ClickHouse holds (runs, pending, payloads) = ($got), expected ($want)" >&2; exit 1; }
}
truncate_clickhouse() {
  chq "TRUNCATE TABLE trigger_dev.task_runs_v2" >/dev/null
  chq "TRUNCATE TABLE trigger_dev.raw_task_runs_payload_v1" >/dev/null
}

load_avg=$(cut -d" " -f1-3 /proc/loadavg)
log "drain (load average now $load_avg)"
for c in "${configs[@]}"; do
  read -r label _ slot shards <<<"$c"
  args=(--config "$tmp/$label.toml")
  kind=clickhouse
  case "$label" in null*) args+=(--null-sink); kind=null ;; ch1again) kind=again ;; esac
  [ "$kind" = null ] || truncate_clickhouse
  log "  $label: $shards shard(s), $kind"
  drain "$label" "$kind" "$shards" confirmed "$(slots_of "$slot" "$shards")" "$bin" "${args[@]}"
  [ "$kind" = null ] || check_clickhouse "$label"
  if [ "$label" = ch4 ]; then # pg_recvlogical between the two halves, on its own slots
    for r in "${recvlogical[@]}"; do
      read -r rlabel publication rslot <<<"$r"
      log "  pg_recvlogical: $rlabel"
      drain "$rlabel" recvlogical 1 sent "$rslot" "$pg_bin/pg_recvlogical" -h 127.0.0.1 -p "$pg_port" -U postgres \
        -d trigger --slot "$rslot" --start -o proto_version=1 -o "publication_names=$publication" -f /dev/null
    done
  fi
done

"$py" - "$tmp/results.jsonl" "$changes" "$load_s" "$wal_mib" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
changes, load_s, wal_mib = int(sys.argv[2]), sys.argv[3], sys.argv[4]
first = {}
for r in rows:
    r["rate"] = r["changes"] / r["seconds"]
    base = "clickhouse" if r["kind"] == "again" else r["kind"]
    first.setdefault(base, r["rate"])
    r["ratio"] = r["rate"] / first[base]
names = {"clickhouse": "worker → ClickHouse", "again": "worker → ClickHouse (1 shard again, last)",
         "null": "worker --null-sink"}
print(f"\nBacklog: {changes} changes ({changes // 2} inserts, then {changes // 2} updates, half in \"TaskRun\", "
      f"half in task_run_v2, one transaction each), {wal_mib} MiB of WAL, written in {load_s} s.\n")
print("| drain | shards | seconds | changes/s | ÷ 1 shard | worker CPU s (kernel) | walsender CPU s (total) | ClickHouse CPU s | peak RSS MiB | walsenders, CPU s each |")
print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---|")
for r in rows:
    if r["kind"] == "recvlogical":
        continue
    each = " / ".join(f"{c:.2f}" for c in r["walsenders"])
    print(f"| {names[r['kind']]} | {r['shards']} | {r['seconds']:.2f} | {r['rate']:,.0f} | {r['ratio']:.2f} | "
          f"{r['cpu']:.2f} ({r['kernel']:.2f}) | {r['walsender_cpu']:.2f} | {r['ch_cpu']:.2f} | {r['rss_mib']:.0f} | {each} |")
rl = [r for r in rows if r["kind"] == "recvlogical"]
if rl:
    what = {"rl_all": "every change (bench_p1, no filter)", "rl_every": "every change (the shard filter `% 1 = 0`)",
            "rl_quarter": "a quarter (shard 0 of 4's filter)",
            "rl_none": "none (the shard filter `% 1 = 1`)"}
    print("\npg_recvlogical → /dev/null, one slot each (seconds until its walsender has sent the end):\n")
    print("| publication sends | seconds | changes/s | walsender CPU s | walsender µs per change | pg_recvlogical CPU s (kernel) |")
    print("|---|---:|---:|---:|---:|---:|")
    for r in rl:
        print(f"| {what[r['label']]} | {r['seconds']:.2f} | {r['rate']:,.0f} | {r['walsender_cpu']:.2f} | "
              f"{r['walsender_cpu'] / r['changes'] * 1e6:.1f} | {r['cpu']:.2f} ({r['kernel']:.2f}) |")
print("\nCPU µs per change (total over the drain ÷ changes):\n")
print("| drain | shards | worker | walsenders (sum) | per walsender (max) | ClickHouse |")
print("|---|---:|---:|---:|---:|---:|")
for r in rows:
    if r["kind"] == "recvlogical":
        continue
    n = r["changes"]
    print(f"| {names[r['kind']]} | {r['shards']} | {r['cpu'] / n * 1e6:.1f} | {r['walsender_cpu'] / n * 1e6:.1f} | "
          f"{max(r['walsenders'] or [0]) / n * 1e6:.1f} | {r['ch_cpu'] / n * 1e6:.1f} |")
PY
echo
echo "Machine: $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)), load average before the drains: ${load_avg:-?}; $("$pg_bin/postgres" --version), chDB behind tools/chserver (data on tmpfs); nothing pinned"
