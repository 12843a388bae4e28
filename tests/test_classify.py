"""Quality classifier on real pages: labels (rule or a loopback LLM), training, the stage."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from pipelines.annotate import annotate, load_labels, parse_score
from pipelines.card import write_card
from pipelines.classify import is_heldout, load_model, run_classify, train
from pipelines.llm import LLMConfig, make_llm
from pipelines.shard_stage import SettingsChanged
from schemas.config import AnnotateConfig, ClassifyConfig, QualityTrainConfig
from tests.quality_corpus import real_pages, table_rows, write_documents
from tests.test_synth_support import OpenAIServer, last_user


def labelled(web_dir) -> list[dict]:
    """Deterministic rule: a page's main text is good (4), its navigation/boilerplate bad (1)."""
    rows = []
    for p in real_pages(str(web_dir)):
        rows.append({"id": f"{p['id']}#main", "text": p["main"], "score": 4})
        rows.append({"id": f"{p['id']}#boiler", "text": p["boilerplate"], "score": 1})
    return rows


@pytest.fixture(scope="module")
def model(web_dir, tmp_path_factory):
    rows = labelled(web_dir)
    d = tmp_path_factory.mktemp("labels")
    (d / "labels.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    path = d / "model.bin"
    report = train(load_labels([str(d / "labels.jsonl")]), path, QualityTrainConfig())
    return path, report, rows


def test_heldout_accuracy_far_above_chance(model):
    path, report, rows = model
    h = report["heldout"]
    assert report["heldout_rows"] >= 40 and report["train_rows"] >= 150
    assert h["accuracy"] >= 0.75 and h["binary"]["f1"] >= 0.75  # chance: 0.5
    assert np.array(h["confusion"]).sum() == report["heldout_rows"]
    assert path.with_suffix(".confusion.png").read_bytes()[:4] == b"\x89PNG"
    assert json.loads(path.with_suffix(".report.json").read_text())["heldout"] == h
    m = load_model(path)  # the saved model predicts what the trained one did
    held = [r for r in rows if is_heldout(r["id"], 0.2)]
    acc = np.mean(m.predict([r["text"] for r in held]) == np.array([r["score"] for r in held]))
    assert acc == pytest.approx(h["accuracy"])


def test_stage_removes_boilerplate_pages_and_keeps_articles(model, web_dir, tmp_path):
    path, _, rows = model
    held = [r for r in rows if is_heldout(r["id"], 0.2)]  # pages the model never saw
    docs = [
        {"id": r["id"], "url": "u", "date": None, "source": "t", "text": r["text"]} for r in held
    ]
    inp = write_documents(tmp_path / "in", docs, shards=2)
    cfg = ClassifyConfig(model=str(path), threshold=2.5)
    stats = run_classify(inp, tmp_path / "out", cfg)
    kept = table_rows(tmp_path / "out", "documents")
    removed = table_rows(tmp_path / "out", "removed")
    assert len(kept) + len(removed) == len(docs) == stats["stages"]["classify"]["in"]
    assert {r["reason"] for r in removed} == {"classify:below_threshold"}
    assert all(r["quality_score"] >= 2.5 for r in kept) and all(
        r["quality_score"] < 2.5 for r in removed
    )
    boiler_removed = np.mean([r["id"].endswith("#boiler") for r in removed])
    main_kept = np.mean([r["id"].endswith("#main") for r in kept])
    assert boiler_removed >= 0.75 and main_kept >= 0.75
    assert sum(v for k, v in stats["counts"].items() if k.startswith("score_")) == len(docs)
    card = write_card(tmp_path / "out")  # the card plots the score distribution
    assert "plots/quality_scores.png" in card.plots
    body = (tmp_path / "out" / "README.md").read_text()
    assert "Model-based quality score" in body and "classify:below_threshold" in body
    with pytest.raises(SettingsChanged):
        run_classify(inp, tmp_path / "out", ClassifyConfig(model=str(path), threshold=3.5))
    # crash: one shard unfinished -> the re-run equals the clean run
    clean = table_rows(tmp_path / "out", "documents")
    (tmp_path / "out" / "stats" / "part-001.json").unlink()
    (tmp_path / "out" / "documents" / "part-001.parquet").unlink()
    run_classify(inp, tmp_path / "out", cfg)
    assert table_rows(tmp_path / "out", "documents") == clean


def test_bad_model_and_labels_are_clear_errors(tmp_path):
    (tmp_path / "x.bin").write_bytes(b"not a model")
    with pytest.raises(ValueError, match="neither"):
        load_model(tmp_path / "x.bin")
    with pytest.raises(FileNotFoundError):
        load_model(tmp_path / "missing.bin")
    (tmp_path / "l.jsonl").write_text(json.dumps({"id": "a", "body": "x", "score": 1}))
    with pytest.raises(ValueError, match="no `text`/`score`"):
        load_labels(str(tmp_path / "l.jsonl"))
    with pytest.raises(ValueError, match="at least 2 scores"):
        train([{"id": str(i), "text": "x y", "score": 3} for i in range(20)], tmp_path / "m.bin")
    with pytest.raises(ValueError):
        ClassifyConfig.model_validate({"model": "m", "treshold": 3})


def test_fasttext_backend_says_what_it_needs(tmp_path, web_dir):
    fasttext = pytest.importorskip("fasttext")
    if hasattr(fasttext, "train_supervised"):
        pytest.skip("a fasttext that trains is installed")
    with pytest.raises(RuntimeError, match="cannot train"):
        train(labelled(web_dir), tmp_path / "m.bin", QualityTrainConfig(backend="fasttext"))


@pytest.mark.parametrize(
    "answer,score",
    [
        ("The extract is a tutorial.\nEducational score: 4", 4),
        ("**Educational Score:** 3", 3),
        ("Total: 2/5", 2),
        ("I award 5 points.", 5),
        ("3", 3),
        ("no idea", None),
        ("score: 10", None),
        ("Score: 1 ... on reflection, Educational score: 2", 2),
    ],
)
def test_parse_score(answer, score):
    assert parse_score(answer) == score


def test_annotate_through_a_loopback_llm_then_train(web_dir, tmp_path):
    """A stub endpoint applies the rubric with a rule (menus score 0-1, prose 3-5; some answers
    unparseable); annotation is sampled, counted, cached and resumable; labels train a model."""

    def rubric(body: dict) -> str:
        text = re.search(r"<<<\n(.*)\n>>>", last_user(body), re.S).group(1)
        lines = [ln for ln in text.split("\n") if ln.strip()]
        avg = np.mean([len(ln.split()) for ln in lines]) if lines else 0
        if len(text) % 17 == 0:
            return "I cannot rate this."
        return f"Reasoning...\nEducational score: {4 if avg >= 8 else 1}"

    rows = labelled(web_dir)
    docs = [
        {"id": r["id"], "url": "u", "date": None, "source": "t", "text": r["text"]} for r in rows
    ]
    inp = write_documents(tmp_path / "in", docs, shards=3)
    cfg = AnnotateConfig(sample=200)
    with OpenAIServer(rubric) as server:
        llm = make_llm(
            LLMConfig(
                base_url=server.base_url,
                model="stub",
                max_concurrency=4,
                cache_dir=str(tmp_path / "ann" / "_cache"),
            )
        )
        stats = annotate(inp, tmp_path / "ann", llm, cfg)
        assert (
            stats["annotated"] == 200 == llm.requests + llm.cache_hits
        )  # equal pages: one request
        assert len(server.requests) == llm.requests
        assert stats["annotated"] == stats["unparseable"] + sum(stats["score_counts"].values())
        # kill -9 after some shards: a re-run answers from files and cache, no new request
        (tmp_path / "ann" / "labels" / "part-001.parquet").unlink()
        llm2 = make_llm(
            LLMConfig(
                base_url=server.base_url, model="stub", cache_dir=str(tmp_path / "ann" / "_cache")
            )
        )
        again = annotate(inp, tmp_path / "ann", llm2, cfg)
        assert len(server.requests) == llm.requests and llm2.cache_hits > 0
        assert {k: again[k] for k in ("annotated", "unparseable", "score_counts")} == {
            k: stats[k] for k in ("annotated", "unparseable", "score_counts")
        }
    labels = load_labels([str(tmp_path / "ann")])
    assert len(labels) == 200 and sum(r["score"] is None for r in labels) == stats["unparseable"]
    report = train(labels, tmp_path / "m.bin")
    assert report["unusable_rows"] == stats["unparseable"]
    assert report["heldout"]["accuracy"] >= 0.7
