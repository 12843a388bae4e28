"""Crash-safe file I/O and input discovery shared by every stage.

Outputs are written to a temporary file in the destination directory and renamed into place, so
a killed run never leaves a half-written file under its final name. ``AtomicFile`` is the one
implementation of that (every writer in the project goes through it): the temp file is named
``.<final name>.<pid>.<random>.tmp``, so the next write of the same file (or
``remove_stale_temps`` on its directory) recognises a temp file whose writer is dead and deletes
it; and the final file gets the mode the user's umask asks for (``tempfile.mkstemp`` would make
it 0600, unreadable to the group that shares a corpus).

``expand_inputs`` turns what a user typed into the files a stage reads, refusing anything that
is not an input (a stage's ``removed/`` or stats files, a FIFO, a text file) with one clear line
instead of reading it as a record.
"""

from __future__ import annotations

import glob
import os
import re
import secrets
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import fsspec
import pyarrow as pa
import pyarrow.parquet as pq

#: Suffixes of the inputs the read stage understands (compared lower-case).
WARC_SUFFIXES = (".warc", ".warc.gz")
PARQUET_SUFFIX = ".parquet"
#: Columns that mark a stage's ``removed`` Parquet (never an input: its rows were rejected).
_REMOVED_MARKERS = {"reason", "stage"}
_TMP_NAME = re.compile(r"^\.(?P<name>.+)\.(?P<pid>\d+)\.[0-9a-f]+\.tmp$")


class InputError(ValueError):
    """An input the user named cannot be read as one; ``str()`` is one line saying why."""


# ------------------------------------------------------------------------------ atomic writes


def current_umask() -> int:
    """The process umask, read without changing it (``os.umask`` can only set it, and a
    set-and-restore would race with threads creating files meanwhile)."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)  # no /proc (not Linux): the set-and-restore fallback
    os.umask(mask)
    return mask


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def remove_stale_temps(directory: str | Path, name: str | None = None) -> list[Path]:
    """Delete the temp files in ``directory`` (of final file ``name``, or all) whose writing
    process is gone: what a killed run left. Returns what was removed."""
    d = Path(directory)
    if not d.is_dir():
        return []
    gone = []
    for p in d.glob(f".{glob.escape(name)}.*.tmp" if name else ".*.tmp"):
        m = _TMP_NAME.match(p.name)
        if m and (name is None or m["name"] == name) and not _pid_alive(int(m["pid"])):
            p.unlink(missing_ok=True)
            gone.append(p)
    return gone


class AtomicFile:
    """A temp path next to ``path``; ``commit()`` renames it into place with umask-honouring
    permissions, ``abort()`` deletes it. Stale temps of the same target are removed first."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_temps(self.path.parent, self.path.name)
        self.tmp = self.path.with_name(
            f".{self.path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
        )

    def commit(self, fsync: bool = False) -> None:
        if fsync:
            fd = os.open(self.tmp, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        os.chmod(self.tmp, 0o666 & ~current_umask())
        os.replace(self.tmp, self.path)

    def abort(self) -> None:
        self.tmp.unlink(missing_ok=True)


@contextmanager
def atomic_path(path: str | Path, fsync: bool = False) -> Iterator[Path]:
    """``with atomic_path(p) as tmp: write(tmp)``: ``p`` appears complete or not at all."""
    f = AtomicFile(path)
    try:
        yield f.tmp
        f.commit(fsync)
    except BaseException:
        f.abort()
        raise


def atomic_write_bytes(path: Path, data: bytes) -> None:
    with atomic_path(path, fsync=True) as tmp, open(tmp, "wb") as f:
        f.write(data)


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_parquet(path: Path, table: pa.Table, compression: str = "zstd") -> None:
    """Write ``table`` to ``path`` via a temp file + rename (never a partial file at ``path``)."""
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp, compression=compression)


# ------------------------------------------------------------------------------ inputs


def _kind(path: str) -> str | None:
    low = path.lower()
    if low.endswith(WARC_SUFFIXES):
        return "warc"
    if low.endswith(PARQUET_SUFFIX):
        return "parquet"
    return None


