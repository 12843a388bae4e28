"""Crash-safe Parquet I/O shared by every stage.

Outputs are written to a temporary file in the destination directory and renamed into place, so
a killed run never leaves a half-written shard under its final name; a shard whose final file
exists is finished and is skipped on re-run.
"""

from __future__ import annotations

import glob
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import fsspec
import pyarrow as pa
import pyarrow.parquet as pq


def atomic_write_bytes(path: Path, data: bytes) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_parquet(path: Path, table: pa.Table, compression: str = "zstd") -> None:
    """Write ``table`` to ``path`` via a temp file + rename (never a partial file at ``path``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        pq.write_table(table, tmp, compression=compression)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def expand_inputs(patterns: list[str]) -> list[str]:
    """Expand local globs/directories and fsspec URLs (s3://, https://) into a sorted file list."""
    files: list[str] = []
    for pat in patterns:
        if "://" in pat and not pat.startswith("file://"):
            fs, _, paths = fsspec.get_fs_token_paths(pat)
            files.extend(fs.unstrip_protocol(p) for p in paths)
            continue
        pat = pat.removeprefix("file://")
        if os.path.isdir(pat):
            files.extend(
                p for p in glob.glob(os.path.join(pat, "**", "*"), recursive=True) if os.path.isfile(p)
            )
        else:
            matched = glob.glob(pat, recursive=True)
            if not matched:
                raise FileNotFoundError(f"no input matches {pat!r}")
            files.extend(matched)
    return sorted(dict.fromkeys(files))


def parquet_files(directory: str | Path) -> list[Path]:
    """The finished Parquet shards of a dataset directory (temp files excluded), sorted."""
    return sorted(p for p in Path(directory).glob("*.parquet") if not p.name.startswith("."))


def documents_dir(path: str | Path) -> Path:
    """Accept a stage output dir (with documents/) or the documents/ dir itself."""
    p = Path(path)
    return p / "documents" if (p / "documents").is_dir() else p


def iter_parquet_rows(files: list[Path], columns: list[str] | None = None,
                      batch_size: int = 1024) -> Iterator[dict]:
    """Stream rows from Parquet files without loading a whole file."""
    for f in files:
        pf = pq.ParquetFile(f)
        for batch in pf.iter_batches(batch_size=batch_size, columns=columns):
            yield from batch.to_pylist()
