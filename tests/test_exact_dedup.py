"""Exact dedup (URL: latest fetch kept; text: smallest id kept) on real pages, with resume."""

from __future__ import annotations

import json
import shutil

import pytest

from pipelines.exact_dedup import normalize_url, run_exact_dedup
from pipelines.shard_stage import SettingsChanged
from schemas.config import ExactDedupConfig
from tests.quality_corpus import real_pages, table_rows, write_documents


def test_normalize_url():
    assert (
        normalize_url("HTTPS://Example.COM:443/a/b/?z=1&a=2#frag")
        == "https://example.com/a/b?a=2&z=1"
    )
    assert normalize_url("<http://example.com>") == "http://example.com/"
    assert normalize_url("http://example.com:8080/x") == "http://example.com:8080/x"
    assert normalize_url("") is None and normalize_url(None) is None


@pytest.fixture()
def corpus(web_dir, tmp_path):
    pages = real_pages(str(web_dir))[:20]
    rows = [
        {
            "id": f"<urn:uuid:{i:04d}>",
            "url": p["url"].strip("<>"),
            "date": p["date"],
            "source": "test",
            "text": p["main"],
        }
        for i, p in enumerate(pages)
    ]
    # an exact copy under another URL, with different whitespace and case: a text duplicate
    rows.append(
        {
            **rows[3],
            "id": "<urn:uuid:9003>",
            "url": "https://mirror.example/copy",
            "text": "  " + rows[3]["text"].upper().replace(" ", "  \n "),
        }
    )
    # the same URL fetched again later with new text: the older fetch (id 0005) goes
    rows.append(
        {
            **rows[5],
            "id": "<urn:uuid:9005>",
            "url": rows[5]["url"].replace("https://", "HTTPS://", 1) + "#top",
            "date": "2099-01-01T00:00:00Z",
            "text": rows[5]["text"] + "\nUpdated.",
        }
    )
    # same URL, same fetch time: the smaller id wins the tie
    rows.append({**rows[7], "id": "<urn:uuid:0007a>", "text": rows[7]["text"] + " (b)"})
    return write_documents(tmp_path / "in", rows, shards=3), rows


def test_exact_and_url_duplicates_removed_with_links(corpus, tmp_path):
    inp, rows = corpus
    stats = run_exact_dedup(inp, tmp_path / "out")
    removed = {
        r["id"]: (r["reason"], r["duplicate_of"]) for r in table_rows(tmp_path / "out", "removed")
    }
    assert removed == {
        "<urn:uuid:9003>": ("exact_dedup:text", "<urn:uuid:0003>"),
        "<urn:uuid:0005>": ("exact_dedup:url", "<urn:uuid:9005>"),
        "<urn:uuid:0007a>": ("exact_dedup:url", "<urn:uuid:0007>"),
    }
    kept = table_rows(tmp_path / "out", "documents")
    st = stats["stages"]["exact_dedup"]
    assert st["in"] == len(rows) == len(kept) + len(removed)  # conservation
    assert st["removed_by_reason"] == {"exact_dedup:text": 1, "exact_dedup:url": 2}
    assert stats["config"] == ExactDedupConfig().model_dump()

    only_text = run_exact_dedup(inp, tmp_path / "text", ExactDedupConfig(url=False))
    assert only_text["stages"]["exact_dedup"]["removed_by_reason"] == {"exact_dedup:text": 1}


def test_resume_after_crash_equals_clean_run_and_changed_settings_refuse(corpus, tmp_path):
    inp, _ = corpus
    clean = tmp_path / "clean"
    run_exact_dedup(inp, clean)
    out = tmp_path / "crashed"
    run_exact_dedup(inp, out)
    # the state a kill -9 leaves: one shard unfinished (outputs gone, a temp file), no final stats
    shard = sorted((out / "stats").glob("*.json"))[1]
    shard.unlink()
    (out / "documents" / f"{shard.stem}.parquet").unlink()
    (out / "documents" / f".{shard.stem}.parquet.x.tmp").write_bytes(b"partial")
    (out / "stats.json").unlink()
    shutil.rmtree(out / "_work" / "keys")  # finished work is not redone: keys are not needed
    run_exact_dedup(inp, out)
    for sub in ("documents", "removed"):
        assert table_rows(out, sub) == table_rows(clean, sub)
    a, b = (json.loads((d / "stats.json").read_text())["stages"] for d in (out, clean))
    assert {k: v for k, v in a["exact_dedup"].items() if "s" not in k} == {
        k: v for k, v in b["exact_dedup"].items() if "s" not in k
    }
    with pytest.raises(SettingsChanged, match="settings differ"):
        run_exact_dedup(inp, out, ExactDedupConfig(url=False))
    again = run_exact_dedup(inp, out, ExactDedupConfig(url=False), overwrite=True)  # starts over
    assert again["stages"]["exact_dedup"]["removed_by_reason"] == {"exact_dedup:text": 1}
    assert json.loads((out / "run.json").read_text())["config"]["url"] is False


def test_empty_input_is_an_error(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError):
        run_exact_dedup(tmp_path / "empty", tmp_path / "out")
    with pytest.raises(ValueError):
        ExactDedupConfig.model_validate({"urls": False})  # typo: rejected, not ignored
