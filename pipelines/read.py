"""The read stage: WARC files (local or fsspec URLs) -> documents, surviving corrupt input.

A *document-level unit* is either a WARC ``response`` record or one unreadable region of the
file. ``request``, ``metadata``, ``warcinfo``, ``revisit``, ``resource`` and ``conversion``
records are not documents (they hold no crawled page): they are counted as *skipped* (see
``ReadCounters``), never as removed. Every unit is yielded as ``(doc, None)`` when kept or
``(doc, "read:<why>")`` when removed:

- ``read:not_html``       the payload is not text/html or application/xhtml+xml: the WARC
  ``WARC-Identified-Payload-Type`` header when present (as datatrove), else per
  ``ReadConfig.payload_type``: the HTTP Content-Type (``"http"``, default) or libmagic's guess
  from the payload bytes (``"libmagic"``, datatrove's WarcReader; see ``payload_mime``)
- ``read:too_large``      the record block (HTTP headers + body) exceeds ``max_bytes``
- ``read:undecodable``    no charset (UTF-8, declared, <meta>, detected) decodes the bytes
- ``read:corrupt_record`` a broken gzip member, random bytes, a truncated record, a bad header
- ``read:length_mismatch`` payload bytes follow the record's block: its ``Content-Length`` is
  shorter than its payload, so the block would be a silently cut page
- ``read:undecodable`` also covers charsets that are not page encodings (``undefined``,
  ``unicode_escape``) and any decode error: text handed on is always valid UTF-8

Decompression is bounded: WARC gzip members are inflated in 1 MB pieces that the framing skips
(``read:too_large``) or resyncs over, and HTTP ``Content-Encoding`` (gzip, deflate, br, zstd,
and lists of them) never yields more than ``max_bytes + 1`` bytes, so a small bomb cannot blow
up a worker's memory.

The kept document's ``text`` is the decoded HTML (extract replaces it with the extracted text,
as in datatrove's WarcReader).

Why a hand-written reader: fastwarc and warcio both raise on the first broken gzip member
(measured: fastwarc stops after record 10 of a file with 5 KB of random bytes inserted, losing
the 37 records after it). Here each gzip member is decompressed with zlib on its own; on an
error we scan for the next gzip magic (``1f 8b 08``) and go on, and inside the decompressed
stream records are framed by ``Content-Length`` with a resync on the next ``WARC/1.`` line. The
work is done by zlib and ``bytes.find`` in C, so it is as fast as a library reader.
"""

from __future__ import annotations

import codecs
import re
import zlib
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from schemas.config import ReadConfig

