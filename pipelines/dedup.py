"""MinHash near-duplicate removal, FineWeb's four steps with every intermediate on disk.

1. signatures: per input shard, MinHash signatures (``pipelines.minhash``) are saved and, per
   band, the (band key, global doc index) pairs are written as a file SORTED by key;
2. buckets: per band, the sorted shard files are k-way merged as streams (memory = one read
   buffer per shard); documents with equal keys share a bucket and are linked
   (``link_bucket``: all to the first, or, with ``min_similarity``, each member to its most
   similar member if their signature-estimated Jaccard reaches ``min_similarity`` plus
   ``SIMILARITY_MARGIN``); edges are saved per band;
3. clusters: connected components of the edge graph (``scipy.sparse.csgraph``); in every
   cluster the document with the smallest ``id`` is kept (order-free, so the local and Beam
   engines agree), the others point to it with ``duplicate_of``;
4. filter: per input shard, kept documents get ``minhash_cluster`` (a stable 63-bit hash of the
   kept id of their cluster) and the rest go to ``removed/`` with reason ``dedup:minhash``.

Each step's outputs are written atomically and skipped when present, so a crashed run resumes.
Layout: ``OUT/documents``, ``OUT/removed``, ``OUT/stats/<shard>.json``, ``OUT/stats.json``,
work files under ``OUT/_work``.
"""

from __future__ import annotations

import heapq
import io
import json
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import xxhash

from pipelines.io import atomic_write_bytes, atomic_write_parquet, documents_dir, parquet_files
from pipelines.minhash import MinHasher
from pipelines.stats import StageStats, merge_stats, write_stats
from schemas.config import DedupConfig
from schemas.documents import DOCUMENT_SCHEMA, REMOVED_SCHEMA

STAGE = "dedup"
REASON = "dedup:minhash"
BUCKET_DTYPE = np.dtype([("key", "<u8"), ("doc", "<u8")])


def hasher(config: DedupConfig) -> MinHasher:
    return MinHasher(ngram=config.ngram, bands=config.bands, rows=config.rows, seed=config.seed)


def cluster_id(doc_id: str) -> int:
    """The ``minhash_cluster`` value of a cluster: a stable 63-bit hash of its kept id."""
    return xxhash.xxh64_intdigest(doc_id.encode("utf-8")) >> 1


def signatures_for_texts(texts: list[str | None], mh: MinHasher) -> tuple[np.ndarray, np.ndarray]:
    """(signatures (n, num_perm), has_words mask (n,)): the one signature routine of both engines."""
    hashes, offsets = mh.hashes(texts)
    return mh.signatures_flat(hashes, offsets), offsets[1:] > offsets[:-1]


#: ``min_similarity`` links a colliding pair when its estimated Jaccard is >= min_similarity +
#: this margin. The estimate has a standard error of ~0.045 at J = 0.7 (104 positions), so
#: without a margin pairs just below the threshold slip in: measured on the quality benchmark
#: over 2 corpora x 4 seeds, at 0.7 the share of links with exact J >= 0.7 goes from 0.964
#: (runs down to 0.948) to 0.979 (lowest run 0.967) with the margin, recall of J >= 0.8 pairs
#: unchanged within 0.01 (benchmarks/RESULTS.md).
SIMILARITY_MARGIN = 0.02


def link_bucket(members: np.ndarray, sigs: np.ndarray | None,
                min_similarity: float | None, rows: int = 8) -> list[tuple[int, int]]:
    """Edges among the documents of one bucket (positions into ``members``).

    Without ``min_similarity`` every member is linked to the first (a star: the component is
    the same whatever the order). With it, every member is linked to its most similar other
    member if their estimated Jaccard is >= ``min_similarity + SIMILARITY_MARGIN`` (a
    nearest-neighbour forest: strongest links only, which keeps borderline pairs out; measured
    in benchmarks/dedup_quality.py). The estimate leaves out one fully equal band (members of
    a bucket share at least one): those ``rows`` values are equal by selection and would bias
    it upwards (using all 112 positions measured worse: 0.948 of links at J >= 0.7). It
    depends on the pair only, not on the band being merged, so a borderline pair gets one
    test, not one per band it collides in.
    """
    k = len(members)
    if k < 2:
        return []
    if min_similarity is None or sigs is None:
        return [(0, j) for j in range(1, k)]
    num_perm = sigs.shape[1]
    threshold = min_similarity + SIMILARITY_MARGIN
    edges: set[tuple[int, int]] = set()
    for i in range(k):
        est = ((sigs == sigs[i]).sum(axis=1) - rows) / (num_perm - rows)
        est[i] = -1.0
        j = int(np.argmax(est))  # ties: the lowest position
        if est[j] >= threshold:
            edges.add((min(i, j), max(i, j)))
    return sorted(edges)


