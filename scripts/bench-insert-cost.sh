#!/usr/bin/env bash
# What one insert costs the ClickHouse engine, by table and by what hangs off the runs table: the
# fixed price of a part, which `batch.min_insert_interval_ms` and the wait for the insert in
# flight (Nagle's rule) trade against latency (BENCHMARKS.md, "What an insert costs the engine").
#
#   scripts/bench-insert-cost.sh              inserts of 1, 30, 300 and 3,000 rows, 20 of each
#   scripts/bench-insert-cost.sh --inserts 50
#
# What it does (setup shared with the other benchmarks in scripts/bench-env.sh): writes 4,000 runs
# (one in ten failed), copies them into the embedded ClickHouse with `backfill --payloads`, then
# inserts the same rows again (JSONEachRow, with the worker's insert settings) into
#   task_runs_v2            as shipped: upstream's skip indexes and the two error views on it
#   copy_with_indexes       the same columns and skip indexes, no view
#   copy_bare               the same columns, no skip index, no view
#   raw_task_runs_payload_v1
# and prints, per insert, the ClickHouse process's CPU milliseconds and the wall time. The floor
# of the embedded front (one `SELECT 1`) is printed too. On a ClickHouse server the figures are
# lower; what carries over is the shape: a fixed price per insert that batching amortises.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
inserts=20
while [ $# -gt 0 ]; do
  case "$1" in
    --inserts) inserts=$2; shift 2 ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
source scripts/bench-env.sh
write_runs 4000
"$bin" --config "$config" backfill --payloads --parallel 2 --format json >/dev/null

log "insert cost per table ($inserts inserts per size)"
"$py" - "$CLICKHOUSE_URL" "$CHSERVER_PID" "$inserts" <<'PY'
import os, sys, time, urllib.parse, urllib.request

url, pid, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
# The worker's insert settings (src/sink/client.rs, INSERT_SETTINGS).
SETTINGS = {
    "input_format_binary_read_json_as_string": "1", "input_format_try_infer_dates": "0",
    "input_format_try_infer_datetimes": "0", "type_json_skip_duplicated_paths": "1",
    "max_partitions_per_insert_block": "0",
}


def q(sql, body=None, settings=None):
    # Always a POST (a GET is read-only): the statement in the body unless the body is data.
    params = dict(settings or {})
    if body is None:
        body = sql.encode()
    else:
        params["query"] = sql
    req = urllib.request.Request(url + "/?" + urllib.parse.urlencode(params), data=body)
    return urllib.request.urlopen(req, timeout=300).read()


def cpu():
    f = open("/proc/%s/stat" % pid).read().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")


def timed(sql, body=None, settings=None):
    c0, w0 = cpu(), time.perf_counter()
    for _ in range(n):
        q(sql, body, settings)
    return (cpu() - c0) / n * 1000, (time.perf_counter() - w0) / n * 1000


db = "trigger_dev"
q("CREATE TABLE %s.copy_with_indexes AS %s.task_runs_v2" % (db, db))
q("CREATE TABLE %s.copy_bare AS %s.task_runs_v2" % (db, db))
indexes = q("SELECT name FROM system.data_skipping_indices WHERE database = '%s' "
            "AND table = 'task_runs_v2' FORMAT TSV" % db).decode().split()
if indexes:
    q("ALTER TABLE %s.copy_bare %s" % (db, ", ".join("DROP INDEX " + i for i in indexes)))
out = {"output_format_json_quote_64bit_integers": "0"}
print("| rows per insert | table | ClickHouse CPU ms per insert | wall ms per insert |")
print("|---:|---|---:|---:|")
c, w = timed("SELECT 1")
print("| – | `SELECT 1` (the front's floor) | %.1f | %.1f |" % (c, w))
for rows in (1, 30, 300, 3000):
    runs = q("SELECT * FROM %s.task_runs_v2 FINAL ORDER BY run_id LIMIT %d FORMAT JSONEachRow"
             % (db, rows), settings=out)
    payloads = q("SELECT * FROM %s.raw_task_runs_payload_v1 ORDER BY run_id LIMIT %d "
                 "FORMAT JSONEachRow" % (db, rows), settings=out)
    for table, body in (("task_runs_v2", runs), ("copy_with_indexes", runs),
                        ("copy_bare", runs), ("raw_task_runs_payload_v1", payloads)):
        c, w = timed("INSERT INTO %s.%s FORMAT JSONEachRow" % (db, table), body, SETTINGS)
        print("| %d | %s | %.1f | %.1f |" % (rows, table, c, w))
PY
