"""MinHash signatures/second on one core: ours vs datasketch vs datatrove, same texts, one run.

- ours: ``pipelines.minhash.MinHasher.signatures`` (normalize + 5-gram shingles + xxh64 +
  112 affine64 permutations, batched through numpy);
- datasketch: the same shingles (our normalization, which datasketch lacks) into
  ``MinHash(num_perm=112, scheme="affine64", hashfunc=xxh64)`` + ``update_batch`` per doc;
  signatures are checked equal to ours;
- datatrove: ``MinhashDedupSignature``'s per-document signature routine when importable
  (needs spaCy for its word tokenizer; reported as skipped otherwise).

Texts: real pages from ../shared/data/web (trafilatura), repeated to ~``--docs`` documents.
Median of ``--repeat`` runs. ``--record`` appends to benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import xxhash

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.dedup_quality import real_texts  # noqa: E402
from pipelines.minhash import MinHasher, shingles  # noqa: E402


def run_ours(texts: list[str]) -> np.ndarray:
    return MinHasher().signatures(texts)


def run_datasketch(texts: list[str]) -> np.ndarray:
    from datasketch import MinHash

    out = []
    for t in texts:
        m = MinHash(num_perm=112, seed=1, scheme="affine64", hashfunc=xxhash.xxh64_intdigest)
        m.update_batch(shingles(t, 5))
        out.append(m.hashvalues)
    return np.stack(out)


def datatrove_runner():
    try:
        from datatrove.pipeline.dedup.minhash import MinhashConfig, MinhashDedupSignature

        sig = MinhashDedupSignature(output_folder="/tmp/tokenmill-dt-sig", config=MinhashConfig())
        sig.get_signature("warm up the tokenizer " * 20)
    except Exception as e:  # noqa: BLE001
        return None, f"skipped ({type(e).__name__}: {e})"[:160]
    return (lambda texts: [sig.get_signature(t) for t in texts]), None


def median_rate(fn, texts, repeat) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn(texts)
        times.append(time.perf_counter() - t0)
    return len(texts) / statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--web", default=str(REPO.parent / "shared" / "data" / "web"))
    ap.add_argument("--docs", type=int, default=600)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--record", action="store_true")
    args = ap.parse_args()
    base = real_texts(args.web, min_words=1)
    texts = (base * (args.docs // len(base) + 1))[: args.docs]
    assert np.array_equal(run_ours(texts[:50]), run_datasketch(texts[:50]))
    ours = median_rate(run_ours, texts, args.repeat)
    ds = median_rate(run_datasketch, texts, args.repeat)
    dt_fn, why = datatrove_runner()
    dtr = median_rate(dt_fn, texts, max(1, args.repeat // 2)) if dt_fn else None
    words = statistics.mean(len(t.split()) for t in texts)
    lines = [f"texts: {len(texts)} real pages, mean {words:.0f} words; 112 perms, 5-gram shingles",
             f"ours: {ours:,.0f} signatures/s", f"datasketch: {ds:,.0f} signatures/s (ours/datasketch = {ours / ds:.2f}x)",
             f"datatrove: {f'{dtr:,.0f} signatures/s (ours/datatrove = {ours / dtr:.2f}x)' if dtr else why}"]
    print("\n".join(lines))
    if args.record:
        with open(REPO / "benchmarks" / "RESULTS.md", "a") as f:
            f.write(f"\n## {dt.date.today()} MinHash signature speed, 1 process (benchmarks/minhash_speed.py)\n"
                    "machine: 2-core x86_64 CPU, 24 GiB, shared/noisy\n" + "".join(f"- {x}\n" for x in lines))


if __name__ == "__main__":
    main()
