"""What the chserver tests share: a server subprocess per test class, and
RowBinary / native-block builders made independently of the package under test.

Every test talks to a real chserver.py process on a free port (as the Rust
tests and start.sh do), never to the package's functions, so what is tested
is the wire behaviour. Test classes without server arguments of their own
share one server for the whole run (ServerTestCase).
"""

import atexit
import http.client
import os
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time
import unittest
from urllib.parse import urlencode

try:
    import lz4.block as lz4_block
    from clickhouse_cityhash.cityhash import CityHash128
except ImportError:  # pragma: no cover
    lz4_block = CityHash128 = None

HERE = os.path.dirname(os.path.abspath(__file__))
SERVER = os.path.join(os.path.dirname(HERE), "chserver.py")
START_TIMEOUT = 60


def varint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def rb_string(s):
    b = s.encode("utf-8") if isinstance(s, str) else s
    return varint(len(b)) + b


def rb_row(id_, name):
    """RowBinary of (id UInt32, name String)."""
    return struct.pack("<I", id_) + rb_string(name)


def cityhash_le(block):
    h = CityHash128(block)
    return struct.pack("<QQ", h >> 64, h & 0xFFFFFFFFFFFFFFFF)


def lz4_native_frame(raw):
    """One ClickHouse native compressed block: checksum, 0x82, sizes, LZ4 payload."""
    payload = lz4_block.compress(raw, store_size=False)
    block = struct.pack("<BII", 0x82, 9 + len(payload), len(raw)) + payload
    return cityhash_le(block) + block


class Response:
    def __init__(self, resp):
        self.status = resp.status
        self.headers = resp.headers
        self.body = resp.read()

    @property
    def text(self):
        return self.body.decode("utf-8", "replace")

    def __repr__(self):
        return "<%d %r>" % (self.status, self.body[:300])


class ServerProcess:
    """chserver.py as a subprocess with its own data directory."""

    def __init__(self, path, extra_args=(), scheme="http", ssl_context=None):
        self.path = path
        self.extra_args = list(extra_args)
        self.scheme = scheme
        self.ssl_context = ssl_context
        self.proc = None
        self.port = None
        self.log_path = os.path.join(os.path.dirname(path), "chserver-%s.log" % os.path.basename(path))

    def start(self):
        port_file = self.path + ".port"
        if os.path.exists(port_file):
            os.unlink(port_file)
        self.log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [sys.executable, SERVER, "--path", self.path, "--port", "0",
             "--port-file", port_file] + self.extra_args,
            stdout=self.log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("chserver exited with %s:\n%s" % (self.proc.returncode, self.read_log()))
            if os.path.exists(port_file):
                with open(port_file) as f:
                    text = f.read().strip()
                if text:
                    self.port = int(text)
                    try:
                        if self.request("GET", "/ping").body == b"Ok.\n":
                            return self
                    except OSError:
                        pass
            time.sleep(0.05)
        self.kill()
        raise RuntimeError("chserver did not answer /ping:\n" + self.read_log())

    def read_log(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def connection(self):
        if self.scheme == "https":
            return http.client.HTTPSConnection("127.0.0.1", self.port, timeout=60, context=self.ssl_context)
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)

    def request(self, method, path, body=None, headers=None, conn=None):
        own = conn is None
        conn = conn or self.connection()
        try:
            conn.request(method, path, body=body, headers=headers or {},
                         encode_chunked=not isinstance(body, (bytes, str, type(None))))
            return Response(conn.getresponse())
        finally:
            if own:
                conn.close()

    def query(self, sql, params=None, body=None, headers=None, method="POST"):
        """POST sql in the URL (with body as data) or, without body, sql as the body."""
        qs = dict(params or {})
        if body is not None:
            qs["query"] = sql
            data = body
        else:
            data = sql.encode("utf-8")
        path = "/?" + urlencode(qs) if qs else "/"
        if method == "GET":
            qs["query"] = sql
            return self.request("GET", "/?" + urlencode(qs), headers=headers)
        return self.request("POST", path, body=data, headers=headers)

    def stop(self, sig=signal.SIGTERM, timeout=30):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if getattr(self, "log", None):
            self.log.close()
            self.log = None
        return self.proc.returncode if self.proc else None

    def kill(self):
        return self.stop(signal.SIGKILL)


_shared = None


def shared_server():
    """The server started with the default arguments, one for the whole test
    run (as when all these tests were one class), stopped when the run ends."""
    global _shared
    if _shared is None:
        tmp = tempfile.mkdtemp(prefix="chserver-test-")
        server = ServerProcess(os.path.join(tmp, "db")).start()

        def stop():
            server.stop()
            shutil.rmtree(tmp, ignore_errors=True)
        atexit.register(stop)
        _shared = server
    return _shared


class ServerTestCase(unittest.TestCase):
    """Tests against self.server. Classes with the default arguments share
    shared_server(), so their tests create tables of names of their own; a
    class with extra_args or another scheme gets a server of its own."""
    extra_args = ()
    scheme = "http"
    ssl_context = None

    @classmethod
    def setUpClass(cls):
        if not cls.extra_args and cls.scheme == "http":
            cls.tmp, cls.server = None, shared_server()
            return
        cls.tmp = tempfile.mkdtemp(prefix="chserver-test-")
        cls.server = ServerProcess(os.path.join(cls.tmp, "db"), cls.extra_args, cls.scheme, cls.ssl_context)
        cls.server.start()

    @classmethod
    def tearDownClass(cls):
        if cls.tmp is None:
            return  # the shared server stops at the end of the run
        cls.server.stop()
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def ok(self, resp):
        self.assertEqual(resp.status, 200, resp)
        self.assertNotIn("X-ClickHouse-Exception-Code", resp.headers)
        return resp

    def q(self, *args, **kw):
        return self.ok(self.server.query(*args, **kw)).text

    def assertCHError(self, resp, code, status, name=None):
        self.assertEqual(resp.status, status, resp)
        self.assertEqual(resp.headers.get("X-ClickHouse-Exception-Code"), str(code), resp)
        self.assertRegex(resp.text, r"^Code: %d\. DB::Exception: " % code)
        self.assertRegex(resp.text, r"\(version [^)]*\)?\)\n$")
        if name:
            self.assertIn("(%s)" % name, resp.text)
