"""Request and answer bodies (chserver/native_compression.py,
http_compression.py): ClickHouse native compressed blocks with CityHash
checksums, HTTP Content-Encoding and Accept-Encoding, chunked transfer, data
inline after the query."""

import gzip
import json
import struct
import unittest
from urllib.parse import urlencode

from .support import ServerTestCase, cityhash_le, lz4_block, lz4_native_frame, rb_row

try:
    import zstandard
except ImportError:  # pragma: no cover
    zstandard = None

# One LZ4 block exactly as clickhouse-rs 0.15.3 frames `b"hello world" * 10`
# for `decompress=1` (dumped with clickhouse::_priv::lz4_compress): an
# independent check of the checksum's byte order.
CRATE_LZ4_FRAME_HEX = (
    "5118b7df5899b3f0328b5012cf7ef429"            # CityHash128, (first, second) little-endian
    "82" "1f000000" "6e000000"                    # LZ4, 31 bytes with header, 110 raw
    "bf68656c6c6f20776f726c640b004a6020776f726c64"
)


class TestNativeCompression(ServerTestCase):

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
        """A block framed by the Rust crate itself (not by support.lz4_native_frame)."""
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


class TestHTTPBodies(ServerTestCase):

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