GZIP_MAGIC = b"\x1f\x8b\x08"
_RECORD_END = b"\r\n\r\n"
_CHUNK = 1 << 20
#: most decompressed bytes produced per zlib/brotli call: memory stays bounded on a bomb
_OUT_CHUNK = 1 << 20
#: a WARC header block longer than this is treated as corrupt (real ones are < 2 KB)
_MAX_HEADER = 64 * 1024
#: raw bytes of the current gzip member kept to rescan for the next member after an error
_MAX_MEMBER_RETAIN = 256 * 1024 * 1024
HTML_TYPES = frozenset({"text/html", "application/xhtml+xml"})
_META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([A-Za-z0-9_\-:.]+)""", re.I)
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
_SNIFF_HTML = (b"<!doctype html", b"<html", b"<head", b"<body", b"<title", b"<meta", b"<div", b"<p")


@dataclass
class ReadCounters:
    """What the reader saw besides documents: records skipped by WARC-Type (not documents)."""

    skipped: Counter = field(default_factory=Counter)


# --------------------------------------------------------------------------------------------
# layer 1: raw bytes -> decompressed events


def open_binary(path: str) -> BinaryIO:
    """Open a local path or any fsspec URL (s3://, https://, gs://, ...) for binary reading."""
    if "://" in path and not path.startswith("file://"):
        import fsspec

        return fsspec.open(path, "rb").open()
    return open(path.removeprefix("file://"), "rb")


def _plain_events(f: BinaryIO) -> Iterator[tuple[str, object, int]]:
    pos = 0
    while chunk := f.read(_CHUNK):
        yield "data", chunk, pos
        pos += len(chunk)


def _salvage(raw: bytes, limit: int, step: int = 64) -> bytes:
    """Decompress a damaged gzip member in small steps, returning the output before the error
    (at most ``limit`` bytes: only the broken record's WARC header is wanted from it)."""
    d = zlib.decompressobj(31)
    out = bytearray()
    for i in range(0, len(raw), step):
        try:
            out += d.decompress(raw[i : i + step], max(1, limit - len(out)))
        except zlib.error:
            break
        if d.eof or len(out) >= limit:
            break
    return bytes(out)


def _gzip_events(f: BinaryIO) -> Iterator[tuple[str, object, int]]:
    """Decompress gzip member by member; yield ("data"|"member_end"|"corrupt", payload, offset).

    Output comes in pieces of at most ``_OUT_CHUNK`` bytes (zlib's ``max_length``), so a gzip
    bomb streams through the record framing (which skips oversized blocks) instead of being
    inflated into memory at once. On a zlib error (bad deflate data, CRC mismatch, random
    bytes) the rest of the member is given up and the raw bytes after the member's start are
    scanned for the next gzip magic.
    """
    pending = b""  # raw bytes not yet fed to a decompressor
    pos = 0  # file offset of pending[0]
    eof = False
    d = None
    member_raw = bytearray()  # raw bytes of the current member (to rescan after an error)
    member_whole = True  # member_raw holds every raw byte of the member so far
    fresh = True  # pending is not yet in member_raw
    member_start = 0
    member_out = 0  # decompressed bytes of the current member already yielded
    while True:
        if not pending:
            if eof:
                break
            chunk = f.read(_CHUNK)
            if not chunk:
                eof = True
                continue
            pending, fresh = chunk, True
        if d is None:
            if len(pending) < 3 and not eof:
                more = f.read(_CHUNK)
                if more:
                    pending += more
                    continue
                eof = True
            if not pending.startswith(GZIP_MAGIC):
                yield "corrupt", "bytes outside a gzip member", pos
                idx = pending.find(GZIP_MAGIC, 1)
                if idx < 0:  # drop all but a possible partial magic at the end
                    idx = len(pending) if eof else max(1, len(pending) - 2)
                pos += idx
                pending = pending[idx:]
                continue
            d = zlib.decompressobj(31)
            member_start = pos
            member_raw, member_whole, fresh = bytearray(), True, True
            member_out = 0
        if fresh:
            if member_whole and len(member_raw) < _MAX_MEMBER_RETAIN:
                member_raw += pending
            else:
                member_whole = False
            fresh = False
        try:
            out = d.decompress(pending, _OUT_CHUNK)
        except zlib.error as e:
            d = None
            if member_whole:
                raw = bytes(member_raw)
                # zlib drops the output of a failing call: salvage what precedes the damage, so
                # the broken record's WARC header (its id and URL) names it in `removed`
                salvage = _salvage(raw, member_out + _MAX_HEADER)
                if len(salvage) > member_out:
                    yield "salvage", salvage[member_out:], member_start
            yield "corrupt", f"gzip: {e}", member_start
            if member_whole:
                idx = raw.find(GZIP_MAGIC, 1)
                if idx >= 0:
                    pos = member_start + idx
                    pending, fresh = raw[idx:], True
                else:
                    pos += len(pending)
                    pending = b""
            else:  # a huge member: only the current chunk can be rescanned
                idx = pending.find(GZIP_MAGIC, 1)
                pos += idx if idx >= 0 else len(pending)
                pending = pending[idx:] if idx >= 0 else b""
                fresh = True
            continue
        if out:
            member_out += len(out)
            yield "data", out, member_start
        if d.eof:
            unused = d.unused_data
            consumed = len(pending) - len(unused)
            pos += consumed
            pending = unused
            d = None
            yield "member_end", None, pos
        elif d.unconsumed_tail:  # the output limit was hit: the rest of this input goes next
            tail = d.unconsumed_tail
            pos += len(pending) - len(tail)
            pending = tail
        else:
            pos += len(pending)
            pending = b""
    if d is not None:
        try:
            tail = d.flush(_OUT_CHUNK)
        except zlib.error:
            tail = b""
        if tail:
            yield "data", tail, member_start
        yield "corrupt", "truncated gzip member", member_start


# --------------------------------------------------------------------------------------------
# layer 2: decompressed stream -> WARC records


@dataclass
class _Record:
    headers: dict[str, str]
    block: bytes | None  # None when skipped for size
    length: int
    offset: int
    overrun: bool = False  # payload bytes followed the block: its Content-Length was too short


@dataclass
class _Corrupt:
    why: str
    offset: int
    record_id: str | None = None
    url: str | None = None


def _parse_warc_headers(raw: bytes) -> dict[str, str] | None:
    lines = raw.split(b"\r\n")
    if not lines[0].startswith(b"WARC/"):
        return None
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if not line:
            continue
        name, sep, value = line.partition(b":")
        if not sep:
            return None
        headers[name.strip().decode("latin-1").lower()] = value.strip().decode("utf-8", "replace")
    return headers


def _records(
    events: Iterator[tuple[str, object, int]], skip_block_over: int, want_block: callable
) -> Iterator[_Record | _Corrupt]:
    """Frame records by Content-Length; after garbage, resync on the next ``WARC/1.`` line.

    ``want_block(headers)`` says whether a record's block is needed at all (request/metadata
    records are skipped without copying); blocks longer than ``skip_block_over`` are skipped
    while streaming, so an oversized record never sits in memory.

    A record's block is only handed out once what follows it is known: the record end (CR LF
    CR LF, as the WARC standard writes it), or the end of its gzip member or of the file. Any
    other bytes there mean its Content-Length was shorter than its payload: the record is
    yielded with ``overrun=True`` (its block was cut) and the bytes up to the next header
    belong to it, not to a corrupt region of their own. (Junk after a properly ended record
    is still a corrupt region.)
    """
    buf = bytearray()
    buf_offset = 0  # offset (file or member) associated with the current buffer start
    hdr: dict[str, str] | None = None
    need = 0
    skipping = 0  # bytes of an oversized block still to discard
    region: _Corrupt | None = None
    at_boundary = False
    done: _Record | None = None  # a complete record waiting for what follows it
    overrun = False  # discarding the rest of an overrun record's payload

    salvaged: dict[str, str] | None = None  # header of a record whose member broke

    def corrupt(why: str, offset: int) -> None:
        nonlocal region, salvaged
        if region is None:
            region = _Corrupt(why, offset)
        named = hdr if hdr is not None else salvaged
        salvaged = None
        if named is not None and region.record_id is None:
            region.record_id = named.get("warc-record-id")
            region.url = _strip_brackets(named.get("warc-target-uri"))

    def release(cut: bool) -> Iterator[_Record]:
        nonlocal done
        if done is not None:
            done.overrun = cut
            yield done
            done = None

    for kind, payload, offset in events:
        if kind == "member_end":
            at_boundary = True
            continue
        if kind == "salvage":  # only used to name the broken record, never to complete one
            if hdr is None:
                tmp = (bytes(buf) + payload).lstrip(b"\r\n")  # type: ignore[operator]
                end = tmp.find(b"\r\n\r\n")
                if tmp.startswith(b"WARC/") and end > 0:
                    salvaged = _parse_warc_headers(tmp[:end])
            continue
        if kind == "corrupt":
            yield from release(overrun or bool(bytes(buf).strip(b"\r\n")))
            overrun = False
            corrupt(str(payload), offset)
            buf.clear()
            hdr, skipping = None, 0
            continue
        data: bytes = payload  # type: ignore[assignment]
        if at_boundary and data.startswith(b"WARC/"):
            if hdr is not None or skipping:
                # the previous member ended inside a record: that record is truncated
                corrupt("truncated record", buf_offset)
                buf.clear()
                hdr, skipping = None, 0
            elif done is not None or overrun:  # the member of a complete record ended: what is
                # left in it was that record's payload (not a corrupt region of its own)
                yield from release(overrun or bool(bytes(buf).strip(b"\r\n")))
                overrun = False
                buf.clear()
        at_boundary = False
        if not buf:
            buf_offset = offset
        buf += data
        while True:
            if skipping:
                n = min(skipping, len(buf))
                del buf[:n]
                skipping -= n
                if skipping:
                    break
                continue
            if hdr is None:
                if done is not None:  # a record ends with CRLF CRLF; anything else is its payload
                    head = bytes(buf[:4])
                    if len(head) < 4 and head == _RECORD_END[: len(head)]:
                        break  # wait for more (or the end of the member / file)
                    cut = head != _RECORD_END
                    yield from release(cut)
                    overrun = cut
                    if not cut:
                        del buf[:4]
                # strip record separators
                i = 0
                while i < len(buf) and buf[i] in (13, 10):
                    i += 1
                if i:
                    del buf[:i]
                if len(buf) < 8:
                    break
                if not buf.startswith(b"WARC/1."):
                    if not overrun:  # (an overrun record's payload is not a region of its own)
                        corrupt("not a WARC record header", buf_offset)
                    idx = buf.find(b"WARC/1.", 1)
                    if idx < 0:
                        del buf[: max(0, len(buf) - 8)]
                        break
                    del buf[:idx]
                    continue
                overrun = False
                end = buf.find(b"\r\n\r\n")
                if end < 0:
                    if len(buf) > _MAX_HEADER:
                        corrupt("WARC header too long", buf_offset)
                        del buf[:7]
                        continue
                    break
                parsed = _parse_warc_headers(bytes(buf[:end]))
                try:
                    length = int(parsed["content-length"]) if parsed else -1
                except (KeyError, ValueError):
                    length = -1
                if parsed is None or length < 0:
                    corrupt("bad WARC header", buf_offset)
                    del buf[:7]
                    continue
                del buf[: end + 4]
                hdr, need = parsed, length
                if not want_block(hdr) or length > skip_block_over:
                    if region is not None:
                        yield region
                        region = None
                    yield _Record(hdr, None, length, buf_offset)
                    hdr, skipping = None, length
                    continue
            if len(buf) < need:
                break
            block = bytes(buf[:need])
            del buf[:need]
            if region is not None:
                yield region
                region = None
            done = _Record(hdr, block, need, buf_offset)
            hdr = None
    if done is not None:
        yield from release(overrun or bool(bytes(buf).strip(b"\r\n")))
    elif hdr is not None or skipping or (bytes(buf).strip(b"\r\n") and not overrun):
        corrupt("truncated record at end of file", buf_offset)
    if region is not None:
        yield region


# --------------------------------------------------------------------------------------------
# layer 3: HTTP response -> HTML text


def _dechunk(body: bytes) -> bytes:
    out = bytearray()
    pos = 0
    while True:
        eol = body.find(b"\r\n", pos)
        if eol < 0:
            raise ValueError("bad chunk")
        size = int(body[pos:eol].split(b";")[0].strip() or b"0", 16)
        if size == 0:
            return bytes(out)
        out += body[eol + 2 : eol + 2 + size]
        pos = eol + 2 + size + 2


def _inflate(body: bytes, wbits: int, limit: int) -> bytes:
    d = zlib.decompressobj(wbits)
    out = d.decompress(body, limit)
    return out


def _decode_one(body: bytes, encoding: str, limit: int) -> bytes:
    """One content-coding, producing at most ``limit`` bytes (a longer result is cut there:
    the caller sees ``len > max_bytes`` and removes the page as too large)."""
    if encoding in ("gzip", "x-gzip"):
        return _inflate(body, 47, limit)  # 47: gzip or zlib header, auto-detected
    if encoding == "deflate":  # RFC says zlib-wrapped; many servers send raw deflate
        try:
            return _inflate(body, 15, limit)
        except zlib.error:
            return _inflate(body, -15, limit)
    if encoding == "br":
        import brotli

        d = brotli.Decompressor()
        out = d.process(body, output_buffer_limit=limit)
        if len(out) < limit and not d.is_finished():
            raise ValueError("truncated brotli stream")
        return out
    if encoding == "zstd":
        import io

        import zstandard

        with zstandard.ZstdDecompressor().stream_reader(io.BytesIO(body)) as r:
            return r.read(limit)
    raise ValueError(f"unknown content-encoding {encoding!r}")


def _decode_content(body: bytes, encoding: str, max_bytes: int) -> bytes:
    """Undo the HTTP ``Content-Encoding`` (a list, applied in order: undone last to first),
    never producing more than ``max_bytes + 1`` bytes however small the input (bombs)."""
    codings = [c.strip().lower() for c in encoding.split(",") if c.strip()]
    for coding in reversed(codings):
        if coding == "identity":
            continue
        body = _decode_one(body, coding, max_bytes + 1)
    return body


def _charset_of(content_type: str) -> str | None:
    for part in content_type.split(";")[1:]:
        k, _, v = part.partition("=")
        if k.strip().lower() == "charset":
            return v.strip().strip("\"'") or None
    return None


_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32-le"),
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)


