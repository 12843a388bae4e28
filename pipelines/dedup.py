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
from pipelines.pool import Mapper, PassRunner, run_direct, serial
from pipelines.stats import StageStats, merge_stats, write_stats
from schemas.config import DedupConfig
from schemas.documents import DOCUMENT_SCHEMA, REMOVED_SCHEMA

STAGE = "dedup"
REASON = "dedup:minhash"
REASON_SAME_ID = "dedup:duplicate_id"
BUCKET_DTYPE = np.dtype([("key", "<u8"), ("doc", "<u8")])
ID_DTYPE = np.dtype([("h1", "<u8"), ("h2", "<u8"), ("text", "<u8"), ("doc", "<u8")])


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


def link_bucket(
    members: np.ndarray, sigs: np.ndarray | None, min_similarity: float | None, rows: int = 8
) -> list[tuple[int, int]]:
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
    graph = coo_matrix(
        (np.ones(len(edges), dtype=np.int8), (edges[:, 0], edges[:, 1])), shape=(n, n)
    )
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


Shard = tuple[str, Path, int, int]


def plan(inputs: str | Path | list[str | Path]) -> list[Shard]:
    """(shard name, path, first global index, rows) of every input shard, in shard-name order.

    ``inputs``: one or several documents directories (a stage's OUT or OUT/documents); all of
    them are used. A file stem that occurs in more than one input is made unique with the
    input's position (``<stem>@<k>``), so outputs never overwrite each other.
    """
    dirs = [inputs] if isinstance(inputs, (str, Path)) else list(inputs)
    found = [(f.stem, k, f) for k, d in enumerate(dirs) for f in parquet_files(documents_dir(d))]
    stems = Counter(stem for stem, _, _ in found)
    named = sorted((stem if stems[stem] == 1 else f"{stem}@{k}", f) for stem, k, f in found)
    out, offset = [], 0
    for name, f in named:
        rows = pq.ParquetFile(f).metadata.num_rows
        out.append((name, f, offset, rows))
        offset += rows
    return out


