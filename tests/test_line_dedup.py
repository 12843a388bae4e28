"""Line-level dedup (CCNet / dolma) on real pages: boilerplate lines go, articles stay."""

from __future__ import annotations

import numpy as np
import pytest

from pipelines.line_dedup import count_texts, frequent_from_counts, run_line_dedup
from pipelines.shard_stage import SettingsChanged
from schemas.config import LineDedupConfig
from tests.quality_corpus import real_pages, table_rows, write_documents

NEWSLETTER = "Subscribe to our newsletter for weekly updates!"


@pytest.fixture()
def corpus(web_dir, tmp_path):
    pages = real_pages(str(web_dir))[:24]
    rows = []
    for i, p in enumerate(pages):
        text = p["main"]
        if i % 3 == 0:  # boilerplate that survived extraction, in 8 documents
            text = f"{text}\n{NEWSLETTER}\n  subscribe to our   NEWSLETTER for weekly updates!"
        rows.append(
            {"id": f"d{i:03d}", "url": p["url"], "date": p["date"], "source": "t", "text": text}
        )
    # a page that is nothing but boilerplate: removed once its lines are gone
    rows.append(
        {
            "id": "d900",
            "url": "https://x.example/",
            "date": None,
            "source": "t",
            "text": f"{NEWSLETTER}\nShort.",
        }
    )
    return write_documents(tmp_path / "in", rows, shards=3), rows


def test_repeated_lines_removed_and_counted(corpus, tmp_path):
    inp, rows = corpus
    stats = run_line_dedup(inp, tmp_path / "out", LineDedupConfig(max_docs=3))
    kept = {r["id"]: r["text"] for r in table_rows(tmp_path / "out", "documents")}
    removed = table_rows(tmp_path / "out", "removed")
    assert [(r["id"], r["reason"]) for r in removed] == [("d900", "line_dedup:too_little_text")]
    assert removed[0]["text"] == rows[-1]["text"]  # the removed row keeps its original text
    assert len(kept) + len(removed) == len(rows)
    assert not any("to our newsletter" in t.casefold() for t in kept.values())
    # reference by brute force: normalized lines in more than 3 documents go, nothing else
    norm = [
        {" ".join(ln.split()).casefold() for ln in r["text"].split("\n") if ln.strip()}
        for r in rows
    ]
    every = [ln for lines in norm for ln in lines]
    frequent = {ln for ln in set(every) if every.count(ln) > 3}
    assert NEWSLETTER.casefold() in frequent and len(frequent) > 1  # the real pages have some too
    removed_units = 0
    for r in rows[:-1]:
        want = [
            ln for ln in r["text"].split("\n") if " ".join(ln.split()).casefold() not in frequent
        ]
        assert kept[r["id"]] == "\n".join(want).strip("\n")
        removed_units += len(norm[rows.index(r)] & frequent)
    c = stats["counts"]
    assert c["units_removed"] >= removed_units + 1 and c["docs_modified"] >= 9
    assert c["units_in"] > 500
    # a higher N keeps the line (9 documents have it)
    s9 = run_line_dedup(inp, tmp_path / "n9", LineDedupConfig(max_docs=9))
    assert s9["counts"]["units_removed"] < c["units_removed"]
    assert s9["stages"]["line_dedup"]["removed"] == 0
    assert any(NEWSLETTER in r["text"] for r in table_rows(tmp_path / "n9", "documents"))
    with pytest.raises(SettingsChanged):
        run_line_dedup(inp, tmp_path / "out", LineDedupConfig(max_docs=9))


def test_partitioned_merge_equals_global_count(corpus):
    _, rows = corpus
    texts = [r["text"] for r in rows]
    cfg = LineDedupConfig()
    shards = [count_texts(texts[k::4], cfg) for k in range(4)]
    want = count_texts(texts, cfg)
    for parts in (1, 7, 256):
        got = frequent_from_counts(shards, LineDedupConfig(partitions=parts))
        assert np.array_equal(got, want["hash"][want["count"] > 1])


def test_resume_after_crash_equals_clean_run(corpus, tmp_path):
    inp, _ = corpus
    cfg = LineDedupConfig(max_docs=2, unit="paragraph")
    run_line_dedup(inp, tmp_path / "clean", cfg)
    out = tmp_path / "crashed"
    run_line_dedup(inp, out, cfg)
    shard = sorted((out / "stats").glob("*.json"))[0]
    shard.unlink()
    (out / "removed" / f"{shard.stem}.parquet").unlink()
    (out / "stats.json").unlink()
    run_line_dedup(inp, out, cfg)
    for sub in ("documents", "removed"):
        assert table_rows(out, sub) == table_rows(tmp_path / "clean", sub)
