"""ClickHouse's native compressed blocks: `decompress=1` bodies, `compress=1` answers.

This is ClickHouse's own framing (CompressedReadBuffer/CompressedWriteBuffer),
not HTTP compression: a body is a run of blocks, each
  16-byte checksum | method (1) | compressed size incl. 9-byte header (UInt32 LE)
  | raw size (UInt32 LE) | payload
with method 0x82 LZ4, 0x90 ZSTD or 0x02 none. The checksum is CityHash128
v1.0.2 (the old CityHash ClickHouse pins, from `clickhouse-cityhash`, not a
current CityHash) of method..payload. The Rust crate sends its inserts this
way by default (LZ4), so a wrong byte order here fails every insert:
checksums are checked, and a mismatch is code 40 CHECKSUM_DOESNT_MATCH, as on
a real server.

lz4, zstandard and clickhouse-cityhash are optional: without one, a request
that needs it fails with NOT_IMPLEMENTED and says which package is missing.
"""

import struct

try:
    import lz4.block as lz4_block
except ImportError:  # pragma: no cover
    lz4_block = None
try:
    import zstandard
except ImportError:  # pragma: no cover
    zstandard = None
try:
    from clickhouse_cityhash.cityhash import CityHash128
except ImportError:  # pragma: no cover
    CityHash128 = None

from .errors import CHError


def cityhash_bytes(block):
    """ClickHouse's on-wire checksum of a compressed block: CityHash128 (v1.0.2)
    as two little-endian UInt64 (first, second); clickhouse-cityhash returns
    first << 64 | second."""
    h = CityHash128(block)
    return struct.pack("<QQ", h >> 64, h & 0xFFFFFFFFFFFFFFFF)


def decompress_native(data, verify=True):
    """Decode ClickHouse native compressed blocks (`decompress=1`) into a list of chunks."""
    out = []
    pos, n = 0, len(data)
    while pos < n:
        if n - pos < 25:
            raise CHError("CANNOT_DECOMPRESS",
                          "Cannot decompress: truncated compressed block header at offset %d" % pos)
        checksum = bytes(data[pos:pos + 16])
        method = data[pos + 16]
        comp_size, raw_size = struct.unpack_from("<II", data, pos + 17)
        if comp_size < 9 or pos + 16 + comp_size > n:
            raise CHError("CANNOT_DECOMPRESS",
                          "Cannot decompress: compressed block of %d bytes at offset %d is truncated"
                          % (comp_size, pos))
        block = data[pos + 16:pos + 16 + comp_size]  # 9-byte header + payload
        if verify:
            if CityHash128 is None:
                raise CHError("NOT_IMPLEMENTED", "decompress=1 needs the python package "
                              "clickhouse-cityhash to check block checksums (or send "
                              "http_native_compression_disable_checksumming_on_decompress=1)")
            actual = cityhash_bytes(bytes(block))
            if actual != checksum:
                ref = struct.unpack("<QQ", checksum)
                act = struct.unpack("<QQ", actual)
                raise CHError("CHECKSUM_DOESNT_MATCH",
                              "Checksum doesn't match: corrupted data. Reference: %016x%016x. "
                              "Actual: %016x%016x. Size of compressed block: %d"
                              % (ref[0], ref[1], act[0], act[1], comp_size))
        payload = bytes(block[9:])
        try:
            if method == 0x82:
                if lz4_block is None:
                    raise CHError("NOT_IMPLEMENTED", "LZ4 compressed body received but the "
                                  "python package lz4 is not installed")
                chunk = lz4_block.decompress(payload, uncompressed_size=raw_size)
            elif method == 0x90:
                if zstandard is None:
                    raise CHError("NOT_IMPLEMENTED", "ZSTD compressed body received but the "
                                  "python package zstandard is not installed")
                chunk = zstandard.ZstdDecompressor().decompress(payload, max_output_size=raw_size)
            elif method == 0x02:
                chunk = payload
            else:
                raise CHError("UNKNOWN_COMPRESSION_METHOD",
                              "Unknown compression method: 0x%02x" % method)
        except CHError:
            raise
        except Exception as e:
            raise CHError("CANNOT_DECOMPRESS", "Cannot decompress block at offset %d: %s" % (pos, e))
        if len(chunk) != raw_size:
            raise CHError("CANNOT_DECOMPRESS", "Cannot decompress: block at offset %d decoded "
                          "to %d bytes, header says %d" % (pos, len(chunk), raw_size))
        if chunk:
            out.append(chunk)
        pos += 16 + comp_size
    return out


def compress_native_lz4(data, block_size=1 << 20):
    if lz4_block is None or CityHash128 is None:
        raise CHError("NOT_IMPLEMENTED", "compress=1 needs the python packages lz4 and clickhouse-cityhash")
    out = []
    for off in range(0, max(len(data), 1), block_size):
        chunk = data[off:off + block_size]
        payload = lz4_block.compress(chunk, store_size=False)
        block = struct.pack("<BII", 0x82, len(payload) + 9, len(chunk)) + payload
        out.append(cityhash_bytes(block) + block)
    return b"".join(out)
