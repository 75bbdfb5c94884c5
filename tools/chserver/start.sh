#!/usr/bin/env bash
# Start chserver (ClickHouse HTTP interface over chDB) in the background on a
# fresh data directory, wait until /ping answers, and print one line:
#   CLICKHOUSE_URL=http://127.0.0.1:PORT CHSERVER_PID=PID CHSERVER_DATA=DIR
# so callers can: eval "$(tools/chserver/start.sh)"
#
# Env: CHSERVER_PORT  port to listen on (default 0 = any free port)
#      CHSERVER_DATA  directory for the data (db/), log, pid and port files
#                     (default: a fresh mktemp -d; reusing one keeps its data)
#      CHSERVER_HOST  listen address (default 127.0.0.1)
#      RUNS_REPLICATOR_VENV  venv to use/create (see scripts/setup-python.sh)
# Extra arguments go to chserver.py, e.g. --setting async_insert=0 --verbose,
# --user u --password p, --tls-cert c.pem --tls-key k.pem (the URL is then https).
# Stop it with: kill "$CHSERVER_PID"  (SIGTERM: clean shutdown; the data stays in $CHSERVER_DATA/db)
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)

py=$("$repo/scripts/setup-python.sh")

data=${CHSERVER_DATA:-$(mktemp -d "${TMPDIR:-/tmp}/chserver-data.XXXXXX")}
mkdir -p "$data"
data=$(cd "$data" && pwd)
host=${CHSERVER_HOST:-127.0.0.1}
rm -f "$data/port"

scheme=http
for a in "$@"; do [ "$a" = "--tls-cert" ] && scheme=https; done

"$py" "$here/chserver.py" --path "$data/db" --host "$host" --port "${CHSERVER_PORT:-0}" \
  --port-file "$data/port" "$@" >>"$data/chserver.log" 2>&1 &
pid=$!
echo "$pid" >"$data/pid"

url_host=$host
case "$host" in *:*) url_host="[$host]" ;; 0.0.0.0) url_host=127.0.0.1 ;; ::) url_host="[::1]" ;; esac

ping_ok() {  # $1 = url; no curl needed
  "$py" - "$1" <<'PY' >/dev/null 2>&1
import ssl, sys, urllib.request
ctx = ssl._create_unverified_context()
with urllib.request.urlopen(sys.argv[1] + "/ping", timeout=2, context=ctx) as r:
    sys.exit(0 if r.read().startswith(b"Ok.") else 1)
PY
}

for _ in $(seq 1 600); do
  if [ -s "$data/port" ]; then
    url="$scheme://$url_host:$(cat "$data/port")"
    if ping_ok "$url"; then
      echo "CLICKHOUSE_URL=$url CHSERVER_PID=$pid CHSERVER_DATA=$data"
      exit 0
    fi
  fi
  if ! kill -0 "$pid" 2>/dev/null; then
    echo "chserver exited before answering /ping; its log ($data/chserver.log):" >&2
    cat "$data/chserver.log" >&2
    exit 1
  fi
  sleep 0.1
done
echo "chserver did not answer /ping within 60 s; its log ($data/chserver.log):" >&2
cat "$data/chserver.log" >&2
kill "$pid" 2>/dev/null || true
exit 1
