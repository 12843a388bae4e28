"""The WARC reader on the real crawl files, and its resync after corruption."""

from __future__ import annotations

import gzip
import random
import zlib
from collections import Counter
from pathlib import Path

import pytest

from pipelines.read import ReadCounters, decode_html, read_documents, read_warc
from pipelines.sample_pages import build_warc_bytes, sample_pages
from schemas.config import ReadConfig


def members(data: bytes) -> list[bytes]:
    """Split a per-record-gzip WARC into its gzip members (the test's own splitter)."""
    out, i = [], 0
    while i < len(data):
        d = zlib.decompressobj(31)
        d.decompress(data[i:])
        end = len(data) - len(d.unused_data)
        out.append(data[i:end])
        i = end
    return out


def test_real_warcs_every_response_is_a_unit(web_warcs):
    from warcio.archiveiterator import ArchiveIterator

    for path in web_warcs:
        with open(path, "rb") as f:
            expected = [
                r.rec_headers.get_header("WARC-Record-ID")
                for r in ArchiveIterator(f)
                if r.rec_type == "response"
            ]
        counters = ReadCounters()
        units = list(read_warc(str(path), ReadConfig(), counters=counters))
        assert [d["id"] for d, _ in units] == expected, path.name
        kept = [d for d, r in units if r is None]
        assert kept, path.name
        for d in kept:
            assert d["url"] and not d["url"].startswith("<") and d["date"] and "<" in d["text"]
        if "dolma" in path.name:  # request/metadata/warcinfo records are skipped, not removed
            assert counters.skipped["request"] > 0 and counters.skipped["warcinfo"] == 1


def test_limit_and_source(web_warcs):
    path = str(web_warcs[-1])
    units = list(read_warc(path, ReadConfig(source="cc-test"), limit=5))
    assert len(units) == 5 and {d["source"] for d, _ in units} == {"cc-test"}


