#!/usr/bin/env bash
# The end-to-end benchmark (benches/e2e): sets up everything, runs it, writes BENCHMARKS.md.
#
#   scripts/bench.sh                        the default run (200,000-change backlog, 60 s steady load)
#   scripts/bench.sh --rss-changes 1000000  also drain a 1,000,000-change backlog for the peak RSS
#   scripts/bench.sh --changes 20000 --steady-secs 10 --out /tmp/b.md   a quick check
#   scripts/bench.sh --ch-on-disk           keep ClickHouse's data on disk instead of tmpfs
#
# Other options (passed to benches/e2e): --steady-rates LIST (200,2000,20000; one load each),
# --async-rate N (2000: that load again with clickhouse.async_insert; 0: not), --null-rate N (2000:
# that load again through a worker with --null-sink, its own share of the latency), --poll-ms N (20: how
# often the steady load asks ClickHouse what is visible), --max-rows N (10000),
# --min-insert-interval-ms N, --max-bytes N (unset: the defaults; never given to the baseline),
# --flush-interval-ms N (1000), --max-inflight N (2), --label TEXT (shown under the table),
# --baseline-worker PATH (another build of the worker, drained side by side on its own slots),
# --perf-dir DIR (a system-wide `perf record` around each drain, one file per drain).
#
# What it does: installs what is missing (scripts/setup-dev.sh), builds the worker and the
# benchmark in release mode, starts a throwaway PostgreSQL 15 cluster and the embedded ClickHouse
# (tools/chserver) in a temp dir, applies the shipped schemas, runs `cargo bench --bench e2e`
# against them, then stops everything. Nothing is pinned to a core: Postgres (the walsender), the
# worker and the ClickHouse engine share the machine's cores as they would in production, and the
# table reports each one's CPU seconds. ClickHouse's data directory is on tmpfs (/dev/shm): a part
# of a table with JSON columns is hundreds of files, and on this VM's ext4 creating them cost the
# engine about 40% more CPU, which measured the disk rather than the replication path.
#
# Env: BENCH_PERF_ARGS  perf record sampling arguments with --perf-dir DIR (default "-F 999")
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
pg_bin=${RUNS_REPLICATOR_PG_BIN:-/usr/lib/postgresql/15/bin}
out=BENCHMARKS.md
ch_on_disk=0
args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --out) out=$2; shift 2 ;;
    --ch-on-disk) ch_on_disk=1; shift ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) args+=("$1"); shift ;;
  esac
done
log() { printf '== %s\n' "$*" >&2; }

tmp=$(mktemp -d "${TMPDIR:-/tmp}/runs-replicator-bench.XXXXXX")
chmod 755 "$tmp"
as_pg=()
if [ "$(id -u)" = 0 ]; then as_pg=(runuser -u postgres --); fi
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  if [ -f "$tmp/ch/pid" ]; then kill "$(cat "$tmp/ch/pid")" 2>/dev/null || true; fi
  if [ -f "$tmp/pg/data/postmaster.pid" ]; then
    (cd / && "${as_pg[@]}" "$pg_bin/pg_ctl" -D "$tmp/pg/data" -m fast -w -t 60 stop >/dev/null 2>&1) || true
  fi
  if [ "$rc" != 0 ]; then
    mkdir -p "$tmp.logs"
    cp "$tmp"/pg/*.log "$tmp"/ch/*.log "$tmp.logs"/ 2>/dev/null || true
    find "$tmp/work" -name '*.log' -exec cp {} "$tmp.logs"/ \; 2>/dev/null || true
    echo "bench: failed; logs in $tmp.logs" >&2
  fi
  [ -L "$tmp/ch" ] && rm -rf "$(readlink "$tmp/ch")"
  rm -rf "$tmp"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

log "setup (PostgreSQL 15, Python venv with the embedded ClickHouse)"
scripts/setup-dev.sh >"$tmp/setup.log" 2>&1 || { cat "$tmp/setup.log" >&2; exit 1; }
py=$(scripts/setup-python.sh 2>>"$tmp/setup.log")
command -v pg_recvlogical >/dev/null || export PATH="$pg_bin:$PATH"

log "build (release)"
cargo build --release --locked --bin runs-replicator
cargo bench --locked --bench e2e --no-run

free_port() { "$py" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

log "start PostgreSQL 15"
mkdir -p "$tmp/pg/sock" "$tmp/work"
[ "$(id -u)" = 0 ] && chown -R postgres: "$tmp/pg"
pg_port=$(free_port)
(cd "$tmp" && "${as_pg[@]}" "$pg_bin/initdb" -D "$tmp/pg/data" -U postgres --auth=trust -E UTF8 --locale=C \
  >"$tmp/pg/initdb.log" 2>&1) || { cat "$tmp/pg/initdb.log" >&2; exit 1; }
# fsync and synchronous_commit off only make loading the backlog faster; decoding is unaffected.
(cd "$tmp" && "${as_pg[@]}" "$pg_bin/pg_ctl" -D "$tmp/pg/data" -l "$tmp/pg/postgres.log" -w -t 60 \
  -o "-c listen_addresses=127.0.0.1 -p $pg_port -c unix_socket_directories=$tmp/pg/sock \
      -c wal_level=logical -c max_replication_slots=10 -c max_wal_senders=10 -c fsync=off \
      -c synchronous_commit=off -c full_page_writes=off -c max_wal_size=20GB -c shared_buffers=1GB \
      -c checkpoint_timeout=1h" start >/dev/null) || { tail -n 20 "$tmp/pg/postgres.log" >&2; exit 1; }
pg_url="postgres://postgres@127.0.0.1:$pg_port/trigger"
psql=("$pg_bin/psql" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$pg_port" -U postgres)
PGOPTIONS='-c client_min_messages=warning' "${psql[@]}" -d postgres -c "CREATE DATABASE trigger" >/dev/null
for f in config/postgres/*.sql; do
  PGOPTIONS='-c client_min_messages=warning' "${psql[@]}" -d trigger -f "$f" >/dev/null
done

log "start the embedded ClickHouse (tools/chserver)"
CLICKHOUSE_URL='' CHSERVER_PID=''
ch_dir=$tmp/ch
if [ "$ch_on_disk" = 0 ] && [ -d /dev/shm ]; then
  ch_dir=$(mktemp -d /dev/shm/runs-replicator-bench-ch.XXXXXX)
  ln -s "$ch_dir" "$tmp/ch"
fi
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

machine="$(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)), \
$(free -g | awk '/^Mem:/ {print $2}') GiB RAM, Linux $(uname -r), Debian $(cat /etc/debian_version), \
$("$pg_bin/postgres" --version | sed 's/postgres (PostgreSQL)/PostgreSQL/'), \
chDB $("$py" -c 'import chdb; print(chdb.engine_version)') behind tools/chserver (one Python process, data on $([ -L "$tmp/ch" ] && echo tmpfs || echo disk)), \
$(rustc --version | cut -d' ' -f1-2); nothing pinned: walsender, worker and ClickHouse share the cores"

log "run benches/e2e"
cargo bench --locked --bench e2e -- --bench \
  --pg-url "$pg_url" --ch-url "$CLICKHOUSE_URL" --ch-pid "$CHSERVER_PID" \
  --worker "$repo/target/release/runs-replicator" --work-dir "$tmp/work" \
  --out "$out" --machine "$machine" "${args[@]}"
