"""What every generator shares: stable ids, prompt dedup, Parquet output, stats.json.

Ids are content hashes, so the same seed gives the same ids and a sample keeps its id across
re-runs; prompts are deduplicated on their normalized first user message, so a generator never
emits the same question twice (templates collide more often than one would think).
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

import pyarrow as pa

from pipelines.io import atomic_write_parquet, atomic_write_text, iter_parquet_rows, parquet_files
from schemas.conversations import CONVERSATION_SCHEMA

#: Upper bounds of the token-length histogram bins (rendered conversation, cl100k_base).
LENGTH_BINS = (32, 64, 128, 256, 512, 1024, 2048, 4096)


def stable_id(*parts: object) -> str:
    blob = json.dumps(parts, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha1(blob.encode("utf-8")).hexdigest()[:20]


def conversation(
    messages: list[dict],
    kind: str,
    source: str,
    doc_id: str | None = None,
    meta: dict | None = None,
) -> dict:
    """One row of CONVERSATION_SCHEMA (id = hash of kind, source and messages)."""
    msgs = [{"role": m["role"], "content": m["content"]} for m in messages]
    return {
        "id": stable_id(kind, source, msgs),
        "messages": msgs,
        "kind": kind,
        "source": source,
        "doc_id": doc_id,
        "meta": json.dumps(meta or {}, ensure_ascii=False, sort_keys=True),
    }


def normalize_prompt(text: str) -> str:
    return " ".join(re.sub(r"[^\w\s]", " ", text.casefold()).split())


def first_user(messages: list[dict]) -> str:
    return next((m["content"] for m in messages if m["role"] == "user"), "")


def user_turns(messages: list[dict]) -> str:
    """All user messages, normalized and joined: what makes two conversations the same request
    (two chats that open alike but follow up differently are different conversations)."""
    return " | ".join(normalize_prompt(m["content"]) for m in messages if m["role"] == "user")


def dedup_conversations(rows: Iterable[dict]) -> tuple[list[dict], int]:
    """Keep the first conversation per normalized user turns (and per id)."""
    seen, out, dropped = set(), [], 0
    for row in rows:
        key = (row["kind"], user_turns(row["messages"]))
        if key in seen or row["id"] in seen:
            dropped += 1
            continue
        seen.update([key, row["id"]])
        out.append(row)
    return out, dropped


def write_rows(path: Path, rows: list[dict], schema: pa.Schema = CONVERSATION_SCHEMA) -> None:
    table = pa.Table.from_pylist(
        [{f.name: r.get(f.name) for f in schema} for r in rows], schema=schema
    )
    atomic_write_parquet(path, table)


def write_conversations(
    out_dir: str | Path, rows: list[dict], shard_rows: int = 50_000, subdir: str = "data"
) -> list[Path]:
    """``out_dir/<subdir>/part-NNNNN.parquet`` in the conversation schema (at least one shard)."""
    paths = []
    for n, start in enumerate(range(0, max(len(rows), 1), shard_rows)):
        path = Path(out_dir) / subdir / f"part-{n:05d}.parquet"
        write_rows(path, rows[start : start + shard_rows])
        paths.append(path)
    for old in set((Path(out_dir) / subdir).glob("part-*.parquet")) - set(paths):
        old.unlink()  # shards of an earlier, larger run would otherwise be read as part of this one
    return paths


def read_conversations(directory: str | Path) -> list[dict]:
    """Rows of a conversation dataset: ``DIR/data/*.parquet``, ``DIR/train`` + ``DIR/val``, or ``DIR/*.parquet``."""
    d = Path(directory)
    if (d / "data").is_dir():
        files = parquet_files(d / "data")
    elif (d / "train").is_dir():
        files = parquet_files(d / "train") + (
            parquet_files(d / "val") if (d / "val").is_dir() else []
        )
    else:
        files = parquet_files(d)
    return list(iter_parquet_rows(files))


@functools.lru_cache(maxsize=1)
def _stats_tokenizer():
    from pipelines.tokenizer import load_tokenizer

    return load_tokenizer("cl100k_base")


def length_histogram(lengths: list[int]) -> dict:
    counts: Counter = Counter()
    for n in lengths:
        upper = next((b for b in LENGTH_BINS if n <= b), None)
        counts[f"<={upper}" if upper else f">{LENGTH_BINS[-1]}"] += 1
    labels = [f"<={b}" for b in LENGTH_BINS] + [f">{LENGTH_BINS[-1]}"]
    return {label: counts.get(label, 0) for label in labels}


def conversation_stats(rows: list[dict]) -> dict:
    """Counts by kind and source, and the rendered token-length histogram (cl100k_base)."""
    from pipelines.chat import render_conversation

    tok = _stats_tokenizer()
    lengths = [len(render_conversation(r["messages"], tok).input_ids) for r in rows]
    return {
        "conversations": len(rows),
        "by_kind": dict(sorted(Counter(r["kind"] for r in rows).items())),
        "by_source": dict(sorted(Counter(r["source"] for r in rows).items())),
        "tokens": {
            "tokenizer": "cl100k_base",
            "total": sum(lengths),
            "mean": round(sum(lengths) / len(lengths), 1) if lengths else 0,
            "max": max(lengths, default=0),
            "histogram": length_histogram(lengths),
        },
    }


def write_stats(out_dir: str | Path, payload: dict) -> Path:
    path = Path(out_dir) / "stats.json"
    atomic_write_text(path, json.dumps(payload, indent=2, ensure_ascii=False, sort_keys=False))
    return path
