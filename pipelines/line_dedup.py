"""Line/paragraph-level dedup across the corpus (CCNet / dolma): boilerplate that survives
extraction ("Subscribe to our newsletter", cookie notices, share bars) is removed from documents.

1. count: per input shard, every document's distinct units (lines, or paragraphs) are
   normalized (whitespace collapsed, casefolded) and hashed (64-bit xxh3); the shard's
   (hash, number of documents) pairs are saved SORTED by hash (``OUT/_work/counts``);
2. merge: the hash space is cut into ``partitions`` ranges; per range, each shard's sorted
   slice is read (memory-mapped) and the counts are summed. Units in more than ``max_docs``
   documents go to ``OUT/_work/frequent.npy`` (sorted). Memory is one partition's distinct
   units (about 1/partitions of the corpus's) plus the frequent set: an on-disk sorted hash
   table, exact (no Bloom-filter false positives; the only error is a 64-bit hash collision,
   about u^2 / 2^65 for u distinct units: 3e-8 at a billion units);
3. filter: per shard, frequent units are removed from every document that has them (all
   occurrences, as CCNet); a document that lost units and has fewer than ``min_words`` words
   left is removed (``line_dedup:too_little_text``, with its original text). Stats count units
   in/removed and documents modified.

Counting is order-free (a sum), so every engine removes the same units.
"""

from __future__ import annotations

import re
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import xxhash

from pipelines import shard_stage as ss
from pipelines.io import atomic_write_bytes
from schemas.config import LineDedupConfig

STAGE = "line_dedup"
REASON = "line_dedup:too_little_text"
COUNT_DTYPE = np.dtype([("hash", "<u8"), ("count", "<u8")])
_WS = re.compile(r"\s+")
_PARA = re.compile(r"\n[ \t]*\n")
_WORD = re.compile(r"\w+")


def split_units(text: str, unit: str) -> tuple[list[str], str]:
    """(units, separator that joins them back)."""
    if unit == "paragraph":
        return _PARA.split(text), "\n\n"
    return text.split("\n"), "\n"


def unit_hash(unit: str, min_chars: int) -> int | None:
    """Hash of a normalized unit; None for blank units or units shorter than ``min_chars``."""
    norm = _WS.sub(" ", unit).strip().casefold()
    if not norm or len(norm) < min_chars:
        return None
    return xxhash.xxh3_64_intdigest(norm.encode("utf-8"))


def doc_hashes(text: str | None, config: LineDedupConfig) -> list[int | None]:
    units, _ = split_units(text or "", config.unit)
    return [unit_hash(u, config.min_unit_chars) for u in units]


def count_texts(texts: list[str | None], config: LineDedupConfig) -> np.ndarray:
    """Sorted (hash, documents containing it) of a batch of texts."""
    parts = [
        np.unique(np.array([h for h in doc_hashes(t, config) if h is not None], dtype=np.uint64))
        for t in texts
    ]
    allh = np.concatenate(parts) if parts else np.zeros(0, np.uint64)
    uniq, counts = np.unique(allh, return_counts=True)
    rec = np.empty(len(uniq), dtype=COUNT_DTYPE)
    rec["hash"], rec["count"] = uniq, counts
    return rec


def _npy(arr: np.ndarray) -> bytes:
    import io

    buf = io.BytesIO()
    np.save(buf, arr, allow_pickle=False)
    return buf.getvalue()


def count_step(shard: ss.Shard, work: Path, config: LineDedupConfig) -> None:
    path = work / "counts" / f"{shard.name}.npy"
    if not path.exists():
        texts = pq.read_table(shard.path, columns=["text"]).column("text").to_pylist()
        atomic_write_bytes(path, _npy(count_texts(texts, config)))


def partition_bounds(partitions: int) -> list[int]:
    step = 2**64 // partitions
    return [k * step for k in range(partitions)] + [2**64]


def frequent_from_counts(arrays: list[np.ndarray], config: LineDedupConfig) -> np.ndarray:
    """Sorted hashes whose summed document count exceeds ``max_docs``, one partition at a time."""
    bounds = partition_bounds(config.partitions)
    out = []
    for lo, hi in zip(bounds[:-1], bounds[1:], strict=True):
        chunks = []
        for a in arrays:
            h = a["hash"]
            i = int(np.searchsorted(h, np.uint64(lo), side="left"))
            j = len(h) if hi >= 2**64 else int(np.searchsorted(h, np.uint64(hi), side="left"))
            if j > i:
                chunks.append(np.asarray(a[i:j]))
        if not chunks:
            continue
        part = np.concatenate(chunks)
        uniq, inv = np.unique(part["hash"], return_inverse=True)
        total = np.bincount(inv, weights=part["count"].astype(np.float64), minlength=len(uniq))
        out.append(uniq[total > config.max_docs])
    return np.concatenate(out) if out else np.zeros(0, np.uint64)