def components(n: int, edges: np.ndarray) -> np.ndarray:
    """Connected-component label of each of ``n`` nodes (``edges``: (m, 2) int array)."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    if len(edges) == 0:
        return np.arange(n)
    graph = coo_matrix((np.ones(len(edges), dtype=np.int8), (edges[:, 0], edges[:, 1])), shape=(n, n))
    _, labels = connected_components(graph, directed=False)
    return labels


def representatives(ids: list[str], labels: np.ndarray) -> list[str]:
    """For each node, the smallest id of its component (the document that is kept)."""
    best: dict[int, str] = {}
    for doc_id, lab in zip(ids, labels.tolist(), strict=True):
        if lab not in best or doc_id < best[lab]:
            best[lab] = doc_id
    return [best[lab] for lab in labels.tolist()]


# --------------------------------------------------------------------------- local engine


def _npy_bytes(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, arr, allow_pickle=False)
    return buf.getvalue()


def plan(input_dir: str | Path) -> list[tuple[str, Path, int, int]]:
    """(shard name, path, first global index, rows) of every input shard, in name order."""
    out, offset = [], 0
    for f in parquet_files(documents_dir(input_dir)):
        rows = pq.ParquetFile(f).metadata.num_rows
        out.append((f.stem, f, offset, rows))
        offset += rows
    return out


def signature_step(path: Path, name: str, offset: int, work: Path, config: DedupConfig) -> None:
    """Step 1 for one shard: signatures + one key-sorted bucket file per band."""
    done = work / "signatures" / f"{name}.npy"
    if done.exists():
        return
    mh = hasher(config)
    sig_parts, mask_parts = [], []
    for batch in pq.ParquetFile(path).iter_batches(batch_size=1024, columns=["text"]):
        s, m = signatures_for_texts(batch.column(0).to_pylist(), mh)
        sig_parts.append(s)
        mask_parts.append(m)
    sigs = np.concatenate(sig_parts) if sig_parts else np.zeros((0, mh.num_perm), np.uint64)
    mask = np.concatenate(mask_parts) if mask_parts else np.zeros(0, bool)
    keys = mh.band_keys(sigs)
    docs = (np.arange(len(sigs), dtype=np.uint64) + np.uint64(offset))[mask]
    for b in range(mh.bands):
        rec = np.empty(len(docs), dtype=BUCKET_DTYPE)
        rec["key"], rec["doc"] = keys[mask, b], docs
        rec.sort(order=["key", "doc"])
        atomic_write_bytes(work / "buckets" / f"band-{b:03d}" / f"{name}.npy", _npy_bytes(rec))
    atomic_write_bytes(done, _npy_bytes(sigs))  # last: marks the shard finished


def _stream(path: Path, chunk: int = 65536) -> Iterator[tuple[int, int]]:
    arr = np.load(path, mmap_mode="r")
    for s in range(0, len(arr), chunk):
        part = arr[s:s + chunk]
        yield from zip(part["key"].tolist(), part["doc"].tolist(), strict=True)


class _Signatures:
    """Random access to saved signatures by global index (memory-mapped shard files)."""

    def __init__(self, shards: list[tuple[str, Path, int, int]], work: Path):
        self.starts = np.array([s[2] for s in shards], dtype=np.int64)
        self.arrays = [np.load(work / "signatures" / f"{s[0]}.npy", mmap_mode="r") for s in shards]

    def get(self, docs: list[int]) -> np.ndarray:
        out = []
        for d in docs:
            i = int(np.searchsorted(self.starts, d, side="right")) - 1
            out.append(self.arrays[i][d - self.starts[i]])
        return np.stack(out)


def bucket_step(band: int, shards: list[tuple[str, Path, int, int]], work: Path,
                config: DedupConfig) -> None:
    """Step 2 for one band: merge the sorted shard files, link documents with equal keys."""
    done = work / "edges" / f"band-{band:03d}.npy"
    if done.exists():
        return
    sigs = _Signatures(shards, work) if config.min_similarity is not None else None
    streams = [_stream(work / "buckets" / f"band-{band:03d}" / f"{s[0]}.npy") for s in shards]
    edges: list[tuple[int, int]] = []

    def flush(run: list[int]) -> None:
        if len(run) > 1:
            members = np.array(run)
            s = sigs.get(run) if sigs is not None else None
            edges.extend((run[i], run[j])
                         for i, j in link_bucket(members, s, config.min_similarity, config.rows))

    run: list[int] = []
    last = None
    for key, doc in heapq.merge(*streams):
        if key != last:
            flush(run)
            run, last = [], key
        run.append(doc)
    flush(run)
    atomic_write_bytes(done, _npy_bytes(np.array(edges, dtype=np.int64).reshape(-1, 2)))


def cluster_step(shards: list[tuple[str, Path, int, int]], work: Path) -> None:
    """Step 3: connected components; saves (removed global index, kept id) pairs."""
    done = work / "clusters.parquet"
    if done.exists():
        return
    n = sum(s[3] for s in shards)
    parts = [np.load(p) for p in sorted((work / "edges").glob("band-*.npy"))]
    edges = np.concatenate(parts) if parts else np.zeros((0, 2), np.int64)
    labels = components(n, edges)
    sizes = np.bincount(labels, minlength=labels.max() + 1 if n else 0)
    linked = np.flatnonzero(sizes[labels] > 1) if n else np.zeros(0, np.int64)
    ids = _ids_at(shards, linked)
    reps = representatives(ids, labels[linked])
    dup = [(int(i), r) for i, d, r in zip(linked.tolist(), ids, reps, strict=True) if d != r]
    table = pa.table({"doc": pa.array([d for d, _ in dup], pa.int64()),
                      "duplicate_of": pa.array([r for _, r in dup], pa.string())})
    atomic_write_parquet(done, table)


def _ids_at(shards: list[tuple[str, Path, int, int]], docs: np.ndarray) -> list[str]:
    out: list[str] = []
    for name, path, start, rows in shards:
        local = docs[(docs >= start) & (docs < start + rows)] - start
        if len(local):
            col = pq.read_table(path, columns=["id"]).column("id")
            out.extend(col.take(pa.array(local)).to_pylist())
        del name
    return out


def conform(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """Select/cast ``table`` to exactly ``schema`` (absent columns become null)."""
    cols = [table.column(f.name).cast(f.type) if f.name in table.column_names
            else pa.nulls(len(table), f.type) for f in schema]
    return pa.Table.from_arrays(cols, schema=schema)


def apply_duplicates(table: pa.Table, dup_of: dict[str, str]) -> tuple[pa.Table, pa.Table]:
    """Split one shard into (kept with ``minhash_cluster``, removed with ``duplicate_of``).

    ``dup_of`` maps removed ids to the kept id of their cluster; shared by both engines.
    """
    table = conform(table, DOCUMENT_SCHEMA)
    ids = table.column("id").to_pylist()
    removed_mask = pa.array([i in dup_of for i in ids], pa.bool_())
    kept = table.filter(pc.invert(removed_mask))
    cluster = pa.array([cluster_id(i) for i in kept.column("id").to_pylist()], pa.int64())
    kept = kept.set_column(kept.schema.get_field_index("minhash_cluster"), "minhash_cluster", cluster)
    gone = table.filter(removed_mask)
    rep_ids = [dup_of[i] for i in gone.column("id").to_pylist()]
    gone = gone.set_column(gone.schema.get_field_index("minhash_cluster"), "minhash_cluster",
                           pa.array([cluster_id(r) for r in rep_ids], pa.int64()))
    n = len(gone)
    gone = (gone.append_column("stage", pa.array([STAGE] * n, pa.string()))
                .append_column("reason", pa.array([REASON] * n, pa.string()))
                .append_column("duplicate_of", pa.array(rep_ids, pa.string())))
    return kept, conform(gone, REMOVED_SCHEMA)


def filter_step(path: Path, name: str, offset: int, rows: int, work: Path, out: Path) -> StageStats:
    """Step 4 for one shard: write kept and removed documents and the shard's stats."""
    stats_path = out / "stats" / f"{name}.json"
    if stats_path.exists():
        return StageStats.from_dict(STAGE, json.loads(stats_path.read_text()))
    t0 = time.perf_counter()
    clusters = pq.read_table(work / "clusters.parquet",
                             filters=[("doc", ">=", offset), ("doc", "<", offset + rows)])
    table = pq.read_table(path)
    ids = table.column("id").to_pylist()
    dup_of = {ids[d - offset]: r for d, r in zip(clusters.column("doc").to_pylist(),
                                                  clusters.column("duplicate_of").to_pylist(), strict=True)}
    kept, gone = apply_duplicates(table, dup_of)
    atomic_write_parquet(out / "documents" / f"{name}.parquet", kept)
    atomic_write_parquet(out / "removed" / f"{name}.parquet", gone)
    st = StageStats(STAGE, len(table), len(kept), Counter({REASON: len(gone)} if len(gone) else {}),
                    time.perf_counter() - t0)
    st.check_conservation()
    atomic_write_bytes(stats_path, json.dumps(st.to_dict()).encode())
    return st


def dedup(input_dir: str | Path, output_dir: str | Path, config: DedupConfig | None = None) -> dict[str, StageStats]:
    """The whole local dedup, sequentially (the Prefect flow runs the same steps in parallel)."""
    config = config or DedupConfig()
    out = Path(output_dir)
    work = out / "_work"
    t0 = time.perf_counter()
    shards = plan(input_dir)
    for name, path, offset, _ in shards:
        signature_step(path, name, offset, work, config)
    for band in range(config.bands):
        bucket_step(band, shards, work, config)
    cluster_step(shards, work)
    parts = [{STAGE: filter_step(p, n, o, r, work, out)} for n, p, o, r in shards]
    return finish(out, parts, time.perf_counter() - t0)


def finish(out: Path, parts: list[dict[str, StageStats]], seconds: float) -> dict[str, StageStats]:
    stats = merge_stats(parts) or {STAGE: StageStats(STAGE)}
    stats[STAGE].seconds = seconds
    stats[STAGE].check_conservation()
    write_stats(out / "stats.json", stats)
    return stats
