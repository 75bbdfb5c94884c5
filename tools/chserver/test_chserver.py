"""Tests of chserver.py, each against a real server subprocess on a free port.

Run: .venv/bin/python -m unittest discover -s tools/chserver -v
(the venv comes from scripts/setup-python.sh).
"""

import base64
import gzip
import http.client
import json
import os
import shutil
import signal
import ssl
import struct
import subprocess
import sys
import tempfile
import time
import unittest
import uuid
from urllib.parse import urlencode

try:
    import lz4.block as lz4_block
    from clickhouse_cityhash.cityhash import CityHash128
except ImportError:  # pragma: no cover
    lz4_block = CityHash128 = None
try:
    import zstandard
except ImportError:  # pragma: no cover
    zstandard = None

HERE = os.path.dirname(os.path.abspath(__file__))
SERVER = os.path.join(HERE, "chserver.py")
START_TIMEOUT = 60

# One LZ4 block exactly as clickhouse-rs 0.15.3 frames `b"hello world" * 10`
# for `decompress=1` (dumped with clickhouse::_priv::lz4_compress): an
# independent check of the checksum's byte order.


# ---------------------------------------------------------------- helpers
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


class ServerTestCase(unittest.TestCase):
    extra_args = ()
    scheme = "http"
    ssl_context = None

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="chserver-test-")
        cls.server = ServerProcess(os.path.join(cls.tmp, "db"), cls.extra_args, cls.scheme, cls.ssl_context)
        cls.server.start()

    @classmethod
    def tearDownClass(cls):
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


