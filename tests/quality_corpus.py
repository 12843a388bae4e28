"""Test corpora built from the real pages in ../shared/data/web (issue 14 stages).

Every page gives two texts: its main content (resiliparse main-content extraction: article
text) and its boilerplate (the page's other visible lines: menus, footers, share bars). They
are the "good" and "bad" documents of the quality-classifier tests and the raw material of the
dedup and decontamination tests.
"""

from __future__ import annotations

import functools
import glob
from pathlib import Path

import pyarrow as pa

from pipelines.io import atomic_write_parquet
from schemas.documents import documents_table


@functools.lru_cache(maxsize=2)
def real_pages(web_dir: str, min_words: int = 40) -> tuple[dict, ...]:
    """(id, url, date, main, boilerplate) of every real response page with enough of both."""
    from fastwarc.warc import ArchiveIterator, WarcRecordType
    from resiliparse.extract.html2text import extract_plain_text
    from resiliparse.parse.html import HTMLTree

    out = []
    for f in sorted(glob.glob(str(Path(web_dir) / "*.warc.gz"))):
        with open(f, "rb") as fh:
            for rec in ArchiveIterator(fh, record_types=WarcRecordType.response):
                html = rec.reader.read().decode("utf-8", "replace")
                tree = HTMLTree.parse(html)
                main = extract_plain_text(tree, main_content=True)
                lines = set(main.split("\n"))
                full = extract_plain_text(tree, main_content=False)
                boiler = "\n".join(ln for ln in full.split("\n") if ln.strip() and ln not in lines)
                if len(main.split()) >= min_words and len(boiler.split()) >= min_words:
                    out.append(
                        {
                            "id": rec.record_id,
                            "url": rec.headers.get("WARC-Target-URI"),
                            "date": rec.headers.get("WARC-Date"),
                            "main": main,
                            "boilerplate": boiler,
                        }
                    )
    return tuple(out)


def write_documents(directory: Path, rows: list[dict], shards: int = 2) -> Path:
    """``rows`` as ``shards`` documents Parquet files (round-robin) under ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    for k in range(shards):
        part = rows[k::shards]
        atomic_write_parquet(directory / f"part-{k:03d}.parquet", documents_table(part))
    return directory


def table_rows(directory: Path, sub: str) -> list[dict]:
    import pyarrow.parquet as pq

    files = sorted((directory / sub).glob("*.parquet"))
    return pa.concat_tables([pq.read_table(f) for f in files]).to_pylist() if files else []
