"""One query request (chserver/query.py, params.py, sql.py): headers of an
answer, settings and query parameters from the URL or a multipart form,
read-only GETs and multi-statements."""

import json
import uuid

from .support import ServerTestCase


class TestQuery(ServerTestCase):

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

    def test_summary_counts_the_rows_storage_read(self):
        # As a server does: read_rows is what the table scan read, not the size of the result.
        self.q("CREATE TABLE summary_rows (k UInt32) ENGINE = MergeTree ORDER BY k")
        self.q("INSERT INTO summary_rows SELECT number FROM numbers(1000)")
        r = self.ok(self.server.query("SELECT count() FROM summary_rows WHERE k % 7 = 0"))
        self.assertEqual(r.text, "143\n")
        self.assertEqual(json.loads(r.headers["X-ClickHouse-Summary"])["read_rows"], "1000")

    def test_unknown_setting_is_115(self):
        r = self.server.query("SELECT 1", params={"no_such_setting_xyz": "1"})
        self.assertCHError(r, 115, 404, "UNKNOWN_SETTING")
        self.assertEqual(self.q("SELECT 1"), "1\n")  # the session is fine afterwards

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

    def test_get_is_readonly_and_multistatements_refused(self):
        r = self.server.query("CREATE TABLE ro (x UInt8) ENGINE = Memory", method="GET")
        self.assertCHError(r, 164, 500, "READONLY")
        r = self.server.query("SELECT 1; SELECT 2")
        self.assertCHError(r, 62, 400, "SYNTAX_ERROR")
        self.assertEqual(self.q("SELECT ';';"), ";\n")
