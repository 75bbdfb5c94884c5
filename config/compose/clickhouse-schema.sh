#!/bin/bash
# docker-compose.yml's ClickHouse init script: applies config/clickhouse/*.sql (mounted at
# /schema) in order, at the first start of an empty volume (the image's entrypoint runs the files
# of /docker-entrypoint-initdb.d then, with the server listening on localhost only).
#
# The demo stack runs trigger.dev's ClickHouse version (26.2). 005_errors_v1.sql sets
# allow_dimensions_outside_sorting_key = 1, which ClickHouse 26.7 and later need for upstream's
# errors_v1 table and which older servers refuse as an unknown setting; this script leaves the
# setting out when the server does not know it, so the same files serve both (the file says why).
set -euo pipefail
client=(clickhouse-client --host 127.0.0.1 --user "${CLICKHOUSE_USER:-default}" --password "${CLICKHOUSE_PASSWORD:-}")
known=$("${client[@]}" --query "SELECT count() FROM system.merge_tree_settings WHERE name = 'allow_dimensions_outside_sorting_key'")
for f in /schema/*.sql; do
  echo "clickhouse-schema: applying $(basename "$f")"
  if [ "$known" = 0 ]; then
    sed 's/, *allow_dimensions_outside_sorting_key *= *1//' "$f" | "${client[@]}" --multiquery
  else
    "${client[@]}" --multiquery <"$f"
  fi
done