def save_frequent(work: Path, frequent: np.ndarray) -> None:
    atomic_write_bytes(work / "frequent.npy", _npy(frequent))


def merge_step(shards: list[ss.Shard], work: Path, config: LineDedupConfig) -> None:
    if not (work / "frequent.npy").exists():
        arrays = [np.load(work / "counts" / f"{s.name}.npy", mmap_mode="r") for s in shards]
        save_frequent(work, frequent_from_counts(arrays, config))


def strip_frequent(
    text: str | None, frequent: np.ndarray, config: LineDedupConfig
) -> tuple[str, int, int]:
    """(text without frequent units, units in, units removed)."""
    units, sep = split_units(text or "", config.unit)
    hashes = [unit_hash(u, config.min_unit_chars) for u in units]
    idx = [i for i, h in enumerate(hashes) if h is not None]
    if not idx or len(frequent) == 0:
        return text or "", len(idx), 0
    hv = np.array([hashes[i] for i in idx], dtype=np.uint64)
    pos = np.minimum(np.searchsorted(frequent, hv), len(frequent) - 1)
    hit = set(np.array(idx)[frequent[pos] == hv].tolist())
    if not hit:
        return text or "", len(idx), 0
    kept = [u for i, u in enumerate(units) if i not in hit]
    return sep.join(kept).strip("\n"), len(idx), len(hit)


def apply(table: pa.Table, frequent: np.ndarray, config: LineDedupConfig) -> ss.ShardResult:
    """Strip frequent units from one shard's documents (shared by both engines)."""
    texts = table.column("text").to_pylist()
    new_texts, drop = [], []
    counts: Counter = Counter()
    for t in texts:
        new, n_in, n_rm = strip_frequent(t, frequent, config)
        counts["units_in"] += n_in
        counts["units_removed"] += n_rm
        if n_rm:
            counts["docs_modified"] += 1
        too_little = n_rm > 0 and len(_WORD.findall(new)) < config.min_words
        drop.append(too_little)
        new_texts.append(t if too_little else new)
    mask = pa.array(drop, pa.bool_())
    table = table.set_column(
        table.schema.get_field_index("text"), "text", pa.array(new_texts, pa.string())
    )
    gone = table.filter(mask)
    return ss.ShardResult(
        table.filter(pc.invert(mask)), ss.removed_rows(gone, STAGE, [REASON] * len(gone)), counts
    )


def prepare(
    inputs: str | Path, output: str | Path, config: LineDedupConfig, overwrite: bool = False
) -> tuple[list[ss.Shard], dict]:
    return ss.prepare(STAGE, inputs, output, config, overwrite)


def filter_step(shard: ss.Shard, output: str | Path, config: LineDedupConfig) -> tuple:
    """Step 3 for one shard (a picklable unit of work for worker processes)."""
    out = Path(output)
    frequent = np.load(out / "_work" / "frequent.npy", mmap_mode="r")
    return ss.filter_shard(STAGE, shard, out, lambda t, _s: apply(t, frequent, config))


def finish(output: str | Path, parts: list, seconds: float, settings: dict) -> dict:
    out = Path(output)
    frequent = np.load(out / "_work" / "frequent.npy", mmap_mode="r")
    return ss.finish(STAGE, out, parts, seconds, settings, {"frequent_units": int(len(frequent))})


def run_line_dedup(
    inputs: str | Path,
    output: str | Path,
    config: LineDedupConfig | None = None,
    overwrite: bool = False,
) -> dict:
    """The whole stage locally: count, merge, filter; resumable; returns stats.json."""
    config = config or LineDedupConfig()
    out, t0 = Path(output), time.perf_counter()
    shards, settings = prepare(inputs, out, config, overwrite)
    work = out / "_work"
    for s in shards:
        count_step(s, work, config)
    merge_step(shards, work, config)
    parts = [filter_step(s, out, config) for s in shards]
    return finish(out, parts, time.perf_counter() - t0, settings)
