"""HTTP-level compression: a request's Content-Encoding, an answer's by Accept-Encoding.

This is standard HTTP compression, as a real server does it (and independent of
ClickHouse's native blocks in native_compression, which sit inside it: a body
is HTTP-decoded first, then its native blocks are decoded). Requests may come
gzip/deflate/zstd/lz4/xz/bz2 encoded; answers are compressed by the client's
Accept-Encoding, in ClickHouse's order of preference, when
enable_http_compression is on (the engine's default in 25.10+, so in chDB 26.9).
zstandard and lz4 are optional; without them those encodings are neither
accepted nor offered.
"""

import bz2
import gzip
import lzma
import zlib

try:
    import lz4.frame as lz4_frame
except ImportError:  # pragma: no cover
    lz4_frame = None
try:
    import zstandard
except ImportError:  # pragma: no cover
    zstandard = None

from .errors import CHError


def decode_content_encoding(body, encoding):
    enc = (encoding or "").strip().lower()
    if not enc or enc == "identity":
        return body
    try:
        if enc in ("gzip", "x-gzip"):
            return gzip.decompress(body)
        if enc == "deflate":
            return zlib.decompress(body)
        if enc == "xz":
            return lzma.decompress(body)
        if enc in ("bz2", "bzip2"):
            return bz2.decompress(body)
        if enc == "zstd" and zstandard is not None:
            return zstandard.ZstdDecompressor().decompressobj().decompress(body)
        if enc == "lz4" and lz4_frame is not None:
            return lz4_frame.decompress(body)
    except Exception as e:
        raise CHError("CANNOT_DECOMPRESS", "Cannot decode request body with Content-Encoding %s: %s"
                      % (enc, e))
    raise CHError("UNKNOWN_COMPRESSION_METHOD", "Unsupported Content-Encoding: %s" % encoding)


# HTTP response compression, in ClickHouse's order of preference (chooseHTTPCompressionMethod).
def _zstd_compress(data, level):
    return zstandard.ZstdCompressor(level=level).compress(data)


RESPONSE_ENCODINGS = [
    ("zstd", lambda: zstandard is not None, _zstd_compress),
    ("lz4", lambda: lz4_frame is not None, lambda d, lvl: lz4_frame.compress(d)),
    ("gzip", lambda: True, lambda d, lvl: gzip.compress(d, compresslevel=max(1, min(lvl, 9)))),
    ("deflate", lambda: True, lambda d, lvl: zlib.compress(d, max(1, min(lvl, 9)))),
    ("xz", lambda: True, lambda d, lvl: lzma.compress(d)),
    ("bz2", lambda: True, lambda d, lvl: bz2.compress(d, max(1, min(lvl, 9)))),
]


def choose_response_encoding(accept):
    accept = (accept or "").lower()
    for name, available, fn in RESPONSE_ENCODINGS:
        if name in accept and available():
            return name, fn
    return None, None
