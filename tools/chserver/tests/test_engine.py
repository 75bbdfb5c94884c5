"""The chDB session (chserver/engine.py): inserts the engine refuses are errors,
settings are applied per request and reset, --setting defaults, data survives
kill -9 and restarts, one process per data directory."""

import os
import shutil
import signal
import tempfile
import unittest

from .support import ServerProcess, ServerTestCase, rb_row


class TestEngine(ServerTestCase):

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

    def test_settings_apply_and_reset(self):
        get = "SELECT getSetting('max_block_size'), getSetting('implicit_select')"
        default = self.q(get)
        self.assertEqual(self.q(get, params={"max_block_size": "1234"}).split("\t")[0], "1234")
        self.assertEqual(self.q(get), default)  # reset once no longer sent
        # a failing SET leaves no half-applied settings behind
        self.server.query("SELECT 1", params={"max_block_size": "77", "no_such_setting_xyz": "1"})
        self.assertEqual(self.q(get), default)


class TestServerWideSetting(ServerTestCase):
    extra_args = ("--setting", "max_block_size=4321")

    def test_server_wide_setting(self):
        get = "SELECT getSetting('max_block_size')"
        self.assertEqual(self.q(get), "4321\n")
        self.assertEqual(self.q(get, params={"max_block_size": "99"}), "99\n")
        self.assertEqual(self.q(get), "4321\n")


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