def text_codec(name: str | None) -> str | None:
    """The codec a declared charset names, or None when it is not a text encoding a page can
    be in: unknown names, ``undefined`` (always raises), ``unicode_escape``/``raw_unicode_escape``
    (turn ``\\ud800`` into lone surrogates), bytes-to-bytes codecs (base64, zlib, rot13)."""
    if not name:
        return None
    try:
        info = codecs.lookup(name.strip().strip("\"'"))
    except (LookupError, ValueError):
        return None
    if not getattr(info, "_is_text_encoding", True) or info.name in _NOT_PAGE_CODECS:
        return None
    return info.name


_NOT_PAGE_CODECS = frozenset(
    {
        "undefined",
        "unicode-escape",
        "raw-unicode-escape",
        "unicode_escape",
        "raw_unicode_escape",
        "idna",
        "punycode",
        "mbcs",
        "oem",
    }
)


def _utf16_without_bom(body: bytes) -> str | None:
    """UTF-16 without a BOM: ASCII markup then has a NUL in every other byte."""
    head = body[:1024]
    if len(head) < 16 or head.count(0) < len(head) // 4:
        return None
    even, odd = head[0::2].count(0), head[1::2].count(0)
    if odd > 0.8 * (len(head) // 2):
        return "utf-16-le"
    if even > 0.8 * (len(head) // 2):
        return "utf-16-be"
    return None


def _valid(text: str) -> bool:
    """Text that Parquet (UTF-8) can hold: no lone surrogates."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def decode_html(body: bytes, declared: str | None = None) -> str | None:
    """Bytes -> str like datatrove (UTF-8 first, then a detected charset), plus declared charsets.

    Order: a byte-order mark (UTF-8/16/32); a declared UTF-16/32 charset or UTF-16 recognised
    by its NUL bytes (such pages are valid UTF-8 too, with a NUL between letters); strict
    UTF-8; the HTTP header charset; the ``<meta charset>``; UTF-8 with a few replaced bytes
    (<= 0.5%: mostly-UTF-8 pages with a stray byte, which detection would turn into mojibake);
    charset_normalizer detection, unless the result is > 1% control characters (binary data
    labelled as HTML). Declared names that are not page encodings (``undefined``,
    ``unicode_escape``...) are ignored. ``None`` when nothing decodes; the result is always
    valid Unicode (no lone surrogates).
    """
    for bom, codec in _BOMS:
        if body.startswith(bom):
            try:
                text = body[len(bom) :].decode(codec)
            except UnicodeDecodeError:
                break
            return text if _valid(text) else None
    declared_codec = text_codec(declared)
    wide = (
        declared_codec
        if declared_codec and declared_codec.startswith(("utf-16", "utf-32"))
        else _utf16_without_bom(body)
    )
    if wide:
        if wide in ("utf-16", "utf-32"):  # no BOM: the NULs tell the byte order, else BE (RFC 2781)
            guess = _utf16_without_bom(body) if wide == "utf-16" else None
            wide = guess or f"{wide}-be"
        try:
            text = body.decode(wide)
            if _valid(text):
                return text
        except UnicodeDecodeError:
            pass
    try:
        return body.decode("utf-8").lstrip("\ufeff")
    except UnicodeDecodeError:
        pass
    tried = {"utf-8"}
    m = _META_CHARSET.search(body, 0, 4096)
    for cs in (declared, m.group(1).decode("ascii", "ignore") if m else None):
        codec = text_codec(cs)
        if codec is None or codec in tried:
            continue
        tried.add(codec)
        try:
            text = body.decode(codec)
        except (UnicodeError, ValueError):  # UnicodeError: e.g. a codec raising on any input
            continue
        if _valid(text):
            return text
    lossy = body.decode("utf-8", "replace")
    if lossy.count("\ufffd") <= 0.005 * len(body):
        return lossy.lstrip("\ufeff")
    from charset_normalizer import from_bytes

    best = from_bytes(body[:200_000]).best()
    codec = text_codec(best.encoding) if best is not None else None
    if codec is not None and codec not in tried:
        try:
            text = body.decode(codec)
        except (UnicodeError, ValueError):
            return None
        # binary data served as HTML "decodes" in any single-byte charset: reject control chars
        if len(_CONTROL.findall(text)) <= 0.01 * len(text) and _valid(text):
            return text
    return None


_magic = None


def require_libmagic():
    """python-magic's ``from_buffer``, or a clear error naming what to install."""
    global _magic
    if _magic is None:
        try:
            import magic
        except ImportError as e:  # python-magic missing, or it cannot find the libmagic library
            raise RuntimeError(
                "ReadConfig.payload_type='libmagic' needs python-magic and the libmagic library: "
                "pip install python-magic (and e.g. apt-get install libmagic1); or use "
                f"payload_type='http' (the default). Import error: {e}"
            ) from e
        _magic = magic
    return _magic


def payload_mime(body: bytes) -> str:
    """libmagic's MIME type for a payload, as datatrove's WarcReader gets it:
    ``magic.from_buffer(payload, mime=True)`` over the whole (de-chunked, decompressed) payload.
    """
    return require_libmagic().from_buffer(body, mime=True)


def _strip_brackets(url: str | None) -> str | None:
    if url and url.startswith("<") and url.endswith(">"):  # WARC/1.0 writers (wget) bracket it
        return url[1:-1]
    return url


def _response_to_doc(rec: _Record, config: ReadConfig, source: str) -> tuple[dict, str | None]:
    h = rec.headers
    url = _strip_brackets(h.get("warc-target-uri"))
    doc = {
        "id": h.get("warc-record-id") or f"<{source}#offset={rec.offset}>",
        "url": url,
        "date": h.get("warc-date"),
        "source": source,
        "text": None,
    }
    if rec.block is None:
        return doc, "read:too_large"
    block = rec.block
    if block.startswith(b"HTTP/"):
        sep = block.find(b"\r\n\r\n")
        skip = 4
        if sep < 0:
            sep, skip = block.find(b"\n\n"), 2
        if sep < 0:
            return doc, "read:corrupt_record"
        http: dict[str, str] = {}
        for line in block[:sep].split(b"\n")[1:]:
            k, s, v = line.partition(b":")
            if s:
                http[k.strip().decode("latin-1").lower()] = v.strip().decode("latin-1")
        body = block[sep + skip :]
    else:
        http, body = {}, block
    content_type = http.get("content-type", "")
    # the crawler's verdict when it gave one (Common Crawl always does); datatrove trusts it too
    mime = (h.get("warc-identified-payload-type") or "").strip().lower()
    if not mime and config.payload_type == "http":
        mime = content_type.split(";")[0].strip().lower()
        if not mime:
            head = body[:1024].lstrip().lower()
            mime = "text/html" if head.startswith(_SNIFF_HTML) else "application/octet-stream"
    if config.html_only and mime and mime not in HTML_TYPES:
        return doc, "read:not_html"
    try:
        if "chunked" in http.get("transfer-encoding", "").lower():
            try:
                body = _dechunk(body)
            except ValueError:
                pass  # crawlers often store bodies already de-chunked: keep the bytes as they are
        if http.get("content-encoding") and http["content-encoding"].lower() != "identity":
            try:
                body = _decode_content(body, http["content-encoding"], config.max_bytes)
            except Exception:  # noqa: BLE001 - header lies; already-decoded bodies are common
                pass
    except Exception:  # noqa: BLE001
        return doc, "read:corrupt_record"
    if config.html_only and not mime:  # libmagic mode, no WARC-Identified-Payload-Type
        # datatrove reads with warcio, which splits off HTTP headers only for http(s) targets:
        # for other schemes libmagic is shown the whole block, as here
        seen = body if (url or "").lower().startswith(("http:", "https:")) else rec.block
        if payload_mime(seen) not in HTML_TYPES:
            return doc, "read:not_html"
    if len(body) > config.max_bytes:
        return doc, "read:too_large"
    try:
        text = decode_html(body, _charset_of(content_type))
    except Exception:  # noqa: BLE001 - a codec failing in any way is this record's problem only
        text = None
    if text is None:
        return doc, "read:undecodable"
    doc["text"] = text
    return doc, None


def shard_source(path: str) -> str:
    """The default ``source`` column: the file name without its WARC extensions."""
    name = Path(path.rstrip("/")).name
    for ext in (".gz", ".warc", ".arc"):
        name = name.removesuffix(ext)
    return name


def read_warc(
    path: str,
    config: ReadConfig | None = None,
    limit: int | None = None,
    counters: ReadCounters | None = None,
) -> Iterator[tuple[dict, str | None]]:
    """Yield every document-level unit of a WARC file as ``(doc, None | "read:<why>")``.

    ``limit`` stops after that many units. Non-document records are tallied in ``counters``.
    """
    config = config or ReadConfig()
    if config.payload_type == "libmagic" and config.html_only:
        require_libmagic()  # fail before reading anything, with what to install
    source = config.source or shard_source(path)
    counters = counters if counters is not None else ReadCounters()
    # the block of a response record holds HTTP headers too: allow them some room
    skip_over = config.max_bytes + 64 * 1024

    def want(h: dict[str, str]) -> bool:
        return h.get("warc-type") == "response"

    n = 0
    with open_binary(path) as f:
        head = f.read(3)
        rest = _gzip_events if head == GZIP_MAGIC or path.endswith(".gz") else _plain_events
        f.seek(0)
        for item in _records(rest(f), skip_over, want):
            if isinstance(item, _Corrupt):
                rid = item.record_id or f"<corrupt:{source}@{item.offset}>"
                doc = {"id": rid, "url": item.url, "date": None, "source": source, "text": None}
                yield doc, "read:corrupt_record"
            elif item.headers.get("warc-type") != "response":
                counters.skipped[item.headers.get("warc-type", "unknown")] += 1
                continue
            elif item.overrun:  # its block was cut at a too-short Content-Length
                doc, _ = _response_to_doc(
                    _Record(item.headers, None, item.length, item.offset), config, source
                )
                yield doc, "read:length_mismatch"
            else:
                yield _response_to_doc(item, config, source)
            n += 1
            if limit is not None and n >= limit:
                return


def read_documents(path: str, batch_size: int = 1024) -> Iterator[dict]:
    """Stream the rows of a documents Parquet file (a stage's output) as dicts."""
    import pyarrow.parquet as pq

    with open_binary(path) as f:
        pf = pq.ParquetFile(f)
        for batch in pf.iter_batches(batch_size=batch_size):
            yield from batch.to_pylist()
