"""Bad input is removed with a reason, never a crash, and the records after it still go through."""

from __future__ import annotations

import json
import random
import threading
from collections import Counter

import pyarrow.parquet as pq
import pytest

from pipelines.extract import ExtractStep, measure
from pipelines.fineweb import process_shard
from pipelines.sample_pages import ARTICLES, article_html, build_warc_bytes, sample_pages
from schemas.config import ExtractConfig, FinewebConfig, ReadConfig
from tests.test_read import members

MAX_BYTES = 2_500_000
TIMEOUT_S = 0.3  # CPU seconds; the huge page needs several times that


def huge_page() -> str:
    title, paras = ARTICLES["rivers"]
    return article_html(title, paras * 2400)  # ~2 MB of real-looking article HTML


@pytest.fixture(scope="module")
def bad_shard(tmp_path_factory):
    """A crawl with every kind of bad record, each followed by good ones."""
    good = sample_pages()
    title, paras = ARTICLES["bees"]
    specials = [
        {
            "url": "https://bad.tokenmill-sample.org/undecodable",
            "kind": "undecodable",
            "content_type": "text/html",
            "body": b"<html><body>" + random.Random(3).randbytes(4000) + b"</body></html>",
        },
        {
            "url": "https://bad.tokenmill-sample.org/oversized",
            "kind": "oversized",
            "content_type": "text/html; charset=utf-8",
            "body": article_html(title, paras * 5000).encode(),
        },
        {
            "url": "https://bad.tokenmill-sample.org/hang",
            "kind": "timeout",
            "content_type": "text/html; charset=utf-8",
            "body": huge_page().encode(),
        },
    ]
    assert len(specials[1]["body"]) > MAX_BYTES > len(specials[2]["body"])
    pages = (
        good[:6]
        + [specials[0]]
        + good[6:12]
        + [specials[1]]
        + good[12:18]
        + [specials[2]]
        + good[18:]
    )
    ms = members(build_warc_bytes(pages))
    garbage = random.Random(7).randbytes(3000)
    # member 2k is the response of page k (member 0 is warcinfo)
    truncated = ms[2 * 3][: len(ms[2 * 3]) // 3]
    data = b"".join(ms[:6]) + truncated + b"".join(ms[7:20]) + garbage + b"".join(ms[20:])
    out = tmp_path_factory.mktemp("bad")
    path = out / "bad.warc.gz"
    path.write_bytes(data)
    cfg = FinewebConfig(
        read=ReadConfig(max_bytes=MAX_BYTES), extract=ExtractConfig(timeout_s=TIMEOUT_S)
    )
    stats = process_shard(
        str(path), str(out / "run"), cfg, ["read", "urlfilter", "extract", "langid", "pii"]
    )
    kept = pq.read_table(out / "run" / "documents").to_pylist()
    removed = pq.read_table(out / "run" / "removed").to_pylist()
    return {"pages": pages, "stats": stats, "kept": kept, "removed": removed}


def test_each_bad_record_removed_with_its_reason(bad_shard):
    by_url = {r["url"]: r["reason"] for r in bad_shard["removed"]}
    assert by_url["https://bad.tokenmill-sample.org/undecodable"] == "read:undecodable"
    assert by_url["https://bad.tokenmill-sample.org/oversized"] == "read:too_large"
    assert by_url["https://bad.tokenmill-sample.org/hang"] == "extract:timeout"
    reasons = Counter(r["reason"] for r in bad_shard["removed"])
    assert reasons["read:corrupt_record"] == 2  # the truncated member and the garbage region
    assert reasons["read:not_html"] == 2
    # the truncated record is named: its id and url survive in removed
    truncated_url = bad_shard["pages"][2]["url"]
    assert by_url.get(truncated_url) == "read:corrupt_record"


def test_records_after_bad_ones_are_processed(bad_shard):
    seen = {r["url"] for r in bad_shard["kept"]} | {r["url"] for r in bad_shard["removed"]}
    lost = [p["url"] for p in bad_shard["pages"] if p["url"] not in seen]
    assert lost == []
    kept_urls = {r["url"] for r in bad_shard["kept"]}
    # good English pages right after each bad one made it to the end
    assert "https://www.tokenmill-sample.org/articles/bicycle" in kept_urls  # after the truncation
    assert "https://news.tokenmill-sample.com/tides/explained" in kept_urls  # after the timeout
    for st in bad_shard["stats"].values():
        st.check_conservation()
    units = bad_shard["stats"]["read"].docs_in
    assert len(bad_shard["kept"]) + len(bad_shard["removed"]) == units


def test_timeout_off_the_main_thread_uses_a_killable_sandbox():
    """Beam workers call steps from threads: no signals there, a child process does the work."""
    step = ExtractStep(ExtractConfig(timeout_s=0.5))
    step.setup()
    html = huge_page()
    assert measure(html) > 0.5
    small = article_html(*ARTICLES["bread"])
    results: list = []

    def work() -> None:
        for page in (small, html, small):
            doc = {"text": page}
            results.append((step.process(doc), doc["text"][:20]))

    t = threading.Thread(target=work)
    t.start()
    t.join(120)
    step.close()
    assert [r for r, _ in results] == [None, "extract:timeout", None]
    assert results[0][1].startswith("How to bake")


def test_extract_error_and_empty_are_reasons():
    step = ExtractStep(ExtractConfig())
    step.setup()
    assert step.process({"text": ""}) == "extract:empty"
    assert (
        step.process(
            {
                "text": "<html><head><script>var a = 1;</script></head><body><div id='root'></div></body></html>"
            }
        )
        == "extract:empty"
    )


def test_stats_file_written_last_and_valid(bad_shard, tmp_path):
    # the stats JSON of the shard is complete (names the skipped request records)
    stats_files = list((tmp_path.parent).glob("**/run/stats/*.json"))
    assert stats_files
    payload = json.loads(stats_files[0].read_text())
    assert payload["skipped_records"]["request"] > 0 and payload["stages"]["read"]["in"] > 0
