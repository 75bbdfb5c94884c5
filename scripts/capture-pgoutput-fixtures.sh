#!/usr/bin/env bash
# Regenerates tests/fixtures/pgoutput/*.txt: raw pgoutput (proto_version 1) messages captured from a
# real, throwaway PostgreSQL cluster, one hex-encoded message per line, so the decoder is tested
# against what the server really sends rather than against our reading of the protocol docs.
#
# Usage: scripts/capture-pgoutput-fixtures.sh
# Env:   PG_BIN (default /usr/lib/postgresql/15/bin), FIXTURE_PORT (default: a free port on 127.0.0.1)
#
# The cluster lives in a temp dir and is stopped and removed on exit. As root the server runs as
# the `postgres` user, since initdb refuses to run as root.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}
OUT="$ROOT/tests/fixtures/pgoutput"
SLOT=fixture_slot
PUB=fixture_pub

free_port() {
    if command -v python3 >/dev/null; then
        python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
        return
    fi
    local p
    for p in $(seq 54330 54400); do
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then echo "$p"; return; fi
    done
    echo "no free port found" >&2
    exit 1
}
PORT=${FIXTURE_PORT:-$(free_port)}

as_pg() {
    if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

DIR=$(mktemp -d /tmp/pgoutput-fixtures.XXXXXX)
if [ "$(id -u)" = 0 ]; then chown postgres: "$DIR"; fi
chmod 700 "$DIR"

cleanup() {
    as_pg "$PG_BIN/pg_ctl" -D "$DIR/data" -m fast -w stop >/dev/null 2>&1 || true
    rm -rf "$DIR"
}
trap cleanup EXIT

as_pg "$PG_BIN/initdb" -D "$DIR/data" -U postgres -A trust -E UTF8 --locale=C.UTF-8 >/dev/null
cat >>"$DIR/data/postgresql.conf" <<CONF
listen_addresses = '127.0.0.1'
port = $PORT
unix_socket_directories = '$DIR'
wal_level = logical
max_replication_slots = 4
max_wal_senders = 4
# Logical decoding reads only flushed WAL, so synchronous_commit stays on; fsync off is harmless.
fsync = off
full_page_writes = off
autovacuum = off
timezone = 'UTC'
datestyle = 'ISO, MDY'
CONF
as_pg "$PG_BIN/pg_ctl" -D "$DIR/data" -l "$DIR/server.log" -w start >/dev/null

# SQL goes in through stdin, so the postgres user never needs to read the work tree.
# PGTZ/PGDATESTYLE pin the text rendering: the output functions run in the session that
# calls pg_logical_slot_*_changes.
psql_() {
    as_pg env PGTZ=UTC PGDATESTYLE='ISO, MDY' PGOPTIONS='-c client_min_messages=warning' \
        "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$DIR" -p "$PORT" -U postgres -d postgres "$@"
}

VERSION=$(psql_ -At -c "SHOW server_version")

cat "$ROOT"/config/postgres/*.sql | psql_

psql_ <<'SQL'
-- A table with REPLICA IDENTITY DEFAULT (the project's tables are FULL) and columns of
-- non-built-in types, which make pgoutput send Type messages before the Relation.
CREATE TYPE fixture_mood AS ENUM ('happy', 'sad');
CREATE TYPE fixture_point AS (x integer, label text);
CREATE TABLE fixture_default (
    id integer PRIMARY KEY,
    label text,
    mood fixture_mood,
    spot fixture_point,
    big text
);
CREATE TABLE fixture_child (
    id serial PRIMARY KEY,
    parent_id integer REFERENCES fixture_default (id),
    note text
);
-- Not published: writing to it forces a WAL flush without producing any pgoutput message
-- (PostgreSQL 15 skips transactions that touch no published table).
CREATE TABLE fixture_unpublished (n integer);
CREATE PUBLICATION fixture_pub FOR TABLE "TaskRun", task_run_v2, fixture_default, fixture_child;
SELECT pg_create_logical_replication_slot('fixture_slot', 'pgoutput') \gset
SQL

rm -f "$OUT"/*.txt
mkdir -p "$OUT"

# capture NAME DESCRIPTION [extra pgoutput options...]: runs the SQL on stdin, then writes every
# message decoded since the previous capture to NAME.txt and consumes them from the slot.
capture() {
    local name=$1 desc=$2
    shift 2
    local opts="'proto_version', '1', 'publication_names', '$PUB', 'messages', 'true'"
    local o
    for o in "$@"; do opts+=", '$o'"; done
    psql_ -o /dev/null
    {
        echo "# $desc"
        echo "# Captured by scripts/capture-pgoutput-fixtures.sh from PostgreSQL $VERSION: pg_logical_slot_peek_binary_changes(..., $opts)"
        psql_ -At -c "SELECT encode(data, 'hex') FROM pg_logical_slot_peek_binary_changes('$SLOT', NULL, NULL, $opts)"
    } >"$OUT/$name.txt"
    psql_ -At -c "SELECT count(*) FROM pg_logical_slot_get_binary_changes('$SLOT', NULL, NULL, $opts)" >/dev/null
    echo "captured $name.txt: $(grep -vc '^#' "$OUT/$name.txt") messages"
}

capture insert_full "One transaction inserting a fully populated \"TaskRun\" row (text[], jsonb, timestamps, enums, booleans, floats, NULLs) and a sparse task_run_v2 row (REPLICA IDENTITY FULL)" <<'SQL'
BEGIN;
INSERT INTO "TaskRun" (
    id, number, "friendlyId", engine, status, "statusReason", "idempotencyKey", "idempotencyKeyExpiresAt",
    "idempotencyKeyOptions", "taskIdentifier", "isTest", payload, "payloadType", context, "traceContext",
    "traceId", "spanId", "runtimeEnvironmentId", "environmentType", "projectId", "organizationId", queue,
    "attemptNumber", "createdAt", "updatedAt", "runTags", "costInCents", "baseCostInCents", "isWarmStart",
    "error", "maxDurationInSeconds", "bulkActionGroupIds", "realtimeStreams", output
) VALUES (
    'run_full_1', 42, 'run_friendly_1', 'V2', 'COMPLETED_WITH_ERRORS', NULL, 'idem-1', '2026-01-02 03:04:05.678',
    '{"key": "idem-1", "scope": "run"}', 'my-task', true, '{"hello":"wörld","n":[1,2.5,null]}', 'application/json', NULL, '{}',
    'trace_1', 'span_1', 'env_1', 'PRODUCTION', 'proj_1', 'org_1', 'task/my-task',
    3, '2026-01-02 03:04:05.001', '2026-01-02 03:04:06.999', ARRAY['tag a', 'b,"c"', NULL, ''], 1.5, 0.1, false,
    '{"type": "BUILT_IN_ERROR", "message": "tab\there \"quoted\" \\ newline\nend"}', NULL, ARRAY[]::text[], '{v1,v2}', ''
);
INSERT INTO task_run_v2 (id, "friendlyId", "taskIdentifier", payload, "traceId", "spanId", "runtimeEnvironmentId",
    "projectId", queue, "updatedAt")
VALUES ('2Yx0sparse', 'run_sparse', 'other-task', '', 't', 's', 'env_2', 'proj_2', 'q', '2026-06-30 23:59:59.5');
COMMIT;
SQL

capture update_full "UPDATE of a \"TaskRun\" row (REPLICA IDENTITY FULL): 'O' old tuple plus new tuple" <<'SQL'
UPDATE "TaskRun" SET status = 'EXECUTING', "attemptNumber" = 4, "startedAt" = '2026-01-02 03:05:00', "isTest" = false
WHERE id = 'run_full_1';
SQL

# A value over the TOAST threshold that pglz cannot shrink, so it is stored out of line.
capture insert_toast "INSERTs of rows carrying a ~19 KB incompressible value, stored out of line (TOAST), into \"TaskRun\" (FULL) and fixture_default (DEFAULT)" <<'SQL'
BEGIN;
INSERT INTO "TaskRun" (id, "friendlyId", "taskIdentifier", payload, "traceId", "spanId", "runtimeEnvironmentId",
    "projectId", queue, "updatedAt", output)
VALUES ('run_big', 'run_big_friendly', 'big-task', '{}', 't', 's', 'env_1', 'proj_1', 'q', '2026-01-01 00:00:00',
    (SELECT string_agg(md5(random()::text), '') FROM generate_series(1, 600)));
INSERT INTO fixture_default (id, label, mood, spot, big)
VALUES (100, 'big one', 'sad', ROW(7, 'seven'), (SELECT string_agg(md5(random()::text), '') FROM generate_series(1, 600)));
COMMIT;
SQL

capture update_toast_unchanged "UPDATEs that leave the TOASTed value unchanged: the new tuple carries a 'u' cell for it (\"TaskRun\" FULL, then fixture_default DEFAULT)" <<'SQL'
BEGIN;
UPDATE "TaskRun" SET status = 'COMPLETED_SUCCESSFULLY', "completedAt" = '2026-01-01 00:01:00' WHERE id = 'run_big';
UPDATE fixture_default SET label = 'big one, relabelled' WHERE id = 100;
COMMIT;
SQL

capture insert_default "INSERTs into fixture_default (REPLICA IDENTITY DEFAULT; enum and composite columns, hence Type messages)" <<'SQL'
BEGIN;
INSERT INTO fixture_default (id, label, mood, spot) VALUES (1, 'one', 'happy', ROW(1, 'a b')), (2, 'two', NULL, NULL);
INSERT INTO fixture_child (parent_id, note) VALUES (1, 'child of one');
COMMIT;
SQL

capture update_default_no_old "UPDATE under REPLICA IDENTITY DEFAULT that keeps the key: no old tuple" <<'SQL'
UPDATE fixture_default SET label = 'one, updated', mood = 'sad' WHERE id = 1;
SQL

capture update_default_key_changed "UPDATE under REPLICA IDENTITY DEFAULT that changes the primary key: 'K' old tuple with only the key" <<'SQL'
UPDATE fixture_default SET id = 20, label = 'two, moved' WHERE id = 2;
SQL

capture delete_full "DELETE from task_run_v2 (REPLICA IDENTITY FULL): 'O' old tuple with the whole row" <<'SQL'
DELETE FROM task_run_v2 WHERE id = '2Yx0sparse';
SQL

capture delete_default "DELETE from fixture_default (REPLICA IDENTITY DEFAULT): 'K' old tuple, non-key columns null" <<'SQL'
DELETE FROM fixture_default WHERE id = 20;
SQL

capture truncate "An INSERT, then TRUNCATEs, one transaction each: plain task_run_v2; fixture_default RESTART IDENTITY CASCADE (cascades to fixture_child); \"TaskRun\", task_run_v2 RESTART IDENTITY; fixture_default CASCADE" <<'SQL'
INSERT INTO task_run_v2 (id, "friendlyId", "taskIdentifier", payload, "traceId", "spanId", "runtimeEnvironmentId",
    "projectId", queue, "updatedAt")
VALUES ('to_truncate', 'to_truncate', 't', '', 't', 's', 'e', 'p', 'q', '2026-01-01');
TRUNCATE task_run_v2;
TRUNCATE fixture_default RESTART IDENTITY CASCADE;
TRUNCATE "TaskRun", task_run_v2 RESTART IDENTITY;
TRUNCATE fixture_default CASCADE;
SQL

psql_ -c "SELECT pg_replication_origin_create('fixture_origin')" >/dev/null
capture origin "A transaction replayed under replication origin 'fixture_origin' (origin LSN 0/1234ABCD): Begin, Origin, ..." <<'SQL'
SELECT pg_replication_origin_session_setup('fixture_origin');
BEGIN;
SELECT pg_replication_origin_xact_setup('0/1234ABCD', '2026-03-04 05:06:07+00');
INSERT INTO fixture_default (id, label) VALUES (300, 'from elsewhere');
COMMIT;
SELECT pg_replication_origin_session_reset();
SQL

capture logical_message "pg_logical_emit_message: a transactional message inside a transaction with an INSERT, then a non-transactional one with binary content" <<'SQL'
BEGIN;
INSERT INTO fixture_default (id, label) VALUES (400, 'with message');
SELECT pg_logical_emit_message(true, 'fixture-tx', 'transactional hello');
COMMIT;
SELECT pg_logical_emit_message(false, 'fixture-nontx', '\x00ff410a'::bytea);
-- PostgreSQL 15 does not flush WAL for a non-transactional message and decoding stops at the
-- flush point, so without a later commit the message would only show up in the next capture.
INSERT INTO fixture_unpublished VALUES (1);
SQL

capture binary_insert "INSERT decoded with the 'binary' option: 'b' cells in the send/recv format (not used by the replicator; covers Cell::Binary)" binary true <<'SQL'
INSERT INTO fixture_default (id, label, mood, spot) VALUES (500, 'binary', 'happy', ROW(5, 'five'));
SQL

capture session_relation_resend "One decoding session over several transactions: the Relation is sent once, then again after ALTER TABLE ADD COLUMN" <<'SQL'
INSERT INTO fixture_default (id, label) VALUES (600, 'first');
INSERT INTO fixture_default (id, label) VALUES (601, 'second');
ALTER TABLE fixture_default ADD COLUMN extra bigint;
INSERT INTO fixture_default (id, label, extra) VALUES (602, 'third', 9007199254740993);
SQL

echo "fixtures written to $OUT"