def check_input_file(path: str) -> str:
    """``path`` if it is a readable input (a regular WARC file or a documents Parquet file),
    else ``InputError`` naming what it is. Remote URLs are checked by name only."""
    kind = _kind(path)
    local = "://" not in path
    if local:
        try:
            mode = os.stat(path).st_mode
        except FileNotFoundError:
            raise InputError(f"input {path!r} does not exist") from None
        if not stat.S_ISREG(mode):
            what = (
                "a FIFO"
                if stat.S_ISFIFO(mode)
                else "a directory"
                if stat.S_ISDIR(mode)
                else "a device or socket"
            )
            raise InputError(f"input {path!r} is {what}, not a regular file: refusing to read it")
    if kind is None:
        raise InputError(
            f"input {path!r} is neither a WARC file (.warc, .warc.gz) nor a "
            "documents Parquet file (.parquet): refusing to read it as records"
        )
    if kind == "parquet" and local:
        try:
            names = set(pq.read_schema(path).names)
        except (pa.ArrowInvalid, OSError) as e:
            raise InputError(f"input {path!r} is not a readable Parquet file: {e}") from None
        if _REMOVED_MARKERS <= names:
            raise InputError(
                f"input {path!r} holds REMOVED documents (a stage's removed/), "
                "not documents to process: give the stage's documents/ directory"
            )
        if not {"id", "text"} <= names:
            raise InputError(
                f"input {path!r} is not a documents Parquet file (it has no "
                "'id' and 'text' columns)"
            )
    return path


def _dir_files(directory: str) -> list[str]:
    """The inputs under a local directory: its ``documents/`` when it is a stage's output,
    else every non-hidden file below it (each checked)."""
    d = documents_dir(directory)
    out = []
    for p in sorted(glob.glob(os.path.join(glob.escape(str(d)), "**", "*"), recursive=True)):
        if os.path.isdir(p):
            continue  # sub-directories are walked by the recursive glob
        out.append(check_input_file(p))
    if not out:
        raise InputError(f"input directory {directory!r} holds no WARC or documents Parquet files")
    return out


def expand_inputs(patterns: list[str]) -> list[str]:
    """Expand local globs/directories and fsspec URLs (s3://, https://) into a sorted file list.

    A stage's output directory means its ``documents/``; every file must be a regular WARC or
    documents Parquet file (``check_input_file``), anything else is an ``InputError``.
    """
    files: list[str] = []
    for pat in patterns:
        if "://" in pat and not pat.startswith("file://"):
            fs, _, paths = fsspec.get_fs_token_paths(pat)
            if not paths:
                raise FileNotFoundError(f"no input matches {pat!r}")
            files.extend(check_input_file(fs.unstrip_protocol(p)) for p in paths)
            continue
        pat = pat.removeprefix("file://")
        if os.path.isdir(pat):
            files.extend(_dir_files(pat))
            continue
        matched = (
            glob.glob(pat, recursive=True)
            if glob.has_magic(pat)
            else ([pat] if os.path.lexists(pat) else [])
        )
        if not matched:
            raise FileNotFoundError(f"no input matches {pat!r}")
        for m in sorted(matched):
            files.extend(_dir_files(m) if os.path.isdir(m) else [check_input_file(m)])
    return sorted(dict.fromkeys(files))


def parquet_files(directory: str | Path) -> list[Path]:
    """The finished Parquet shards of a dataset directory (temp files excluded), sorted."""
    return sorted(p for p in Path(directory).glob("*.parquet") if not p.name.startswith("."))


def documents_dir(path: str | Path) -> Path:
    """Accept a stage output dir (with documents/) or the documents/ dir itself; refuse a
    ``removed/`` directory (its rows were rejected, they are not documents)."""
    p = Path(path)
    if (p / "documents").is_dir():
        return p / "documents"
    first = next(iter(parquet_files(p)), None) if p.is_dir() else None
    if first is not None and _REMOVED_MARKERS <= set(pq.read_schema(first).names):
        raise InputError(
            f"{str(p)!r} holds REMOVED documents (a stage's removed/), not documents "
            "to process: give the stage's output directory or its documents/"
        )
    return p


def iter_parquet_rows(
    files: list[Path], columns: list[str] | None = None, batch_size: int = 1024
) -> Iterator[dict]:
    """Stream rows from Parquet files without loading a whole file."""
    for f in files:
        pf = pq.ParquetFile(f)
        for batch in pf.iter_batches(batch_size=batch_size, columns=columns):
            yield from batch.to_pylist()