# ---------------------------------------------------------------- tests
class TestProtocol(ServerTestCase):

    def test_ping_and_root(self):
        for path in ("/ping", "/"):
            r = self.server.request("GET", path)
            self.assertEqual((r.status, r.body), (200, b"Ok.\n"))
        r = self.server.request("HEAD", "/ping")
        self.assertEqual(r.status, 200)
        self.assertEqual(self.server.request("GET", "/nope").status, 404)

    def test_select_headers(self):
        qid = str(uuid.uuid4())
        r = self.ok(self.server.query("SELECT 1 AS x FORMAT JSONEachRow", params={"query_id": qid}))
        self.assertEqual(json.loads(r.body), {"x": 1})
        self.assertEqual(r.headers["X-ClickHouse-Query-Id"], qid)
        self.assertEqual(r.headers["X-ClickHouse-Format"], "JSONEachRow")
        self.assertTrue(r.headers["X-ClickHouse-Timezone"])
        summary = json.loads(r.headers["X-ClickHouse-Summary"])
        self.assertIn("read_rows", summary)
        r = self.ok(self.server.query("SELECT 2", params={"default_format": "JSONCompact"}))
        self.assertEqual(json.loads(r.body)["data"], [[2]])
        self.assertEqual(r.headers["X-ClickHouse-Format"], "JSONCompact")

    def test_create_insert_lz4_rowbinary_and_read_back(self):
        self.q("CREATE DATABASE IF NOT EXISTS lz4db")
        self.q("CREATE TABLE lz4db.t (id UInt32, name String) ENGINE = MergeTree ORDER BY id")
        rows = [(i, "name-%d-%s" % (i, "é" * (i % 3))) for i in range(1000)]
        raw = b"".join(rb_row(i, n) for i, n in rows)
        # two blocks, as the crate sends them for larger inserts
        body = lz4_native_frame(raw[:5000]) + lz4_native_frame(raw[5000:])
        r = self.ok(self.server.query("INSERT INTO t (id, name) FORMAT RowBinary", body=body,
                                      params={"database": "lz4db", "decompress": "1"}))
        self.assertEqual(json.loads(r.headers["X-ClickHouse-Summary"])["written_rows"], "1000")
        out = self.q("SELECT id, name FROM t ORDER BY id FORMAT TSV", params={"database": "lz4db"})
        self.assertEqual(out, "".join("%d\t%s\n" % row for row in rows))
        # read back as RowBinary too
        r = self.ok(self.server.query("SELECT id, name FROM lz4db.t WHERE id < 3 ORDER BY id",
                                      params={"default_format": "RowBinary"}))
        self.assertEqual(r.body, b"".join(rb_row(i, n) for i, n in rows[:3]))

    def test_crate_frame_fixture(self):
        """A block framed by the Rust crate itself (not by this file's helper)."""
        self.q("CREATE TABLE IF NOT EXISTS crate_frame (s String) ENGINE = Memory")
        self.ok(self.server.query("INSERT INTO crate_frame FORMAT RawBLOB",
                                  body=bytes.fromhex(CRATE_LZ4_FRAME_HEX), params={"decompress": "1"}))
        self.assertEqual(self.q("SELECT s FROM crate_frame FORMAT RawBLOB"), "hello world" * 10)

    def test_bad_checksum_is_code_40(self):
        self.q("CREATE TABLE IF NOT EXISTS cksum (id UInt32, name String) ENGINE = MergeTree ORDER BY id")
        frame = bytearray(lz4_native_frame(rb_row(1, "x")))
        frame[0] ^= 0xFF
        r = self.server.query("INSERT INTO cksum FORMAT RowBinary", body=bytes(frame), params={"decompress": "1"})
        self.assertCHError(r, 40, 500, "CHECKSUM_DOESNT_MATCH")
        frame = bytearray(lz4_native_frame(rb_row(1, "x")))
        frame[-1] ^= 0x01  # corrupt the payload instead
        r = self.server.query("INSERT INTO cksum FORMAT RowBinary", body=bytes(frame), params={"decompress": "1"})
        self.assertCHError(r, 40, 500)
        self.assertEqual(self.q("SELECT count() FROM cksum"), "0\n")

    @unittest.skipIf(zstandard is None, "zstandard not installed")
    def test_zstd_and_none_native_blocks(self):
        self.q("CREATE TABLE IF NOT EXISTS zs (id UInt32, name String) ENGINE = MergeTree ORDER BY id")
        raw = rb_row(1, "zstd")
        payload = zstandard.ZstdCompressor().compress(raw)
        block = struct.pack("<BII", 0x90, 9 + len(payload), len(raw)) + payload
        raw2 = rb_row(2, "none")
        block2 = struct.pack("<BII", 0x02, 9 + len(raw2), len(raw2)) + raw2
        body = cityhash_le(block) + block + cityhash_le(block2) + block2
        self.ok(self.server.query("INSERT INTO zs FORMAT RowBinary", body=body, params={"decompress": "1"}))
        self.assertEqual(self.q("SELECT id, name FROM zs ORDER BY id"), "1\tzstd\n2\tnone\n")

    def test_unknown_table_is_404_code_60(self):
        r = self.server.query("SELECT * FROM no_such_table")
        self.assertCHError(r, 60, 404, "UNKNOWN_TABLE")
        r = self.server.query("INSERT INTO no_such_table FORMAT RowBinary", body=rb_row(1, "x"))
        self.assertCHError(r, 60, 404, "UNKNOWN_TABLE")

    def test_a_refused_insert_is_an_error_and_stores_nothing(self):
        # chDB's streaming insert swallows sink errors; the front must not.
        self.q("CREATE TABLE refusing (id String, CONSTRAINT c CHECK id != 'bad') "
               "ENGINE = MergeTree ORDER BY id")
        r = self.server.query("INSERT INTO refusing FORMAT JSONEachRow",
                              body=b'{"id":"good"}\n{"id":"bad"}\n')
        self.assertCHError(r, 469, 500, "VIOLATED_CONSTRAINT")
        self.assertEqual(self.q("SELECT count() FROM refusing"), "0\n")
        self.q("INSERT INTO refusing FORMAT JSONEachRow", body=b'{"id":"good"}\n')
        self.assertEqual(self.q("SELECT count() FROM refusing"), "1\n")

    def test_unknown_setting_is_115(self):
        r = self.server.query("SELECT 1", params={"no_such_setting_xyz": "1"})
        self.assertCHError(r, 115, 404, "UNKNOWN_SETTING")
        self.assertEqual(self.q("SELECT 1"), "1\n")  # the session is fine afterwards

    def test_settings_apply_and_reset(self):
        get = "SELECT getSetting('max_block_size'), getSetting('implicit_select')"
        default = self.q(get)
        self.assertEqual(self.q(get, params={"max_block_size": "1234"}).split("\t")[0], "1234")
        self.assertEqual(self.q(get), default)  # reset once no longer sent
        # a failing SET leaves no half-applied settings behind
        self.server.query("SELECT 1", params={"max_block_size": "77", "no_such_setting_xyz": "1"})
        self.assertEqual(self.q(get), default)

    def test_query_params_url_and_multipart(self):
        self.assertEqual(self.q("SELECT {n:UInt32} + 1", params={"param_n": "41"}, method="GET"), "42\n")
        boundary = "XbOuNdArY"
        parts = []
        for name, value in (("query", "SELECT {n:UInt32} * 2, {s:String}"), ("param_n", "21"), ("param_s", "a b")):
            parts.append("--%s\r\nContent-Disposition: form-data; name=\"%s\"\r\n\r\n%s\r\n" % (boundary, name, value))
        body = ("".join(parts) + "--%s--\r\n" % boundary).encode()
        r = self.server.request("POST", "/", body=body,
                                headers={"Content-Type": "multipart/form-data; boundary=" + boundary})
        self.assertEqual(self.ok(r).text, "42\ta b\n")

    def test_body_encodings(self):
        self.q("CREATE TABLE IF NOT EXISTS enc (id UInt32, name String) ENGINE = MergeTree ORDER BY id")
        r = self.server.query("INSERT INTO enc FORMAT RowBinary", body=gzip.compress(rb_row(1, "gzip")),
                              headers={"Content-Encoding": "gzip"})
        self.ok(r)
        # chunked transfer encoding, with the data split across chunks
        data = rb_row(2, "chunked") + rb_row(3, "chunked")
        r = self.server.request("POST", "/?" + urlencode({"query": "INSERT INTO enc FORMAT RowBinary"}),
                                body=iter([data[:3], data[3:7], data[7:]]))
        self.ok(r)
        # the query in the body, data after it
        self.ok(self.server.query("INSERT INTO enc FORMAT TSV\n4\tinline\n"))
        self.assertEqual(self.q("SELECT id, name FROM enc ORDER BY id"),
                         "1\tgzip\n2\tchunked\n3\tchunked\n4\tinline\n")

    def test_response_compression(self):
        r = self.ok(self.server.query("SELECT number FROM numbers(3)", params={"compress": "1"}))
        body, out = r.body, b""
        while body:
            block = body[16:]
            comp, rawlen = struct.unpack_from("<II", block, 1)
            self.assertEqual(cityhash_le(block[:comp]), body[:16])
            out += lz4_block.decompress(block[9:comp], uncompressed_size=rawlen)
            body = block[comp:]
        self.assertEqual(out, b"0\n1\n2\n")
        r = self.ok(self.server.query("SELECT 7", headers={"Accept-Encoding": "gzip"}))
        self.assertEqual(r.headers["Content-Encoding"], "gzip")
        self.assertEqual(gzip.decompress(r.body), b"7\n")
        r = self.ok(self.server.query("SELECT 7", headers={"Accept-Encoding": "gzip"},
                                      params={"enable_http_compression": "0"}))
        self.assertNotIn("Content-Encoding", r.headers)
        self.assertEqual(r.body, b"7\n")

    def test_keep_alive(self):
        conn = self.server.connection()
        try:
            conn.connect()
            sock = conn.sock
            for i in range(3):
                r = self.server.request("POST", "/", body=b"SELECT %d" % i, conn=conn)
                self.assertEqual(r.body, b"%d\n" % i)
            r = self.server.request("POST", "/", body=b"SELECT * FROM nope", conn=conn)
            self.assertEqual(r.status, 404)
            r = self.server.request("GET", "/ping", conn=conn)
            self.assertEqual(r.body, b"Ok.\n")
            self.assertIs(conn.sock, sock)
        finally:
            conn.close()

    def test_get_is_readonly_and_multistatements_refused(self):
        r = self.server.query("CREATE TABLE ro (x UInt8) ENGINE = Memory", method="GET")
        self.assertCHError(r, 164, 500, "READONLY")
        r = self.server.query("SELECT 1; SELECT 2")
        self.assertCHError(r, 62, 400, "SYNTAX_ERROR")
        self.assertEqual(self.q("SELECT ';';"), ";\n")

    def test_engine_error_quoting_invalid_utf8(self):
        # ClickHouse quotes the bad input in its message; chDB's binding cannot
        # decode such a message, and the front must still report the real error.
        self.q("CREATE TABLE IF NOT EXISTS js (id String, output JSON) ENGINE = MergeTree ORDER BY id")
        body = rb_string("r") + rb_string(b'{"a":"\xff\xfe"}')
        r = self.server.query("INSERT INTO js FORMAT RowBinary", body=body,
                              params={"input_format_binary_read_json_as_string": "1"})
        self.assertCHError(r, 117, 400, "INCORRECT_DATA")
        self.assertIn(b'{"a":"\xff\xfe"}', r.body)  # the raw bytes, as a real server sends them

    def test_auth_off_accepts_any_credentials(self):
        self.assertEqual(self.q("SELECT 1", headers={"X-ClickHouse-User": "someone", "X-ClickHouse-Key": "x"}), "1\n")
        self.assertEqual(self.q("SELECT 1", params={"user": "default", "password": ""}), "1\n")


