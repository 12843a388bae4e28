"""Exact dedup: URL dedup (keep the latest fetch of a URL), then exact text dedup.

Both rules are cheap and run on small per-document keys written to disk:

1. keys: per input shard, (id, normalized URL, fetch time, 128-bit hash of the normalized text)
   go to ``OUT/_work/keys/<shard>.parquet``;
2. resolve: over all keys (about 60 bytes a document, never the texts), every normalized URL
   keeps its latest fetch (ties: the smallest id) and the others are removed as
   ``exact_dedup:url``; among the survivors, every text hash keeps its smallest id and the
   others are removed as ``exact_dedup:text``; ``duplicate_of`` names the kept document;
3. filter: per shard, documents/removed/stats (``pipelines.shard_stage``).

Why engines agree: each decision is a minimum under a total order of the document's own
fields ((fetch time desc, id) per URL; id per text hash), never "the first one seen", so the
local driver and the Beam transform (``pipelines.beam.stages``) keep the same documents however
the input is sharded or ordered.
"""

from __future__ import annotations

import re
import time
import unicodedata
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import xxhash

from pipelines import shard_stage as ss
from pipelines.io import atomic_write_parquet
from schemas.config import ExactDedupConfig

STAGE = "exact_dedup"
URL_REASON = "exact_dedup:url"
TEXT_REASON = "exact_dedup:text"
KEY_SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("url_key", pa.string()),
        ("fetched", pa.int64()),
        ("text_hash", pa.binary(16)),
    ]
)
DUP_SCHEMA = pa.schema(
    [("id", pa.string()), ("reason", pa.string()), ("duplicate_of", pa.string())]
)
_WS = re.compile(r"\s+")
_DEFAULT_PORTS = {"http": 80, "https": 443}
#: fetch time of a document without a parseable date: older than any real fetch
NO_DATE = -(2**62)


def normalize_text(text: str) -> str:
    """NFKC, casefolded, whitespace runs collapsed to one space, stripped."""
    return _WS.sub(" ", unicodedata.normalize("NFKC", text).casefold()).strip()


def text_hash(text: str | None) -> bytes | None:
    """128-bit xxh3 of the normalized text (None for an empty text: never a duplicate)."""
    norm = normalize_text(text or "")
    return xxhash.xxh3_128_digest(norm.encode("utf-8")) if norm else None


def normalize_url(url: str | None) -> str | None:
    """Lowercased scheme and host, default port and fragment dropped, query parameters sorted,
    trailing slash of the path dropped (None when there is no usable URL)."""
    url = (url or "").strip().removeprefix("<").removesuffix(">").strip()
    if not url:
        return None
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return url
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    if not host:
        return url
    netloc = host if port is None or _DEFAULT_PORTS.get(scheme) == port else f"{host}:{port}"
    path = parts.path.rstrip("/") or "/"
    query = urlencode(sorted(parse_qsl(parts.query, keep_blank_values=True)))
    return urlunsplit((scheme, netloc, path, query, ""))


def fetch_time(date: str | None) -> int:
    """Microseconds since the epoch of an ISO 8601 fetch date (``NO_DATE`` if absent/invalid)."""
    if not date:
        return NO_DATE
    try:
        dt = datetime.fromisoformat(date.strip())
    except ValueError:
        return NO_DATE
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return int(dt.timestamp() * 1_000_000)


def keys_table(table: pa.Table) -> pa.Table:
    """The dedup keys of a batch of documents (the one key routine of both engines)."""
    ids = table.column("id").to_pylist()
    urls = table.column("url").to_pylist() if "url" in table.column_names else [None] * len(ids)
    dates = table.column("date").to_pylist() if "date" in table.column_names else [None] * len(ids)
    texts = table.column("text").to_pylist()
    return pa.Table.from_pydict(
        {
            "id": ids,
            "url_key": [normalize_url(u) for u in urls],
            "fetched": [fetch_time(d) for d in dates],
            "text_hash": [text_hash(t) for t in texts],
        },
        schema=KEY_SCHEMA,
    )


