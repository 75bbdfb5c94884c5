"""A query request's parameters: which are settings, which are query parameters.

On a real server every URL parameter that the HTTP handler does not consume
itself (NON_SETTING_PARAMS) and that is not a `param_*` query parameter is a
setting, and an unknown one fails the request (UNKNOWN_SETTING). The same holds
here. Some settings only steer the HTTP layer (HTTP_ONLY_SETTINGS): they are
honoured by the front and never SET in the shared session. The parameters may
also come as multipart/form-data fields, which is how the Rust crate sends
`.param()` values.
"""

import re

from .errors import CHError


# URL parameters that ClickHouse's HTTP handler consumes itself. Every other
# parameter (except param_*) is a setting, as on a real server.
NON_SETTING_PARAMS = frozenset({
    "query", "database", "default_format", "decompress", "compress",
    "query_id", "session_id", "session_timeout", "session_check",
    "user", "password", "quota_key", "role", "wait_end_of_query",
    "buffer_size", "stacktrace", "client_protocol_version",
    "default_database", "jwt", "with_stacktrace", "http_response_headers",
})
# Settings that steer only the HTTP layer of a real server, or must never reach
# the shared session: accepted, honoured here where it matters, never SET.
# (`readonly` in particular: once SET it can no longer be reset.)
HTTP_ONLY_SETTINGS = frozenset({
    "enable_http_compression", "http_zlib_compression_level",
    "http_native_compression_disable_checksumming_on_decompress",
    "send_progress_in_http_headers", "http_headers_progress_interval_ms",
    "add_http_cors_header", "http_response_buffer_size",
    "http_wait_end_of_query", "cancel_http_readonly_queries_on_client_close",
    "http_write_exception_in_output_format", "readonly",
    "http_receive_timeout", "http_send_timeout",
})
SETTING_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def query_parameters(params):
    """The `param_*` parameters, by name without the prefix: the values of
    {name:Type} placeholders."""
    return {k[6:]: v for k, v in params.items() if k.startswith("param_")}


def settings_of(params):
    """(every setting the request sends, the part of them to SET in the session).
    A name that cannot be a setting fails with UNKNOWN_SETTING."""
    settings = {}
    for k, v in params.items():
        if k in NON_SETTING_PARAMS or k.startswith("param_"):
            continue
        if not SETTING_NAME_RE.match(k):
            raise CHError("UNKNOWN_SETTING", "Unknown setting '%s'" % k)
        settings[k] = v
    sql_settings = {k: v for k, v in settings.items() if k not in HTTP_ONLY_SETTINGS}
    return settings, sql_settings


def parse_multipart(body, content_type):
    """multipart/form-data -> {name: value}. Fields with a filename are
    external-data tables in ClickHouse, which this front does not support."""
    m = re.search(r'boundary="?([^";]+)"?', content_type, re.I)
    if not m:
        raise CHError("BAD_ARGUMENTS", "multipart/form-data without boundary")
    delim = b"--" + m.group(1).encode("latin-1")
    fields = {}
    parts = body.split(delim)
    for part in parts[1:]:
        if part.startswith(b"--"):
            break
        if part.startswith(b"\r\n"):
            part = part[2:]
        head, sep, value = part.partition(b"\r\n\r\n")
        if not sep:
            continue
        if value.endswith(b"\r\n"):
            value = value[:-2]
        disp = re.search(rb'(?im)^content-disposition:(.*)$', head)
        disp = disp.group(1) if disp else head
        nm = re.search(rb'\bname="([^"]*)"', disp)
        if not nm:
            continue
        if re.search(rb'\bfilename="', disp):
            raise CHError("NOT_IMPLEMENTED", "external data (multipart file %s) is not supported by chserver"
                          % nm.group(1).decode("utf-8", "replace"))
        fields[nm.group(1).decode("utf-8", "replace")] = value.decode("utf-8", "replace")
    return fields
