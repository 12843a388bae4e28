"""Dedup quality against ground truth: near-duplicates of real web text with controlled edits.

Real pages from ../shared/data/web are extracted with trafilatura; each base text gets variants
with word-level edits (substitute / delete / insert at a given rate) and truncations. Truth is
the exact Jaccard of the 5-gram shingle sets of every pair of documents. We run the real dedup
(``pipelines.dedup.dedup``) and report:

- recall: of all pairs with exact Jaccard >= 0.8, the fraction that ends up in one cluster;
- link precision: of the links the dedup made (the colliding pairs it joined), the fraction
  with exact Jaccard >= 0.5 (>= 0.7 when run with ``min_similarity=0.7``).

Run: ``python benchmarks/dedup_quality.py [--bases 60] [--seeds 1,2,3,4] [--corpus-seeds 0,1] [--record]``.
"""

from __future__ import annotations

import argparse
import glob
import itertools
import random
import sys
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from pipelines.dedup import dedup, plan  # noqa: E402
from pipelines.minhash import shingles  # noqa: E402
from schemas.config import DedupConfig  # noqa: E402
from schemas.documents import documents_table  # noqa: E402

RATES = [0.002, 0.005, 0.01, 0.02, 0.03, 0.05, 0.08, 0.15]


def real_texts(web_dir: str | Path, min_words: int = 150, limit: int | None = None) -> list[str]:
    """Main text of the real pages (trafilatura), long enough to edit meaningfully."""
    import trafilatura
    from fastwarc.warc import ArchiveIterator, WarcRecordType

    out: list[str] = []
    for f in sorted(glob.glob(str(Path(web_dir) / "*.warc.gz"))):
        with open(f, "rb") as fh:
            for rec in ArchiveIterator(fh, record_types=WarcRecordType.response):
                text = trafilatura.extract(rec.reader.read().decode("utf-8", "replace"))
                if text and len(text.split()) >= min_words and text not in out:
                    out.append(text)
                if limit and len(out) >= limit:
                    return out
    return out


def edit(text: str, rate: float, rng: random.Random, vocab: list[str]) -> str:
    """Substitute, delete or insert words, each word touched with probability ``rate``."""
    out: list[str] = []
    for w in text.split(" "):
        if rng.random() < rate:
            op = rng.randrange(3)
            if op == 0:
                out.append(rng.choice(vocab))
            elif op == 2:
                out += [w, rng.choice(vocab)]
        else:
            out.append(w)
    return " ".join(out)


def make_corpus(texts: list[str], seed: int = 0) -> list[dict]:
    """Each base text plus one variant per edit rate and two truncations."""
    rng = random.Random(seed)
    vocab = sorted({w for t in texts for w in t.split()})
    docs: list[dict] = []
    for b, text in enumerate(texts):
        variants = [text] + [edit(text, r, rng, vocab) for r in RATES]
        words = text.split(" ")
        variants += [
            " ".join(words[: int(len(words) * 0.9)]),
            " ".join(words[int(len(words) * 0.3) :]),
        ]
        for v, t in enumerate(variants):
            docs.append(
                {
                    "id": f"<urn:uuid:{b:05d}-{v:02d}>",
                    "url": f"https://example.org/{b}/{v}",
                    "text": t,
                    "source": "dedup-quality",
                }
            )
    rng.shuffle(docs)
    return docs


def write_docs(docs: list[dict], directory: Path, shards: int = 3) -> None:
    import pyarrow.parquet as pq

    directory.mkdir(parents=True, exist_ok=True)
    for s in range(shards):
        pq.write_table(documents_table(docs[s::shards]), directory / f"part-{s:03d}.parquet")


def exact_pairs(docs: list[dict], ngram: int = 5) -> dict[tuple[str, str], float]:
    """Exact Jaccard of every pair that shares at least one shingle (others are 0)."""
    sets = {d["id"]: set(shingles(d["text"], ngram)) for d in docs}
    index: dict[bytes, list[str]] = {}
    for i, s in sets.items():
        for sh in s:
            index.setdefault(sh, []).append(i)
    cand: set[tuple[str, str]] = set()
    for ids in index.values():
        if len(ids) < 200:
            cand.update(tuple(sorted(p)) for p in itertools.combinations(ids, 2))
    return {p: len(sets[p[0]] & sets[p[1]]) / len(sets[p[0]] | sets[p[1]]) for p in cand}


