"""Inputs a stage refuses (never read as records) and the one atomic-write helper."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipelines.io import (
    InputError,
    atomic_path,
    atomic_write_bytes,
    atomic_write_parquet,
    documents_dir,
    expand_inputs,
    remove_stale_temps,
)
from schemas.documents import documents_table, removed_table


def stage_output(root: Path) -> Path:
    """What a stage writes: documents/, removed/, stats/<shard>.json and stats.json."""
    atomic_write_parquet(
        root / "documents" / "a.parquet", documents_table([{"id": "1", "url": "u", "text": "kept"}])
    )
    atomic_write_parquet(
        root / "removed" / "a.parquet",
        removed_table(
            [
                {
                    "id": "2",
                    "url": "v",
                    "text": "gone",
                    "stage": "langid",
                    "reason": "langid:language",
                }
            ]
        ),
    )
    atomic_write_bytes(root / "stats" / "a.json", b"{}")
    atomic_write_bytes(root / "stats.json", b"{}")
    return root


def test_stage_dir_means_its_documents(tmp_path):
    out = stage_output(tmp_path / "st")
    assert expand_inputs([str(out)]) == [str(out / "documents" / "a.parquet")]


@pytest.mark.parametrize(
    "rel,words",
    [
        ("removed", "REMOVED"),
        ("removed/a.parquet", "REMOVED"),
        ("stats.json", "neither a WARC"),
        ("stats", "neither a WARC"),
        ("stats/a.json", "neither a WARC"),
    ],
)
def test_removed_and_stats_are_refused(tmp_path, rel, words):
    out = stage_output(tmp_path / "st")
    with pytest.raises(InputError, match=words):
        expand_inputs([str(out / rel)])


def test_a_whole_pipeline_dir_is_refused_not_mixed(tmp_path):
    root = tmp_path / "run"
    stage_output(root / "fineweb")
    with pytest.raises(InputError):
        expand_inputs([str(root)])


def test_fifo_and_text_files_are_refused(tmp_path):
    fifo = tmp_path / "pipe.warc.gz"
    os.mkfifo(fifo)
    with pytest.raises(InputError, match="FIFO"):
        expand_inputs([str(fifo)])
    d = tmp_path / "d"
    d.mkdir()
    os.mkfifo(d / "x.warc")
    with pytest.raises(InputError, match="FIFO"):
        expand_inputs([str(d)])
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(InputError, match="neither a WARC"):
        expand_inputs([str(tmp_path / "notes.txt")])
    with pytest.raises(FileNotFoundError):
        expand_inputs([str(tmp_path / "nothing-*.warc.gz")])


def test_real_warcs_and_documents_are_accepted(web_dir, web_warcs, tmp_path):
    assert expand_inputs([str(web_dir)]) == [str(p) for p in web_warcs]
    out = stage_output(tmp_path / "st")
    assert expand_inputs([str(out / "documents")]) == [str(out / "documents" / "a.parquet")]


def test_documents_dir_refuses_removed(tmp_path):
    out = stage_output(tmp_path / "st")
    assert documents_dir(out) == out / "documents"
    with pytest.raises(InputError, match="REMOVED"):
        documents_dir(out / "removed")


@pytest.mark.parametrize("umask,mode", [(0o022, 0o644), (0o002, 0o664), (0o077, 0o600)])
def test_atomic_writes_honour_the_umask(tmp_path, umask, mode):
    old = os.umask(umask)
    try:
        atomic_write_bytes(tmp_path / "a.bin", b"x")
        atomic_write_parquet(tmp_path / "a.parquet", pa.table({"x": [1]}))
        with atomic_path(tmp_path / "b.bin") as tmp:
            tmp.write_bytes(b"y")
    finally:
        os.umask(old)
    for name in ("a.bin", "a.parquet", "b.bin"):
        assert (tmp_path / name).stat().st_mode & 0o777 == mode, name


def test_a_killed_writer_leaves_no_temp_a_rerun_keeps(tmp_path):
    """kill -9 in the middle of a write leaves a temp file; the next write of that file (or a
    directory sweep) removes it, and a live writer's temp is never touched."""
    target = tmp_path / "band-000.npy"
    code = (
        "import os, sys; from pipelines.io import atomic_path\n"
        f"with atomic_path({str(target)!r}) as tmp:\n"
        "    open(tmp, 'wb').write(b'half'); os.kill(os.getpid(), 9)\n"
    )
    subprocess.run([sys.executable, "-c", code], cwd=Path(__file__).resolve().parents[1])
    assert not target.exists()
    left = list(tmp_path.glob(".*.tmp"))
    assert len(left) == 1
    live = tmp_path / f".other.parquet.{os.getpid()}.abcd1234.tmp"
    live.write_bytes(b"mine")
    atomic_write_bytes(target, b"full")
    assert target.read_bytes() == b"full" and not left[0].exists()
    assert remove_stale_temps(tmp_path) == [] and live.exists()  # our own pid is alive


def test_parquet_write_failure_leaves_nothing(tmp_path):
    with pytest.raises(pa.ArrowInvalid), atomic_path(tmp_path / "x.parquet") as tmp:
        pq.write_table(pa.table({"x": [1]}), tmp)
        raise pa.ArrowInvalid("boom")
    assert list(tmp_path.iterdir()) == []