class TestAuth(ServerTestCase):
    extra_args = ("--user", "alice", "--password", "s3cret pw", "--setting", "max_block_size=4321")
    creds = {"X-ClickHouse-User": "alice", "X-ClickHouse-Key": "s3cret pw"}

    def test_server_wide_setting(self):
        get = "SELECT getSetting('max_block_size')"
        self.assertEqual(self.q(get, headers=self.creds), "4321\n")
        self.assertEqual(self.q(get, headers=self.creds, params={"max_block_size": "99"}), "99\n")
        self.assertEqual(self.q(get, headers=self.creds), "4321\n")

    def test_ping_needs_no_auth(self):
        self.assertEqual(self.server.request("GET", "/ping").body, b"Ok.\n")

    def test_missing_or_wrong_credentials(self):
        cases = [
            {},
            {"headers": {"X-ClickHouse-User": "alice", "X-ClickHouse-Key": "wrong"}},
            {"headers": {"X-ClickHouse-User": "bob", "X-ClickHouse-Key": "s3cret pw"}},
            {"headers": {"Authorization": "Basic " + base64.b64encode(b"alice:nope").decode()}},
            {"params": {"user": "alice", "password": "nope"}},
        ]
        for kw in cases:
            with self.subTest(**kw):
                r = self.server.query("SELECT 1", **kw)
                self.assertCHError(r, 516, 401, "AUTHENTICATION_FAILED")
                self.assertIn("WWW-Authenticate", r.headers)

    def test_each_auth_method(self):
        good = [
            {"headers": {"X-ClickHouse-User": "alice", "X-ClickHouse-Key": "s3cret pw"}},
            {"headers": {"Authorization": "Basic " + base64.b64encode(b"alice:s3cret pw").decode()}},
            {"params": {"user": "alice", "password": "s3cret pw"}},
        ]
        for kw in good:
            with self.subTest(**kw):
                self.assertEqual(self.q("SELECT 1", **kw), "1\n")

    def test_mixing_methods_is_refused(self):
        r = self.server.query("SELECT 1", headers={"X-ClickHouse-User": "alice", "X-ClickHouse-Key": "s3cret pw"},
                              params={"user": "alice"})
        self.assertCHError(r, 516, 401)
        self.assertIn("simultaneously", r.text)