def evaluate(docs: list[dict], config: DedupConfig, workdir: Path) -> dict:
    """Run the real dedup on ``docs`` and score clusters and links against exact Jaccard."""
    import pyarrow.parquet as pq

    inp, out = workdir / "docs", workdir / f"out-{config.min_similarity}"
    if not inp.exists():
        write_docs(docs, inp)
    dedup(inp, out, config)
    cluster: dict[str, int] = {}
    for sub in ("documents", "removed"):
        for f in sorted((out / sub).glob("*.parquet")):
            t = pq.read_table(f, columns=["id", "minhash_cluster"]).to_pydict()
            cluster.update(zip(t["id"], t["minhash_cluster"], strict=True))
    ids = [
        i
        for name, path, _, _ in plan(inp)
        for i in pq.read_table(path, columns=["id"]).column("id").to_pylist()
    ]
    edges = np.concatenate([np.load(p) for p in sorted((out / "_work" / "edges").glob("*.npy"))])
    links = {tuple(sorted((ids[a], ids[b]))) for a, b in edges.tolist()}
    truth = exact_pairs(docs, config.ngram)
    high = [p for p, j in truth.items() if j >= 0.8]
    found = sum(cluster[a] == cluster[b] for a, b in high)
    thr = config.min_similarity if config.min_similarity is not None else 0.5
    good = sum(truth.get(p, 0.0) >= thr for p in links)
    return {
        "docs": len(docs),
        "pairs_j>=0.8": len(high),
        "recall_j>=0.8": found / max(1, len(high)),
        "links": len(links),
        "link_threshold": thr,
        "link_precision": good / max(1, len(links)),
        "removed": len(docs) - len(set(cluster.values())),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--web", default=str(REPO.parent / "shared" / "data" / "web"))
    ap.add_argument("--bases", type=int, default=60)
    ap.add_argument(
        "--seeds", default="1", help="MinHash seeds, comma-separated (pooled figures when several)"
    )
    ap.add_argument(
        "--corpus-seeds",
        default="0",
        help="edit seeds of the near-duplicate corpus, comma-separated",
    )
    ap.add_argument("--record", action="store_true", help="append to benchmarks/RESULTS.md")
    args = ap.parse_args()
    base = real_texts(args.web, limit=args.bases)
    seeds = [int(x) for x in args.seeds.split(",")]
    corpus_seeds = [int(x) for x in args.corpus_seeds.split(",")]
    lines = []
    pooled: dict = {}
    for cs in corpus_seeds:
        docs = make_corpus(base, seed=cs)
        for seed in seeds:
            with tempfile.TemporaryDirectory() as tmp:
                for ms in (None, 0.7):
                    r = evaluate(docs, DedupConfig(min_similarity=ms, seed=seed), Path(tmp))
                    line = (
                        f"corpus seed {cs}, minhash seed {seed}, min_similarity={ms}: docs={r['docs']} "
                        f"recall(J>=0.8)={r['recall_j>=0.8']:.3f} over {r['pairs_j>=0.8']} pairs; "
                        f"links={r['links']} with J>={r['link_threshold']}: {r['link_precision']:.3f}"
                    )
                    print(line, flush=True)
                    lines.append(line)
                    p = pooled.setdefault(ms, [0.0, 0, 0.0, 0])
                    p[0] += r["recall_j>=0.8"] * r["pairs_j>=0.8"]
                    p[1] += r["pairs_j>=0.8"]
                    p[2] += r["link_precision"] * r["links"]
                    p[3] += r["links"]
    if len(seeds) * len(corpus_seeds) > 1:
        for ms, (found, pairs, good, links) in pooled.items():
            line = (
                f"pooled over {len(seeds) * len(corpus_seeds)} runs, min_similarity={ms}: "
                f"recall(J>=0.8)={found / pairs:.4f}; links with J>={0.5 if ms is None else ms}: {good / links:.4f}"
            )
            print(line)
            lines.append(line)
    if args.record:
        from benchmarks.results import MACHINE, append_bullets

        append_bullets(
            f"dedup quality (benchmarks/dedup_quality.py --seeds {args.seeds} "
            f"--corpus-seeds {args.corpus_seeds})",
            lines,
            f"{MACHINE} (other jobs running)",
        )


if __name__ == "__main__":
    main()
