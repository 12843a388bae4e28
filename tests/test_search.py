"""BM25 search over real corpus pages: persisted, reloadable, passages that contain the terms."""

from __future__ import annotations

import pyarrow.parquet as pq

from pipelines.search import SearchConfig, SearchIndex, chunk_text, format_results
from tests.test_synth_support import web_documents  # noqa: F401 (fixture)


def test_chunk_text_covers_every_word_with_overlap():
    text = " ".join(f"w{i}" for i in range(250))
    chunks = chunk_text(text, passage_words=100, overlap_words=20)
    assert [len(c.split()) for c in chunks] == [100, 100, 90]
    assert chunks[1].split()[0] == "w80"  # 20 words shared with the previous window
    assert set(" ".join(chunks).split()) == set(text.split())
    assert chunk_text("   ") == []


def test_build_load_search_real_corpus(web_documents, tmp_path):  # noqa: F811
    docs = pq.read_table(next((web_documents / "documents").glob("*.parquet"))).to_pylist()
    built = SearchIndex.build(
        web_documents, tmp_path / "idx", SearchConfig(passage_words=80, overlap_words=20)
    )
    assert len(built) > len(docs)  # long pages were cut into several passages
    index = SearchIndex.load(tmp_path / "idx")
    assert len(index) == len(built)
    # a distinctive sentence from a real page finds that page first
    target = max(docs, key=lambda d: len(d["text"]))
    words = [w for w in target["text"].split() if w.isalpha() and len(w) > 6][:12]
    hits = index.search(" ".join(words), k=5)
    assert hits and hits[0].doc_id == target["id"]
    assert hits == sorted(hits, key=lambda h: -h.score)
    assert any(w.lower() in hits[0].text.lower() for w in words)
    # a query with no known term returns nothing rather than arbitrary passages
    assert index.search("zzqxjv qqxxzz", k=3) == []
    assert "doc " + target["id"] in format_results(hits[:1])


def test_build_from_rows(tmp_path):
    rows = [
        {"id": "a", "text": "The Eiffel Tower is in Paris."},
        {"id": "b", "text": "Mount Fuji is in Japan."},
        {"id": "c", "text": "Bananas are yellow fruit."},
    ]
    index = SearchIndex.build(rows, tmp_path / "i")
    assert index.search("Where is Mount Fuji?", k=2)[0].doc_id == "b"
    assert [h.doc_id for h in SearchIndex.load(tmp_path / "i").search("Eiffel Paris", 3)] == ["a"]
