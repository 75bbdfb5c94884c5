"""ClickHouse exceptions on the wire (chserver/errors.py): code, HTTP status and
text of the engine's errors, including those quoting invalid UTF-8."""


from .support import ServerTestCase, rb_row, rb_string


class TestErrors(ServerTestCase):

    def test_unknown_table_is_404_code_60(self):
        r = self.server.query("SELECT * FROM no_such_table")
        self.assertCHError(r, 60, 404, "UNKNOWN_TABLE")
        r = self.server.query("INSERT INTO no_such_table FORMAT RowBinary", body=rb_row(1, "x"))
        self.assertCHError(r, 60, 404, "UNKNOWN_TABLE")

    def test_engine_error_quoting_invalid_utf8(self):
        # ClickHouse quotes the bad input in its message; chDB's binding cannot
        # decode such a message, and the front must still report the real error.
        self.q("CREATE TABLE IF NOT EXISTS js (id String, output JSON) ENGINE = MergeTree ORDER BY id")
        body = rb_string("r") + rb_string(b'{"a":"\xff\xfe"}')
        r = self.server.query("INSERT INTO js FORMAT RowBinary", body=body,
                              params={"input_format_binary_read_json_as_string": "1"})
        self.assertCHError(r, 117, 400, "INCORRECT_DATA")
        self.assertIn(b'{"a":"\xff\xfe"}', r.body)  # the raw bytes, as a real server sends them
