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
from pipelines.minhash import MinHasher, normalize, shingle_hash, shingles, word_hash
from schemas.config import DedupConfig


@pytest.fixture(scope="module")
def texts(web_dir) -> list[str]:
    return real_texts(web_dir, limit=12)


def test_normalization_folds_case_accents_digits_punctuation_space():
    assert normalize("Héllo,  WÖRLD!\n It's 2024 —\u00a0café") == "hello world its 0000 cafe"
    assert shingles("a b c", 5) == [b"a b c"]  # shorter than n: one shingle, not none
    assert shingles("  ,,, ", 5) == []


def test_signatures_equal_datasketch_affine64(texts):
    """Default shingle hash: datasketch given the same shingle hash values (``shingle_hash``,
    the pure-Python reference, as its ``hashfunc``) computes bit-identical signatures."""
    mh = MinHasher(ngram=5, bands=14, rows=8, seed=7)
    sigs = mh.signatures(texts)
    for text, sig in zip(texts, sigs, strict=True):
        ref = MinHash(num_perm=112, seed=7, scheme="affine64", hashfunc=shingle_hash)
        ref.update_batch(shingles(text, 5))
        assert np.array_equal(ref.hashvalues, sig)
    assert not np.array_equal(sigs, MinHasher(seed=8).signatures(texts))


def test_signatures_equal_datasketch_xxh64_mode(texts):
    mh = MinHasher(seed=7, shingle_hash="xxh64", block=500)  # small blocks: docs span blocks
    for text, sig in zip(texts, mh.signatures(texts), strict=True):
        ref = MinHash(num_perm=112, seed=7, scheme="affine64", hashfunc=xxhash.xxh64_intdigest)
        ref.update_batch(shingles(text, 5))
        assert np.array_equal(ref.hashvalues, sig)


EDGE_TEXTS = [
    "",
    None,
    "a b",
    "one two three four five",
    "one two three four five six",
    "Héllo,  WÖRLD!\n It's 2024 —\u00a0café",
    "  ,,, ",
    "x\x00y \x1c z",
    "ΟΔΟΣ ΣΟΦΟΣ Σ",
    "İstanbul ǅ ﬁ Å ≠",
    "한국어 텍스트 ᄀ",
    "क्षि ि",
    "漢字 🙂 𐐀",
    "ༀ ༹ ཾ 𝅥𝅮",
    "tiếng Việt ٣ ۳ عَرَبِيّ",
    "\u2028\u3000\x85 ①½",
]


@pytest.mark.parametrize("n", [1, 3, 5])
def test_vectorized_shingle_hashes_equal_reference(texts, n, monkeypatch):
    """The numpy path (normalize, split, hash, n-grams) == the reference functions, per
    document and in order, for real pages and Unicode edge cases (final sigma, Hangul,
    reordered/surviving marks, supplementary planes), also across small numpy groups."""
    import pipelines.minhash as m

    docs = EDGE_TEXTS + texts + EDGE_TEXTS
    expected = [m.hash_shingles(shingles(t or "", n)) for t in docs]
    for group in (m._GROUP_CHARS, 700):
        monkeypatch.setattr(m, "_GROUP_CHARS", group)
        flat, offsets = m.batch_shingle_hashes(docs, n)
        for i, ref in enumerate(expected):
            assert np.array_equal(flat[offsets[i] : offsets[i + 1]], ref), (n, docs[i])


def test_shingle_hash_is_a_function_of_the_words():
    assert shingle_hash(b"a b c") == shingle_hash("a b c") != shingle_hash("a c b")
    assert word_hash("ab") != word_hash("ba") and shingle_hash("ab c") != shingle_hash("a bc")
    assert len({shingle_hash(f"w{i} x") for i in range(20000)}) == 20000


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
    assert removed and all(
        r["reason"] == "dedup:minhash" and r["stage"] == "dedup" for r in removed
    )
    kept_rows = pq.read_table(out / "documents").to_pylist()
    kept_ids = {r["id"] for r in kept_rows}
    assert all(r["duplicate_of"] in kept_ids and r["duplicate_of"] < r["id"] for r in removed)
    assert all(r["minhash_cluster"] is not None for r in kept_rows)
    # unrelated base pages stay: every base family keeps at least one member
    assert {d["id"][:16] for d in docs} == {i[:16] for i in kept_ids}


