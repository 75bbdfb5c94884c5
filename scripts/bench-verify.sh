#!/usr/bin/env bash
# The scale benchmark: `runs-replicator verify` and `backfill --null-sink` (release build) of N
# runs spread over a year, next to a plain `psql COPY … TO STDOUT > /dev/null` of the same rows,
# side by side in one run.
#
#   scripts/bench-verify.sh                     1,000,000 runs (half per table)
#   scripts/bench-verify.sh --runs 10000000     the figures of BENCHMARKS.md ("Current figures")
#   scripts/bench-verify.sh --drift 1000        drifted runs planted (default 1,000)
#
# What it does (setup shared with scripts/bench-backfill.sh in scripts/bench-env.sh): writes N runs
# over a year of createdAt (`write_year`: cuid ids, both tables, outputs of ~200 bytes and ~8 KB),
# copies them into the embedded ClickHouse with `backfill --payloads` and merges the parts
# (OPTIMIZE … FINAL, as a server's background merges would), then times, in this order:
#   1. psql: COPY (SELECT * FROM each table) TO STDOUT > /dev/null, and the verify's own COPY
#   2. verify, in sync (no slot: nothing streams, so no wait for one)
#   3. verify of a 6-hour window in the middle of the year (the rows read must follow the window)
#   4. verify after planting --drift drifted runs in ClickHouse (a stale status, version + 1)
#   5. verify --repair, then verify again (in sync)
#   6. backfill --null-sink --parallel 2 (a fresh dry-run job)
#   7. the plain COPY again (the machine's drift between the first and the last row)
# Each command reports its wall time (start to exit), the ratio to the first plain COPY, its peak
# RSS and CPU seconds (GNU time), ClickHouse's rows read (the verify's own count), its longest
# snapshot, and the machine's load average at its start. Prints a Markdown table.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
runs=1000000
drift=1000
while [ $# -gt 0 ]; do
  case "$1" in
    --runs) runs=$2; shift 2 ;;
    --drift) drift=$2; shift 2 ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
# Loading tens of gigabytes: checkpoints often enough that the WAL stays a few gigabytes.
pg_extra_opts="-c max_wal_size=4GB ${pg_extra_opts:-}"
# shellcheck source=scripts/bench-env.sh
source scripts/bench-env.sh
log "disk before: $(df -h "$tmp" | tail -n 1)"
write_year "$runs"
log "Postgres: $("${psql[@]}" -d trigger -Atc "SELECT pg_size_pretty(pg_database_size('trigger'))")"

ch() { # one statement to the embedded ClickHouse, its answer on stdout
  "$py" - "$CLICKHOUSE_URL" "$1" <<'PY'
import sys, urllib.request
req = urllib.request.Request(sys.argv[1] + "/?database=trigger_dev", data=sys.argv[2].encode())
print(urllib.request.urlopen(req, timeout=7200).read().decode(), end="")
PY
}

log "backfill into ClickHouse (--payloads), then merge the parts"
t0=$(secs)
"$bin" --config "$config" backfill --payloads --parallel 2 --format json >/dev/null
log "backfill into ClickHouse: $("$py" -c "print(round($(secs) - $t0))") s"
ch "OPTIMIZE TABLE task_runs_v2 FINAL"
ch "OPTIMIZE TABLE raw_task_runs_payload_v1 FINAL"
log "ClickHouse: $(ch "SELECT formatReadableSize(sum(bytes_on_disk)), sum(rows) FROM system.parts WHERE active AND database = 'trigger_dev'")"

