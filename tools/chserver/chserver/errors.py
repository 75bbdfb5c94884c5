"""ClickHouse exceptions as the HTTP interface reports them.

Owns the error side of the protocol: CHError (an error this front raises
itself, by ClickHouse error name), ClickHouse's exception-code -> HTTP-status
mapping, and the exception text a client sees,
`Code: N. DB::Exception: ... (NAME) (version ...)`, whether the error came from
this front or from the engine, with the X-ClickHouse-Exception-Code header.
Clients act on these (the replicator takes the code from the text,
src/sink/client.rs; the tests check code, status and text), so they follow a
real server closely.

The codes themselves are the engine's: Engine resolves the names below with
errorCodeToName() at start-up (FALLBACK_CODES if it cannot).
"""

import re

# ClickHouse's exceptionCodeToHTTPStatus (src/Server/HTTP/exceptionCodeToHTTPStatus.cpp),
# by error name; the names are resolved to codes with the engine's errorCodeToName().
_STATUS_GROUPS = {
    401: ("REQUIRED_PASSWORD",),
    403: ("UNKNOWN_USER", "WRONG_PASSWORD", "SET_NON_GRANTED_ROLE", "ACCESS_DENIED"),
    400: ("BAD_ARGUMENTS", "CANNOT_COMPILE_REGEXP", "CANNOT_PARSE_TEXT",
          "CANNOT_PARSE_ESCAPE_SEQUENCE", "CANNOT_PARSE_QUOTED_STRING",
          "CANNOT_PARSE_DATE", "CANNOT_PARSE_DATETIME", "CANNOT_PARSE_NUMBER",
          "CANNOT_PARSE_DOMAIN_VALUE_FROM_STRING", "CANNOT_PARSE_IPV4",
          "CANNOT_PARSE_IPV6", "CANNOT_PARSE_INPUT_ASSERTION_FAILED",
          "CANNOT_PARSE_UUID", "DUPLICATE_COLUMN", "ILLEGAL_COLUMN",
          "UNKNOWN_ELEMENT_IN_AST", "UNKNOWN_TYPE_OF_AST_NODE",
          "THERE_IS_NO_COLUMN", "TOO_DEEP_AST", "TOO_BIG_AST",
          "UNEXPECTED_AST_STRUCTURE", "SYNTAX_ERROR", "INCORRECT_DATA",
          "TYPE_MISMATCH", "VALUE_IS_OUT_OF_RANGE_OF_DATA_TYPE"),
    404: ("UNKNOWN_TABLE", "UNKNOWN_FUNCTION", "UNKNOWN_IDENTIFIER",
          "UNKNOWN_TYPE", "UNKNOWN_STORAGE", "UNKNOWN_DATABASE",
          "UNKNOWN_SETTING", "UNKNOWN_DIRECTION_OF_SORTING",
          "UNKNOWN_AGGREGATE_FUNCTION", "UNKNOWN_FORMAT",
          "UNKNOWN_DATABASE_ENGINE", "UNKNOWN_TYPE_OF_QUERY", "UNKNOWN_ROLE"),
    413: ("QUERY_IS_TOO_LARGE",),
    501: ("NOT_IMPLEMENTED",),
    503: ("SOCKET_TIMEOUT", "CANNOT_OPEN_FILE", "CANNOT_SCHEDULE_TASK"),
    411: ("HTTP_LENGTH_REQUIRED",),
    408: ("TIMEOUT_EXCEEDED",),
    415: ("UNSUPPORTED_MEDIA_TYPE",),
}
STATUS_BY_NAME = {name: status for status, names in _STATUS_GROUPS.items() for name in names}
# Deliberate difference: a real server maps AUTHENTICATION_FAILED to 403; this
# front answers 401 (with WWW-Authenticate) as the project's tests expect.
STATUS_BY_NAME["AUTHENTICATION_FAILED"] = 401

