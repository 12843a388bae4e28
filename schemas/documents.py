"""Schemas of the document datasets every corpus stage reads and writes.

A stage writes what it keeps to ``<dir>/documents/*.parquet`` (DOCUMENT_SCHEMA) and what it
drops to ``<dir>/removed/*.parquet`` (REMOVED_SCHEMA, the same columns plus ``stage``,
``reason`` and ``duplicate_of``). Conservation: ``in == kept + removed`` at every stage.
"""

from __future__ import annotations

import pyarrow as pa

#: Columns every document carries from the read stage on.
BASE_FIELDS: list[pa.Field] = [
    pa.field("id", pa.string(), nullable=False),  # the WARC-Record-ID
    pa.field("url", pa.string()),
    pa.field("date", pa.string()),  # WARC-Date, ISO 8601
    pa.field("source", pa.string()),  # e.g. the crawl or file name
    pa.field("text", pa.string()),
]

#: Annotations added by later stages; null until the stage that sets them has run.
ANNOTATION_FIELDS: list[pa.Field] = [
    pa.field("language", pa.string()),
    pa.field("language_score", pa.float32()),
    pa.field("minhash_cluster", pa.int64()),
    pa.field("pii_replacements", pa.int32()),
    pa.field("quality_score", pa.float32()),  # classify: the model's 0-5 quality score
]

DOCUMENT_SCHEMA = pa.schema(BASE_FIELDS + ANNOTATION_FIELDS)

REMOVED_SCHEMA = pa.schema(
    BASE_FIELDS
    + ANNOTATION_FIELDS
    + [
        pa.field("stage", pa.string(), nullable=False),
        pa.field("reason", pa.string(), nullable=False),  # "<stage>:<why>", e.g. "url:domain"
        pa.field("duplicate_of", pa.string()),  # dedup only: the id of the kept document
    ]
)

DOCUMENT_COLUMNS = [f.name for f in DOCUMENT_SCHEMA]
REMOVED_COLUMNS = [f.name for f in REMOVED_SCHEMA]


def documents_table(rows: list[dict]) -> pa.Table:
    """Rows (dicts) -> a table with exactly DOCUMENT_SCHEMA (missing columns become null)."""
    return pa.Table.from_pylist(
        [{c: r.get(c) for c in DOCUMENT_COLUMNS} for r in rows], DOCUMENT_SCHEMA
    )


def removed_table(rows: list[dict]) -> pa.Table:
    """Rows (dicts with ``stage`` and ``reason``) -> a table with exactly REMOVED_SCHEMA."""
    return pa.Table.from_pylist(
        [{c: r.get(c) for c in REMOVED_COLUMNS} for r in rows], REMOVED_SCHEMA
    )
