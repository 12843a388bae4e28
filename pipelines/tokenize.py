"""Tokenization into shuffled Parquet token shards, an external sort that never holds the corpus.

Order, split and shard are functions of the document id (and the split's token total) only, so
every engine writes the same shards without a global list of documents:

- shuffle key = ``xxh64(id, seed)``: the corpus is ordered by it (a deterministic
  document-level shuffle across all input shards);
- split = val iff ``xxh64(id, VAL_SALT) / 2**64 < val_fraction``: stable whatever the seed;
- shard = the key range of the document among ``n = ceil(split tokens / shard_tokens)`` equal
  ranges of the key space (``partition_of``): shards hold ``shard_tokens`` tokens on average
  (hashes spread documents evenly), and an engine needs only the split's token TOTAL (one
  number, a combine in Beam) to place every document; a key range with no document writes no
  file, so shard numbers may have gaps (the manifest lists the files).

Pass 1 (``tokenize_shard``, one input shard at a time, parallel): texts -> ids + EOT, rows
bucketed into ``P`` key ranges and written as one row group per range to
``OUT/_work/runs/<shard>.parquet``, with the shard's token count per split. Pass 2
(``write_shards``): for each key range in order, read that row group from every run (memory ~
total / P), sort by key, and write each split's documents to the shard of their key.
``OUT/manifest.json`` (``schemas.tokens.TokenManifest``) is written last and marks the stage
done. ``tokenize`` is the one pass driver: the plain function and the Prefect flow both run it.
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
from pipelines.pool import Mapper, PassRunner, run_direct, serial
from pipelines.stats import StageStats
from pipelines.tokenizer import Tokenizer, load_tokenizer
from schemas.config import TokenizeConfig
from schemas.tokens import SHARD_RULE, TOKEN_SHARD_SCHEMA, ShardEntry, SplitManifest, TokenManifest

STAGE = "tokenize"
VAL_SALT = 0x7E57_5A17
SPLITS = ("train", "val")
RUN_SCHEMA = pa.schema(
    [pa.field("key", pa.uint64()), pa.field("val", pa.bool_()), *TOKEN_SHARD_SCHEMA]
)


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


def tokenize_rows(
    ids: list[str], texts: list[str | None], tok: Tokenizer, config: TokenizeConfig
) -> pa.Table:
    """Documents -> RUN_SCHEMA rows (ids + EOT), unsorted: the tokenization of both engines."""
    encoded = tok.encode_arrays([t or "" for t in texts])
    eot = np.array([tok.eot_id], dtype=np.uint32)
    lengths = np.fromiter((len(e) + 1 for e in encoded), dtype=np.int32, count=len(encoded))
    offsets = np.zeros(len(encoded) + 1, dtype=np.int32)
    np.cumsum(lengths, out=offsets[1:])
    flat = (
        np.concatenate([x for e in encoded for x in (e, eot)])
        if encoded
        else np.zeros(0, np.uint32)
    )
    input_ids = pa.ListArray.from_arrays(pa.array(offsets), pa.array(flat, pa.uint32()))
    keys = np.fromiter((shuffle_key(i, config.seed) for i in ids), dtype=np.uint64, count=len(ids))
    val = [is_val(i, config.val_fraction) for i in ids]
    return pa.Table.from_arrays(
        [
            pa.array(keys, pa.uint64()),
            pa.array(val, pa.bool_()),
            pa.array(ids, pa.string()),
            input_ids,
            pa.array(lengths, pa.int32()),
        ],
        schema=RUN_SCHEMA,
    )


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
        text_bytes += sum(
            md.row_group(g).column(idx).total_uncompressed_size for g in range(md.num_row_groups)
        )
    return int(min(4096, max(1, math.ceil(text_bytes / 4 / config.shard_tokens))))


def tokenize_shard(
    path: Path, work: Path, config: TokenizeConfig, parts: int, tok: Tokenizer | None = None
) -> StageStats:
    """Pass 1 for one input shard: a run file with one key-sorted row group per key range."""
    name = path.stem
    out = work / "runs" / f"{name}.parquet"
    stats_file = work / "runs" / f"{name}.json"
    if out.exists() and stats_file.exists():
        done = json.loads(stats_file.read_text())
        if "split_tokens" in done:  # older runs lack the per-split totals: redo them
            return StageStats.from_dict(STAGE, done)
    t0 = time.perf_counter()
    tok = tok or cached_tokenizer(config.tokenizer)
    pieces = []
    for batch in pq.ParquetFile(path).iter_batches(
        batch_size=config.batch_docs, columns=["id", "text"]
    ):
        pieces.append(
            tokenize_rows(batch.column(0).to_pylist(), batch.column(1).to_pylist(), tok, config)
        )
    table = sort_rows(pa.concat_tables(pieces)) if pieces else RUN_SCHEMA.empty_table()
    part = partition_of(table.column("key").to_numpy(), parts)
    bounds = np.searchsorted(part, np.arange(parts + 1), side="left")
    present = [p for p in range(parts) if bounds[p + 1] > bounds[p]]
    schema = RUN_SCHEMA.with_metadata({"partitions": json.dumps(present), "parts": str(parts)})
    with atomic_path(out) as tmp, pq.ParquetWriter(tmp, schema, compression="lz4") as w:
        for p in present:
            w.write_table(
                table.slice(bounds[p], bounds[p + 1] - bounds[p]).replace_schema_metadata(
                    schema.metadata
                ),
                row_group_size=int(bounds[p + 1] - bounds[p]),
            )
    st = StageStats(STAGE, len(table), len(table), seconds=time.perf_counter() - t0)
    atomic_write_text(stats_file, json.dumps({**st.to_dict(), **_token_counts(table)}))
    return st


def _token_counts(table: pa.Table) -> dict:
    val = table.column("val")
    split = {
        "train": int(pc.sum(table.filter(pc.invert(val)).column("num_tokens")).as_py() or 0),
        "val": int(pc.sum(table.filter(val).column("num_tokens")).as_py() or 0),
    }
    return {"tokens": split["train"] + split["val"], "split_tokens": split}


def run_split_tokens(work: Path, names: list[str]) -> dict[str, int]:
    """Token totals per split over the finished pass-1 runs ``names``."""
    totals = dict.fromkeys(SPLITS, 0)
    for name in names:
        done = json.loads((work / "runs" / f"{name}.json").read_text())
        for split in SPLITS:
            totals[split] += int(done["split_tokens"][split])
    return totals


def shard_counts(split_tokens: dict[str, int], budget: int) -> dict[str, int]:
    """Number of key ranges (shards) of each split: ``ceil(tokens / budget)``, at least 1."""
    return {s: max(1, math.ceil(split_tokens.get(s, 0) / budget)) for s in SPLITS}


def shard_of(keys: np.ndarray, n_shards: int) -> np.ndarray:
    """Shard index of each shuffle key among ``n_shards`` equal key ranges (monotone)."""
    return partition_of(keys, n_shards)


def partition_tables(runs: list[Path], parts: int) -> Iterator[pa.Table]:
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


def make_manifest(
    config: TokenizeConfig, tok_info: dict, tokenizer_ref: str, shards: dict[str, list[ShardEntry]]
) -> TokenManifest:
    """The manifest of a finished tokenization (shards per split, in shard order)."""
    splits = {
        s: SplitManifest(
            documents=sum(e.documents for e in shards.get(s, [])),
            tokens=sum(e.tokens for e in shards.get(s, [])),
            shards=sorted(shards.get(s, []), key=lambda e: e.file),
        )
        for s in SPLITS
    }
    return TokenManifest(
        tokenizer=tokenizer_ref,
        vocab_size=tok_info["vocab_size"],
        special_ids=tok_info["special_ids"],
        eot_id=tok_info["eot_id"],
        seed=config.seed,
        val_fraction=config.val_fraction,
        shard_tokens=config.shard_tokens,
        shuffle=SHARD_RULE,
        splits=splits,
    )


def shard_file(split: str, shard: int) -> str:
    """A shard's path relative to the tokenize output directory."""
    return f"{split}/shard-{shard:05d}.parquet"


