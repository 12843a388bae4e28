"""The Beam dedup + tokenize part (distributed connected components, duplicate ids, token shards
from key ranges) against the local engine on near-duplicates of real pages; the components'
convergence check."""

from __future__ import annotations

import glob

import apache_beam as beam
import pyarrow.parquet as pq
import pytest
from apache_beam.runners.portability.fn_api_runner import FnApiRunner

from benchmarks.dedup_quality import make_corpus, real_texts, write_docs
from pipelines.beam.corpus import NotConvergedError, components, dedup_and_tokenize
from pipelines.dedup import dedup
from pipelines.tokenize import tokenize
from schemas.config import DedupConfig, TokenizeConfig


def _rows(pattern) -> dict[str, dict]:
    return {
        r["id"]: r for f in sorted(glob.glob(str(pattern))) for r in pq.read_table(f).to_pylist()
    }


def _beam(docs_dir, out, dc, tc):
    files = sorted(glob.glob(f"{docs_dir}/*.parquet"))
    with beam.Pipeline(runner=FnApiRunner()) as p:
        shards = p | beam.Create([(f.rsplit("/", 1)[1].removesuffix(".parquet"), f) for f in files])
        dedup_and_tokenize(shards, str(out), dc, tc)


@pytest.mark.parametrize("min_similarity", [None, 0.7])
def test_beam_dedup_and_tokens_equal_local(web_dir, tmp_path, min_similarity, monkeypatch):
    import pipelines.beam.corpus as corpus

    monkeypatch.setattr(corpus, "BUCKET_TASK_DOCS", 20)  # several key-range tasks per band
    docs = make_corpus(real_texts(web_dir, limit=8))
    docs += [dict(docs[3]), dict(docs[10])]  # exact copies (same id, same text) in another shard
    write_docs(docs, tmp_path / "docs", shards=3)
    dc, tc = (
        DedupConfig(min_similarity=min_similarity),
        TokenizeConfig(shard_tokens=5_000, val_fraction=0.2),
    )
    dedup(tmp_path / "docs", tmp_path / "local" / "dedup", dc)
    tokenize(tmp_path / "local" / "dedup", tmp_path / "local" / "tokenize", tc)
    _beam(tmp_path / "docs", tmp_path / "beam", dc, tc)
    for sub in ("documents", "removed"):
        lr = _rows(tmp_path / "local" / "dedup" / sub / "*.parquet")
        br = _rows(tmp_path / "beam" / "dedup" / sub / "*.parquet")
        assert lr == br and (lr or sub == "removed")
    removed = _rows(tmp_path / "local" / "dedup" / "removed" / "*.parquet").values()
    assert {r["reason"] for r in removed} == {"dedup:minhash", "dedup:duplicate_id"}
    local_shards = sorted(glob.glob(str(tmp_path / "local" / "tokenize" / "*" / "shard-*.parquet")))
    beam_shards = sorted(glob.glob(str(tmp_path / "beam" / "tokenize" / "*" / "shard-*.parquet")))
    assert [f.split("tokenize/")[1] for f in local_shards] == [
        f.split("tokenize/")[1] for f in beam_shards
    ]
    assert len(local_shards) >= 3
    for a, b in zip(local_shards, beam_shards, strict=True):
        assert pq.read_table(a).equals(pq.read_table(b))
    import json

    lm = json.loads((tmp_path / "local" / "tokenize" / "manifest.json").read_text())
    bm = json.loads((tmp_path / "beam" / "tokenize" / "manifest.json").read_text())
    assert lm == bm


def _labels(edges, rounds):
    with beam.Pipeline(runner=FnApiRunner()) as p:
        out = components(p | beam.Create(edges), rounds)
        beam.testing.util.assert_that(out, beam.testing.util.equal_to(_expected(edges)))


def _expected(edges):
    import numpy as np

    from pipelines.dedup import components as cc
    from pipelines.dedup import representatives

    ids = sorted({x for e in edges for x in e})
    index = {d: i for i, d in enumerate(ids)}
    reps = representatives(ids, cc(len(ids), np.array([(index[a], index[b]) for a, b in edges])))
    return [(d, r) for d, r in zip(ids, reps, strict=True) if d != r]


def test_components_chain_and_stars_match_scipy():
    import apache_beam.testing.util  # noqa: F401

    chain = [(f"n{i:03d}", f"n{i + 1:03d}") for i in range(64)]  # a path: the slow case
    shuffled = [(f"m{(i * 37) % 50:03d}", f"m{(i * 37 + 11) % 50:03d}") for i in range(60)]
    _labels(chain + shuffled + [("a", "z"), ("y", "b")], 10)


def test_components_not_converged_fails_loudly():
    import apache_beam.testing.util  # noqa: F401

    chain = [(f"n{i:03d}", f"n{i + 1:03d}") for i in range(64)]
    with pytest.raises(Exception, match="did not converge in 1 rounds"):
        _labels(chain, 1)
    assert NotConvergedError
