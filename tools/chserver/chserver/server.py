"""The HTTP/1.1 server: connections, request bodies, routing, answers.

A threading stdlib HTTP server (one thread per connection, HTTPS when given a
certificate, the TLS handshake in that thread so a slow client cannot hold up
accept()). Handler reads each request whole (Content-Length or chunked, with
http_receive_timeout), keeps connections alive, routes `/ping`,
`/replicas_status` and `/` without a query to "Ok.", `/` and `/query` to
query.handle, anything else to 404, and sends the answer, or the exception
answer (errors.exception_response) when something failed. Every query answer
carries X-ClickHouse-Query-Id, -Timezone and -Server-Display-Name. With
--verbose it logs one line per request to stderr.

The statements themselves run one at a time on the shared engine (engine.py);
the threads only keep slow clients from holding up others.
"""

import http.server
import socket
import socketserver
import ssl
import sys
import time
import uuid
from urllib.parse import parse_qsl, unquote, urlsplit

from . import query
from .errors import CHError, clip, exception_response

KEEP_ALIVE_TIMEOUT = 30         # seconds an idle keep-alive connection stays open
TLS_HANDSHAKE_TIMEOUT = 10


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "chserver"
    sys_version = ""
    # set by main()
    engine = None
    verbose = False
    auth = None            # (user, password) or None

    # -- logging: one line per request, only with --verbose
    def log_request(self, code="-", size="-"):
        pass

    def log_message(self, fmt, *args):
        if self.verbose:
            sys.stderr.write("chserver: %s %s\n" % (self.client_address[0], fmt % args))

    def handle_one_request(self):
        # idle keep-alive connections are dropped after KEEP_ALIVE_TIMEOUT
        try:
            self.connection.settimeout(KEEP_ALIVE_TIMEOUT)
        except OSError:
            pass
        try:
            super().handle_one_request()
        except (ConnectionError, ssl.SSLError, socket.timeout):
            self.close_connection = True

    # -- plumbing
    def _read_body(self):
        te = (self.headers.get("Transfer-Encoding") or "").lower()
        if "chunked" in te:
            chunks = []
            while True:
                line = self.rfile.readline(65537)
                if not line:
                    raise CHError("NETWORK_ERROR", "unexpected end of chunked request body")
                try:
                    size = int(line.split(b";", 1)[0].strip(), 16)
                except ValueError:
                    raise CHError("BAD_ARGUMENTS", "malformed chunk size line %r" % line[:40])
                if size == 0:
                    while True:  # trailers
                        t = self.rfile.readline(65537)
                        if t in (b"\r\n", b"\n", b""):
                            break
                    break
                data = self.rfile.read(size)
                if len(data) != size:
                    raise CHError("NETWORK_ERROR", "unexpected end of chunked request body")
                chunks.append(data)
                self.rfile.readline(3)
            return b"".join(chunks)
        length = self.headers.get("Content-Length")
        if length is None:
            return b""
        try:
            length = int(length)
        except ValueError:
            raise CHError("BAD_ARGUMENTS", "bad Content-Length %r" % length)
        data = self.rfile.read(length) if length > 0 else b""
        if len(data) != max(length, 0):
            raise CHError("NETWORK_ERROR", "request body ended after %d of %d bytes" % (len(data), length))
        return data

    def _send(self, status, body, headers=None, head_only=False):
        self.send_response(status)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        if self.close_connection:
            self.send_header("Connection", "close")
        else:
            self.send_header("Connection", "Keep-Alive")
            self.send_header("Keep-Alive", "timeout=%d" % KEEP_ALIVE_TIMEOUT)
        self.end_headers()
        if not head_only and body:
            self.wfile.write(body)
        self._status, self._out_bytes = status, len(body)

    def _base_headers(self, query_id):
        return {
            "X-ClickHouse-Query-Id": query_id,
            "X-ClickHouse-Timezone": self.engine.timezone,
            "X-ClickHouse-Server-Display-Name": "chserver",
        }

    def _send_error(self, exc, query_id, head_only=False):
        status, text, body, error_headers = exception_response(exc, self.engine)
        headers = self._base_headers(query_id)
        headers.update(error_headers)
        self._error_text = text
        self._send(status, body, headers, head_only)

    # -- verbs
    def do_HEAD(self):
        self._dispatch(head_only=True)

    def do_GET(self):
        self._dispatch()

    def do_POST(self):
        self._dispatch()

    def do_PUT(self):
        self._dispatch()

    def _dispatch(self, head_only=False):
        t0 = time.monotonic()
        self._status, self._out_bytes, self._error_text = 0, 0, None
        url = urlsplit(self.path)
        params = dict(parse_qsl(url.query, keep_blank_values=True))
        query_id = params.get("query_id") or str(uuid.uuid4())
        body = b""
        try:
            try:
                timeout = float(self.engine.setting_default("http_receive_timeout", params) or 30)
                self.connection.settimeout(timeout if timeout > 0 else None)
            except (ValueError, OSError):
                pass
            try:
                body = self._read_body()
            except CHError as e:  # the connection is unusable after a bad body
                self.close_connection = True
                return self._send_error(e, query_id, head_only)
            except (socket.timeout, TimeoutError):
                self.close_connection = True
                return self._send_error(CHError("SOCKET_TIMEOUT", "Timeout exceeded while reading "
                                                "the request body"), query_id, head_only)
            path = url.path
            if path in ("/ping", "/replicas_status") or (
                    path == "/" and "query" not in params and not body):
                return self._send(200, b"Ok.\n", {"Content-Type": "text/html; charset=UTF-8"}, head_only)
            if path not in ("/", "/query"):
                return self._send(404, b"There is no handle " + path.encode("utf-8", "replace") +
                                  b"\n\nUse / or /ping\n", {"Content-Type": "text/plain; charset=UTF-8"},
                                  head_only)
            try:
                out, answer = query.handle(self.engine, self.auth, self.command, self.headers,
                                           params, body)
                headers = self._base_headers(query_id)
                headers.update(answer)
                self._send(200, out, headers, head_only)
            except Exception as e:
                self._send_error(e, query_id, head_only)
        except (ConnectionError, ssl.SSLError, socket.timeout):
            self.close_connection = True
        finally:
            if self.verbose:
                sys.stderr.write("chserver: %s %s %s %d in=%dB out=%dB %.1fms%s\n" % (
                    self.client_address[0], self.command, clip(unquote(self.path), 300),
                    self._status, len(body), self._out_bytes, (time.monotonic() - t0) * 1e3,
                    " | " + clip(self._error_text, 300) if self._error_text else ""))


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True
    request_queue_size = 128
    tls_context = None

    def finish_request(self, request, client_address):
        if self.tls_context is None:
            return super().finish_request(request, client_address)
        # The TLS handshake runs here, in the connection's own thread, so a slow
        # or plain-HTTP client cannot hold up accept().
        try:
            request.settimeout(TLS_HANDSHAKE_TIMEOUT)
            conn = self.tls_context.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError) as e:
            if Handler.verbose:
                sys.stderr.write("chserver: %s TLS handshake failed: %s\n" % (client_address[0], e))
            return
        try:
            self.RequestHandlerClass(conn, client_address, self)
        finally:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            conn.close()

    def handle_error(self, request, client_address):
        exc = sys.exc_info()[1]
        if isinstance(exc, (ConnectionError, ssl.SSLError, socket.timeout)) and not Handler.verbose:
            return
        super().handle_error(request, client_address)
