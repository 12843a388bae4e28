"""Tokenization into shuffled Parquet token shards, an external sort that never holds the corpus.

Order and split are functions of the document id only, so every engine gets the same shards:

- shuffle key = ``xxh64(id, seed)``: the corpus is ordered by it (a deterministic
  document-level shuffle across all input shards);
- split = val iff ``xxh64(id, VAL_SALT) / 2**64 < val_fraction``: stable whatever the seed.

Pass 1 (``tokenize_shard``, one input shard at a time, parallel): texts -> ids + EOT, rows
bucketed into ``P`` key ranges and written as one row group per range to
``OUT/_work/runs/<shard>.parquet``. Pass 2 (``write_shards``): for each key range in order,
read that row group from every run (memory ~ total / P), sort by key, and cut the stream of
each split into shards of ``shard_tokens`` tokens (a document is never split; a shard closes
when it reaches the budget). ``OUT/manifest.json`` is written last and marks the stage done.
"""

from __future__ import annotations

import json
import math
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import xxhash

from pipelines.io import (
    atomic_path,
    atomic_write_parquet,
    atomic_write_text,
    documents_dir,
    parquet_files,
)
from pipelines.stats import StageStats
from pipelines.tokenizer import Tokenizer, load_tokenizer
from schemas.config import TokenizeConfig
from schemas.tokens import TOKEN_SHARD_SCHEMA

STAGE = "tokenize"
VAL_SALT = 0x7E57_5A17
SPLITS = ("train", "val")
RUN_SCHEMA = pa.schema([pa.field("key", pa.uint64()), pa.field("val", pa.bool_()),
                        *TOKEN_SHARD_SCHEMA])


def shuffle_key(doc_id: str, seed: int) -> int:
    return xxhash.xxh64_intdigest(doc_id.encode("utf-8"), seed)


def is_val(doc_id: str, fraction: float) -> bool:
    return xxhash.xxh64_intdigest(doc_id.encode("utf-8"), VAL_SALT) < fraction * 2.0**64


def partition_of(keys: np.ndarray, parts: int) -> np.ndarray:
    """Key range (0..parts-1) of each key; monotone in the key."""
    return ((keys >> np.uint64(32)) * np.uint64(parts)) >> np.uint64(32)


def cached_tokenizer(name: str) -> Tokenizer:
    """``load_tokenizer`` once per process and tokenizer (building cl100k_base's encoder with
    our special tokens takes ~50 ms; a worker tokenizes many shards). A tokenizer file is
    reloaded when it changes."""
    path = Path(name)
    stamp = path.stat().st_mtime_ns if path.is_file() else None
    key = (name, stamp)
    if key not in _TOKENIZERS:
        _TOKENIZERS.clear()
        _TOKENIZERS[key] = load_tokenizer(name)
    return _TOKENIZERS[key]


_TOKENIZERS: dict[tuple[str, int | None], Tokenizer] = {}


def tokenize_rows(ids: list[str], texts: list[str | None], tok: Tokenizer,
                  config: TokenizeConfig) -> pa.Table:
    """Documents -> RUN_SCHEMA rows (ids + EOT), unsorted: the tokenization of both engines."""
    encoded = tok.encode_arrays([t or "" for t in texts])
    eot = np.array([tok.eot_id], dtype=np.uint32)
    lengths = np.fromiter((len(e) + 1 for e in encoded), dtype=np.int32, count=len(encoded))
    offsets = np.zeros(len(encoded) + 1, dtype=np.int32)
    np.cumsum(lengths, out=offsets[1:])
    flat = np.concatenate([x for e in encoded for x in (e, eot)]) if encoded else np.zeros(0, np.uint32)
    input_ids = pa.ListArray.from_arrays(pa.array(offsets), pa.array(flat, pa.uint32()))
    keys = np.fromiter((shuffle_key(i, config.seed) for i in ids), dtype=np.uint64, count=len(ids))
    val = [is_val(i, config.val_fraction) for i in ids]
    return pa.Table.from_arrays([pa.array(keys, pa.uint64()), pa.array(val, pa.bool_()),
                                 pa.array(ids, pa.string()), input_ids, pa.array(lengths, pa.int32())],
                                schema=RUN_SCHEMA)


def sort_rows(table: pa.Table) -> pa.Table:
    """Order rows by shuffle key (ties, i.e. equal keys, by id)."""
    return table.take(pc.sort_indices(table, [("key", "ascending"), ("id", "ascending")]))


