#!/usr/bin/env bash
# Sets up what the tests need (scripts/setup-dev.sh), then runs every check and test:
# formatting, clippy, the deployment files (scripts/check-deploy.sh, with promtool's alert rule
# tests), the Rust unit and integration tests (real Postgres 15 clusters and the real ClickHouse
# engine; those that assert a latency alone, after the rest), the integration tests that matter
# per server version on PostgreSQL 14, 16, 17 and 18
# (the data path end to end, the preflight, the bootstrap, a lost slot; the failover and timeline
# tests and the version gaps start the versions they are about within the main run), and the
# ClickHouse front's own tests.
#
# Env: CLICKHOUSE_URL                     use a real ClickHouse server instead of the embedded engine
#      RUNS_REPLICATOR_TEST_POSTGRES_URL  use an external Postgres (superuser, wal_level=logical);
#                                         no per-version runs then
#      RUNS_REPLICATOR_TEST_PG_VERSIONS   the versions of the per-version runs ("14 16 17 18";
#                                         empty: none)
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

# Tests that assert a latency (ingestion resumes within 2 s of a server answering again, the
# pace of the periodic checks, SIGTERM ending the worker within seconds) run alone after the
# rest: beside five other tests' clusters on two cores they would measure the machine.
timed=(outage:: periodic:: log_pipe::)
skip_timed=()
for t in "${timed[@]}"; do skip_timed+=(--skip "$t"); done

step "Rust tests (unit + integration, PostgreSQL 15)"
cargo test --all-targets --locked -- --test-threads "${TEST_THREADS:-6}" "${skip_timed[@]}"

step "Rust integration tests that assert a latency, one at a time (PostgreSQL 15)"
cargo test --test it --locked -- --test-threads 1 "${timed[@]}"

# What depends on the server version, run on each other one: the data path end to end (every
# column of both tables, updates and tombstones, TOAST, one transaction across both tables), the
# preflight, the bootstrap and the lost-slot rules.
per_version=(
  replication::every_column_of_a_task_run
  replication::updates_replace_and_deletes_leave_a_complete_tombstone
  replication::one_transaction_touching_both_tables
  replication::a_large_output_survives_an_update_that_does_not_touch_it
  preflight::passes_on_the_shipped_schema
  preflight::fails_on_replica_identity_default
  bootstrap::
  reliability::a_dropped_slot_is_a_hard_stop_and_is_not_recreated
  reliability::an_invalidated_slot_is_a_hard_stop_until_it_is_dropped
)
if [ -z "${RUNS_REPLICATOR_TEST_POSTGRES_URL:-}" ]; then
  for version in ${RUNS_REPLICATOR_TEST_PG_VERSIONS-14 16 17 18}; do
    step "Rust integration tests that depend on the server version, on PostgreSQL $version"
    RUNS_REPLICATOR_TEST_PG_VERSION=$version cargo test --test it --locked -- \
      --test-threads "${TEST_THREADS:-6}" "${per_version[@]}"
  done
fi

if [ -z "${CLICKHOUSE_URL:-}" ]; then
  step "ClickHouse front tests"
  .venv/bin/python -m unittest discover -s tools/chserver
fi
step "all tests passed"
