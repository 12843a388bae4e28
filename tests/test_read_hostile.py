"""Hostile and odd records: each costs only itself, never the run or the worker's memory.

Charsets that are not page encodings (``undefined``, ``unicode_escape``), UTF-16 pages, a
Content-Length shorter than the payload, and decompression bombs (a WARC gzip member, and
br / zstd / gzip Content-Encodings) are all built here, byte by byte.
"""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
import zlib
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from pipelines.fineweb import process_shard
from pipelines.read import decode_html, read_warc
from schemas.config import FinewebConfig, ReadConfig

REPO = Path(__file__).resolve().parents[1]
GOOD = b"<html><body><p>A good page after a bad one.</p></body></html>"


def record(
    url: str,
    body: bytes,
    http_headers: str = "Content-Type: text/html\r\n",
    content_length: int | None = None,
    compress: bool = True,
) -> bytes:
    """One WARC response record (its own gzip member unless ``compress=False``);
    ``content_length`` overrides the true block length (to lie about it)."""
    block = f"HTTP/1.1 200 OK\r\n{http_headers}\r\n".encode() + body
    n = len(block) if content_length is None else content_length
    head = (
        f"WARC/1.0\r\nWARC-Type: response\r\nWARC-Target-URI: {url}\r\n"
        f"WARC-Date: 2024-01-01T00:00:00Z\r\nWARC-Record-ID: <urn:x:{url}>\r\n"
        f"Content-Length: {n}\r\n\r\n"
    ).encode()
    raw = head + block + b"\r\n\r\n"
    return gzip.compress(raw, mtime=0) if compress else raw


def reasons(path: Path) -> dict[str, str | None]:
    return {d["url"]: r for d, r in read_warc(str(path), ReadConfig())}


# ---------------------------------------------------------------------------- charsets


def test_the_458_byte_reproducer_costs_only_its_bad_records(tmp_path):
    """charset=undefined in the header and in <meta>, and a unicode_escape page that decodes
    to a lone surrogate: each was an uncaught UnicodeError or a failed Parquet write that lost
    the whole WARC and its stats.json. Now: removed with a reason, the good page kept."""
    data = (
        record(
            "http://a/undef-header", b"<p>x</p>", "Content-Type: text/html; charset=undefined\r\n"
        )
        + record("http://a/undef-meta", b"<meta charset=undefined><p>\xe9</p>")
        + record("http://a/escape", b"<meta charset=unicode_escape><p>\\ud800 \xe9</p>")
        + record("http://a/good", GOOD)
    )
    assert len(data) < 1024  # a small file, like the 458-byte one of the report
    warc = tmp_path / "r.warc.gz"
    warc.write_bytes(data)
    out = tmp_path / "out"
    process_shard(str(warc), str(out), FinewebConfig(), ["read", "pii"])
    kept = pq.read_table(out / "documents").to_pylist()
    removed = pq.read_table(out / "removed").to_pylist()
    assert len(kept) + len(removed) == 4 and "http://a/good" in {d["url"] for d in kept}
    assert all(r["reason"] == "read:undecodable" for r in removed)
    for d in kept:  # decoded by detection, never by the escape codec: no lone surrogate
        assert "\ud800" not in d["text"] and d["text"].encode("utf-8")
    assert json.loads(next((out / "stats").glob("*.json")).read_text())["stages"]["read"]["in"] == 4


def test_declared_charsets_that_are_not_page_encodings_are_ignored():
    # pure ASCII is valid UTF-8 whatever is declared
    assert decode_html(b"<p>ok</p>", "undefined") == "<p>ok</p>"
    for cs in ("undefined", "unicode_escape", "raw_unicode_escape", "base64", "rot13", "nonsense"):
        text = decode_html(b"<p>caf\xe9 \\ud800</p>" * 40, cs)
        assert text is None or ("\ud800" not in text and text.encode("utf-8"))


@pytest.mark.parametrize(
    "codec,declared,bom",
    [
        ("utf-16-le", None, True),
        ("utf-16-be", None, True),
        ("utf-16-le", "utf-16", False),
        ("utf-16-le", None, False),
        ("utf-16-be", "UTF-16BE", False),
        ("utf-32-le", None, True),
    ],
)
@pytest.mark.parametrize(
    "page",
    [
        "<html><head><title>Grüße</title></head><body><p>Straße, 東京, ok.</p></body></html>",
        # pure ASCII in UTF-16 is valid UTF-8 too, with a NUL after every letter
        "<html><head><title>Plain</title></head><body><p>Only ASCII letters here.</p></body></html>",
    ],
)
def test_utf16_and_utf32_pages_decode_without_nuls(codec, declared, bom, page):
    body = page.encode(codec)
    if bom:
        body = {
            "utf-16-le": b"\xff\xfe",
            "utf-16-be": b"\xfe\xff",
            "utf-32-le": b"\xff\xfe\x00\x00",
        }[codec] + body
    assert decode_html(body, declared) == page


def test_utf16_page_through_the_reader(tmp_path):
    page = "<html><body><p>An English sentence in UTF-16.</p></body></html>"
    warc = tmp_path / "u.warc.gz"
    warc.write_bytes(
        record(
            "http://a/u16", page.encode("utf-16-le"), "Content-Type: text/html; charset=utf-16\r\n"
        )
    )
    [(doc, why)] = list(read_warc(str(warc), ReadConfig()))
    assert why is None and doc["text"] == page and "\x00" not in doc["text"]


# ---------------------------------------------------------------------------- framing


