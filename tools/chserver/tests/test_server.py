"""The HTTP server (chserver/server.py): routing, keep-alive, HTTPS."""

import http.client
import os
import shutil
import ssl
import subprocess
import tempfile
import unittest

from .support import ServerTestCase


class TestServer(ServerTestCase):

    def test_ping_and_root(self):
        for path in ("/ping", "/"):
            r = self.server.request("GET", path)
            self.assertEqual((r.status, r.body), (200, b"Ok.\n"))
        r = self.server.request("HEAD", "/ping")
        self.assertEqual(r.status, 200)
        self.assertEqual(self.server.request("GET", "/nope").status, 404)

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
