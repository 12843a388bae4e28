"""Object-storage outputs for the local engine (fsspec: ``s3://``, ``gs://``, ``az://``, ...).

The local engine's stages write with local file APIs (temp file + rename, resumable). For a
remote ``--output`` the run writes into a local staging directory named after the output
(``$TOKENMILL_STAGING`` or the system temp dir), so a crashed run resumes from it, and the
finished tree is then uploaded file by file (``_work`` and temp files stay local). Object
stores make each upload atomic (an object appears whole or not at all); ``stats.json`` files go
last, so a remote output with its ``stats.json`` is complete. Inputs on object storage are read
directly (``pipelines.io.expand_inputs`` + ``pipelines.read.open_binary``).
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

import fsspec


def is_remote(path: str | os.PathLike) -> bool:
    s = str(path)
    return "://" in s and not s.startswith("file://")


def staging_dir(output: str) -> Path:
    """The local directory a run into the remote ``output`` writes to before uploading."""
    base = Path(os.environ.get("TOKENMILL_STAGING") or tempfile.gettempdir()) / "tokenmill-staging"
    name = hashlib.sha1(output.rstrip("/").encode()).hexdigest()[:16]
    return base / name


def upload_tree(local: Path, remote: str, skip: tuple[str, ...] = ("_work",)) -> list[str]:
    """Upload every finished file under ``local`` to ``remote`` (same relative paths), the
    ``stats.json`` files last; returns the uploaded URLs."""
    fs, root = fsspec.core.url_to_fs(remote.rstrip("/"))
    files = [
        p
        for p in sorted(Path(local).rglob("*"))
        if p.is_file()
        and not any(part in skip or part.startswith(".") for part in p.relative_to(local).parts)
    ]
    files.sort(key=lambda p: p.name == "stats.json")  # stable: everything else first
    done = []
    for p in files:
        rel = p.relative_to(local).as_posix()
        fs.put_file(str(p), f"{root}/{rel}")
        done.append(f"{remote.rstrip('/')}/{rel}")
    return done
