"""BM25 search over the processed corpus: the tool behind ``<|search_start|>query<|search_end|>``.

Documents are cut into overlapping word windows (passages), so a hit is a short, quotable piece
of text rather than a whole page, and an answer that straddles a window edge is still whole in
the next window. The index is built with ``bm25s`` and persisted on disk next to the passages
(``passages.parquet``: passage id, doc id, text) and ``index.json`` (build settings, counts), so a
search service or a generator loads it in milliseconds instead of re-indexing.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import BaseModel, Field

from pipelines.io import (
    atomic_write_parquet,
    atomic_write_text,
    documents_dir,
    iter_parquet_rows,
    parquet_files,
)

PASSAGE_SCHEMA = pa.schema(
    [
        pa.field("passage_id", pa.int64()),
        pa.field("doc_id", pa.string()),
        pa.field("text", pa.string()),
    ]
)
TOKEN_PATTERN = r"(?u)\b\w+\b"  # keep one-character tokens: digits matter in factual questions
_WORD_RE = re.compile(r"\S+")


class SearchConfig(BaseModel):
    """Passage windows and BM25 settings (bm25s defaults: Lucene variant, k1=1.5, b=0.75)."""

    passage_words: int = Field(120, ge=10, description="words per passage window")
    overlap_words: int = Field(30, ge=0, description="words shared by consecutive windows")
    stopwords: str = Field("en", description="bm25s stopword list ('' for none)")
    k1: float = 1.5
    b: float = 0.75


@dataclass
class Hit:
    doc_id: str
    text: str
    score: float
    passage_id: int = -1


def chunk_text(text: str, passage_words: int = 120, overlap_words: int = 30) -> list[str]:
    """Overlapping windows of ``passage_words`` words, cut from the original text (layout kept)."""
    spans = [m.span() for m in _WORD_RE.finditer(text)]
    if not spans:
        return []
    stride = max(1, passage_words - overlap_words)
    out = []
    for start in range(0, len(spans), stride):
        window = spans[start : start + passage_words]
        out.append(text[window[0][0] : window[-1][1]])
        if start + passage_words >= len(spans):
            break
    return out


def _tokenize(texts: list[str], stopwords: str):
    import bm25s

    return bm25s.tokenize(
        texts,
        token_pattern=TOKEN_PATTERN,
        stopwords=stopwords or None,
        return_ids=False,
        show_progress=False,
    )


def _iter_documents(source: str | Path | Iterable[dict]) -> Iterator[dict]:
    if isinstance(source, (str, Path)):
        files = parquet_files(documents_dir(source))
        if not files:
            raise FileNotFoundError(f"no documents/*.parquet under {source}")
        yield from iter_parquet_rows(files, columns=["id", "text"])
    else:
        yield from source


class SearchIndex:
    """A persisted BM25 index over corpus passages."""

    def __init__(self, retriever, passages: pa.Table, config: SearchConfig):
        self.retriever = retriever
        self.config = config
        self._doc_ids = passages.column("doc_id").to_pylist()
        self._texts = passages.column("text").to_pylist()

    def __len__(self) -> int:
        return len(self._texts)

    @classmethod
    def build(
        cls,
        source: str | Path | Iterable[dict],
        out_dir: str | Path,
        config: SearchConfig | None = None,
    ) -> SearchIndex:
        """Index documents (a corpus dir with ``documents/*.parquet``, or rows with id/text)."""
        import bm25s

        config = config or SearchConfig()
        out_dir = Path(out_dir)
        doc_ids, texts, n_docs = [], [], 0
        for row in _iter_documents(source):
            n_docs += 1
            for passage in chunk_text(
                row.get("text") or "", config.passage_words, config.overlap_words
            ):
                doc_ids.append(str(row["id"]))
                texts.append(passage)
        if not texts:
            raise ValueError("no text to index")
        retriever = bm25s.BM25(k1=config.k1, b=config.b)
        retriever.index(_tokenize(texts, config.stopwords), show_progress=False)
        retriever.save(str(out_dir / "bm25"), show_progress=False)
        passages = pa.Table.from_pydict(
            {"passage_id": list(range(len(texts))), "doc_id": doc_ids, "text": texts},
            schema=PASSAGE_SCHEMA,
        )
        atomic_write_parquet(out_dir / "passages.parquet", passages)
        atomic_write_text(
            out_dir / "index.json",
            json.dumps(
                {"config": config.model_dump(), "documents": n_docs, "passages": len(texts)},
                indent=2,
            ),
        )
        return cls(retriever, passages, config)

    @classmethod
    def load(cls, directory: str | Path) -> SearchIndex:
        import bm25s

        directory = Path(directory)
        meta = json.loads((directory / "index.json").read_text())
        retriever = bm25s.BM25.load(str(directory / "bm25"), mmap=True, show_progress=False)
        return cls(
            retriever, pq.read_table(directory / "passages.parquet"), SearchConfig(**meta["config"])
        )

    def search(self, query: str, k: int = 3) -> list[Hit]:
        """The ``k`` best passages for ``query`` (fewer when fewer match any query term)."""
        return self.search_many([query], k)[0]

    def search_many(self, queries: list[str], k: int = 3) -> list[list[Hit]]:
        k = max(1, min(k, len(self)))
        results, scores = self.retriever.retrieve(
            _tokenize(queries, self.config.stopwords), k=k, show_progress=False, n_threads=1
        )
        out = []
        for row, srow in zip(results, scores, strict=True):
            out.append(
                [
                    Hit(self._doc_ids[int(i)], self._texts[int(i)], float(s), int(i))
                    for i, s in zip(row, srow, strict=True)
                    if s > 0
                ]
            )
        return out


def format_results(hits: list[Hit], max_chars: int = 600) -> str:
    """The text injected as the search tool's output: numbered passages with their doc ids."""
    if not hits:
        return "No results."
    return "\n\n".join(
        f"[{i + 1}] (doc {h.doc_id}) {h.text[:max_chars]}" for i, h in enumerate(hits)
    )