def shard_table(rows: pa.Table) -> pa.Table:
    """RUN_SCHEMA rows of one shard -> the shard as written (key order, TOKEN_SHARD_SCHEMA)."""
    return sort_rows(rows).select(TOKEN_SHARD_SCHEMA.names).cast(TOKEN_SHARD_SCHEMA)


def shard_entry(split: str, shard: int, table: pa.Table) -> ShardEntry:
    return ShardEntry(
        file=shard_file(split, shard),
        documents=len(table),
        tokens=int(pc.sum(table.column("num_tokens")).as_py() or 0),
    )


class ShardWriter:
    """Writes a key-ordered stream of one split: rows go to the shard of their key range
    (``shard_of``), a shard is written when the stream moves past its range."""

    def __init__(self, out: Path, split: str, n_shards: int):
        self.out, self.split, self.n = out, split, n_shards
        self.pending: list[pa.Table] = []
        self.current = -1
        self.shards: list[ShardEntry] = []

    def add(self, table: pa.Table) -> None:
        if not len(table):
            return
        idx = shard_of(table.column("key").to_numpy(), self.n)
        bounds = np.flatnonzero(np.diff(idx)) + 1
        for lo, hi in zip([0, *bounds.tolist()], [*bounds.tolist(), len(table)], strict=True):
            shard = int(idx[lo])
            if shard != self.current:
                self.close()
                self.current = shard
            self.pending.append(table.slice(lo, hi - lo))

    def close(self) -> None:
        if self.pending:
            table = shard_table(pa.concat_tables(self.pending))
            atomic_write_parquet(self.out / shard_file(self.split, self.current), table)
            self.shards.append(shard_entry(self.split, self.current, table))
        self.pending = []


