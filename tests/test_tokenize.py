"""Tokenization to shuffled token shards: exact round trip on real WARC-derived text, both
tokenizer kinds; shard budget; stable split; deterministic shuffle; resume."""

from __future__ import annotations

import json

import numpy as np
import pyarrow.parquet as pq
import pytest

from benchmarks.dedup_quality import real_texts
from pipelines.tokenize import is_val, shard_counts, shard_of, shuffle_key, tokenize
from pipelines.tokenizer import load_tokenizer, train_bpe
from schemas.config import TokenizeConfig
from schemas.documents import documents_table
from schemas.tokens import TOKEN_SHARD_SCHEMA


@pytest.fixture(scope="module")
def docs_dir(web_dir, tmp_path_factory):
    """Real page texts (trafilatura over ../shared/data/web) as a 3-shard documents dir."""
    texts = real_texts(web_dir, min_words=1)
    texts += ["", "<|endoftext|> and <|im_start|> are plain text here", "Ünïcödé ✓ 漢字 🙂"]
    d = tmp_path_factory.mktemp("docs")
    rows = [{"id": f"<urn:uuid:{i:05d}>", "text": t} for i, t in enumerate(texts)]
    for s in range(3):
        pq.write_table(documents_table(rows[s::3]), d / f"part-{s}.parquet")
    return d, {r["id"]: r["text"] for r in rows}


def _check_round_trip(out, texts, tok):
    seen = {}
    manifest = json.loads((out / "manifest.json").read_text())
    for split in ("train", "val"):
        for sh in manifest["splits"][split]["shards"]:
            t = pq.read_table(out / sh["file"])
            assert t.schema.equals(TOKEN_SHARD_SCHEMA)
            assert sh["tokens"] == sum(t.column("num_tokens").to_pylist())
            for row in t.to_pylist():
                ids = row["input_ids"]
                assert ids[-1] == tok.eot_id == manifest["eot_id"]
                assert row["num_tokens"] == len(ids)
                assert tok.decode(ids[:-1]) == texts[row["id"]]  # exact, every document
                seen[row["id"]] = split
    assert set(seen) == set(texts)  # every document exactly once
    assert all((s == "val") == is_val(i, manifest["val_fraction"]) for i, s in seen.items())
    return manifest


def test_cl100k_round_trip_shards_and_manifest(docs_dir, tmp_path):
    d, texts = docs_dir
    cfg = TokenizeConfig(shard_tokens=30_000, val_fraction=0.2, seed=3)
    tokenize(d, tmp_path, cfg)
    tok = load_tokenizer("cl100k_base")
    m = _check_round_trip(tmp_path, texts, tok)
    assert m["vocab_size"] == tok.vocab_size and m["special_ids"]["<|im_start|>"] == tok.special(
        "<|im_start|>"
    )
    train = m["splits"]["train"]
    assert len(train["shards"]) >= 3 and m["splits"]["val"]["documents"] > 0
    # every document sits in the key range of its shard among ceil(tokens / budget) ranges: the
    # rule needs no global list, so the Beam engine places documents the same way
    n = shard_counts({"train": train["tokens"], "val": 0}, 30_000)["train"]
    assert n == -(-train["tokens"] // 30_000)
    for sh in train["shards"]:
        keys = np.array(
            [
                shuffle_key(i, 3)
                for i in pq.read_table(tmp_path / sh["file"]).column("id").to_pylist()
            ],
            dtype=np.uint64,
        )
        assert set(shard_of(keys, n).tolist()) == {int(sh["file"][-13:-8])}
    assert (
        abs(train["tokens"] / len(train["shards"]) - 30_000) < 30_000
    )  # about the budget on average
    # shuffled across input shards: train order is not the input order
    order = [
        r
        for sh in train["shards"]
        for r in pq.read_table(tmp_path / sh["file"]).column("id").to_pylist()
    ]
    assert order != sorted(order)


def test_trained_bpe_round_trip(docs_dir, tmp_path, monkeypatch):
    d, texts = docs_dir
    tok = train_bpe((t for t in texts.values() if t), 600, tmp_path / "bpe.json")
    monkeypatch.chdir(tmp_path)  # the tokenizer given by a RELATIVE path, as users type it
    tokenize(d, tmp_path / "out", TokenizeConfig(tokenizer="bpe.json", shard_tokens=50_000))
    m = _check_round_trip(tmp_path / "out", texts, tok)
    # the dataset carries its tokenizer: readable from any working directory
    assert m["tokenizer"] == "tokenizer.json"
    assert (tmp_path / "out" / "tokenizer.json").read_bytes() == (
        tmp_path / "bpe.json"
    ).read_bytes()
    monkeypatch.chdir(d)
    from trainer.data import manifest_tokenizer

    assert load_tokenizer(manifest_tokenizer(tmp_path / "out")).encode("hello") == tok.encode(
        "hello"
    )


def test_seed_changes_order_not_split_and_is_deterministic(docs_dir, tmp_path):
    d, _ = docs_dir
    runs = {}
    for name, seed in (("a", 1), ("b", 1), ("c", 2)):
        tokenize(
            d, tmp_path / name, TokenizeConfig(seed=seed, val_fraction=0.2, shard_tokens=10**9)
        )
        runs[name] = {
            s: pq.read_table(tmp_path / name / s).column("id").to_pylist() for s in ("train", "val")
        }
    assert runs["a"] == runs["b"]
    assert runs["a"]["train"] != runs["c"]["train"]
    assert sorted(runs["a"]["val"]) == sorted(runs["c"]["val"])


def test_shard_rule_counts_and_ranges():
    assert shard_counts({"train": 0, "val": 25}, 10) == {"train": 1, "val": 3}
    keys = np.array([0, 2**62, 2**63, 2**64 - 1], dtype=np.uint64)
    assert shard_of(keys, 4).tolist() == [0, 1, 2, 3] and shard_of(keys, 1).tolist() == [0] * 4


def test_resume_reuses_runs_and_rebuilds_missing_shards(docs_dir, tmp_path):
    d, texts = docs_dir
    cfg = TokenizeConfig(shard_tokens=30_000)
    tokenize(d, tmp_path, cfg)
    runs = {p: p.stat().st_mtime_ns for p in (tmp_path / "_work" / "runs").glob("*.parquet")}
    first = (tmp_path / "train" / "shard-00000.parquet").read_bytes()
    (tmp_path / "manifest.json").unlink()  # as if killed during pass 2
    (tmp_path / "train" / "shard-00001.parquet").unlink()
    tokenize(d, tmp_path, cfg)
    assert {
        p: p.stat().st_mtime_ns for p in (tmp_path / "_work" / "runs").glob("*.parquet")
    } == runs
    assert (tmp_path / "train" / "shard-00000.parquet").read_bytes() == first
    _check_round_trip(tmp_path, texts, load_tokenizer("cl100k_base"))
