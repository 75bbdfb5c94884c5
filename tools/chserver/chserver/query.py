"""One query request, from what the client sent to the answer's body and headers.

This is the front's counterpart of ClickHouse's HTTPHandler: it takes a request
to `/` or `/query` apart in the server's order (form fields, authentication,
HTTP Content-Encoding, native blocks, settings, database and format), finds the
statement and, for an INSERT, its data (`query` + "\\n" + body is one stream to
ClickHouse, so the data may start in the query text or the query may be the
head of the body), enforces what a real server refuses (writes in a GET or
with `readonly`, multi-statements), runs it on the engine and encodes the
answer (`compress=1` native blocks, or HTTP compression). The engine formats
the data itself, in the requested format; the front only names its
Content-Type.

The transport (reading the body, keep-alive, sending) is server.py's; errors
raised here become ClickHouse exception answers there.
"""

import json

from .auth import authenticate
from .errors import CHError, clip
from .http_compression import choose_response_encoding, decode_content_encoding
from .native_compression import compress_native_lz4, decompress_native
from .params import parse_multipart, query_parameters, settings_of
from .sql import READ_ONLY_STATEMENTS, inspect_query, parse_insert_head

MAX_QUERY_HEAD = 256 << 10      # where an INSERT header must end in a body (max_query_size)


def handle(engine, auth, command, headers, params, body):
    """Run the query request `command` (GET, POST, ...) with these request
    headers, URL parameters (a dict, updated with multipart form fields) and
    body, as an authenticated user (auth: see auth.authenticate). Returns the
    answer's body and its headers (X-ClickHouse-Summary/-Format, Content-Type,
    Content-Encoding); raises for an error."""
    eng = engine
    ctype = headers.get("Content-Type") or ""
    if ctype.lower().startswith("multipart/form-data"):
        params.update(parse_multipart(body, ctype))
        body = b""
    authenticate(headers, params, auth)

    if body:  # HTTP-level encoding first, then ClickHouse's native blocks
        body = decode_content_encoding(body, headers.get("Content-Encoding"))
    chunks = [body] if body else []
    if params.get("decompress") in ("1", "true") and body:
        verify = params.get("http_native_compression_disable_checksumming_on_decompress") \
            not in ("1", "true")
        chunks = decompress_native(memoryview(body), verify)
        body = None

    qparams = query_parameters(params)
    settings, sql_settings = settings_of(params)
    database = (params.get("database") or headers.get("X-ClickHouse-Database")
                or params.get("default_database") or "default")
    fmt = params.get("default_format") or headers.get("X-ClickHouse-Format") or "TabSeparated"
    readonly = command in ("GET", "HEAD") or settings.get("readonly") not in (None, "", "0")

    answer = {}
    # Split off the INSERT data: ClickHouse reads `query` + "\n" + body as one stream.
    query = params.get("query")
    insert = None
    if query is not None:
        insert = parse_insert_head(query + "\n")
        if insert:
            stmt, in_fmt, start = insert
            inline = (query + "\n")[start:].encode("utf-8")
            data = ([inline] if inline else []) + chunks
    else:
        raw = b"".join(chunks)
        if not raw.strip():
            raise CHError("SYNTAX_ERROR", "Empty query")
        insert = parse_insert_head(raw[:MAX_QUERY_HEAD].decode("latin-1"))
        if insert:
            stmt, in_fmt, start = insert
            stmt = raw[:len(stmt)].decode("utf-8", "replace")
            data = [raw[start:]] if len(raw) > start else []
        else:
            query, chunks = raw.decode("utf-8", "replace"), []

    if insert:
        if readonly:
            raise CHError("READONLY", "Cannot execute query in readonly mode")
        summary = eng.run_insert(stmt, in_fmt, data, database, sql_settings)
        answer["X-ClickHouse-Summary"] = json.dumps(summary, separators=(",", ":"))
        return b"", answer

    if chunks:
        query = query + "\n" + b"".join(chunks).decode("utf-8", "replace")
    if not query.strip():
        raise CHError("SYNTAX_ERROR", "Empty query")
    first, out_fmt, second = inspect_query(query)
    if second is not None:
        raise CHError("SYNTAX_ERROR", "Syntax error (Multi-statements are not allowed): failed at "
                      "position %d (end of query): %s" % (second + 1, clip(query[second:], 60)))
    if readonly and first not in READ_ONLY_STATEMENTS:
        raise CHError("READONLY", "Cannot execute query in readonly mode")
    out, summary = eng.run_query(query, fmt, database, sql_settings, qparams, first)
    out_fmt = out_fmt or fmt
    answer["X-ClickHouse-Format"] = out_fmt
    answer["Content-Type"] = content_type_for(out_fmt)
    answer["X-ClickHouse-Summary"] = json.dumps(summary, separators=(",", ":"))
    if params.get("compress") in ("1", "true"):
        out = compress_native_lz4(out)
        answer["Content-Type"] = "application/octet-stream"
    elif eng.setting_default("enable_http_compression", settings) in ("1", "true"):
        name, fn = choose_response_encoding(headers.get("Accept-Encoding"))
        if name:
            try:
                level = int(eng.setting_default("http_zlib_compression_level", settings) or 3)
            except ValueError:
                level = 3
            out = fn(out, level)
            answer["Content-Encoding"] = name
    return out, answer


def content_type_for(fmt):
    """The Content-Type of an answer in output format fmt."""
    f = fmt.lower()
    if f.startswith(("tabseparated", "tsv")):
        return "text/tab-separated-values; charset=UTF-8"
    if f.startswith("csv"):
        return "text/csv; charset=UTF-8"
    if f.startswith("json") or f == "ndjson":
        return "application/json; charset=UTF-8"
    if f.startswith(("pretty", "vertical", "markdown", "values", "prometheus", "xml")):
        return "text/plain; charset=UTF-8"
    return "application/octet-stream"