copy_s=""
rows=()
load() { cut -d' ' -f1 /proc/loadavg; }
time_copy() { # label, select list
  local label=$1 select=$2 t0 t1 s l
  l=$(load)
  t0=$(secs)
  for table in '"TaskRun"' task_run_v2; do
    "${psql[@]}" -d trigger -c "COPY (SELECT $select FROM $table) TO STDOUT" >/dev/null
  done
  t1=$(secs)
  s=$("$py" -c "print(round($t1 - $t0, 2))")
  [ -z "$copy_s" ] && copy_s=$s
  rows+=("| $label | $runs | $s | $("$py" -c "print(round($s / $copy_s, 2))") | – | – | – | – | – | $l |")
}
time_cmd() { # label, kind (verify|backfill), args…
  local label=$1 kind=$2; shift 2
  local t0 t1 out s rss cpu l fields
  l=$(load)
  t0=$(secs)
  out=$(/usr/bin/time -f '%M %U %S' -o "$tmp/time" "$bin" --config "$config" "$kind" --format json "$@" || true)
  t1=$(secs)
  s=$("$py" -c "print(round($t1 - $t0, 2))")
  # GNU time writes "Command exited with non-zero status 1" first when verify finds drift.
  read -r rss u sy <<<"$(tail -n 1 "$tmp/time")"
  rss=$((rss / 1024))
  cpu=$("$py" -c "print(round($u + $sy, 1))")
  log "$label: $(printf '%s' "$out" | head -c 1500)"
  if [ "$kind" = verify ]; then
    fields=$(printf '%s' "$out" | "$py" -c '
import json, sys
r = json.load(sys.stdin)
print(r["runs_compared"], r["clickhouse_rows_read"], r["drift"]["runs"], r["slices"], r["longest_snapshot_s"])')
  else
    fields=$(printf '%s' "$out" | "$py" -c '
import json, sys
r = json.load(sys.stdin)
print(r["total"]["rows_read"], "–", "–", r["snapshots"], r["longest_snapshot_s"])')
  fi
  read -r compared ch_read drifted slices longest <<<"$fields" || true
  rows+=("| $label | $compared | $s | $("$py" -c "print(round($s / $copy_s, 2))") | $rss MiB | $cpu | $ch_read | $drifted | ${longest} s | $l |")
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
time_cmd 'verify, in sync' verify
time_cmd 'verify `--since 2026-06-01T09:00Z --until 2026-06-01T15:00Z` (6 hours)' verify \
  --since 2026-06-01T09:00:00Z --until 2026-06-01T15:00:00Z
# Some WAL after the backfill, as any live database writes: the planted versions (the backfill's L
# + 1) are then older than the next snapshot, as drift is.
"${psql[@]}" -d trigger -c "CREATE TABLE bench_wal AS SELECT generate_series(1, 10000) AS x" >/dev/null
ch "INSERT INTO task_runs_v2 SELECT * REPLACE ('CRASHED' AS status, _version + 1 AS _version)
    FROM task_runs_v2 FINAL WHERE run_id IN (SELECT run_id FROM task_runs_v2 FINAL ORDER BY cityHash64(run_id) LIMIT $drift)
    SETTINGS input_format_try_infer_dates = 0, input_format_try_infer_datetimes = 0"
time_cmd "verify, $drift drifted runs" verify
time_cmd "verify \`--repair\`, $drift drifted runs" verify --repair
time_cmd 'verify after the repair' verify
time_cmd 'backfill `--null-sink --parallel 2`' backfill --null-sink --parallel 2 --restart
time_copy 'psql `COPY (SELECT * FROM t) TO STDOUT > /dev/null` (again, after)' '*'

echo
echo "| what ($runs runs, both tables, a year) | runs | seconds | ÷ COPY | peak RSS | CPU s | ClickHouse rows read | drifted | longest snapshot | load avg |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
printf '%s\n' "${rows[@]}"
echo
echo "Machine: $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)), $("$pg_bin/postgres" --version), chDB behind tools/chserver (data on tmpfs); ClickHouse: $(ch "SELECT sum(rows) FROM system.parts WHERE active AND database = 'trigger_dev' AND table = 'task_runs_v2'") rows in task_runs_v2"
log "disk at the end: $(df -h "$tmp" | tail -n 1)"
