"""chserver: a ClickHouse HTTP interface in front of chDB, the embedded ClickHouse engine.

chDB (PyPI `chdb-core`) is the real ClickHouse engine (26.x) built as a Python
extension. It has no server and cannot start ClickHouse's own HTTP handler, so
this package speaks the part of the ClickHouse HTTP interface (port 8123) that the
Rust `clickhouse` crate (0.15) and curl use, and runs every statement in ONE
persistent chDB session. runs-replicator uses it for integration tests and
for the quickstart that runs without Docker.

What it speaks:
  * GET/HEAD /ping and GET / without a query: "Ok.\\n" (no authentication)
  * the query in the `query` URL parameter, in the body, or in a
    multipart/form-data body (`query` plus `param_*` fields, as the crate
    sends them for `.param()`); `query` + body are joined with a newline
  * URL parameters `database`, `default_format`, `query_id`, `param_*`, and the
    headers X-ClickHouse-Database / X-ClickHouse-Format. Every other parameter
    is a setting: it is applied with SET and reset to its default once a later
    request stops sending it. An unknown setting fails with code 115
    (UNKNOWN_SETTING) and HTTP 404, as on a real server
  * INSERT ... FORMAT <fmt> (and INSERT ... VALUES): the data, i.e. the body
    plus any inline text after the FORMAT name, is written to a temporary file and
    inserted with INSERT ... FROM INFILE (see Engine.run_insert for why not send_insert())
  * request bodies: `decompress=1` (ClickHouse native compressed blocks:
    CityHash128 checksum + method 0x82 LZ4 / 0x90 ZSTD / 0x02 none, checked;
    code 40 CHECKSUM_DOESNT_MATCH on a mismatch), Content-Encoding
    gzip/deflate/zstd/lz4/xz/bz2, chunked transfer encoding, Expect: 100-continue
  * responses: `compress=1` (native LZ4 blocks), HTTP compression by
    Accept-Encoding when enable_http_compression is on (it is by default in
    ClickHouse 25.10+, and so in chDB 26.9), keep-alive
  * errors: ClickHouse's exception-code -> HTTP-status mapping, the
    X-ClickHouse-Exception-Code header, and the body
    `Code: N. DB::Exception: ... (NAME) (version ...)`
  * headers X-ClickHouse-Query-Id, -Format, -Timezone, -Summary
  * a GET request is read-only, as on a real server (code 164 READONLY
    for statements that write); multi-statement queries are refused (code 62)
  * --user/--password: authentication with X-ClickHouse-User/X-ClickHouse-Key,
    HTTP basic auth, or `user`/`password` URL parameters; failures get code
    516 AUTHENTICATION_FAILED with HTTP 401 (a real server answers 403 here)
  * --tls-cert/--tls-key: HTTPS instead of HTTP

Differences from a real clickhouse-server: one shared session, so statements
run one at a time and a plain `SET`/`USE` statement sent as a query stays in
effect for later requests; `session_id` is ignored; one user at most; no
native TCP port (9000); request bodies are read whole into memory before
they run (so a slow streaming INSERT never holds up other requests), and
results are sent only once complete; no progress headers; no query
cancellation when a client disconnects.

Modules, by what they own:
  cli                 command line, start-up, port file, signals
  server              HTTP/1.1: connections, bodies, keep-alive, TLS, routing
  query               one query request: parameters -> statement -> answer
  auth                the user a request authenticates as
  params              which request parameters are settings / query parameters
  errors              ClickHouse exception codes, HTTP statuses, exception text
  sql                 the little SQL lexing routing needs (INSERT data, FORMAT)
  native_compression  ClickHouse native compressed blocks + CityHash checksums
  http_compression    Content-Encoding / Accept-Encoding
  engine              the one chDB session: settings, database, statements, inserts

Usage (chserver.py next to this package is the launcher):
  python chserver.py --path /tmp/chdata --port 8123
  python chserver.py --path /tmp/chdata --port 0 --port-file /tmp/ch.port --verbose
  python -m chserver ...   (the same, run in tools/chserver)
Requires chdb-core; lz4, zstandard and clickhouse-cityhash are optional
(a request that needs a missing one gets a clear error).
"""
