#!/usr/bin/env bash
# Installs what building and testing runs-replicator needs on a Debian machine that has Rust:
# PostgreSQL 15 server binaries (tests start throwaway clusters from them) and the Python venv with
# the embedded ClickHouse engine (chdb-core) behind tools/chserver. Idempotent; installs only
# what is missing. Needs root (or sudo) only when a Debian package is missing.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
log() { echo "setup-dev: $*" >&2; }

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null 2>&1; then sudo "$@"; else
    log "need root to run: $*"; exit 1
  fi
}

apt_install() {
  log "installing Debian packages: $*"
  export DEBIAN_FRONTEND=noninteractive
  as_root apt-get update -qq >&2
  as_root apt-get install -y -qq --no-install-recommends "$@" >&2
}

pg_bin=${RUNS_REPLICATOR_PG_BIN:-/usr/lib/postgresql/15/bin}
if [ -z "${RUNS_REPLICATOR_TEST_POSTGRES_URL:-}" ] && [ ! -x "$pg_bin/initdb" ]; then
  # Debian would also create and start a default cluster; the tests start their own.
  as_root mkdir -p /etc/postgresql-common
  echo "create_main_cluster = false" | as_root tee /etc/postgresql-common/createcluster.conf >/dev/null
  apt_install postgresql-15
fi
if [ "$(id -u)" = 0 ] && [ -z "${RUNS_REPLICATOR_TEST_POSTGRES_URL:-}" ] && ! id postgres >/dev/null 2>&1; then
  log "tests run Postgres as the 'postgres' user when started as root; creating it"
  useradd --system --home /var/lib/postgresql --shell /bin/bash postgres
fi

if [ -z "${CLICKHOUSE_URL:-}" ]; then
  "$repo/scripts/setup-python.sh" >/dev/null
fi
log "ready"