def plan_partitions(input_dir: str | Path, config: TokenizeConfig) -> int:
    """Number of key ranges so one range holds about one shard's worth of tokens.

    Tokens are estimated from the text column's uncompressed size (~4 bytes per token).
    """
    text_bytes = 0
    for f in parquet_files(documents_dir(input_dir)):
        md = pq.read_metadata(f)
        idx = md.schema.to_arrow_schema().get_field_index("text")
        text_bytes += sum(md.row_group(g).column(idx).total_uncompressed_size for g in range(md.num_row_groups))
    return int(min(4096, max(1, math.ceil(text_bytes / 4 / config.shard_tokens))))


def tokenize_shard(path: Path, work: Path, config: TokenizeConfig, parts: int,
                   tok: Tokenizer | None = None) -> StageStats:
    """Pass 1 for one input shard: a run file with one key-sorted row group per key range."""
    name = path.stem
    out = work / "runs" / f"{name}.parquet"
    stats_file = work / "runs" / f"{name}.json"
    if out.exists() and stats_file.exists():
        return StageStats.from_dict(STAGE, json.loads(stats_file.read_text()))
    t0 = time.perf_counter()
    tok = tok or cached_tokenizer(config.tokenizer)
    pieces = []
    for batch in pq.ParquetFile(path).iter_batches(batch_size=config.batch_docs, columns=["id", "text"]):
        pieces.append(tokenize_rows(batch.column(0).to_pylist(), batch.column(1).to_pylist(), tok, config))
    table = sort_rows(pa.concat_tables(pieces)) if pieces else RUN_SCHEMA.empty_table()
    part = partition_of(table.column("key").to_numpy(), parts)
    bounds = np.searchsorted(part, np.arange(parts + 1), side="left")
    present = [p for p in range(parts) if bounds[p + 1] > bounds[p]]
    schema = RUN_SCHEMA.with_metadata({"partitions": json.dumps(present), "parts": str(parts)})
    with atomic_path(out) as tmp, pq.ParquetWriter(tmp, schema, compression="lz4") as w:
        for p in present:
            w.write_table(table.slice(bounds[p], bounds[p + 1] - bounds[p]).replace_schema_metadata(schema.metadata),
                          row_group_size=int(bounds[p + 1] - bounds[p]))
    st = StageStats(STAGE, len(table), len(table), seconds=time.perf_counter() - t0)
    atomic_write_text(stats_file, json.dumps({**st.to_dict(), "tokens": int(pc.sum(table.column("num_tokens")).as_py() or 0)}))
    return st


def _partition_tables(runs: list[Path], parts: int) -> Iterator[pa.Table]:
    """Pass 2 input: for each key range in order, its rows from every run, sorted by key."""
    index = []
    for r in runs:
        pf = pq.ParquetFile(r)
        meta = pf.schema_arrow.metadata or {}
        if int(meta.get(b"parts", b"0")) != parts:
            raise ValueError(f"{r}: written with a different number of key ranges; delete _work")
        index.append((pf, {p: g for g, p in enumerate(json.loads(meta[b"partitions"]))}))
    for p in range(parts):
        tables = [pf.read_row_group(groups[p]) for pf, groups in index if p in groups]
        if tables:
            yield sort_rows(pa.concat_tables(tables).replace_schema_metadata(None))


def assign_shards(num_tokens: np.ndarray, budget: int) -> np.ndarray:
    """Shard index of each document of one key-ordered split: a shard closes as soon as it
    holds >= ``budget`` tokens (the same cut ``ShardWriter`` makes while streaming)."""
    out = np.empty(len(num_tokens), dtype=np.int64)
    shard, total = 0, 0
    for i, n in enumerate(num_tokens.tolist()):
        out[i] = shard
        total += n
        if total >= budget:
            shard, total = shard + 1, 0
    return out


def manifest_from_shards(out: Path, config: TokenizeConfig, tok_info: dict) -> dict:
    """manifest.json from the shard files on disk (engines that write shards in parallel)."""
    splits = {}
    for split in SPLITS:
        (out / split).mkdir(parents=True, exist_ok=True)
        shards = []
        for f in parquet_files(out / split):
            t = pq.read_table(f, columns=["num_tokens"])
            shards.append({"file": f"{split}/{f.name}", "documents": len(t),
                           "tokens": int(pc.sum(t.column("num_tokens")).as_py() or 0)})
        splits[split] = {"documents": sum(s["documents"] for s in shards),
                         "tokens": sum(s["tokens"] for s in shards), "shards": shards}
    manifest = _manifest_head(config, tok_info, out)
    manifest["splits"] = splits
    atomic_write_text(out / "manifest.json", json.dumps(manifest, indent=2))
    return manifest


def _bundle_tokenizer(name: str, out: Path) -> str:
    """A trained tokenizer file is copied next to the shards and named relative to them, so the
    dataset is self-contained (moved, pushed to the Hub, or read from another directory);
    tiktoken encodings are referred to by name."""
    src = Path(name)
    if not src.is_file():
        return name
    dest = out / "tokenizer.json"
    if src.resolve() != dest.resolve():
        atomic_write_text(dest, src.read_text(encoding="utf-8"))
    return dest.name