def write_shards(
    partitions: Iterator[pa.Table],
    out: Path,
    config: TokenizeConfig,
    tok_info: dict,
    split_tokens: dict[str, int],
) -> TokenManifest:
    """Pass 2: key-ordered partitions -> train/val shards + manifest.json (written last)."""
    for split in SPLITS:
        shutil.rmtree(out / split, ignore_errors=True)  # a crashed pass 2 restarts cleanly
        (out / split).mkdir(parents=True)  # present even when a split gets no document
    counts = shard_counts(split_tokens, config.shard_tokens)
    writers = {s: ShardWriter(out, s, counts[s]) for s in SPLITS}
    for table in partitions:
        val = table.column("val")
        writers["val"].add(table.filter(val))
        writers["train"].add(table.filter(pc.invert(val)))
    for w in writers.values():
        w.close()
    manifest = make_manifest(
        config,
        tok_info,
        _bundle_tokenizer(tok_info["name"], out),
        {s: w.shards for s, w in writers.items()},
    )
    atomic_write_text(out / "manifest.json", manifest.model_dump_json(indent=2))
    return manifest


def tokenizer_info(tok: Tokenizer) -> dict:
    return {
        "name": tok.name,
        "vocab_size": tok.vocab_size,
        "special_ids": tok.special_ids,
        "eot_id": tok.eot_id,
    }


def tokenize(
    input_dir: str | Path,
    output_dir: str | Path,
    config: TokenizeConfig | None = None,
    pmap: Mapper = serial,
    run_pass: PassRunner = run_direct,
) -> dict[str, StageStats]:
    """The tokenize pass driver: pass 1 over every input shard (``pmap`` may run them in worker
    processes), then pass 2 (skipped when ``manifest.json`` exists); writes ``stats.json`` with
    the token totals. ``run_pass(name, fn, *args)`` runs each pass (the Prefect flow makes it a
    task run)."""
    from pipelines.stats import merge_stats, write_stats

    config = config or TokenizeConfig()
    out = Path(output_dir)
    work = out / "_work"
    t0 = time.perf_counter()
    files = parquet_files(documents_dir(input_dir))
    if not files:
        raise FileNotFoundError(f"no documents Parquet under {input_dir}")
    parts = plan_partitions(input_dir, config)
    done = run_pass(
        "tokenize-runs", pmap, tokenize_shard, [(f, work, config, parts) for f in files]
    )
    stats = merge_stats([{STAGE: st} for st in done]) or {STAGE: StageStats(STAGE)}
    manifest = run_pass("tokenize-shards", _pass2, files, out, config, parts)
    stats[STAGE].seconds = time.perf_counter() - t0
    stats[STAGE].check_conservation()
    write_stats(
        out / "stats.json", stats, {"tokens": {s: v.tokens for s, v in manifest.splits.items()}}
    )
    return stats


def _pass2(files: list[Path], out: Path, config: TokenizeConfig, parts: int) -> TokenManifest:
    if (out / "manifest.json").exists():
        return TokenManifest.read(out)
    runs = [out / "_work" / "runs" / f"{f.stem}.parquet" for f in files]
    split_tokens = run_split_tokens(out / "_work", [f.stem for f in files])
    info = tokenizer_info(cached_tokenizer(config.tokenizer))
    return write_shards(partition_tables(runs, parts), out, config, info, split_tokens)