def id_hashes(ids: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Two 64-bit halves of xxh3_128 of each id (equal ids <=> equal pairs, up to 2**-128)."""
    h = [xxhash.xxh3_128_intdigest(i.encode("utf-8")) for i in ids]
    return (
        np.array([x >> 64 for x in h], dtype=np.uint64),
        np.array([x & 0xFFFF_FFFF_FFFF_FFFF for x in h], dtype=np.uint64),
    )


def text_hash(text: str | None) -> int:
    return xxhash.xxh3_64_intdigest((text or "").encode("utf-8", "surrogatepass"))


def signature_step(path: Path, name: str, offset: int, work: Path, config: DedupConfig) -> None:
    """Step 1 for one shard: signatures + one key-sorted bucket file per band + the shard's
    (id hash, text hash, doc) records sorted by id hash (for the duplicate-id check)."""
    done = work / "signatures" / f"{name}.npy"
    ids_file = work / "ids" / f"{name}.npy"
    if done.exists() and ids_file.exists():
        return
    mh = hasher(config)
    sig_parts, mask_parts, id_parts = [], [], []
    for batch in pq.ParquetFile(path).iter_batches(batch_size=1024, columns=["id", "text"]):
        texts = batch.column(1).to_pylist()
        s, m = signatures_for_texts(texts, mh)
        sig_parts.append(s)
        mask_parts.append(m)
        h1, h2 = id_hashes(batch.column(0).to_pylist())
        id_parts.append((h1, h2, np.array([text_hash(t) for t in texts], dtype=np.uint64)))
    sigs = np.concatenate(sig_parts) if sig_parts else np.zeros((0, mh.num_perm), np.uint64)
    mask = np.concatenate(mask_parts) if mask_parts else np.zeros(0, bool)
    keys = mh.band_keys(sigs)
    all_docs = np.arange(len(sigs), dtype=np.uint64) + np.uint64(offset)
    docs = all_docs[mask]
    for b in range(mh.bands):
        rec = np.empty(len(docs), dtype=BUCKET_DTYPE)
        rec["key"], rec["doc"] = keys[mask, b], docs
        rec.sort(order=["key", "doc"])
        atomic_write_bytes(work / "buckets" / f"band-{b:03d}" / f"{name}.npy", _npy_bytes(rec))
    rec = np.empty(len(all_docs), dtype=ID_DTYPE)
    for field, i in (("h1", 0), ("h2", 1), ("text", 2)):
        rec[field] = (
            np.concatenate([p[i] for p in id_parts]) if id_parts else np.zeros(0, np.uint64)
        )
    rec["doc"] = all_docs
    rec.sort(order=["h1", "h2", "doc"])
    atomic_write_bytes(ids_file, _npy_bytes(rec))
    atomic_write_bytes(done, _npy_bytes(sigs))  # last: marks the shard finished


def id_step(shards: list[Shard], work: Path) -> None:
    """Step 1b: documents that share an id across the whole run (k-way merge of the sorted id
    files). Same id and same text: an exact duplicate, the first copy in shard order is kept and
    the others are removed (``dedup:duplicate_id``, ``duplicate_of`` = the id) and left out of
    the MinHash graph. Same id and different texts: ``DuplicateIdError`` (ids are WARC record
    ids; two texts under one id means inputs made with different settings were mixed)."""
    done = work / "same_id.parquet"
    if done.exists():
        return
    streams = [_id_stream(work / "ids" / f"{s[0]}.npy") for s in shards]
    removed: list[int] = []
    run: list[tuple[int, int]] = []
    last = None
    for h1, h2, th, doc in heapq.merge(*streams):
        if (h1, h2) != last:
            _close_id_run(run, shards, removed)
            run, last = [], (h1, h2)
        run.append((doc, th))
    _close_id_run(run, shards, removed)
    ids = _ids_at(shards, np.array(removed, dtype=np.int64)) if removed else []
    atomic_write_parquet(
        done,
        pa.table(
            {"doc": pa.array(removed, pa.int64()), "duplicate_of": pa.array(ids, pa.string())}
        ),
    )


class DuplicateIdError(ValueError):
    """Two documents of one run share an id but not their text."""


def duplicate_id_error(doc_id: str, shard_a: str, shard_b: str) -> DuplicateIdError:
    return DuplicateIdError(
        f"document id {doc_id!r} occurs with different texts (in {shard_a} and {shard_b}): ids must "
        "be unique across a run's inputs; were outputs made with different settings mixed?"
    )


def _close_id_run(run: list[tuple[int, int]], shards: list[Shard], removed: list[int]) -> None:
    if len(run) < 2:
        return
    run.sort()
    first_doc, first_text = run[0]
    for doc, th in run[1:]:
        if th != first_text:
            a, b = _shard_of(shards, first_doc), _shard_of(shards, doc)
            raise duplicate_id_error(_ids_at(shards, np.array([first_doc]))[0], a, b)
        removed.append(doc)


def _shard_of(shards: list[Shard], doc: int) -> str:
    starts = [s[2] for s in shards]
    return shards[int(np.searchsorted(starts, doc, side="right")) - 1][0]


def _id_stream(path: Path, chunk: int = 65536) -> Iterator[tuple[int, int, int, int]]:
    arr = np.load(path, mmap_mode="r")
    for s in range(0, len(arr), chunk):
        part = arr[s : s + chunk]
        yield from zip(
            part["h1"].tolist(),
            part["h2"].tolist(),
            part["text"].tolist(),
            part["doc"].tolist(),
            strict=True,
        )


def _same_id_docs(work: Path) -> set[int]:
    return set(pq.read_table(work / "same_id.parquet", columns=["doc"]).column("doc").to_pylist())


def _stream(path: Path, chunk: int = 65536) -> Iterator[tuple[int, int]]:
    arr = np.load(path, mmap_mode="r")
    for s in range(0, len(arr), chunk):
        part = arr[s : s + chunk]
        yield from zip(part["key"].tolist(), part["doc"].tolist(), strict=True)


class _Signatures:
    """Random access to saved signatures by global index (memory-mapped shard files)."""

    def __init__(self, shards: list[Shard], work: Path):
        self.starts = np.array([s[2] for s in shards], dtype=np.int64)
        self.arrays = [np.load(work / "signatures" / f"{s[0]}.npy", mmap_mode="r") for s in shards]

    def get(self, docs: list[int]) -> np.ndarray:
        out = []
        for d in docs:
            i = int(np.searchsorted(self.starts, d, side="right")) - 1
            out.append(self.arrays[i][d - self.starts[i]])
        return np.stack(out)


def bucket_step(band: int, shards: list[Shard], work: Path, config: DedupConfig) -> None:
    """Step 2 for one band: merge the sorted shard files, link documents with equal keys."""
    done = work / "edges" / f"band-{band:03d}.npy"
    if done.exists():
        return
    sigs = _Signatures(shards, work) if config.min_similarity is not None else None
    skip = _same_id_docs(work)
    streams = [_stream(work / "buckets" / f"band-{band:03d}" / f"{s[0]}.npy") for s in shards]
    edges: list[tuple[int, int]] = []

    def flush(run: list[int]) -> None:
        if len(run) > 1:
            members = np.array(run)
            s = sigs.get(run) if sigs is not None else None
            edges.extend(
                (run[i], run[j])
                for i, j in link_bucket(members, s, config.min_similarity, config.rows)
            )

    run: list[int] = []
    last = None
    for key, doc in heapq.merge(*streams):
        if key != last:
            flush(run)
            run, last = [], key
        if doc not in skip:
            run.append(doc)
    flush(run)
    atomic_write_bytes(done, _npy_bytes(np.array(edges, dtype=np.int64).reshape(-1, 2)))


def cluster_step(shards: list[Shard], work: Path) -> None:
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
    table = pa.table(
        {
            "doc": pa.array([d for d, _ in dup], pa.int64()),
            "duplicate_of": pa.array([r for _, r in dup], pa.string()),
        }
    )
    atomic_write_parquet(done, table)


def _ids_at(shards: list[Shard], docs: np.ndarray) -> list[str]:
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
    cols = [
        table.column(f.name).cast(f.type)
        if f.name in table.column_names
        else pa.nulls(len(table), f.type)
        for f in schema
    ]
    return pa.Table.from_arrays(cols, schema=schema)


def apply_duplicates(
    table: pa.Table, dup_of: dict[str, str], same_id_rows: set[int] | frozenset[int] = frozenset()
) -> tuple[pa.Table, pa.Table]:
    """Split one shard into (kept with ``minhash_cluster``, removed with ``duplicate_of``).

    ``dup_of`` maps ids removed as near duplicates to the kept id of their cluster;
    ``same_id_rows`` are row positions removed as exact copies of a document with the same id
    (``dedup:duplicate_id``, ``duplicate_of`` = that id). Shared by both engines.
    """
    table = conform(table, DOCUMENT_SCHEMA)
    ids = table.column("id").to_pylist()
    reasons = [
        REASON_SAME_ID if r in same_id_rows else REASON if i in dup_of else None
        for r, i in enumerate(ids)
    ]
    removed_mask = pa.array([r is not None for r in reasons], pa.bool_())
    kept = table.filter(pc.invert(removed_mask))
    cluster = pa.array([cluster_id(i) for i in kept.column("id").to_pylist()], pa.int64())
    kept = kept.set_column(
        kept.schema.get_field_index("minhash_cluster"), "minhash_cluster", cluster
    )
    gone = table.filter(removed_mask)
    gone_reasons = [r for r in reasons if r is not None]
    gone_ids = gone.column("id").to_pylist()
    rep_ids = [
        i if r == REASON_SAME_ID else dup_of[i] for i, r in zip(gone_ids, gone_reasons, strict=True)
    ]
    gone = gone.set_column(
        gone.schema.get_field_index("minhash_cluster"),
        "minhash_cluster",
        pa.array([cluster_id(dup_of.get(r, r)) for r in rep_ids], pa.int64()),
    )
    n = len(gone)
    gone = (
        gone.append_column("stage", pa.array([STAGE] * n, pa.string()))
        .append_column("reason", pa.array(gone_reasons, pa.string()))
        .append_column("duplicate_of", pa.array(rep_ids, pa.string()))
    )
    return kept, conform(gone, REMOVED_SCHEMA)


def filter_step(path: Path, name: str, offset: int, rows: int, work: Path, out: Path) -> StageStats:
    """Step 4 for one shard: write kept and removed documents and the shard's stats."""
    stats_path = out / "stats" / f"{name}.json"
    if stats_path.exists():
        return StageStats.from_dict(STAGE, json.loads(stats_path.read_text()))
    t0 = time.perf_counter()
    in_shard = [("doc", ">=", offset), ("doc", "<", offset + rows)]
    clusters = pq.read_table(work / "clusters.parquet", filters=in_shard)
    same = pq.read_table(work / "same_id.parquet", columns=["doc"], filters=in_shard)
    table = pq.read_table(path)
    ids = table.column("id").to_pylist()
    dup_of = {
        ids[d - offset]: r
        for d, r in zip(
            clusters.column("doc").to_pylist(),
            clusters.column("duplicate_of").to_pylist(),
            strict=True,
        )
    }
    same_rows = {d - offset for d in same.column("doc").to_pylist()}
    kept, gone = apply_duplicates(table, dup_of, same_rows)
    atomic_write_parquet(out / "documents" / f"{name}.parquet", kept)
    atomic_write_parquet(out / "removed" / f"{name}.parquet", gone)
    st = StageStats(
        STAGE,
        len(table),
        len(kept),
        Counter(gone.column("reason").to_pylist()),
        time.perf_counter() - t0,
    )
    st.check_conservation()
    atomic_write_bytes(stats_path, json.dumps(st.to_dict()).encode())
    return st


def dedup(
    inputs: str | Path | list[str | Path],
    output_dir: str | Path,
    config: DedupConfig | None = None,
    pmap: Mapper = serial,
    run_pass: PassRunner = run_direct,
) -> dict[str, StageStats]:
    """The dedup pass driver, used by the plain function and the Prefect flow alike: signatures
    (per shard, through ``pmap``), duplicate ids, buckets (per band, through ``pmap``),
    clusters, filter (per shard, through ``pmap``); ``run_pass(name, fn, *args)`` runs each
    pass (the flow makes it a task run). Finished pass outputs are skipped, so a re-run resumes.
    ``inputs``: one or several documents directories, all used."""
    config = config or DedupConfig()
    out = Path(output_dir)
    work = out / "_work"
    t0 = time.perf_counter()
    shards = plan(inputs)
    if not shards:
        raise FileNotFoundError(f"no documents Parquet under {inputs}")
    run_pass(
        "dedup-signatures", pmap, signature_step, [(p, n, o, work, config) for n, p, o, _ in shards]
    )
    run_pass("dedup-ids", id_step, shards, work)
    run_pass(
        "dedup-buckets", pmap, bucket_step, [(b, shards, work, config) for b in range(config.bands)]
    )
    run_pass("dedup-clusters", cluster_step, shards, work)
    done = run_pass(
        "dedup-filter", pmap, filter_step, [(p, n, o, r, work, out) for n, p, o, r in shards]
    )
    return finish(out, [{STAGE: st} for st in done], time.perf_counter() - t0)


def finish(out: Path, parts: list[dict[str, StageStats]], seconds: float) -> dict[str, StageStats]:
    stats = merge_stats(parts) or {STAGE: StageStats(STAGE)}
    stats[STAGE].seconds = seconds
    stats[STAGE].check_conservation()
    write_stats(out / "stats.json", stats)
    return stats
