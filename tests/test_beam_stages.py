"""The issue-14 stages on Beam (FnApiRunner) write exactly what the local drivers write."""

from __future__ import annotations

import json
import random

import pyarrow.parquet as pq
import pytest

from pipelines import classify as cl
from pipelines import decontaminate as dc
from pipelines import exact_dedup as ed
from pipelines import line_dedup as ld
from pipelines.beam import stages as bs
from schemas.config import ClassifyConfig, DecontaminateConfig, ExactDedupConfig, LineDedupConfig
from tests.quality_corpus import real_pages, table_rows, write_documents


@pytest.fixture(scope="module")
def rows(web_dir) -> list[dict]:
    """Real pages with URL re-fetches and exact copies, shuffled."""
    pages = real_pages(str(web_dir))[:45]
    rows = [
        {
            "id": f"d{i:03d}",
            "url": p["url"].strip("<>"),
            "date": p["date"],
            "source": "t",
            "text": p["main"] + ("\nShare this page on social media" if i % 4 == 0 else ""),
        }
        for i, p in enumerate(pages)
    ]
    rows += [
        {**rows[i], "id": f"c{i:03d}", "date": f"2030-01-0{1 + i % 3}T00:00:00Z"}
        for i in range(0, 12, 2)
    ]
    rows += [
        {**rows[i], "id": f"a{i:03d}", "url": f"https://copy.example/{i}"} for i in range(1, 9, 3)
    ]
    rows += [{**rows[3], "id": "t003", "date": rows[3]["date"]}]  # same URL, same date: tie
    random.Random(0).shuffle(rows)
    return rows


@pytest.fixture(scope="module")
def corpus(web_dir, rows, tmp_path_factory):
    """The rows in 4 shards, a small quality model and an eval set: every stage removes some."""
    tmp = tmp_path_factory.mktemp("beam_stages")
    pages = real_pages(str(web_dir))[:45]
    labels = [
        {"id": f"{p['id']}{k}", "text": p[k], "score": s}
        for p in real_pages(str(web_dir))
        for k, s in (("main", 4), ("boilerplate", 1))
    ]
    cl.train(labels, tmp / "model.bin")
    (tmp / "eval.jsonl").write_text(
        json.dumps({"id": "q", "text": " ".join(pages[7]["main"].split()[:40])})
    )
    return write_documents(tmp / "in", rows, shards=4), tmp


def _same(a, b):
    for sub in ("documents", "removed"):
        fa = sorted(p.name for p in (a / sub).glob("*.parquet"))
        assert fa == sorted(p.name for p in (b / sub).glob("*.parquet")) and fa
        for f in fa:
            assert pq.read_table(a / sub / f).equals(pq.read_table(b / sub / f)), (sub, f)
    sa, sb = (json.loads((d / "stats.json").read_text()) for d in (a, b))
    strip = {"seconds", "docs_per_s"}
    assert [{k: v for k, v in st.items() if k not in strip} for st in sa["stages"].values()] == [
        {k: v for k, v in st.items() if k not in strip} for st in sb["stages"].values()
    ]
    assert sa["counts"] == sb["counts"]


@pytest.mark.slow
@pytest.mark.parametrize(
    "beam_args",
    [
        ["--runner=FnApiRunner"],
        [
            "--runner=FnApiRunner",
            "--direct_num_workers=2",
            "--direct_running_mode=multi_processing",
        ],
    ],
)
def test_beam_equals_local_for_every_stage(corpus, tmp_path, beam_args):
    inp, tmp = corpus
    cases = [
        ("exact_dedup", ed.run_exact_dedup, ExactDedupConfig()),
        ("line_dedup", ld.run_line_dedup, LineDedupConfig(max_docs=2)),
        (
            "decontaminate",
            dc.run_decontaminate,
            DecontaminateConfig(against=[str(tmp / "eval.jsonl")]),
        ),
        ("classify", cl.run_classify, ClassifyConfig(model=str(tmp / "model.bin"), threshold=2.5)),
    ]
    for stage, local_run, cfg in cases:
        local_run(inp, tmp_path / f"{stage}-local", cfg)
        bs.run(stage, str(inp), str(tmp_path / f"{stage}-beam"), cfg, beam_args)
        _same(tmp_path / f"{stage}-local", tmp_path / f"{stage}-beam")
        assert table_rows(tmp_path / f"{stage}-local", "removed"), stage  # something to compare


def test_exact_dedup_is_order_free(rows, tmp_path):
    """Whatever the sharding and row order, the same documents are kept (the property that
    makes Beam's unordered groups give the local result)."""
    ed.run_exact_dedup(write_documents(tmp_path / "in", rows, shards=4), tmp_path / "a")
    rows = list(rows)
    random.Random(1).shuffle(rows)
    write_documents(tmp_path / "in2", rows, shards=7)
    ed.run_exact_dedup(tmp_path / "in2", tmp_path / "b")
    for sub in ("documents", "removed"):
        a = sorted(
            (r["id"], r.get("reason"), r.get("duplicate_of"))
            for r in table_rows(tmp_path / "a", sub)
        )
        b = sorted(
            (r["id"], r.get("reason"), r.get("duplicate_of"))
            for r in table_rows(tmp_path / "b", sub)
        )
        assert a == b
    removed = {r["id"]: r for r in table_rows(tmp_path / "a", "removed")}
    assert "d003" not in removed  # tie on URL and date: the smaller id is kept
    assert (removed["t003"]["reason"], removed["t003"]["duplicate_of"]) == (
        "exact_dedup:url",
        "d003",
    )
    assert removed["d000"]["duplicate_of"] == "c000"  # a later fetch of the URL wins
