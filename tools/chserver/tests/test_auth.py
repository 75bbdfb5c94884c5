"""Authentication (chserver/auth.py): with --user/--password each of the three
ways to send credentials, failures and mixing them; without, anyone."""

import base64

from .support import ServerTestCase


class TestAuth(ServerTestCase):
    extra_args = ("--user", "alice", "--password", "s3cret pw")
    creds = {"X-ClickHouse-User": "alice", "X-ClickHouse-Key": "s3cret pw"}

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


class TestAuthOff(ServerTestCase):

    def test_auth_off_accepts_any_credentials(self):
        self.assertEqual(self.q("SELECT 1", headers={"X-ClickHouse-User": "someone", "X-ClickHouse-Key": "x"}), "1\n")
        self.assertEqual(self.q("SELECT 1", params={"user": "default", "password": ""}), "1\n")
