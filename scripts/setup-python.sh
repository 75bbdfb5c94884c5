#!/usr/bin/env bash
# Create (once) the Python venv that tools/chserver needs and print its python path.
#
#   scripts/setup-python.sh            -> prints e.g. /repo/.venv/bin/python
#
# Env: RUNS_REPLICATOR_VENV  venv directory (default: <repo>/.venv)
#      PYTHON                interpreter used to create the venv (default: python3)
# Idempotent: does nothing but print the path when the venv already imports
# chdb, lz4, zstandard and clickhouse_cityhash. Progress goes to stderr, the
# python path alone to stdout, so callers can do py=$(scripts/setup-python.sh).
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
venv=${RUNS_REPLICATOR_VENV:-$repo/.venv}
req=$repo/tools/chserver/requirements.txt
python=${PYTHON:-python3}
vpy=$venv/bin/python

log() { echo "setup-python: $*" >&2; }

have_deps() {
  [ -x "$vpy" ] && "$vpy" -c "import chdb, lz4, zstandard, clickhouse_cityhash" >/dev/null 2>&1
}

if ! have_deps; then
  command -v "$python" >/dev/null 2>&1 || {
    log "$python not found; install Python 3 (Debian: apt-get install python3 python3-venv)"
    exit 1
  }
  if [ ! -x "$vpy" ] || ! "$vpy" -m pip --version >/dev/null 2>&1; then
    log "creating venv $venv"
    if ! "$python" -m venv "$venv" >/dev/null 2>&1; then
      # Debian's python3 ships without the venv/ensurepip module (package python3-venv).
      rm -rf "$venv"
      if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        log "'$python -m venv' failed; installing python3-venv with apt-get"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq >&2
        pyver=$("$python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
        apt-get install -y -qq python3-venv >&2 || true
        apt-get install -y -qq "python${pyver}-venv" >&2 || true
        "$python" -m venv "$venv" >&2
      else
        log "'$python -m venv' failed: the venv module is missing."
        log "install it (Debian/Ubuntu: sudo apt-get install python3-venv) and run this again"
        exit 1
      fi
    fi
  fi
  log "installing $(grep -cv '^\s*\(#\|$\)' "$req") pinned packages from $req (--no-deps)"
  "$vpy" -m pip install -q --disable-pip-version-check --no-deps -r "$req" >&2
  have_deps || {
    log "venv $venv still cannot import chdb, lz4, zstandard, clickhouse_cityhash"
    exit 1
  }
fi
echo "$vpy"
