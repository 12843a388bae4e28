"""Benchmark decontamination on real pages: documents sharing 13-grams with eval items go."""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipelines.decontaminate import run_decontaminate
from pipelines.ngram_index import NgramIndex, ngram_tuples
from pipelines.synth.decontam import DecontamConfig
from pipelines.synth.decontam import NgramIndex as SynthIndex
from schemas.config import DecontaminateConfig
from tests.quality_corpus import real_pages, table_rows, write_documents


def _passage(text: str, start: int, n: int) -> str:
    return " ".join(text.split()[start : start + n])


@pytest.fixture()
def corpus(web_dir, tmp_path):
    pages = real_pages(str(web_dir))[:30]
    rows = [
        {"id": f"d{i:03d}", "url": p["url"], "date": p["date"], "source": "t", "text": p["main"]}
        for i, p in enumerate(pages)
    ]
    evals = tmp_path / "evals"
    evals.mkdir()
    items = [
        {"id": "q1", "question": _passage(rows[2]["text"], 20, 30), "answer": "x"},
        {
            "id": "q2",
            "question": "What is the capital of France? It is Paris, of course.",
            "answer": "y",
        },
        {"id": "q3", "question": "too short", "answer": "z"},
    ]
    (evals / "bench.jsonl").write_text("\n".join(json.dumps(r) for r in items) + "\n")
    # an item quoting 14 words of doc 10, with different case and punctuation
    quote = _passage(rows[10]["text"], 5, 14).upper().replace(" ", ", ")
    pq.write_table(
        pa.table({"text": [quote, "nothing in common with the corpus at all here"]}),
        evals / "other.parquet",
    )
    return write_documents(tmp_path / "in", rows, shards=2), rows, evals


def test_contaminated_documents_removed_and_items_reported(corpus, tmp_path):
    inp, rows, evals = corpus
    cfg = DecontaminateConfig(against=[str(evals)], text_fields=["question", "text"])
    stats = run_decontaminate(inp, tmp_path / "out", cfg)
    removed = {r["id"]: r["reason"] for r in table_rows(tmp_path / "out", "removed")}
    # reference by brute force over word 13-gram tuples
    grams = ngram_tuples(_passage(rows[2]["text"], 20, 30), 13, short=False) | ngram_tuples(
        _passage(rows[10]["text"], 5, 14), 13, short=False
    )
    want = {r["id"] for r in rows if ngram_tuples(r["text"], 13, short=False) & grams}
    assert {"d002", "d010"} <= want
    assert set(removed) == want and set(removed.values()) == {"decontaminate:ngram_overlap"}
    st = stats["stages"]["decontaminate"]
    assert st["in"] == len(rows) == st["kept"] + st["removed"]
    assert stats["items_hit"]["bench:q1"] >= 1 and stats["items_hit"]["other:0"] >= 1
    assert "bench:q2" not in stats["items_hit"]
    assert stats["index"]["short_items"] == 3  # q2, q3 and the last parquet row are < 13 words
    hits = table_rows(tmp_path / "out", "hits")
    assert {(h["id"], h["item"]) for h in hits} >= {("d002", "bench:q1"), ("d010", "other:0")}


def test_bad_eval_inputs_are_clear_errors(corpus, tmp_path):
    inp, _, evals = corpus
    with pytest.raises(FileNotFoundError):
        run_decontaminate(
            inp, tmp_path / "o1", DecontaminateConfig(against=[str(tmp_path / "nope*.jsonl")])
        )
    with pytest.raises(ValueError, match="no row has any of the fields"):
        run_decontaminate(
            inp, tmp_path / "o2", DecontaminateConfig(against=[str(evals / "bench.jsonl")])
        )


def test_shared_index_keeps_synth_decontam_behaviour():
    idx = SynthIndex(
        ["the quick brown fox jumps over the lazy dog today", "two plus two"],
        DecontamConfig(n=4, threshold=0.5),
    )
    assert idx.overlap("The quick brown FOX jumps!") == 1.0
    assert idx.contaminated("two plus two")  # short text: one whole n-gram
    assert not idx.contaminated("a completely different sentence about cats and more")
    shared = NgramIndex(4).add_all(["a b c d e"])
    assert len(shared) == 2 and shared.overlap("x a b c d") == 0.5
