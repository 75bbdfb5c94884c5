#!/usr/bin/env bash
# The backfill benchmark: `runs-replicator backfill` (release build) next to the source's own limit,
# a plain `psql COPY … TO STDOUT > /dev/null` of the same rows, measured side by side in one run.
#
#   scripts/bench-backfill.sh                 200,000 runs (100,000 per table)
#   scripts/bench-backfill.sh --runs 1000000  more runs (and the peak RSS for them)
#
# What it does: builds the worker in release mode, starts a throwaway PostgreSQL 15 cluster and the
# embedded ClickHouse (tools/chserver, data on tmpfs) in a temp dir, applies the shipped schemas,
# writes N completed runs (a ~220-byte payload, tags, annotations, a ~200-byte output, an error on
# one run in ten) split over "TaskRun" and task_run_v2, VACUUMs them, then times, in this order:
#   1. psql: COPY (SELECT * FROM each table) TO STDOUT > /dev/null, both tables one after the other
#   2. psql: the backfill's own COPY (its 53 columns), both tables one after the other
#   3. backfill --null-sink --parallel 1 and --parallel 2 (decode, transform, batch, encode; discard)
#   4. backfill into ClickHouse --parallel 2
# Each backfill is a fresh job (--restart) and reports rows/s of wall time, start to exit (startup,
# planning and checkpoints included), and its peak RSS (GNU time). Prints a Markdown table.
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

rows=()
time_copy() { # label, select list
  local label=$1 select=$2 t0 t1
  t0=$(secs)
  for table in '"TaskRun"' task_run_v2; do
    "${psql[@]}" -d trigger -c "COPY (SELECT $select FROM $table) TO STDOUT" >/dev/null
  done
  t1=$(secs)
  local s; s=$("$py" -c "print(round($t1 - $t0, 2))")
  rows+=("| $label | $runs | $s | $(rate "$runs" "$s") | – |")
}
time_backfill() { # label, args…
  local label=$1; shift
  local t0 t1 out
  t0=$(secs)
  out=$(/usr/bin/time -f '%M' -o "$tmp/rss" "$bin" --config "$config" backfill --restart --format json "$@")
  t1=$(secs)
  local s read rss
  s=$("$py" -c "print(round($t1 - $t0, 2))")
  read=$(printf '%s' "$out" | "$py" -c 'import json, sys; print(json.load(sys.stdin)["total"]["rows_read"])')
  rss=$(( $(cat "$tmp/rss") / 1024 ))
  rows+=("| $label | $read | $s | $(rate "$read" "$s") | $rss MiB |")
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
time_copy "psql, the backfill's COPY (its 53 columns)" "$columns"
time_backfill 'backfill `--null-sink --parallel 1`' --null-sink --parallel 1
time_backfill 'backfill `--null-sink --parallel 2`' --null-sink --parallel 2
time_backfill 'backfill into ClickHouse `--parallel 2`' --parallel 2
time_copy 'psql `COPY (SELECT * FROM t) TO STDOUT > /dev/null` (again, after)' '*'

echo
echo "| what ($runs runs, both tables) | rows | seconds | rows/s | peak RSS |"
echo "|---|---:|---:|---:|---:|"
printf '%s\n' "${rows[@]}"
echo
echo "Machine: $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)), $("$pg_bin/postgres" --version), chDB behind tools/chserver (data on tmpfs)"