# Codes of the errors this front raises itself (used if the engine's table is missing).
FALLBACK_CODES = {
    "UNSUPPORTED_METHOD": 1, "BAD_ARGUMENTS": 36, "CHECKSUM_DOESNT_MATCH": 40,
    "NOT_IMPLEMENTED": 48, "SYNTAX_ERROR": 62, "UNKNOWN_COMPRESSION_METHOD": 89,
    "UNKNOWN_SETTING": 115, "READONLY": 164, "SOCKET_TIMEOUT": 209,
    "CANNOT_DECOMPRESS": 271, "NETWORK_ERROR": 210, "AUTHENTICATION_FAILED": 516,
    "STD_EXCEPTION": 1001,
}
CODE_RE = re.compile(r"Code: (\d+)\. ")
TRAILING_VERSION_RE = re.compile(r"\s*\(version [^()]*(?:\([^()]*\))?[^()]*\)\s*$")
TRAILING_NAME_RE = re.compile(r"\(([A-Z][A-Z0-9_]+)\)\s*$")


class CHError(Exception):
    """An error raised by this front, reported like a ClickHouse exception."""

    def __init__(self, name, message, extra_headers=None):
        super().__init__(message)
        self.name = name
        self.message = message
        self.extra_headers = extra_headers or {}


def exception_response(exc, engine):
    """(HTTP status, exception text, response body, headers) for an exception:
    a CHError, or one from the engine whose message carries `Code: N.`. The
    headers are Content-Type and X-ClickHouse-Exception-Code, plus those the
    CHError asks for (WWW-Authenticate)."""
    extra = {}
    if isinstance(exc, CHError):
        name, code = exc.name, engine.code_of(exc.name)
        text = "Code: %d. DB::Exception: %s. (%s)" % (code, exc.message.rstrip("."), name)
        extra = exc.extra_headers
    else:
        text = engine_error_text(exc)
        for pfx in ("Streaming insert append failed: ", "Streaming insert finish failed: "):
            text = text.replace(pfx, "")
        m = CODE_RE.search(text)
        if m:
            text = text[m.start():]
            code = int(m.group(1))
        elif "send_insert does not support" in text:
            code = engine.code_of("NOT_IMPLEMENTED")
            text = "Code: %d. DB::Exception: %s. (NOT_IMPLEMENTED)" % (code, text)
        else:
            code = engine.code_of("STD_EXCEPTION")
            text = "Code: %d. DB::Exception: %s: %s. (STD_EXCEPTION)" % (
                code, type(exc).__name__, text)
        text = TRAILING_VERSION_RE.sub("", text)
        nm = TRAILING_NAME_RE.search(text)
        name = nm.group(1) if nm else ""
    status = engine.status_by_code.get(code, STATUS_BY_NAME.get(name, 500))
    body = encode_raw("%s (version %s (chdb))\n" % (text, engine.version))
    headers = {"Content-Type": "text/plain; charset=UTF-8",
               "X-ClickHouse-Exception-Code": str(code)}
    headers.update(extra)
    return status, text, body, headers


def engine_error_text(exc):
    """The text of an engine exception. chDB's binding fails to decode an error
    message that is not valid UTF-8 (ClickHouse quotes the offending input, e.g.
    a JSON document with invalid UTF-8) and raises UnicodeDecodeError instead,
    with the original message as its .object: recover that, keeping the raw
    bytes (surrogateescape) so the client gets them as a real server sends them."""
    seen, e = set(), exc
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        if isinstance(e, UnicodeDecodeError) and isinstance(e.object, (bytes, bytearray)) \
                and b"Code: " in e.object:
            return bytes(e.object).decode("utf-8", "surrogateescape").strip()
        e = e.__cause__ or e.__context__
    return str(exc).strip()


def encode_raw(text):
    try:
        return text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        return text.encode("utf-8", "replace")


def clip(text, n=200):
    text = text.replace("\n", " ")
    return text if len(text) <= n else text[:n] + "..."