def have_openssl():
    return shutil.which("openssl") is not None


@unittest.skipUnless(have_openssl(), "openssl CLI not found")
class TestTLS(ServerTestCase):
    scheme = "https"

    @classmethod
    def setUpClass(cls):
        cls.certdir = tempfile.mkdtemp(prefix="chserver-tls-")
        cert, key = os.path.join(cls.certdir, "cert.pem"), os.path.join(cls.certdir, "key.pem")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key,
                        "-out", cert, "-days", "2", "-subj", "/CN=localhost",
                        "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        cls.ssl_context = ssl.create_default_context(cafile=cert)
        cls.extra_args = ("--tls-cert", cert, "--tls-key", key)
        super().setUpClass()

    @classmethod
    def tearDownClass(cls):
        super().tearDownClass()
        shutil.rmtree(cls.certdir, ignore_errors=True)

    def test_https_query(self):
        self.assertEqual(self.server.request("GET", "/ping").body, b"Ok.\n")
        self.assertEqual(self.q("SELECT 40 + 2"), "42\n")
        conn = self.server.connection()
        conn.connect()
        self.assertIsInstance(conn.sock, ssl.SSLSocket)
        conn.close()

    def test_plain_http_is_refused(self):
        conn = http.client.HTTPConnection("127.0.0.1", self.server.port, timeout=10)
        with self.assertRaises((OSError, http.client.HTTPException)):
            conn.request("GET", "/ping")
            conn.getresponse().read()
        conn.close()
        self.assertEqual(self.q("SELECT 1"), "1\n")  # still serving