def resolve(keys: pa.Table, config: ExactDedupConfig) -> pa.Table:
    """All documents' keys -> (id, reason, duplicate_of) of every removed document."""
    ids = keys.column("id").to_pylist()
    urls = keys.column("url_key").to_pylist()
    fetched = keys.column("fetched").to_pylist()
    hashes = keys.column("text_hash").to_pylist()
    removed: dict[str, tuple[str, str]] = {}
    if config.url:
        best: dict[str, tuple[int, str]] = {}
        for i, u, f in zip(ids, urls, fetched, strict=True):
            if u is None:
                continue
            cur = best.get(u)
            if cur is None or (-f, i) < (-cur[0], cur[1]):
                best[u] = (f, i)
        for i, u in zip(ids, urls, strict=True):
            if u is not None and best[u][1] != i:
                removed[i] = (URL_REASON, best[u][1])
    if config.text:
        keep: dict[bytes, str] = {}
        for i, h in zip(ids, hashes, strict=True):
            if h is not None and i not in removed and (h not in keep or i < keep[h]):
                keep[h] = i
        for i, h in zip(ids, hashes, strict=True):
            if h is not None and i not in removed and keep[h] != i:
                removed[i] = (TEXT_REASON, keep[h])
    items = sorted(removed.items())
    return pa.Table.from_pydict(
        {
            "id": [i for i, _ in items],
            "reason": [r for _, (r, _) in items],
            "duplicate_of": [d for _, (_, d) in items],
        },
        schema=DUP_SCHEMA,
    )


def apply(table: pa.Table, dups: dict[str, tuple[str, str]]) -> ss.ShardResult:
    """Split one shard by the resolved duplicates (shared by both engines)."""
    ids = table.column("id").to_pylist()
    mask = pa.array([i in dups for i in ids], pa.bool_())
    gone = table.filter(mask)
    gid = gone.column("id").to_pylist()
    removed = ss.removed_rows(gone, STAGE, [dups[i][0] for i in gid], [dups[i][1] for i in gid])
    return ss.ShardResult(table.filter(pc.invert(mask)), removed)


def keys_step(shard: ss.Shard, work: Path) -> None:
    path = work / "keys" / f"{shard.name}.parquet"
    if not path.exists():
        atomic_write_parquet(path, keys_table(pq.read_table(shard.path, columns=None)))


def resolve_step(shards: list[ss.Shard], work: Path, config: ExactDedupConfig) -> None:
    path = work / "duplicates.parquet"
    if not path.exists():
        keys = pa.concat_tables(
            [pq.read_table(work / "keys" / f"{s.name}.parquet") for s in shards]
        )
        atomic_write_parquet(path, resolve(keys, config))


def load_duplicates(work: Path) -> dict[str, tuple[str, str]]:
    t = pq.read_table(work / "duplicates.parquet").to_pydict()
    return {i: (r, d) for i, r, d in zip(t["id"], t["reason"], t["duplicate_of"], strict=True)}


def prepare(
    inputs: str | Path, output: str | Path, config: ExactDedupConfig, overwrite: bool = False
) -> tuple[list[ss.Shard], dict]:
    """Plan the shards and check/record the settings (every engine's first step)."""
    return ss.prepare(STAGE, inputs, output, config, overwrite)


def filter_step(shard: ss.Shard, output: str | Path) -> tuple:
    """Step 3 for one shard (a picklable unit of work for worker processes)."""
    out = Path(output)
    dups = load_duplicates(out / "_work")
    return ss.filter_shard(STAGE, shard, out, lambda t, _s: apply(t, dups))


def run_exact_dedup(
    inputs: str | Path,
    output: str | Path,
    config: ExactDedupConfig | None = None,
    overwrite: bool = False,
) -> dict:
    """The whole stage locally: keys, resolve, filter; resumable; returns stats.json."""
    config = config or ExactDedupConfig()
    out, t0 = Path(output), time.perf_counter()
    shards, settings = prepare(inputs, out, config, overwrite)
    work = out / "_work"
    for s in shards:
        keys_step(s, work)
    resolve_step(shards, work, config)
    parts = [filter_step(s, out) for s in shards]
    return ss.finish(STAGE, out, parts, time.perf_counter() - t0, settings)
