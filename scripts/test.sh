#!/usr/bin/env bash
# Sets up what the tests need (scripts/setup-dev.sh), then runs every check and test:
# formatting, clippy, the deployment files (scripts/check-deploy.sh, with promtool's alert rule
# tests), the Rust unit and integration tests (real Postgres 15 clusters and the real ClickHouse
# engine), and the ClickHouse front's own tests.
#
# Env: CLICKHOUSE_URL                     use a real ClickHouse server instead of the embedded engine
#      RUNS_REPLICATOR_TEST_POSTGRES_URL  use an external Postgres (superuser, wal_level=logical)
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
step() { printf '\n== %s\n' "$*" >&2; }

step "setup"
scripts/setup-dev.sh

step "format and lint"
cargo fmt --all -- --check
cargo clippy --all-targets --locked -- -D warnings

step "deployment files (docker-compose.yml, Dockerfile, Grafana, Prometheus config and alert rule tests)"
scripts/check-deploy.sh

step "Rust tests (unit + integration)"
cargo test --all-targets --locked -- --test-threads "${TEST_THREADS:-6}"

if [ -z "${CLICKHOUSE_URL:-}" ]; then
  step "ClickHouse front tests"
  .venv/bin/python -m unittest discover -s tools/chserver
fi
step "all tests passed"