class TestLifecycle(unittest.TestCase):

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="chserver-life-")
        self.path = os.path.join(self.tmp, "db")

    def tearDown(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def test_kill9_and_restart_keeps_data(self):
        s = ServerProcess(self.path).start()
        try:
            s.query("CREATE TABLE k (id UInt32, name String) ENGINE = MergeTree ORDER BY id")
            r = s.query("INSERT INTO k FORMAT RowBinary", body=b"".join(rb_row(i, "r%d" % i) for i in range(100)))
            self.assertEqual(r.status, 200, r)
        finally:
            self.assertEqual(s.kill(), -signal.SIGKILL)
        s = ServerProcess(self.path).start()
        try:
            r = s.query("SELECT count(), sum(id) FROM k")
            self.assertEqual((r.status, r.text), (200, "100\t4950\n"))
            r = s.query("INSERT INTO k FORMAT RowBinary", body=rb_row(1000, "after restart"))
            self.assertEqual(r.status, 200, r)
        finally:
            self.assertEqual(s.stop(), 0)  # SIGTERM: clean exit
        self.assertIn("stopped", s.read_log())
        s = ServerProcess(self.path).start()
        try:
            self.assertEqual(s.query("SELECT count() FROM k").text, "101\n")
        finally:
            s.stop()

    def test_second_process_on_same_path_fails(self):
        s = ServerProcess(self.path).start()
        try:
            other = ServerProcess(self.path)
            with self.assertRaises(RuntimeError):
                other.start()
            other.stop()
        finally:
            s.stop()


CRATE_LZ4_FRAME_HEX = (
    "5118b7df5899b3f0328b5012cf7ef429"            # CityHash128, (first, second) little-endian
    "82" "1f000000" "6e000000"                    # LZ4, 31 bytes with header, 110 raw
    "bf68656c6c6f20776f726c640b004a6020776f726c64"
)

if __name__ == "__main__":
    unittest.main()
