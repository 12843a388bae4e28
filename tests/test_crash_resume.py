"""Crash safety for real: kill -9 `tokenmill fineweb` part-way, re-run, compare with a clean run."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from pipelines.fineweb import process_shard
from schemas.config import FinewebConfig

REPO = Path(__file__).resolve().parents[1]


def _cli(args: list[str], tmp: Path) -> subprocess.Popen:
    env = dict(os.environ, PREFECT_HOME=str(tmp / "home"))
    return subprocess.Popen(
        [sys.executable, "-m", "flows.cli", *args],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )


def _docs(out: Path) -> list[tuple[str, str]]:
    return sorted((r["id"], r["text"]) for r in pq.read_table(out / "documents").to_pylist())


def _removed(out: Path) -> list[tuple[str, str]]:
    return sorted((r["id"], r["reason"]) for r in pq.read_table(out / "removed").to_pylist())


@pytest.mark.slow
def test_kill_9_then_resume_equals_clean_run(web_warcs, tmp_path):
    # six shards: the real files plus copies under other directories (same basenames)
    shards = tmp_path / "in"
    for i, sub in enumerate(("a", "b")):
        (shards / sub).mkdir(parents=True)
        for p in web_warcs[i * 1 : len(web_warcs)]:
            shutil.copy(p, shards / sub / p.name)
    inputs = sorted(str(p) for p in shards.rglob("*.warc.gz"))
    assert len(inputs) >= 6

    # the reference: every shard processed without interruption, in this process
    clean = tmp_path / "clean"
    for p in inputs:
        process_shard(p, str(clean), FinewebConfig())

    out = tmp_path / "crashed"
    args = [
        "fineweb",
        *[a for p in inputs for a in ("--input", p)],
        "--output",
        str(out),
        "--workers",
        "2",
    ]
    proc = _cli(args, tmp_path)
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        if (out / "stats").is_dir() and any(p.suffix == ".json" for p in (out / "stats").iterdir()):
            break
        time.sleep(0.05)
    assert proc.poll() is None, "the run finished before it could be killed"
    os.killpg(proc.pid, signal.SIGKILL)  # the CLI and its worker processes, mid-run
    proc.wait()
    done_before = len(list((out / "stats").glob("*.json")))
    assert 1 <= done_before < len(inputs)

    proc = _cli(args, tmp_path)
    _, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err.decode()[-3000:]

    assert _docs(out) == _docs(clean)  # identical ids and texts
    assert _removed(out) == _removed(clean)
    for f in (out / "documents").glob("*.parquet"):  # no duplicates within a shard
        ids = pq.read_table(f, columns=["id"]).column("id").to_pylist()
        assert len(ids) == len(set(ids)), f.name
    assert not [p for p in out.rglob("*") if p.name.endswith(".tmp")]  # no leftover temp files
    assert len(list((out / "stats").glob("*.json"))) == len(inputs)
