"""kill -9 in the middle of the issue-14 stages, re-run, compare with an uninterrupted run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.quality_corpus import real_pages, table_rows, write_documents

REPO = Path(__file__).resolve().parents[1]
RUN = """
import sys
from pipelines.line_dedup import run_line_dedup
from pipelines.exact_dedup import run_exact_dedup
from schemas.config import ExactDedupConfig, LineDedupConfig
stage, inp, out = sys.argv[1:4]
if stage == "line_dedup":
    run_line_dedup(inp, out, LineDedupConfig(max_docs=2))
else:
    run_exact_dedup(inp, out, ExactDedupConfig())
"""


def _start(stage: str, inp: Path, out: Path) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    return subprocess.Popen(
        [sys.executable, "-c", RUN, stage, str(inp), str(out)],
        cwd=REPO,
        env=env,
        start_new_session=True,
        stderr=subprocess.PIPE,
    )


@pytest.mark.slow
@pytest.mark.parametrize("stage", ["line_dedup", "exact_dedup"])
def test_kill_9_then_rerun_equals_clean_run(stage, web_dir, tmp_path):
    pages = real_pages(str(web_dir))
    rows = [
        {
            "id": f"d{i:04d}-{k}",
            "url": p["url"].strip("<>"),
            "date": p["date"],
            "source": "t",
            "text": p["main"],
        }
        for k in range(4)
        for i, p in enumerate(pages)
    ]
    inp = write_documents(tmp_path / "in", rows, shards=60)
    clean = tmp_path / "clean"
    proc = _start(stage, inp, clean)
    assert proc.wait(timeout=600) == 0, proc.stderr.read().decode()[-2000:]

    out = tmp_path / "crashed"
    proc = _start(stage, inp, out)
    deadline = time.time() + 600
    while time.time() < deadline and proc.poll() is None:
        done = list((out / "stats").glob("*.json")) if (out / "stats").is_dir() else []
        if len(done) >= 5:
            break
        time.sleep(0.01)
    assert proc.poll() is None, "finished before it could be killed"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert 5 <= len(list((out / "stats").glob("*.json"))) < 60 and not (out / "stats.json").exists()

    proc = _start(stage, inp, out)
    assert proc.wait(timeout=600) == 0, proc.stderr.read().decode()[-2000:]
    for sub in ("documents", "removed"):
        assert table_rows(out, sub) == table_rows(clean, sub)
    assert table_rows(out, "removed")  # the stage did remove something
    assert not [p for p in out.rglob("*") if p.name.endswith(".tmp")]