def _manifest_head(config: TokenizeConfig, tok_info: dict, out: Path) -> dict:
    return {
        "tokenizer": _bundle_tokenizer(tok_info["name"], out), "vocab_size": tok_info["vocab_size"],
        "special_ids": tok_info["special_ids"], "eot_id": tok_info["eot_id"],
        "seed": config.seed, "val_fraction": config.val_fraction, "shard_tokens": config.shard_tokens,
        "shuffle": "documents ordered by xxh64(id, seed); val iff xxh64(id, 0x7E575A17) < val_fraction * 2**64",
        "splits": {},
    }


def shard_table(rows: pa.Table) -> pa.Table:
    """RUN_SCHEMA rows of one shard -> the shard as written (key order, TOKEN_SHARD_SCHEMA)."""
    return sort_rows(rows).select(TOKEN_SHARD_SCHEMA.names).cast(TOKEN_SHARD_SCHEMA)


class ShardWriter:
    """Cuts a key-ordered stream of one split into shards of >= ``budget`` tokens (last: rest)."""

    def __init__(self, directory: Path, budget: int):
        self.dir, self.budget = directory, budget
        self.pending: list[pa.Table] = []
        self.pending_tokens = 0
        self.shards: list[dict] = []

    def add(self, table: pa.Table) -> None:
        while len(table):
            cum = np.cumsum(table.column("num_tokens").to_numpy()) + self.pending_tokens
            cut = int(np.searchsorted(cum, self.budget, side="left"))
            if cut >= len(table):  # budget not reached
                self.pending.append(table)
                self.pending_tokens = int(cum[-1])
                return
            self.pending.append(table.slice(0, cut + 1))
            self._write()
            table = table.slice(cut + 1)

    def close(self) -> None:
        if self.pending:
            self._write()

    def _write(self) -> None:
        table = pa.concat_tables(self.pending).select(TOKEN_SHARD_SCHEMA.names).cast(TOKEN_SHARD_SCHEMA)
        name = f"shard-{len(self.shards):05d}.parquet"
        atomic_write_parquet(self.dir / name, table)
        self.shards.append({"file": f"{self.dir.name}/{name}", "documents": len(table),
                            "tokens": int(pc.sum(table.column("num_tokens")).as_py() or 0)})
        self.pending, self.pending_tokens = [], 0


def write_shards(partitions: Iterator[pa.Table], out: Path, config: TokenizeConfig,
                 tok_info: dict) -> dict:
    """Pass 2: key-ordered partitions -> train/val shards + manifest.json (written last)."""
    for split in SPLITS:
        shutil.rmtree(out / split, ignore_errors=True)  # a crashed pass 2 restarts cleanly
        (out / split).mkdir(parents=True)  # present even when a split gets no document
    writers = {s: ShardWriter(out / s, config.shard_tokens) for s in SPLITS}
    for table in partitions:
        val = table.column("val")
        writers["val"].add(table.filter(val))
        writers["train"].add(table.filter(pc.invert(val)))
    manifest = _manifest_head(config, tok_info, out)
    for split, w in writers.items():
        w.close()
        manifest["splits"][split] = {"documents": sum(s["documents"] for s in w.shards),
                                     "tokens": sum(s["tokens"] for s in w.shards), "shards": w.shards}
    atomic_write_text(out / "manifest.json", json.dumps(manifest, indent=2))
    return manifest


def tokenizer_info(tok: Tokenizer) -> dict:
    return {"name": tok.name, "vocab_size": tok.vocab_size, "special_ids": tok.special_ids,
            "eot_id": tok.eot_id}


def tokenize(input_dir: str | Path, output_dir: str | Path,
             config: TokenizeConfig | None = None) -> dict[str, StageStats]:
    """Whole local tokenization, sequentially (the Prefect flow runs pass 1 in parallel)."""
    from pipelines.stats import merge_stats, write_stats

    config = config or TokenizeConfig()
    out = Path(output_dir)
    t0 = time.perf_counter()
    tok = cached_tokenizer(config.tokenizer)
    parts = plan_partitions(input_dir, config)
    files = parquet_files(documents_dir(input_dir))
    stats = merge_stats([{STAGE: tokenize_shard(f, out / "_work", config, parts, tok)} for f in files])
    stats = stats or {STAGE: StageStats(STAGE)}
    if not (out / "manifest.json").exists():
        runs = [out / "_work" / "runs" / f"{f.stem}.parquet" for f in files]
        write_shards(_partition_tables(runs, parts), out, config, tokenizer_info(tok))
    stats[STAGE].seconds = time.perf_counter() - t0
    write_stats(out / "stats.json", stats)
    return stats