def test_resync_after_random_bytes_and_truncated_member(tmp_path):
    data = build_warc_bytes()
    ms = members(data)
    garbage = random.Random(0).randbytes(5000)
    # member 2k+2 is the response of page k; truncate page 9's response, insert garbage before page 4
    bad = (
        b"".join(ms[:8])
        + garbage
        + b"".join(ms[8:18])
        + ms[18][: len(ms[18]) // 2]
        + b"".join(ms[19:])
    )
    p = tmp_path / "bad.warc.gz"
    p.write_bytes(bad)
    units = list(read_warc(str(p), ReadConfig()))
    reasons = Counter(r for _, r in units)
    assert reasons["read:corrupt_record"] == 2
    good = list(read_warc(_write(tmp_path / "good.warc.gz", data), ReadConfig()))
    # nothing is lost: the truncated record is removed under its own id (salvaged header), the
    # garbage region as one extra unit, and every record after both corruptions is still read
    good_ids = [d["id"] for d, _ in good]
    assert set(good_ids) <= {d["id"] for d, _ in units}
    assert len(units) == len(good) + 1
    truncated_id = good_ids[8]  # member 18 = response of page 9
    assert dict((d["id"], r) for d, r in units)[truncated_id] == "read:corrupt_record"
    assert [d["id"] for d, r in units if r != "read:corrupt_record"] == good_ids[:8] + good_ids[9:]


def _write(path: Path, data: bytes) -> str:
    path.write_bytes(data)
    return str(path)


def test_random_bytes_inside_a_member_and_plain_warc(tmp_path):
    data = build_warc_bytes()
    ms = members(data)
    mid = bytearray(ms[10])
    mid[len(mid) // 2 : len(mid) // 2 + 200] = bytes(200)  # corrupt deflate data / CRC
    bad = b"".join(ms[:10]) + bytes(mid) + b"".join(ms[11:])
    units = list(read_warc(_write(tmp_path / "a.warc.gz", bad), ReadConfig()))
    n_responses = len(sample_pages())
    assert Counter(r for _, r in units)["read:corrupt_record"] == 1
    assert len(units) == n_responses  # 1 corrupt unit replaces the broken record, no others lost
    # an uncompressed WARC with junk between records resyncs on the next WARC/1. header
    plain = b"".join(gzip.decompress(m) for m in ms)
    cut = plain.index(b"WARC/1.0", len(plain) // 2)
    junk = plain[:cut] + b"\x00\xffjunk junk\r\n" * 50 + plain[cut:]
    units = list(read_warc(_write(tmp_path / "b.warc", junk), ReadConfig()))
    assert Counter(r for _, r in units)["read:corrupt_record"] == 1
    assert len([u for u in units if u[1] != "read:corrupt_record"]) == n_responses


def test_truncated_file_end(tmp_path):
    data = build_warc_bytes()
    units = list(read_warc(_write(tmp_path / "t.warc.gz", data[:-300]), ReadConfig()))
    assert units[-1][1] == "read:corrupt_record"
    assert len(units) == len(sample_pages())


def test_decode_html_charsets():
    assert decode_html("héllo".encode()) == "héllo"
    assert decode_html("héllo wörld".encode("latin-1"), "iso-8859-1") == "héllo wörld"
    meta = b"<html><head><meta charset='windows-1251'></head><body>" + "Привет мир".encode("cp1251")
    assert "Привет мир" in decode_html(meta)
    # mostly UTF-8 with one stray byte: kept, the byte replaced
    assert decode_html(("ok " * 500).encode() + b"\xff").startswith("ok ok")


@pytest.mark.parametrize("n", [1, 3])
def test_read_documents_parquet(tmp_path, n):
    import pyarrow.parquet as pq

    from schemas.documents import documents_table

    rows = [{"id": f"d{i}", "url": "u", "text": f"t{i}"} for i in range(n)]
    pq.write_table(documents_table(rows), tmp_path / "x.parquet")
    assert [d["id"] for d in read_documents(str(tmp_path / "x.parquet"))] == [r["id"] for r in rows]


def test_fsspec_url(tmp_path):
    import fsspec

    data = build_warc_bytes()
    with fsspec.open("memory://crawl/sample.warc.gz", "wb") as f:
        f.write(data)
    units = list(read_warc("memory://crawl/sample.warc.gz", ReadConfig()))
    assert len(units) == len(sample_pages())
    assert units[0][0]["source"] == "sample"


# --- payload type: WARC-Identified-Payload-Type first, then HTTP Content-Type or libmagic ---------


def _response(
    url: str,
    body: bytes,
    content_type: str,
    payload_type: str | None = None,
    encoding: str | None = None,
) -> bytes:
    """One gzip member holding a WARC response record (optionally with the crawler's
    WARC-Identified-Payload-Type header and a Content-Encoding)."""
    http = f"HTTP/1.1 200 OK\r\nContent-Type: {content_type}\r\n"
    if encoding:
        http += f"Content-Encoding: {encoding}\r\n"
    block = (http + f"Content-Length: {len(body)}\r\n\r\n").encode() + body
    head = (
        f"WARC/1.0\r\nWARC-Type: response\r\nWARC-Target-URI: {url}\r\n"
        f"WARC-Date: 2024-01-01T00:00:00Z\r\nWARC-Record-ID: <urn:uuid:{url}>\r\n"
        "Content-Type: application/http; msgtype=response\r\n"
    )
    if payload_type:
        head += f"WARC-Identified-Payload-Type: {payload_type}\r\n"
    head += f"Content-Length: {len(block)}\r\n\r\n"
    return gzip.compress(head.encode() + block + b"\r\n\r\n", mtime=0)


def _script_page() -> bytes:
    """A real-looking HTML page that libmagic calls JavaScript: leading blank lines, then an
    inline ``(function() {...})`` handler (the pattern of the wget-made pages it misjudges)."""
    from pipelines.sample_pages import ARTICLES, article_html

    html = article_html(*ARTICLES["bees"]).replace(
        "<body>", '<body><a href="/" onClick="return (function() { return true; })()">home</a>', 1
    )
    return ("\n\n" + html).encode()


def _payload_type_warc(tmp_path: Path) -> str:
    from pipelines.sample_pages import ARTICLES, article_html

    page = article_html(*ARTICLES["bread"]).encode()
    records = [
        # no crawler verdict: the HTTP header (http) or libmagic (libmagic) decides
        _response("https://a.example/script-heavy", _script_page(), "text/html; charset=utf-8"),
        _response("https://a.example/plain", page, "text/html"),
        _response(
            "https://a.example/gzipped", gzip.compress(page, mtime=0), "text/html", encoding="gzip"
        ),
        _response("https://a.example/mislabelled-pdf", b"%PDF-1.4\n%%EOF\n", "text/html"),
        # the crawler's verdict wins over the HTTP header in both modes
        _response(
            "https://a.example/declared-pdf", page, "text/html", payload_type="application/pdf"
        ),
        _response(
            "https://a.example/declared-html",
            _script_page(),
            "application/octet-stream",
            payload_type="text/html",
        ),
    ]
    return _write(tmp_path / "types.warc.gz", b"".join(records))


def _verdicts(path: str, mode: str) -> dict[str, str | None]:
    return {
        d["url"].rsplit("/", 1)[1]: r for d, r in read_warc(path, ReadConfig(payload_type=mode))
    }


def test_warc_identified_payload_type_wins_and_http_default(tmp_path):
    got = _verdicts(_payload_type_warc(tmp_path), "http")
    assert got == {
        "script-heavy": None,
        "plain": None,
        "gzipped": None,
        "mislabelled-pdf": None,  # the server said text/html (extract drops it later)
        "declared-pdf": "read:not_html",
        "declared-html": None,
    }
    assert ReadConfig().payload_type == "http"


def test_libmagic_mode_sniffs_like_datatrove(tmp_path):
    path = _payload_type_warc(tmp_path)
    try:
        import magic
    except ImportError:  # python-magic or the libmagic library missing: a clear error, up front
        with pytest.raises(RuntimeError, match="python-magic"):
            next(read_warc(path, ReadConfig(payload_type="libmagic")))
        return
    from datatrove.pipeline.readers.warc import process_record
    from warcio.archiveiterator import ArchiveIterator

    got = _verdicts(path, "libmagic")
    assert got == {
        "script-heavy": "read:not_html",  # libmagic: application/javascript
        "plain": None,
        "gzipped": None,  # sniffed after Content-Encoding is undone
        "mislabelled-pdf": "read:not_html",
        "declared-pdf": "read:not_html",
        "declared-html": None,
    }
    assert magic.from_buffer(_script_page(), mime=True) == "application/javascript"
    # the very decisions datatrove's WarcReader makes on these records
    with open(path, "rb") as f:
        theirs = {
            r.rec_headers["WARC-Target-URI"].rsplit("/", 1)[1]: process_record(r) is not None
            for r in ArchiveIterator(f)
            if r.rec_type == "response"
        }
    assert theirs == {k: v is None for k, v in got.items()}


def test_libmagic_mode_sees_what_warcio_shows_for_non_http_targets(tmp_path):
    """warcio (datatrove's WARC library) splits HTTP headers off http(s) targets only; for other
    schemes libmagic is shown the whole block, and so it is here."""
    pytest.importorskip("magic")
    from pipelines.read import payload_mime

    body = _script_page().lstrip()  # HTML to libmagic on its own
    assert payload_mime(body) == "text/html"
    data = _response("https://a.example/x", body, "text/html") + _response(
        "urn:test:x", body, "text/html"
    )
    units = list(
        read_warc(_write(tmp_path / "s.warc.gz", data), ReadConfig(payload_type="libmagic"))
    )
    block = (
        b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n"
        + f"Content-Length: {len(body)}\r\n\r\n".encode()
        + body
    )
    assert payload_mime(block) == "application/javascript"  # no <!DOCTYPE at the start any more
    assert [r for _, r in units] == [None, "read:not_html"]