def test_min_similarity_links_fewer_and_truer(texts, tmp_path):
    """The issue's targets for ``--min-similarity 0.7`` on a fixed seed set (3 hash seeds over
    near-duplicates of 12 real pages): >= 95% of links at exact Jaccard >= 0.7 (pooled), recall
    of J >= 0.8 pairs >= 0.95 and within 0.01 of the unverified run's."""
    docs = make_corpus(texts)
    good = links = 0
    for seed in (1, 2, 3):
        plain = evaluate(docs, DedupConfig(seed=seed), tmp_path / str(seed))
        strict = evaluate(docs, DedupConfig(seed=seed, min_similarity=0.7), tmp_path / str(seed))
        assert strict["recall_j>=0.8"] >= 0.95
        assert strict["recall_j>=0.8"] >= plain["recall_j>=0.8"] - 0.01
        assert strict["removed"] <= plain["removed"] and strict["links"] < plain["links"]
        good += strict["link_precision"] * strict["links"]  # links at exact J >= 0.7
        links += strict["links"]
    assert good / links >= 0.95


def test_resume_skips_finished_steps(texts, tmp_path):
    docs = make_corpus(texts[:3])
    evaluate(docs, DedupConfig(), tmp_path)
    out = tmp_path / "out-None"
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*.parquet")}
    (out / "stats.json").unlink()
    dedup(tmp_path / "docs", out, DedupConfig())
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*.parquet")} == before
    assert json.loads((out / "stats.json").read_text())["stages"]["dedup"]["in"] == len(docs)


def _docs_dir(d, rows, name="part-0"):
    from schemas.documents import documents_table

    d.mkdir(parents=True, exist_ok=True)
    pq.write_table(documents_table(rows), d / f"{name}.parquet")
    return d


def test_same_id_same_text_is_an_exact_duplicate_across_inputs(texts, tmp_path):
    """The same fineweb output given twice (two input dirs, same shard names): every document
    is kept once, the copies are removed as ``dedup:duplicate_id``, nothing reaches the output
    twice and both inputs are used (issue 9 item 3: today 30 docs with 15 ids all survive)."""
    from pipelines.dedup import dedup as run

    rows = [
        {"id": f"<urn:{i}>", "text": t, "url": f"http://x/{i}"} for i, t in enumerate(texts[:5])
    ]
    a = _docs_dir(tmp_path / "a" / "documents", rows)
    b = _docs_dir(tmp_path / "b" / "documents", rows)
    extra = _docs_dir(
        tmp_path / "c", [{"id": "<urn:new>", "text": "only in the third input " * 20}]
    )
    stats = run([a.parent, b.parent, extra], tmp_path / "out")["dedup"]
    kept = pq.read_table(tmp_path / "out" / "documents").column("id").to_pylist()
    removed = pq.read_table(tmp_path / "out" / "removed").to_pylist()
    assert sorted(kept) == sorted([r["id"] for r in rows] + ["<urn:new>"])  # each id once
    assert (
        stats.docs_in == 11 and stats.kept == 6 and dict(stats.removed) == {"dedup:duplicate_id": 5}
    )
    assert all(
        r["reason"] == "dedup:duplicate_id" and r["duplicate_of"] == r["id"] for r in removed
    )
    names = sorted(p.name for p in (tmp_path / "out" / "documents").glob("*.parquet"))
    assert names == ["part-0@0.parquet", "part-0@1.parquet", "part-0@2.parquet"]  # no overwrite


def test_same_id_different_text_is_a_clear_error(texts, tmp_path):
    from pipelines.dedup import DuplicateIdError
    from pipelines.dedup import dedup as run

    a = _docs_dir(tmp_path / "a", [{"id": "<urn:1>", "text": texts[0]}])
    b = _docs_dir(tmp_path / "b", [{"id": "<urn:1>", "text": texts[1]}], name="other")
    with pytest.raises(DuplicateIdError, match=r"'<urn:1>' occurs with different texts.*other"):
        run([a, b], tmp_path / "out")


def test_stage_dedup_cli_uses_every_input(texts, tmp_path):
    """``stage dedup --input A --input B`` reads both (typer kept only the last before)."""
    from typer.testing import CliRunner

    from flows.cli import app

    a = _docs_dir(tmp_path / "a", [{"id": "<urn:a>", "text": texts[0]}])
    b = _docs_dir(tmp_path / "b", [{"id": "<urn:b>", "text": texts[1]}], name="other")
    res = CliRunner().invoke(
        app,
        ["stage", "dedup", "--input", str(a), "--input", str(b), "--output", str(tmp_path / "out")],
    )
    assert res.exit_code == 0, res.output
    assert sorted(pq.read_table(tmp_path / "out" / "documents").column("id").to_pylist()) == [
        "<urn:a>",
        "<urn:b>",
    ]