@pytest.mark.parametrize("compress", [True, False])
def test_content_length_shorter_than_the_payload_is_flagged(tmp_path, compress):
    body = b"<html><body><p>" + b"the whole article " * 30 + b"</p></body></html>"
    short = len(b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n\r\n") + 40
    data = (
        record("http://a/first", GOOD, compress=compress)
        + record("http://a/cut", body, content_length=short, compress=compress)
        + record("http://a/after", GOOD, compress=compress)
    )
    warc = tmp_path / ("c.warc.gz" if compress else "c.warc")
    warc.write_bytes(data)
    units = list(read_warc(str(warc), ReadConfig()))
    assert [(d["url"], r) for d, r in units] == [
        ("http://a/first", None),
        ("http://a/cut", "read:length_mismatch"),
        ("http://a/after", None),
    ]


# ---------------------------------------------------------------------------- bombs

ZEROS = bytes(1 << 20)
BOMB_MB = 512  # each bomb inflates to 512 MiB (the reader before the fix peaked at ~2x that)


def _stream(compressor, flush) -> bytes:
    return b"".join(compressor(ZEROS) for _ in range(BOMB_MB)) + flush()


def gzip_member_bomb() -> bytes:
    """A gzip member holding a WARC response whose block is BOMB_MB MiB of zeros."""
    c = zlib.compressobj(9, zlib.DEFLATED, 31)
    head = (
        f"WARC/1.0\r\nWARC-Type: response\r\nWARC-Target-URI: http://a/bomb\r\n"
        f"WARC-Record-ID: <urn:x:bomb>\r\nContent-Length: {BOMB_MB << 20}\r\n\r\n"
    ).encode()
    return c.compress(head) + _stream(c.compress, c.flush)


def encoded_bomb(encoding: str) -> bytes:
    if encoding == "br":
        import brotli

        c = brotli.Compressor(quality=5)
        return _stream(c.process, c.finish)
    if encoding == "zstd":
        import zstandard

        c = zstandard.ZstdCompressor(level=3).compressobj()
        return _stream(c.compress, c.flush)
    c = zlib.compressobj(9, zlib.DEFLATED, 31)
    return _stream(c.compress, c.flush)


_MEASURE = """
import json, sys
from pipelines.read import read_warc
from schemas.config import ReadConfig
units = [(d["url"], r) for d, r in read_warc(sys.argv[1], ReadConfig())]
# VmHWM is this process's own peak RSS: unlike ru_maxrss it does not carry over the parent's
# RSS from before exec (a big pytest process forking this one would count otherwise)
hwm = next(line for line in open("/proc/self/status") if line.startswith("VmHWM:"))
print(json.dumps({"units": units, "peak_mb": int(hwm.split()[1]) / 1024}))
"""


def read_in_subprocess(path: Path) -> dict:
    r = subprocess.run(
        [sys.executable, "-c", _MEASURE, str(path)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    return json.loads(r.stdout)


def test_bombs_are_removed_with_bounded_memory(tmp_path):
    """A 0.5 MB gzip member and br/zstd/gzip payloads of a few KB, each inflating to 512 MiB:
    the reader's peak RSS stays far below that (it was ~3 GiB for a 2 MB member before)."""
    bombs = [
        ("br", encoded_bomb("br")),
        ("zstd", encoded_bomb("zstd")),
        ("gzip", encoded_bomb("gzip")),
    ]
    assert len(bombs[0][1]) < 4096
    data = gzip_member_bomb() + record("http://a/good-1", GOOD)
    for enc, payload in bombs:
        data += record(
            f"http://a/{enc}", payload, f"Content-Type: text/html\r\nContent-Encoding: {enc}\r\n"
        )
    data += record("http://a/good-2", GOOD)
    warc = tmp_path / "bombs.warc.gz"
    warc.write_bytes(data)
    got = read_in_subprocess(warc)
    assert got["units"] == [
        ["http://a/bomb", "read:too_large"],
        ["http://a/good-1", None],
        ["http://a/br", "read:too_large"],
        ["http://a/zstd", "read:too_large"],
        ["http://a/gzip", "read:too_large"],
        ["http://a/good-2", None],
    ]
    assert got["peak_mb"] < 500, got["peak_mb"]


def test_content_encodings_decode(tmp_path):
    """The bounded decoders still decode ordinary compressed pages (and coding lists)."""
    import brotli
    import zstandard

    page = b"<html><body><p>compressed but fine</p></body></html>"
    cases = {
        "gzip": gzip.compress(page),
        "deflate": zlib.compress(page),
        "br": brotli.compress(page),
        "zstd": zstandard.ZstdCompressor().compress(page),
        "gzip, br": brotli.compress(gzip.compress(page)),
    }
    data = b"".join(
        record(f"http://a/{i}", body, f"Content-Type: text/html\r\nContent-Encoding: {enc}\r\n")
        for i, (enc, body) in enumerate(cases.items())
    )
    warc = tmp_path / "enc.warc.gz"
    warc.write_bytes(data)
    units = list(read_warc(str(warc), ReadConfig()))
    assert [(r, d["text"]) for d, r in units] == [(None, page.decode())] * len(cases)


def test_junk_after_a_properly_ended_record_is_its_own_corrupt_unit(tmp_path):
    """CR LF CR LF ends the record: a few junk bytes after it in the same gzip member are not
    its payload (the record is kept) and do not vanish either (a corrupt unit)."""
    raw = record("http://a/ok", GOOD, compress=False) + b"junk"
    data = gzip.compress(raw, mtime=0) + record("http://a/next", GOOD)
    warc = tmp_path / "j.warc.gz"
    warc.write_bytes(data)
    units = [(d["url"], r) for d, r in read_warc(str(warc), ReadConfig())]
    assert units == [("http://a/ok", None), (None, "read:corrupt_record"), ("http://a/next", None)]
