"""MinHash signatures/second on one core: ours vs datasketch vs datatrove, same texts, one run.

Every side gets the same input texts (real pages from ../shared/data/web, trafilatura, repeated
to ``--docs``), 112 permutations, 5-gram word shingles, one process. Two measurements:

(a) end to end, text -> signature:
  - ours: ``MinHasher().signatures(texts)`` (numpy normalization + word split + vectorized
    ``shingle_hash`` + 112 affine64 permutations, whole batches per numpy call);
  - ours, xxh64 mode: ``MinHasher(shingle_hash="xxh64")`` (one xxh64 call per shingle);
  - datasketch: our reference shingles (``pipelines.minhash.shingles``: datasketch has no
    normalization of its own) into ``MinHash(num_perm=112, scheme="affine64",
    hashfunc=xxh64)`` + ``update_batch``, one MinHash per document (its usual setup and its
    fastest hash here). Checked bit-identical to ours in xxh64 mode, and datasketch with
    ``hashfunc=shingle_hash`` checked bit-identical to ours in the default mode;
  - datatrove: ``MinhashDedupSignature.get_signature(get_shingles(text))`` (its own
    normalization, spaCy word splitting, xxh64 of each shingle, 112 permutations mod 2**61-1).
    Fix of the call: its xxhash wrapper passes ``str`` to ``xxhash.xxh64_intdigest``, which
    xxhash >= 3.5 refuses, so its hash function is replaced by the same xxh64 of the UTF-8
    bytes (what older xxhash did with a str).
(b) signature from shingles: every side gets the same precomputed 64-bit shingle hash values
  (ours, per document): ours ``signatures_from_hashes``; datasketch ``update_batch`` of the
  values with ``hashfunc=int`` (identity; checked bit-identical to ours); datatrove
  ``get_signature`` of the (N, 1) uint64 array (its own permutation family).

Runs are interleaved round-robin (noise hits every side alike); the median of ``--repeat``
runs is reported with the load average. ``--record`` appends to benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import xxhash

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.dedup_quality import real_texts  # noqa: E402
from benchmarks.results import MACHINE as _HOST  # noqa: E402
from benchmarks.results import append_bullets  # noqa: E402
from pipelines.minhash import MinHasher, hash_shingles, shingle_hash, shingles  # noqa: E402

MACHINE = f"{_HOST} (other jobs running)"


def datasketch_e2e(texts: list[str]) -> np.ndarray:
    from datasketch import MinHash

    out = []
    for t in texts:
        m = MinHash(num_perm=112, seed=1, scheme="affine64", hashfunc=xxhash.xxh64_intdigest)
        m.update_batch(shingles(t, 5))
        out.append(m.hashvalues)
    return np.stack(out)


def datasketch_from_values(values: list[list[int]], hashfunc=int) -> np.ndarray:
    from datasketch import MinHash

    out = []
    for v in values:
        m = MinHash(num_perm=112, seed=1, scheme="affine64", hashfunc=hashfunc)
        m.update_batch(v)
        out.append(m.hashvalues)
    return np.stack(out)


def datatrove_signer():
    """datatrove's signature step with the str->bytes fix described above, or (None, why)."""
    try:
        from datatrove.pipeline.dedup.minhash import MinhashConfig, MinhashDedupSignature

        sig = MinhashDedupSignature(output_folder="/tmp/tokenmill-dt-sig", config=MinhashConfig())
        sig._hash_func = lambda s: xxhash.xxh64_intdigest(s.encode("utf-8"))
        sig.get_signature(sig.get_shingles("warm up the word tokenizer " * 20))
    except Exception as e:  # noqa: BLE001
        return None, f"skipped ({type(e).__name__}: {e})"[:160]
    return sig, None


def measure(fns: dict, repeat: int) -> dict[str, float]:
    """Median seconds of each function, runs interleaved round-robin."""
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(repeat):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    return {k: statistics.median(v) for k, v in times.items()}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--web", default=str(REPO.parent / "shared" / "data" / "web"))
    ap.add_argument("--docs", type=int, default=600)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--record", action="store_true")
    args = ap.parse_args()
    base = real_texts(args.web, min_words=1)
    texts = (base * (args.docs // len(base) + 1))[: args.docs]
    ours, ours_xxh = MinHasher(), MinHasher(shingle_hash="xxh64")

    # identical semantics where the hash function is the same
    check = texts[:40]
    assert np.array_equal(ours_xxh.signatures(check), datasketch_e2e(check))
    assert np.array_equal(
        ours.signatures(check[:10]),
        datasketch_from_values([shingles(t, 5) for t in check[:10]], shingle_hash),
    )
    hashes = [hash_shingles(shingles(t, 5)) for t in texts]  # (b) inputs, untimed
    assert all(
        np.array_equal(h, ours.hashes([t])[0]) for h, t in zip(hashes[:40], check, strict=True)
    )
    values = [h.tolist() for h in hashes]
    columns = [h.reshape(-1, 1) for h in hashes]
    assert np.array_equal(ours.signatures_from_hashes(hashes), datasketch_from_values(values))

    signer, why = datatrove_signer()
    e2e = {
        "ours": lambda: ours.signatures(texts),
        "ours (xxh64 mode)": lambda: ours_xxh.signatures(texts),
        "datasketch": lambda: datasketch_e2e(texts),
    }
    shg = {
        "ours": lambda: ours.signatures_from_hashes(hashes),
        "datasketch": lambda: datasketch_from_values(values),
    }
    if signer is not None:
        e2e["datatrove"] = lambda: [
            signer.get_signature(s) for s in map(signer.get_shingles, texts) if len(s)
        ]
        shg["datatrove"] = lambda: [signer.get_signature(c) for c in columns if len(c)]
    load0 = os.getloadavg()[0]
    ta = measure(e2e, args.repeat)
    tb = measure(shg, args.repeat)
    load1 = os.getloadavg()[0]

    words = statistics.mean(len(t.split()) for t in texts)
    lines = [
        f"texts: {len(texts)} real pages ({len(base)} distinct), mean {words:.0f} words, "
        f"{sum(map(len, hashes)):,} shingles; 112 perms, 5-gram shingles; 1 process; "
        f"load average {load0:.1f} -> {load1:.1f}"
    ]
    for title, t in (
        ("(a) end to end, text -> signature", ta),
        ("(b) signature from shingle hashes", tb),
    ):
        rate = {k: len(texts) / v for k, v in t.items()}
        parts = [f"{k} {r:,.0f}/s" for k, r in rate.items()]
        ratios = [f"ours/{k} = {rate['ours'] / r:.1f}x" for k, r in rate.items() if k != "ours"]
        lines.append(f"{title}: " + ", ".join(parts) + "; " + ", ".join(ratios))
    if signer is None:
        lines.append(f"datatrove: {why}")
    print("\n".join(lines))
    if args.record:
        append_bullets(
            "MinHash signature speed, signatures/s on 1 core (benchmarks/minhash_speed.py)",
            lines,
            MACHINE,
        )


if __name__ == "__main__":
    main()
