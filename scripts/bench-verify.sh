#!/usr/bin/env bash
# The verify benchmark: `runs-replicator verify` (release build) of N runs in sync and with 100
# drifted runs, next to a plain `psql COPY … TO STDOUT > /dev/null` of the same rows.
#
#   scripts/bench-verify.sh                 200,000 runs (100,000 per table)
#   scripts/bench-verify.sh --runs 1000000  more runs
#
# What it does (setup as scripts/bench-backfill.sh, shared in scripts/bench-env.sh): writes N runs
# into both tables, copies them into the embedded ClickHouse with `backfill --payloads`, merges the
# ClickHouse parts (OPTIMIZE … FINAL, as a server's background merges would), then times, in this
# order:
#   1. psql: COPY (SELECT * FROM each table) TO STDOUT > /dev/null, and the verify's own COPY
#   2. verify, in sync (no slot: nothing streams, so no wait for one)
#   3. the same after planting 100 drifted runs in ClickHouse (a stale status, version + 1)
#   4. verify --repair, then verify again (in sync)
#   5. the plain COPY again (the machine's noise between the first and the last row)
# Each verify reports its wall time (start to exit), its own phases (the window's Postgres side:
# COPY, transform, hashes; its ClickHouse side: range sums and run hashes; the re-checks; the
# repair), peak RSS (GNU time), the rows it read on each side and its drift count. Prints a
# Markdown table.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
runs=200000
while [ $# -gt 0 ]; do
  case "$1" in
    --runs) runs=$2; shift 2 ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
# shellcheck source=scripts/bench-env.sh
source scripts/bench-env.sh
write_runs "$runs"

ch() { # one statement to the embedded ClickHouse, its answer on stdout
  "$py" - "$CLICKHOUSE_URL" "$1" <<'PY'
import sys, urllib.request
req = urllib.request.Request(sys.argv[1] + "/?database=trigger_dev", data=sys.argv[2].encode())
print(urllib.request.urlopen(req, timeout=3600).read().decode(), end="")
PY
}

log "backfill into ClickHouse (--payloads), then merge the parts"
"$bin" --config "$config" backfill --payloads --parallel 2 --format json >/dev/null
ch "OPTIMIZE TABLE task_runs_v2 FINAL"
ch "OPTIMIZE TABLE raw_task_runs_payload_v1 FINAL"

rows=()
time_copy() { # label, select list
  local label=$1 select=$2 t0 t1 s
  t0=$(secs)
  for table in '"TaskRun"' task_run_v2; do
    "${psql[@]}" -d trigger -c "COPY (SELECT $select FROM $table) TO STDOUT" >/dev/null
  done
  t1=$(secs)
  s=$("$py" -c "print(round($t1 - $t0, 2))")
  rows+=("| $label | $runs | $s | $(rate "$runs" "$s") | – | – | – | – |")
}
time_verify() { # label, args…
  local label=$1; shift
  local t0 t1 out s rss fields
  t0=$(secs)
  out=$(/usr/bin/time -f '%M' -o "$tmp/rss" "$bin" --config "$config" verify --format json "$@" || true)
  t1=$(secs)
  s=$("$py" -c "print(round($t1 - $t0, 2))")
  # GNU time writes "Command exited with non-zero status 1" first when verify finds drift.
  rss=$(($(tail -n 1 "$tmp/rss") / 1024))
  log "$label: $(printf '%s' "$out" | head -c 600)"
  fields=$(printf '%s' "$out" | "$py" -c '
import json, sys
r = json.load(sys.stdin)
p = r["phases"]
print(r["runs_compared"], r["postgres_rows_read"], r["clickhouse_rows_read"], r["drift"]["runs"], r["ranges_differing"], r["ranges"],
      "%.2f / %.2f / %.2f / %.2f" % (p["postgres"], p["clickhouse"], p["recheck"], p["repair"]))')
  read -r compared pg_read ch_read drifted differing ranges phases <<<"$fields" || true
  rows+=("| $label | $compared | $s | $(rate "$compared" "$s") | $phases | $pg_read / $ch_read | $drifted ($differing of $ranges ranges) | $rss MiB |")
}
columns=$("$py" - <<'PY'
import re
text = open("src/rows/postgres.rs").read()
body = text[text.index("columns! {"):]
print(", ".join('"%s"' % n for n in re.findall(r'=> "([^"]+)"', body)))
PY
)

log "measure"
time_copy 'psql `COPY (SELECT * FROM t) TO STDOUT > /dev/null`' '*'
time_copy "psql, the verify's COPY (its 53 columns)" "$columns"
time_verify 'verify, in sync'
# Some WAL after the backfill, as any live database writes: the planted versions (the backfill's L
# + 1) are then older than the next snapshot, as drift is.
"${psql[@]}" -d trigger -c "CREATE TABLE bench_wal AS SELECT generate_series(1, 10000) AS x" >/dev/null
ch "INSERT INTO task_runs_v2 SELECT * REPLACE ('CRASHED' AS status, _version + 1 AS _version)
    FROM task_runs_v2 FINAL WHERE run_id IN (SELECT run_id FROM task_runs_v2 FINAL ORDER BY cityHash64(run_id) LIMIT 100)
    SETTINGS input_format_try_infer_dates = 0, input_format_try_infer_datetimes = 0"
time_verify 'verify, 100 drifted runs'
time_verify 'verify --repair, 100 drifted runs' --repair
time_verify 'verify after the repair'
time_copy 'psql `COPY (SELECT * FROM t) TO STDOUT > /dev/null` (again, after)' '*'

echo
echo "| what ($runs runs, both tables) | runs | seconds | runs/s | Postgres / ClickHouse / re-checks / repair s | rows read Postgres / ClickHouse | drifted | peak RSS |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|"
printf '%s\n' "${rows[@]}"
echo
echo "Machine: $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)), $("$pg_bin/postgres" --version), chDB behind tools/chserver (data on tmpfs)"
