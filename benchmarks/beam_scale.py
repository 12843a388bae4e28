"""Beam at scale: the dedup + tokenize part of the Beam pipeline (FnApiRunner, worker processes)
on synthetic documents made of real sentences (from ../shared/data/web) with 10% near-duplicates,
at 20k and 200k documents, next to the local engine (``pipelines.dedup.dedup`` +
``pipelines.tokenize.tokenize``) on the same data.

Reported per size and engine: wall seconds, docs/s, peak RSS of the largest single process of
the run's process tree (sampled every 0.2 s with psutil) and, for Beam, of the largest SDK worker
process. Target (issue 11): Beam's largest process grows < 1.5x from 20k to 200k documents.

    python benchmarks/beam_scale.py [--sizes 20000 200000] [--workers 2] [--no-append]
"""

from __future__ import annotations

import argparse
import glob
import json
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

SHARD_DOCS = 2000


def sentences(web_dir: Path) -> list[str]:
    from benchmarks.dedup_quality import real_texts

    out = []
    for t in real_texts(web_dir, min_words=20):
        out += [s.strip() + "." for s in t.replace("\n", " ").split(". ") if len(s.split()) >= 6]
    return sorted(set(out))


def make_docs(n: int, pool: list[str], directory: Path, seed: int = 0) -> None:
    """``n`` documents of 6-14 real sentences; 10% are near-duplicates (2% of words edited) of an
    earlier document. Written in shards of SHARD_DOCS rows."""
    import pyarrow.parquet as pq

    from benchmarks.dedup_quality import edit
    from schemas.documents import documents_table

    rng = random.Random(seed)
    vocab = sorted({w for s in pool[:2000] for w in s.split()})
    directory.mkdir(parents=True, exist_ok=True)
    texts: list[str] = []
    rows = []
    for i in range(n):
        if texts and rng.random() < 0.10:
            text = edit(rng.choice(texts[-5000:]), 0.02, rng, vocab)
        else:
            text = " ".join(rng.sample(pool, rng.randint(6, 14)))
        texts.append(text)
        rows.append(
            {
                "id": f"<urn:uuid:{rng.getrandbits(128):032x}>",
                "url": f"https://bench.example/{i}",
                "text": text,
                "source": "beam-scale",
            }
        )
        if len(rows) == SHARD_DOCS or i == n - 1:
            pq.write_table(documents_table(rows), directory / f"part-{i // SHARD_DOCS:05d}.parquet")
            rows = []


def run_engine(engine: str, docs: str, out: str, workers: int) -> None:
    """Child process body: one engine over ``docs`` into ``out``."""
    from schemas.config import DedupConfig, TokenizeConfig

    dc, tc = DedupConfig(), TokenizeConfig(shard_tokens=5_000_000)
    if engine == "local":
        from pipelines.dedup import dedup
        from pipelines.pool import processes
        from pipelines.tokenize import tokenize

        dedup(docs, f"{out}/dedup", dc, pmap=processes(workers))
        tokenize(f"{out}/dedup", f"{out}/tokenize", tc, pmap=processes(workers))
        return
    import apache_beam as beam
    from apache_beam.options.pipeline_options import PipelineOptions
    from apache_beam.runners.portability.fn_api_runner import FnApiRunner

    from pipelines.beam.corpus import dedup_and_tokenize

    files = sorted(glob.glob(f"{docs}/*.parquet"))
    opts = PipelineOptions(
        [f"--direct_num_workers={workers}", "--direct_running_mode=multi_processing"]
    )
    with beam.Pipeline(runner=FnApiRunner(), options=opts) as p:
        shards = p | beam.Create([(Path(f).stem, f) for f in files])
        dedup_and_tokenize(shards, out, dc, tc)


def measure(engine: str, docs: Path, out: Path, workers: int) -> dict:
    """Run one engine in a child process; wall time and peak RSS per process of its tree."""
    import psutil

    t0 = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, __file__, "--child", engine, str(docs), str(out), str(workers)]
    )
    root = psutil.Process(proc.pid)
    peak: dict[int, tuple[int, str]] = {}
    while proc.poll() is None:
        try:
            for p in [root, *root.children(recursive=True)]:
                try:
                    rss = p.memory_info().rss
                    cmd = " ".join(p.cmdline()[:3])
                except psutil.Error:
                    continue
                if rss > peak.get(p.pid, (0, ""))[0]:
                    peak[p.pid] = (rss, cmd)
        except psutil.Error:
            pass
        time.sleep(0.2)
    if proc.returncode:
        raise SystemExit(f"{engine} run failed ({proc.returncode})")
    secs = time.perf_counter() - t0
    workers_rss = [r for r, c in peak.values() if "sdk_worker_main" in c]
    stats = json.loads((out / "dedup" / "stats.json").read_text())["stages"]["dedup"]
    return {
        "seconds": secs,
        "largest_mb": max(r for r, _ in peak.values()) / 2**20,
        "worker_mb": max(workers_rss) / 2**20 if workers_rss else None,
        "removed": stats["removed"],
        "in": stats["in"],
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", type=int, nargs="+", default=[20_000, 200_000])
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument(
        "--web", default=str(Path(__file__).resolve().parents[2] / "shared" / "data" / "web")
    )
    ap.add_argument("--no-append", action="store_true")
    ap.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        run_engine(a.child[0], a.child[1], a.child[2], int(a.child[3]))
        return
    pool = sentences(Path(a.web))
    results = {}
    with tempfile.TemporaryDirectory(prefix="beam-scale-") as tmp:
        for n in a.sizes:
            docs = Path(tmp) / f"docs-{n}"
            make_docs(n, pool, docs)
            for engine in ("local", "beam"):
                r = measure(engine, docs, Path(tmp) / f"{engine}-{n}", a.workers)
                results[(engine, n)] = r
                print(
                    f"{engine:5s} {n:>7d} docs: {r['seconds']:7.1f} s  {n / r['seconds']:7.0f} docs/s  "
                    f"largest process {r['largest_mb']:6.0f} MB  worker {r['worker_mb'] or 0:5.0f} MB  "
                    f"removed {r['removed']}",
                    flush=True,
                )
            assert results[("local", n)]["removed"] == results[("beam", n)]["removed"]
    lo, hi = min(a.sizes), max(a.sizes)
    growth = results[("beam", hi)]["largest_mb"] / results[("beam", lo)]["largest_mb"]
    wgrowth = (results[("beam", hi)]["worker_mb"] or 0) / (results[("beam", lo)]["worker_mb"] or 1)
    verdict = "PASS" if growth < 1.5 else "FAIL"
    print(
        f"Beam largest process {lo} -> {hi}: x{growth:.2f} ({verdict}, target < 1.5); "
        f"largest SDK worker x{wgrowth:.2f}"
    )
    if not a.no_append:
        from benchmarks.results import append_bullets

        lines = [
            f"{e} {n:,} docs: {r['seconds']:.1f} s, {n / r['seconds']:.0f} docs/s, largest process "
            f"{r['largest_mb']:.0f} MB"
            + (f", largest SDK worker {r['worker_mb']:.0f} MB" if r["worker_mb"] else "")
            + f", removed {r['removed']}"
            for (e, n), r in results.items()
        ]
        lines.append(
            f"Beam largest process {lo:,} -> {hi:,} docs: x{growth:.2f} ({verdict}, target < 1.5); "
            f"largest SDK worker x{wgrowth:.2f}"
        )
        append_bullets(
            f"beam_scale: dedup + tokenize, FnApiRunner {a.workers} worker processes vs local engine",
            lines,
        )


if __name__ == "__main__":
    main()
