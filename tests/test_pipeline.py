"""`corpus_pipeline_flow` (real Prefect): fineweb -> dedup -> tokenize on real WARCs, one
stats.json with conservation across stages, token shards that decode to the kept documents,
and a resumed run that redoes nothing."""

from __future__ import annotations

import json

import pyarrow.parquet as pq

from flows.pipeline import corpus_pipeline_flow
from pipelines.tokenizer import load_tokenizer
from schemas.config import TokenizeConfig


def test_pipeline_flow_end_to_end_and_resume(web_warcs, tmp_path):
    inputs = [str(p) for p in web_warcs if "dolma" in p.name]
    out = tmp_path / "run"
    tc = TokenizeConfig(shard_tokens=20_000, val_fraction=0.1)
    stats = corpus_pipeline_flow(inputs, str(out), tokenize=tc)["stages"]
    assert list(stats)[-2:] == ["dedup", "tokenize"] and "pii" in stats
    order = list(stats)
    for prev, nxt in zip(order, order[1:], strict=False):
        assert stats[prev]["kept"] == stats[nxt]["in"], (prev, nxt)
    for s in stats.values():
        assert s["in"] == s["kept"] + s["removed"]
    assert stats["tokenize"]["kept"] > 10
    kept = {r["id"]: r["text"] for r in pq.read_table(out / "dedup" / "documents").to_pylist()}
    manifest = json.loads((out / "tokenize" / "manifest.json").read_text())
    tok = load_tokenizer("cl100k_base")
    rows = [
        r
        for s in manifest["splits"].values()
        for sh in s["shards"]
        for r in pq.read_table(out / "tokenize" / sh["file"]).to_pylist()
    ]
    assert {r["id"] for r in rows} == set(kept)
    assert all(tok.decode(r["input_ids"][:-1]) == kept[r["id"]] for r in rows)
    assert sum(v["tokens"] for v in manifest["splits"].values()) == sum(
        r["num_tokens"] for r in rows
    )

    before = {p: p.stat().st_mtime_ns for p in out.rglob("*.parquet")}
    again = corpus_pipeline_flow(inputs, str(out), tokenize=tc)["stages"]
    assert again == stats  # read back from the finished stages
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*.parquet")} == before
