"""Benchmark decontamination of the corpus: remove documents sharing word n-gram spans (default
13-grams, as GPT-3's contamination study) with evaluation sets the user gives.

The evaluation sets are JSONL or Parquet files (or directories of them); every row is an item,
named ``<file stem>:<id>`` (``id_field``, else its row number); its ``text_fields`` are indexed
with ``pipelines.ngram_index.NgramIndex`` (the index the post-training decontamination uses).
Items shorter than ``n`` words cannot share an n-gram: they are counted (``short_items``) and
reported, not silently ignored.

A document sharing at least ``min_hits`` n-grams with the index is removed with reason
``decontaminate:ngram_overlap``. Which items were hit: ``OUT/hits/<shard>.parquet`` (document
id, item, shared n-grams) and ``items_hit`` (item -> documents) in ``stats.json``. The decision
is per document, so every engine makes the same one.
"""

from __future__ import annotations

import functools
import hashlib
import json
import time
from collections import Counter
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from pipelines import shard_stage as ss
from pipelines.io import atomic_write_parquet
from pipelines.ngram_index import NgramIndex, ngram_hashes
from schemas.config import DecontaminateConfig

STAGE = "decontaminate"
REASON = "decontaminate:ngram_overlap"
HITS_SCHEMA = pa.schema([("id", pa.string()), ("item", pa.string()), ("shared_ngrams", pa.int32())])
EVAL_SUFFIXES = (".jsonl", ".json", ".parquet")


def eval_files(against: list[str]) -> list[str]:
    """The JSONL/Parquet files named by ``against`` (files, globs or directories)."""
    files = ss.expand_files(list(against), EVAL_SUFFIXES)
    if not files:
        raise FileNotFoundError(f"no JSONL/Parquet evaluation file in {against}")
    return files


def _rows(path: str) -> list[dict]:
    if path.endswith(".parquet"):
        return pq.read_table(path).to_pylist()
    rows = []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as e:
                    raise ValueError(f"{path}:{n}: not a JSON line ({e})") from e
    return rows


def build_index(config: DecontaminateConfig) -> tuple[NgramIndex, dict]:
    """The n-gram index of every evaluation item, and a description of what was indexed."""
    index = NgramIndex(config.n, short=False)
    described = []
    for path in eval_files(config.against):
        rows = _rows(path)
        stem = Path(path).name.split(".")[0]
        found = 0
        for i, row in enumerate(rows):
            texts = [str(row[f]) for f in config.text_fields if row.get(f) is not None]
            found += bool(texts)
            key = row.get(config.id_field) if config.id_field else None
            index.add("\n".join(texts), f"{stem}:{key if key is not None else i}")
        if rows and not found:
            raise ValueError(f"{path}: no row has any of the fields {config.text_fields}")
        described.append(
            {
                "path": str(Path(path).resolve()),
                "items": len(rows),
                "sha256": hashlib.sha256(Path(path).read_bytes()).hexdigest(),
            }
        )
    return index, {
        "eval_files": described,
        "items": len(index.items),
        "short_items": index.short_items,
        "ngrams": len(index),
    }


def check_text(text: str | None, index: NgramIndex, config: DecontaminateConfig) -> dict[str, int]:
    """{item: shared n-grams} if ``text`` is contaminated, else {} (the one decision)."""
    hashes = ngram_hashes(text or "", config.n, short=False)
    if len(index.hits(hashes)) < config.min_hits:
        return {}
    return index.matched_items(hashes)


def apply(
    table: pa.Table, index: NgramIndex, config: DecontaminateConfig
) -> tuple[ss.ShardResult, pa.Table]:
    """(kept/removed of one shard with counts, its hits table): shared by both engines."""
    ids = table.column("id").to_pylist()
    hits_rows: list[tuple[str, str, int]] = []
    drop = []
    counts: Counter = Counter()
    for doc_id, text in zip(ids, table.column("text").to_pylist(), strict=True):
        items = check_text(text, index, config)
        drop.append(bool(items))
        for item, n in sorted(items.items()):
            hits_rows.append((doc_id, item, n))
            counts[f"item:{item}"] += 1
    mask = pa.array(drop, pa.bool_())
    gone = table.filter(mask)
    hits = pa.Table.from_pydict(
        {
            "id": [r[0] for r in hits_rows],
            "item": [r[1] for r in hits_rows],
            "shared_ngrams": [r[2] for r in hits_rows],
        },
        schema=HITS_SCHEMA,
    )
    return ss.ShardResult(
        table.filter(pc.invert(mask)), ss.removed_rows(gone, STAGE, [REASON] * len(gone)), counts
    ), hits


@functools.lru_cache(maxsize=2)
def _cached_index(config_json: str) -> tuple[NgramIndex, dict]:
    return build_index(DecontaminateConfig.model_validate_json(config_json))


def prepare(
    inputs: str | Path, output: str | Path, config: DecontaminateConfig, overwrite: bool = False
) -> tuple[list[ss.Shard], dict]:
    shards = ss.plan(inputs)
    _, described = _cached_index(config.model_dump_json())
    settings = ss.settings_payload(
        STAGE, config.model_dump(), shards, {"eval_files": described["eval_files"]}
    )
    ss.check_settings(Path(output), settings, overwrite)
    return shards, settings


def filter_step(shard: ss.Shard, output: str | Path, config: DecontaminateConfig) -> tuple:
    """One shard (a picklable unit of work; the index is built once per process)."""
    out = Path(output)
    index, _ = _cached_index(config.model_dump_json())

    def fn(table: pa.Table, s: ss.Shard) -> ss.ShardResult:
        res, hits = apply(table, index, config)
        atomic_write_parquet(out / "hits" / f"{s.name}.parquet", hits)
        return res

    return ss.filter_shard(STAGE, shard, out, fn)


def finish(
    output: str | Path, parts: list, seconds: float, settings: dict, config: DecontaminateConfig
) -> dict:
    _, described = _cached_index(config.model_dump_json())
    items: Counter = Counter()
    for _, c in parts:
        items.update({k[5:]: v for k, v in c.items() if k.startswith("item:")})
    parts = [
        (st, Counter({k: v for k, v in c.items() if not k.startswith("item:")})) for st, c in parts
    ]
    return ss.finish(
        STAGE,
        Path(output),
        parts,
        seconds,
        settings,
        {"index": described, "items_hit": dict(sorted(items.items()))},
    )


def run_decontaminate(
    inputs: str | Path, output: str | Path, config: DecontaminateConfig, overwrite: bool = False
) -> dict:
    """The whole stage locally; resumable; returns stats.json (with ``items_hit``)."""
    t0 = time.perf_counter()
    shards, settings = prepare(inputs, output, config, overwrite)
    parts = [filter_step(s, output, config) for s in shards]
    return finish(output, parts, time.perf_counter() - t0, settings, config)
