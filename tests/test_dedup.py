"""MinHash dedup: datasketch equality, normalization, on-disk LSH, quality on real near-duplicates."""

from __future__ import annotations

import json

import numpy as np
import pyarrow.parquet as pq
import pytest
import xxhash
from datasketch import MinHash

from benchmarks.dedup_quality import evaluate, make_corpus, real_texts
from pipelines.dedup import components, dedup, link_bucket, representatives
from pipelines.minhash import MinHasher, normalize, shingles
from schemas.config import DedupConfig


@pytest.fixture(scope="module")
def texts(web_dir) -> list[str]:
    return real_texts(web_dir, limit=12)


def test_normalization_folds_case_accents_digits_punctuation_space():
    assert normalize("Héllo,  WÖRLD!\n It's 2024 —\u00a0café") == "hello world its 0000 cafe"
    assert shingles("a b c", 5) == [b"a b c"]  # shorter than n: one shingle, not none
    assert shingles("  ,,, ", 5) == []


def test_signatures_equal_datasketch_affine64(texts):
    mh = MinHasher(ngram=5, bands=14, rows=8, seed=7)
    sigs = mh.signatures(texts)
    for text, sig in zip(texts, sigs, strict=True):
        ref = MinHash(num_perm=112, seed=7, scheme="affine64", hashfunc=xxhash.xxh64_intdigest)
        ref.update_batch(shingles(text, 5))
        assert np.array_equal(ref.hashvalues, sig)
    assert not np.array_equal(sigs, MinHasher(seed=8).signatures(texts))


def test_link_bucket_star_and_verified():
    sigs = np.array([[1] * 8 + [2] * 8, [1] * 8 + [2] * 8, [1] * 8 + [3] * 8])
    assert link_bucket(np.arange(3), None, None) == [(0, 1), (0, 2)]
    # pair (0,1) agrees everywhere outside the shared band; (0,2)/(1,2) nowhere
    assert link_bucket(np.arange(3), sigs, 0.7, rows=8) == [(0, 1)]


def test_components_and_representative_is_smallest_id():
    labels = components(5, np.array([[0, 1], [3, 1]]))
    assert labels[0] == labels[1] == labels[3] and len(set(labels.tolist())) == 3
    reps = representatives(["d", "b", "x", "a", "c"], labels)
    assert reps == ["a", "a", "x", "a", "c"]


def test_dedup_removes_near_duplicates_with_conservation(texts, tmp_path):
    docs = make_corpus(texts[:6])
    m = evaluate(docs, DedupConfig(), tmp_path)
    assert m["recall_j>=0.8"] >= 0.95
    assert m["link_precision"] >= 0.95
    out = tmp_path / "out-None"
    stats = json.loads((out / "stats.json").read_text())["stages"]["dedup"]
    kept = sum(pq.read_metadata(f).num_rows for f in (out / "documents").glob("*.parquet"))
    removed = pq.read_table(out / "removed").to_pylist()
    assert stats["in"] == len(docs) == kept + len(removed) == stats["kept"] + stats["removed"]
    assert removed and all(r["reason"] == "dedup:minhash" and r["stage"] == "dedup" for r in removed)
    kept_rows = pq.read_table(out / "documents").to_pylist()
    kept_ids = {r["id"] for r in kept_rows}
    assert all(r["duplicate_of"] in kept_ids and r["duplicate_of"] < r["id"] for r in removed)
    assert all(r["minhash_cluster"] is not None for r in kept_rows)
    # unrelated base pages stay: every base family keeps at least one member
    assert {d["id"][:16] for d in docs} == {i[:16] for i in kept_ids}


def test_min_similarity_links_fewer_and_truer(texts, tmp_path):
    docs = make_corpus(texts[:6])
    plain = evaluate(docs, DedupConfig(), tmp_path)
    strict = evaluate(docs, DedupConfig(min_similarity=0.7), tmp_path)
    assert strict["recall_j>=0.8"] >= 0.95
    assert strict["link_precision"] >= 0.9  # of links at exact J >= 0.7
    assert strict["removed"] <= plain["removed"]


def test_resume_skips_finished_steps(texts, tmp_path):
    docs = make_corpus(texts[:3])
    evaluate(docs, DedupConfig(), tmp_path)
    out = tmp_path / "out-None"
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*.parquet")}
    (out / "stats.json").unlink()
    dedup(tmp_path / "docs", out, DedupConfig())
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*.parquet")} == before
    assert json.loads((out / "stats.json").read_text())["stages"]["dedup"]["in"] == len(docs)
