"""File access of the Beam engine, only through Beam's own filesystems.

``apache_beam.io.filesystems.FileSystems`` picks the filesystem from the path's scheme (local
paths, ``gs://``, ``s3://``, ``hdfs://``, ...), so the same pipeline writes to a laptop folder
or a bucket. Writes are atomic the way Beam's own file sinks make them: the bytes go to a
temporary name in the destination directory and are renamed into place (on object stores a
copy + delete), so a reader never sees a half-written file under its final name and a file
that exists is complete. Compression is never guessed from the extension (a ``.warc.gz`` is
read as the bytes it is: the WARC reader handles gzip members itself).
"""

from __future__ import annotations

import io
import json
import uuid

import pyarrow as pa
import pyarrow.parquet as pq
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems

RAW = CompressionTypes.UNCOMPRESSED


def join(base: str, *parts: str) -> str:
    return FileSystems.join(base.rstrip("/"), *parts)


def exists(path: str) -> bool:
    return FileSystems.exists(path)


def read_bytes(path: str) -> bytes:
    with FileSystems.open(path, compression_type=RAW) as f:
        return f.read()


def read_json(path: str) -> dict:
    return json.loads(read_bytes(path).decode("utf-8"))


def read_parquet(path: str, columns: list[str] | None = None) -> pa.Table:
    return pq.read_table(io.BytesIO(read_bytes(path)), columns=columns)


def write_bytes(path: str, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically: a temp name next to it, then rename."""
    parent, name = FileSystems.split(path)
    tmp = join(parent, f".{name}.{uuid.uuid4().hex}.tmp")
    try:
        with FileSystems.create(tmp, compression_type=RAW) as f:
            f.write(data)
        if FileSystems.exists(path):  # rename onto an existing object is not portable
            FileSystems.delete([path])
        FileSystems.rename([tmp], [path])
    except BaseException:
        try:
            if FileSystems.exists(tmp):
                FileSystems.delete([tmp])
        except Exception:  # noqa: BLE001 - the original error matters
            pass
        raise


def write_json(path: str, payload: dict) -> None:
    write_bytes(path, json.dumps(payload, indent=2).encode("utf-8"))


def write_parquet(path: str, table: pa.Table, compression: str = "zstd", **kwargs) -> None:
    buf = pa.BufferOutputStream()
    pq.write_table(table, buf, compression=compression, **kwargs)
    write_bytes(path, buf.getvalue().to_pybytes())


def copy_to_local(path: str, dest: str, chunk: int = 8 << 20) -> None:
    """Stream ``path`` (any Beam filesystem) into the local file ``dest``."""
    with FileSystems.open(path, compression_type=RAW) as src, open(dest, "wb") as out:
        while True:
            block = src.read(chunk)
            if not block:
                return
            out.write(block)


def expand(patterns: list[str]) -> list[str]:
    """Every file matched by ``patterns`` (globs, files, or directories: everything under them),
    sorted; a pattern that matches nothing is an error naming it."""
    files: list[str] = []
    for pat in patterns:
        is_dir = _is_local_dir(pat)
        metas = [] if is_dir else FileSystems.match([pat])[0].metadata_list
        if not metas and not any(c in pat for c in "*?["):  # a directory or an object prefix
            metas = FileSystems.match([join(pat, "**")])[0].metadata_list
        found = [m.path for m in metas if not m.path.rsplit("/", 1)[-1].startswith(".")]
        if not found:
            raise FileNotFoundError(f"no input matches {pat!r}")
        files.extend(found)
    return sorted(dict.fromkeys(files))


def _is_local_dir(path: str) -> bool:
    import os

    return "://" not in path and os.path.isdir(path)


def open_read(path: str):
    """A seekable binary reader of ``path`` (Parquet readers fetch only the parts they need)."""
    return FileSystems.open(path, compression_type=RAW)
